"""The dispatcher: one background thread that runs promise handlers in order.

A promise must not run its handlers inside ``then`` or ``resolve``, or a
handler could run while its caller is half-way through its own work and
holds its own locks. So handlers are queued and run later, one at a time,
on a thread that belongs to a ``Dispatcher``. JavaScript has the same rule
and calls its queue the microtask queue.
``msgpass.styles.promise`` uses this module, and re-exports its names.

Handing a handler to another thread is the expensive part, so the queue is
built to make it rare. The thread drains the queue without taking the lock,
and a producer wakes it with a notify only when it is parked waiting for
work. A handler that queues another handler runs on the dispatcher thread
itself, so a chain of handlers never pays for a wake-up.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any, Final, NoReturn

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
        # Guards the queue, the fields below and the state of every promise on
        # this dispatcher. Reentrant, so that a finalizer that runs during
        # garbage collection while the lock is held can still queue work
        # instead of deadlocking.
        self._lock = threading.RLock()
        self._wakeup = threading.Condition(self._lock)
        self._queue: collections.deque[tuple[Callable[..., object], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._thread: threading.Thread | None = None
        # True while the thread waits for work, the only time it needs a notify.
        self._parked = False
        self._closed = False
        # Written only by the dispatcher thread, so they need no lock.
        self._executed = 0
        self._failed = 0
        self._threads_started = 0

    def call_soon(self, fn: Callable[..., object], *args: Any) -> None:
        """Queue ``fn(*args)`` to run on the dispatcher thread, and return without waiting.

        Raises ``RuntimeError`` after ``close``.
        """
        with self._lock:
            self._call_soon_locked(fn, args)

    def _call_soon_locked(self, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
        """Queue ``fn(*args)``, as ``call_soon`` does, for a caller that holds ``_lock``."""
        if self._closed:
            self._raise_closed()
        self._queue.append((fn, args))
        if self._thread is None or self._parked:
            self._start_or_wake_locked()

    def _call_all_soon_locked(
        self, calls: list[tuple[Callable[..., object], tuple[Any, ...]]]
    ) -> None:
        """Queue each ``(fn, args)`` of ``calls`` in order, for a caller that holds ``_lock``."""
        if self._closed:
            self._raise_closed()
        self._queue.extend(calls)
        if self._thread is None or self._parked:
            self._start_or_wake_locked()

    def _raise_closed(self) -> NoReturn:
        raise RuntimeError(f"dispatcher {self.name!r} is closed and accepts no new handlers")

    def _start_or_wake_locked(self) -> None:
        if self._thread is None:
            self._threads_started += 1
            self._thread = threading.Thread(
                target=self._run, name=f"{self.name}-{self._threads_started}", daemon=True
            )
            self._thread.start()
        elif self._parked:
            # A handler that queues more work runs on the dispatcher thread,
            # which is not parked, so it never pays for this wake-up.
            self._parked = False
            self._wakeup.notify()

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
        with self._lock:
            self._closed = True
            self._wakeup.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                raise MessagingTimeout(
                    f"dispatcher {self.name!r} still had handlers to run after {timeout_s} s"
                )

    def stats(self) -> dict[str, int]:
        """Return counters for display: queued, executed and failed callbacks, threads started."""
        with self._lock:
            return {
                "queued": len(self._queue),
                "executed": self._executed,
                "failed": self._failed,
                "threads_started": self._threads_started,
            }

    def __repr__(self) -> str:
        with self._lock:
            if self._closed:
                state = "closed"
            elif self._thread is not None:
                state = "running"
            else:
                state = "idle"
            queued = len(self._queue)
        return f"<Dispatcher {self.name!r} {state} queued={queued} executed={self._executed}>"

    def _run(self) -> None:
        queue = self._queue
        while True:
            # popleft() is atomic, so the thread drains the queue without the
            # lock and takes the lock only when the queue looks empty.
            try:
                fn, args = queue.popleft()
            except IndexError:
                if self._wait_for_work():
                    continue
                return
            try:
                fn(*args)
            except BaseException:
                log.exception("dispatcher %r: callback %r raised; continuing", self.name, fn)
                self._failed += 1
            # Drop the references before waiting for more work, or the last
            # promise would stay alive and its unhandled rejection unreported.
            del fn, args
            self._executed += 1

    def _wait_for_work(self) -> bool:
        """Wait until work is queued; return False when the thread should exit.

        The queue is checked again under the lock, and producers append under
        the lock, so a handler queued at the last moment is never stranded.
        """
        with self._lock:
            if not self._queue and not self._closed:
                self._parked = True
                self._wakeup.wait(self.idle_exit_s)
                self._parked = False
            if self._queue:
                return True
            # Closed, or idle for idle_exit_s: the next call_soon starts a new thread.
            self._thread = None
            return False


_default_dispatcher = Dispatcher()


def default_dispatcher() -> Dispatcher:
    """Return the process-wide dispatcher that promises use unless given another."""
    return _default_dispatcher
