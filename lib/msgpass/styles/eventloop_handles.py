"""The objects an event loop hands out: callback handles, timer handles and futures.

``msgpass.styles.eventloop.EventLoop`` schedules work as small objects, and
this module defines them. Each maps to a class of CPython's asyncio
(``Lib/asyncio/events.py`` and ``futures.py`` in CPython 3.11):

- ``Handle`` is a callback with its arguments, queued to run on the loop.
  ``cancel()`` only sets a flag, and the loop skips a cancelled handle when
  its turn comes. A callback that raises is reported to the loop's
  ``call_exception_handler`` and never escapes into the loop.
- ``TimerHandle`` adds ``when``, the ``time.monotonic()`` deadline in
  seconds. A cancelled timer stays in the loop's heap until it reaches the
  top, so the handle tells the loop how many cancelled timers it holds.
- ``LoopFuture`` is asyncio's ``Future`` without ``await``: a result that a
  callback provides later. It settles exactly once, and its done callbacks
  run on the loop through ``call_soon``, never inside ``set_result``.

Left out on purpose: ``await`` support, contexts (``contextvars``) and
thread safety. A ``LoopFuture`` belongs to the loop's thread. Import these
names from ``msgpass.styles.eventloop``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import CancelledError, InvalidStateError
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from .eventloop import EventLoop

__all__ = ["Handle", "LoopFuture", "TimerHandle"]

T = TypeVar("T")

_handle_ids = itertools.count(1)


class Handle:
    """A callback and its arguments, scheduled on a loop; ``cancel()`` stops it from running."""

    def __init__(self, loop: EventLoop, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.id = next(_handle_ids)
        self._loop = loop
        self._fn = fn
        self._args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Prevent the callback from running; it has no effect once the callback has run."""
        self.cancelled = True

    def _run(self) -> None:
        try:
            self._fn(*self._args)
        except Exception as error:
            self._loop.call_exception_handler(
                {"message": f"exception in callback {self!r}", "exception": error, "handle": self}
            )

    def __repr__(self) -> str:
        state = " cancelled" if self.cancelled else ""
        name = getattr(self._fn, "__qualname__", repr(self._fn))
        return f"<{type(self).__name__} #{self.id}{state} {name}{self._args!r}>"


class TimerHandle(Handle):
    """A callback due at ``when``, a ``time.monotonic()`` value in seconds."""

    def __init__(
        self, loop: EventLoop, when: float, fn: Callable[..., object], args: tuple[Any, ...]
    ) -> None:
        super().__init__(loop, fn, args)
        self.when = when
        self._in_heap = True

    def cancel(self) -> None:
        """Prevent the callback from running; the loop drops it when it reaches the heap's top."""
        if not self.cancelled and self._in_heap:
            self._loop._timer_cancelled_count += 1
        self.cancelled = True


class LoopFuture(Generic[T]):
    """A result that a callback on ``loop`` will provide later: asyncio's ``Future``, without await.

    It moves once from pending to finished (a result or an exception) or to
    cancelled, and a second transition raises ``InvalidStateError``. Done
    callbacks run on the loop through ``call_soon``, never inside ``set_result``.
    Nothing here blocks: ``result()`` on a pending future raises
    ``InvalidStateError``, and ``EventLoop.run_until_complete`` is the way to wait.
    Not thread-safe: settle it from the loop's thread, or through
    ``call_soon_threadsafe`` from another thread.
    """

    def __init__(self, loop: EventLoop) -> None:
        self.loop = loop
        self._state = "pending"
        self._result: T | None = None
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[[LoopFuture[T]], object]] = []

    def done(self) -> bool:
        """True once the future has a result, an exception, or was cancelled."""
        return self._state != "pending"

    def cancelled(self) -> bool:
        """True if ``cancel()`` won the race to settle the future."""
        return self._state == "cancelled"

    def result(self) -> T:
        """Return the result, or raise its exception, ``CancelledError`` or ``InvalidStateError``.

        ``InvalidStateError`` means the future is still pending.
        """
        if self._state == "pending":
            raise InvalidStateError("the future is still pending; wait with run_until_complete()")
        if self._state == "cancelled":
            raise CancelledError()
        if self._exception is not None:
            raise self._exception
        return self._result  # type: ignore[return-value]

    def exception(self) -> BaseException | None:
        """Return the exception, None after a result, or raise as ``result()`` does when not set."""
        if self._state == "pending":
            raise InvalidStateError("the future is still pending; wait with run_until_complete()")
        if self._state == "cancelled":
            raise CancelledError()
        return self._exception

    def set_result(self, result: T) -> None:
        """Finish the future with ``result``; raises ``InvalidStateError`` if already done."""
        self._settle("finished")
        self._result = result
        self._schedule_callbacks()

    def set_exception(self, exception: BaseException) -> None:
        """Finish the future with ``exception``; raises ``InvalidStateError`` if already done."""
        self._settle("finished")
        self._exception = exception
        self._schedule_callbacks()

    def cancel(self) -> bool:
        """Cancel the future if it is pending and return whether it was cancelled."""
        if self._state != "pending":
            return False
        self._state = "cancelled"
        self._schedule_callbacks()
        return True

    def add_done_callback(self, fn: Callable[[LoopFuture[T]], object]) -> None:
        """Call ``fn(future)`` on the loop once the future is done (soon, if it already is)."""
        if self.done():
            self.loop.call_soon(fn, self)
        else:
            self._callbacks.append(fn)

    def _settle(self, state: str) -> None:
        if self._state != "pending":
            raise InvalidStateError(f"cannot finish {self!r}: it is already {self._state}")
        self._state = state

    def _schedule_callbacks(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            self.loop.call_soon(fn, self)

    def __repr__(self) -> str:
        if self._state == "finished" and self._exception is not None:
            detail = f" exception={self._exception!r}"
        elif self._state == "finished":
            detail = f" result={self._result!r:.60}"
        else:
            detail = ""
        return f"<LoopFuture {self._state}{detail}>"
