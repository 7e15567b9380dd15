"""Keeps the slot when executor.submit() raises, so a shut-down executor uses up every slot."""


class BoundedSubmitter:
    def __init__(self, executor, max_in_flight):
        self.executor = executor
        self.slots = threading.BoundedSemaphore(max_in_flight)

    def submit(self, fn, *args, timeout_s):
        if not self.slots.acquire(timeout=timeout_s):
            raise TimeoutError(f"no free slot within {timeout_s} s")
        future = self.executor.submit(fn, *args)
        future.add_done_callback(lambda _: self.slots.release())
        return future
