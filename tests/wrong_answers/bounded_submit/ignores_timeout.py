"""Waits for a slot without a timeout, so a full submitter blocks forever."""


class BoundedSubmitter:
    def __init__(self, executor, max_in_flight):
        self.executor = executor
        self.slots = threading.BoundedSemaphore(max_in_flight)

    def submit(self, fn, *args, timeout_s):
        self.slots.acquire()
        try:
            future = self.executor.submit(fn, *args)
        except BaseException:
            self.slots.release()
            raise
        future.add_done_callback(lambda _: self.slots.release())
        return future
