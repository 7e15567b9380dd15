"""Releases the slot in a wrapper around fn, which never runs for a cancelled task."""


class BoundedSubmitter:
    def __init__(self, executor, max_in_flight):
        self.executor = executor
        self.slots = threading.BoundedSemaphore(max_in_flight)

    def submit(self, fn, *args, timeout_s):
        if not self.slots.acquire(timeout=timeout_s):
            raise TimeoutError(f"no free slot within {timeout_s} s")

        def run():
            try:
                return fn(*args)
            finally:
                self.slots.release()

        try:
            return self.executor.submit(run)
        except BaseException:
            self.slots.release()
            raise
