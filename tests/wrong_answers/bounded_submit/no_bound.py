"""Submits straight to the executor, so nothing bounds the tasks in flight."""


class BoundedSubmitter:
    def __init__(self, executor, max_in_flight):
        self.executor = executor

    def submit(self, fn, *args, timeout_s):
        return self.executor.submit(fn, *args)
