"""The dispatcher: one background thread that runs promise handlers in order.

A promise must not run its handlers inside ``then`` or ``resolve``, or a
handler could run while its caller is half-way through its own work and
holds its own locks. So handlers are queued and run later, one at a time,
on a thread that belongs to a ``Dispatcher``. JavaScript has the same rule
and calls its queue the microtask queue.
``msgpass.styles.promise`` uses this module, and re-exports its names.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any, Final

from ..errors import MessagingTimeout

__all__ = [
    "DISPATCHER_IDLE_EXIT_S",
    "Dispatcher",
    "default_dispatcher",
]

log = logging.getLogger(__name__)

# An idle dispatcher thread exits after this many seconds and a new one starts
# with the next handler, so a notebook that re-runs its cells keeps no thread.
DISPATCHER_IDLE_EXIT_S: Final = 0.5


class Dispatcher:
    """One background thread that runs promise handlers one at a time, first in, first out.

    Order is the guarantee that matters: handlers queued in some order start in
    that order, and a handler runs to the end before the next one starts. The
    thread starts with the first queued handler and exits after
    ``idle_exit_s`` seconds without work. ``close`` drains the queue and stops
    the thread for good. A callback that raises is logged and the thread
    goes on, although ``Promise`` catches its handlers' exceptions itself.

    NOTE: the thread is a daemon, so handlers still queued when the
    interpreter exits never run. Call ``close`` first where that matters.
    """

    def __init__(
        self,
        name: str = "msgpass-promise-dispatcher",
        idle_exit_s: float = DISPATCHER_IDLE_EXIT_S,
    ) -> None:
        if idle_exit_s <= 0:
            raise ValueError(f"idle_exit_s must be positive, got {idle_exit_s!r}")
        self.name = name
        self.idle_exit_s = idle_exit_s
        self._condition = threading.Condition()
        self._queue: collections.deque[tuple[Callable[..., object], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._thread: threading.Thread | None = None
        self._closed = False
        self._executed = 0
        self._failed = 0
        self._threads_started = 0

    def call_soon(self, fn: Callable[..., object], *args: Any) -> None:
        """Queue ``fn(*args)`` to run on the dispatcher thread, and return without waiting.

        Raises ``RuntimeError`` after ``close``.
        """
        with self._condition:
            if self._closed:
                raise RuntimeError(
                    f"dispatcher {self.name!r} is closed and accepts no new handlers"
                )
            self._queue.append((fn, args))
            if self._thread is None:
                self._threads_started += 1
                self._thread = threading.Thread(
                    target=self._run, name=f"{self.name}-{self._threads_started}", daemon=True
                )
                self._thread.start()
            else:
                self._condition.notify()

    def in_dispatcher_thread(self) -> bool:
        """Return True when the caller is running on this dispatcher's thread."""
        return threading.current_thread() is self._thread

    def close(self, timeout_s: float) -> None:
        """Run the handlers already queued, then stop the thread.

        Raises ``MessagingTimeout`` if the queue has not drained within
        ``timeout_s`` seconds, and ``RuntimeError`` when called from a handler,
        which would wait for itself.
        """
        if self.in_dispatcher_thread():
            raise RuntimeError("Dispatcher.close() called from one of its own handlers")
        with self._condition:
            self._closed = True
            self._condition.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                raise MessagingTimeout(
                    f"dispatcher {self.name!r} still had handlers to run after {timeout_s} s"
                )

    def stats(self) -> dict[str, int]:
        """Return counters for display: queued, executed and failed callbacks, threads started."""
        with self._condition:
            return {
                "queued": len(self._queue),
                "executed": self._executed,
                "failed": self._failed,
                "threads_started": self._threads_started,
            }

    def __repr__(self) -> str:
        with self._condition:
            if self._closed:
                state = "closed"
            elif self._thread is not None:
                state = "running"
            else:
                state = "idle"
            queued = len(self._queue)
        return f"<Dispatcher {self.name!r} {state} queued={queued} executed={self._executed}>"

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._queue:
                    if self._closed:
                        self._thread = None
                        return
                    # The timeout is checked again under the lock, so a handler
                    # queued at the last moment is never stranded.
                    if not self._condition.wait(self.idle_exit_s) and not self._queue:
                        self._thread = None
                        return
                fn, args = self._queue.popleft()
            try:
                fn(*args)
            except BaseException:
                log.exception("dispatcher %r: callback %r raised; continuing", self.name, fn)
                with self._condition:
                    self._failed += 1
            # Drop the references before waiting for more work, or the last
            # promise would stay alive and its unhandled rejection unreported.
            del fn, args
            with self._condition:
                self._executed += 1


_default_dispatcher = Dispatcher()


def default_dispatcher() -> Dispatcher:
    """Return the process-wide dispatcher that promises use unless given another."""
    return _default_dispatcher
