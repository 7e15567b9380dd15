"""Executors with a bounded number of tasks in flight, and every failure collected.

``concurrent.futures`` is Python's counterpart of Java's ``ExecutorService``.
Two of its defaults surprise people:

- ``ThreadPoolExecutor.submit()`` never blocks. Its work queue has no size
  limit, so a producer that submits faster than the workers finish builds a
  backlog that grows in memory, and every new task waits behind all of it.
- Calling ``result()`` on futures one by one and letting the first exception
  escape hides every later failure, and leaves the other tasks running.

``BoundedExecutor`` fixes the first: it wraps any executor and lets at most
``max_in_flight`` submitted tasks be unfinished. ``submit`` waits for a free
slot up to a timeout and then raises ``MessagingTimeout``. A done callback
frees the slot, so a task that fails or is cancelled frees it too.

``run_all`` fixes the second: it runs a function over many inputs, waits for
all of them, and returns the results by task id together with an
``ExceptionGroup`` of every failure, each exception noted with its task id.

``cpu_work`` and ``io_work`` are small tasks for comparing thread and process
pools. They live in this module because a process pool pickles the function
by its module and name, which a function defined in a notebook does not have
in a spawned worker.

Left out on purpose: priorities, and stopping a running task. Python cannot
stop a thread from outside, so a long task checks a ``threading.Event`` or
its own deadline.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, TypeVar

from .errors import MessagingTimeout

__all__ = [
    "BoundedExecutor",
    "RunAllResult",
    "run_all",
    "cpu_work",
    "io_work",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_SUBMIT_TIMEOUT_S = 10.0


class BoundedExecutor:
    """Wrap ``executor`` so that at most ``max_in_flight`` tasks are unfinished at once.

    A task is in flight from ``submit`` until its future is done: queued,
    running, or just finished. ``submit`` blocks while all slots are taken,
    which pushes back on the producer instead of growing the queue::

        with BoundedExecutor(ThreadPoolExecutor(4), max_in_flight=8) as pool:
            futures = [pool.submit(work, n, timeout_s=5.0) for n in range(100)]

    Raises ``MessagingTimeout`` (a ``TimeoutError``) when no slot frees
    within ``timeout_s``, and re-raises what the wrapped ``submit`` raises
    (``RuntimeError`` after shutdown) without keeping the slot. Leaving the
    ``with`` block shuts the wrapped executor down and waits for its tasks.
    """

    def __init__(self, executor: cf.Executor, max_in_flight: int) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.executor = executor
        self.max_in_flight = max_in_flight
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak_in_flight = 0
        self.submitted = 0
        self.rejected = 0

    def submit(
        self,
        fn: Callable[..., T],
        *args: Any,
        timeout_s: float = DEFAULT_SUBMIT_TIMEOUT_S,
        **kwargs: Any,
    ) -> cf.Future[T]:
        """Submit ``fn(*args, **kwargs)`` once a slot is free; wait at most ``timeout_s``."""
        if not self._slots.acquire(timeout=timeout_s):
            with self._lock:
                self.rejected += 1
            raise MessagingTimeout(
                f"all {self.max_in_flight} slots stayed busy for {timeout_s} s; "
                f"the workers are slower than the producer, so slow down or add workers"
            )
        try:
            future = self.executor.submit(fn, *args, **kwargs)
        except BaseException:
            self._slots.release()
            raise
        with self._lock:
            self.submitted += 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        # Runs in the worker thread that finished the task, or here if it is already done.
        future.add_done_callback(self._release)
        return future

    def _release(self, future: cf.Future[Any]) -> None:
        with self._lock:
            self.in_flight -= 1
        self._slots.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Shut the wrapped executor down, as ``Executor.shutdown`` does."""
        self.executor.shutdown(wait=wait, cancel_futures=cancel_futures)

    def __enter__(self) -> BoundedExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown(wait=True)

    def stats(self) -> dict[str, int]:
        """Slot counters, for display in a notebook."""
        with self._lock:
            return {
                "max_in_flight": self.max_in_flight,
                "in_flight": self.in_flight,
                "peak_in_flight": self.peak_in_flight,
                "submitted": self.submitted,
                "rejected": self.rejected,
            }

    def __repr__(self) -> str:
        return (
            f"<BoundedExecutor {self.in_flight}/{self.max_in_flight} in flight, "
            f"{self.submitted} submitted, {self.rejected} rejected>"
        )


@dataclass(frozen=True)
class RunAllResult(Generic[T]):
    """The outcome of ``run_all``: results by task id, and every failure."""

    results: dict[Hashable, T] = field(default_factory=dict)
    failures: ExceptionGroup[Exception] | None = None
    failed_ids: tuple[Hashable, ...] = ()

    def raise_failures(self) -> None:
        """Raise ``failures`` if any task failed; return quietly otherwise."""
        if self.failures is not None:
            raise self.failures


def run_all(
    executor: cf.Executor,
    fn: Callable[[Any], T],
    inputs: Mapping[Hashable, Any],
    *,
    timeout_s: float = 30.0,
) -> RunAllResult[T]:
    """Run ``fn(value)`` for every ``task_id: value`` of ``inputs``; wait for every task.

    Returns the results by task id and an ``ExceptionGroup`` of every
    exception a task raised, each with a note ``"task <id>"``. Nothing is
    dropped, and one failure does not stop the other tasks. Raises
    ``MessagingTimeout`` if the tasks have not all finished within
    ``timeout_s``, after cancelling the ones that have not started.
    """
    futures = {executor.submit(fn, value): task_id for task_id, value in inputs.items()}
    results: dict[Hashable, T] = {}
    failures: list[tuple[Hashable, Exception]] = []
    try:
        for future in cf.as_completed(futures, timeout=timeout_s):
            task_id = futures[future]
            try:
                results[task_id] = future.result()
            except Exception as error:
                error.add_note(f"task {task_id!r}")
                failures.append((task_id, error))
    except TimeoutError as error:
        cancelled = sum(future.cancel() for future in futures)
        raise MessagingTimeout(
            f"{len(futures) - len(results) - len(failures)} of {len(futures)} tasks unfinished "
            f"after {timeout_s} s ({cancelled} cancelled before they started)"
        ) from error
    if not failures:
        return RunAllResult(results=results)
    failures.sort(key=lambda item: repr(item[0]))
    group = ExceptionGroup(
        f"{len(failures)} of {len(futures)} tasks failed", [error for _, error in failures]
    )
    return RunAllResult(
        results=results, failures=group, failed_ids=tuple(task_id for task_id, _ in failures)
    )


def cpu_work(n: int) -> int:
    """Sum the squares below ``n`` in pure Python: CPU-bound, holds the GIL throughout."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def io_work(delay_s: float) -> float:
    """Wait ``delay_s`` seconds, as a blocking network call would; return ``delay_s``.

    ``time.sleep`` releases the GIL, like a blocking ``recv``, so threads overlap here.
    """
    time.sleep(delay_s)
    return delay_s
