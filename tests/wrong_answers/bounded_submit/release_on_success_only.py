"""Gives the slot back only when the task succeeded, so failed tasks leak their slots."""


class BoundedSubmitter:
    def __init__(self, executor, max_in_flight):
        self.executor = executor
        self.slots = threading.BoundedSemaphore(max_in_flight)

    def submit(self, fn, *args, timeout_s):
        if not self.slots.acquire(timeout=timeout_s):
            raise TimeoutError(f"no free slot within {timeout_s} s")
        future = self.executor.submit(fn, *args)

        def release_if_ok(done):
            if not done.cancelled() and done.exception() is None:
                self.slots.release()

        future.add_done_callback(release_if_ok)
        return future
