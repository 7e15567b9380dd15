"""An event loop from scratch: what asyncio does underneath.

One thread can serve many sockets if it never blocks on any single one. It
asks the operating system which sockets are ready (``selectors``, which wraps
epoll, kqueue or poll), runs a short callback for each ready socket, runs the
timers that are due, and asks again. That loop of "wait for readiness, then
dispatch" is an event loop, and every asynchronous framework has one at its core.

``EventLoop`` is a small, complete one. Each piece maps to a piece of
CPython's asyncio (``Lib/asyncio/base_events.py`` and ``selector_events.py``
in CPython 3.11):

- ``_ready``, a deque of handles to call now, is ``BaseEventLoop._ready``.
  ``call_soon`` appends to it.
- ``_scheduled``, a heap of ``(deadline, sequence, TimerHandle)`` ordered by
  ``time.monotonic()`` deadline, is ``BaseEventLoop._scheduled``.
  ``call_later`` pushes onto it, and a cancelled timer stays in the heap
  until it reaches the top, where it is dropped. asyncio also rebuilds the
  heap when more than half of over 100 timers are cancelled; this loop does not.
- ``_run_once`` is ``BaseEventLoop._run_once``. It computes the ``select``
  timeout from the nearest timer (0 when callbacks are already ready), turns
  ready sockets into handles, moves due timers to ``_ready``, and then calls
  only the handles that were ready when the step began. A callback scheduled
  by a callback waits for the next step, after the next poll for I/O.
- The wake-up socket pair is asyncio's self-pipe
  (``BaseSelectorEventLoop._write_to_self``). Another thread cannot touch the
  selector safely, so ``call_soon_threadsafe`` appends to ``_ready`` and writes
  one byte to the pair, which makes a blocked ``select`` return.
- ``call_exception_handler`` is asyncio's method of the same name. A callback
  that raises is logged with the handle's repr, and the loop goes on.

Every ``select`` call has a timeout. ``run_forever`` waits at most
``MAX_SELECT_TIMEOUT_S``, ``run_once`` and ``run_until_complete`` at most
their ``timeout_s``, and a timer due sooner shortens the wait. Blocking work
belongs in ``run_in_executor``, never in a callback, because a callback that
blocks stops every other socket and timer.
A loop cannot wait for itself either. ``run_until_complete`` and
``run_in_loop_thread`` called from a callback of the same loop raise
``RuntimeError`` instead of deadlocking.

``Handle``, ``TimerHandle`` and ``LoopFuture``, the objects the loop hands
out, live in ``msgpass.styles.eventloop_handles`` and are imported from here.

``EchoServer`` and ``EchoClient`` are a framed echo service written on this
loop: non-blocking accept and connect, a ``FrameDecoder`` per connection, and
an outgoing buffer that ``send`` drains as far as the kernel accepts, with
write-readiness callbacks for the rest. They live in
``msgpass.styles.eventloop_echo`` and are imported from here.

Left out on purpose: coroutines and tasks (``async def`` on top of these
callbacks is what asyncio adds next), transports and protocols, signals,
subprocesses, and TLS.
"""

from __future__ import annotations

import collections
import concurrent.futures
import heapq
import importlib
import itertools
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import MessagingTimeout
from .eventloop_handles import Handle, LoopFuture, TimerHandle

if TYPE_CHECKING:
    from .eventloop_echo import EchoClient, EchoServer

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MAX_SELECT_TIMEOUT_S",
    "EchoClient",
    "EchoServer",
    "EventLoop",
    "ExceptionHandler",
    "Handle",
    "LoopFuture",
    "TimerHandle",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 10.0  # default for run_until_complete and run_in_loop_thread
# Upper bound on one select() wait. asyncio uses 24 hours. A short bound costs one
# idle wake-up per second and limits the damage of a lost wake-up to one second.
MAX_SELECT_TIMEOUT_S = 1.0

ExceptionHandler = Callable[["EventLoop", dict[str, Any]], None]


# -- the loop ------------------------------------------------------------------------


class EventLoop:
    """A single-threaded event loop on ``selectors.DefaultSelector``.

    ::

        with EventLoop() as loop:
            loop.call_later(0.01, print, "tick")
            loop.call_later(0.02, loop.stop)
            loop.run_forever()

    Only ``call_soon_threadsafe``, ``stop`` and ``run_in_loop_thread`` may be
    called from another thread while the loop runs. Every other method belongs
    to the thread that runs the loop. ``close()`` releases the selector and the
    wake-up sockets, but not the sockets registered with ``add_reader``, which
    belong to the caller.
    """

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._ready: collections.deque[Handle] = collections.deque()
        self._scheduled: list[tuple[float, int, TimerHandle]] = []
        self._timer_sequence = itertools.count()
        self._timer_cancelled_count = 0
        self._stopping = False
        self._closed = False
        self._running_thread: int | None = None
        self._run_lock = threading.Lock()  # makes the check and claim of _running_thread atomic
        self._exception_handler: ExceptionHandler | None = None
        self.iterations = 0
        self.callbacks_run = 0
        self.callback_errors = 0
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._selector.register(self._wake_reader, selectors.EVENT_READ, None)

    # -- scheduling callbacks --------------------------------------------------------

    def call_soon(self, fn: Callable[..., object], *args: Any) -> Handle:
        """Schedule ``fn(*args)`` for the next loop step; callbacks run in the order scheduled."""
        self._check_closed()
        handle = Handle(self, fn, args)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(self, fn: Callable[..., object], *args: Any) -> Handle:
        """Schedule ``fn(*args)`` from any thread, and wake the loop if it waits in ``select``."""
        handle = self.call_soon(fn, *args)  # deque.append is atomic, so no lock is needed
        self._write_to_self()
        return handle

    def call_later(self, delay_s: float, fn: Callable[..., object], *args: Any) -> TimerHandle:
        """Schedule ``fn(*args)`` to run ``delay_s`` seconds from now; ``cancel()`` revokes it.

        Timers fire in deadline order, and timers with the same deadline in the
        order they were scheduled. A timer fires no earlier than its deadline,
        and later if callbacks keep the loop busy.
        """
        self._check_closed()
        if delay_s < 0:
            raise ValueError(f"delay_s must not be negative, got {delay_s}")
        handle = TimerHandle(self, time.monotonic() + delay_s, fn, args)
        heapq.heappush(self._scheduled, (handle.when, next(self._timer_sequence), handle))
        return handle

    def _write_to_self(self) -> None:
        try:
            self._wake_writer.send(b"\0")
        except BlockingIOError:
            pass  # the buffer is full of wake-up bytes, so the loop wakes anyway
        except OSError:
            if not self._closed:
                raise

    # -- sockets -----------------------------------------------------------------------

    def add_reader(self, sock: socket.socket, fn: Callable[..., object], *args: Any) -> Handle:
        """Call ``fn(*args)`` each time ``sock`` is readable, replacing an earlier reader."""
        return self._add_io(sock, selectors.EVENT_READ, fn, args)

    def add_writer(self, sock: socket.socket, fn: Callable[..., object], *args: Any) -> Handle:
        """Call ``fn(*args)`` each time ``sock`` is writable, replacing an earlier writer."""
        return self._add_io(sock, selectors.EVENT_WRITE, fn, args)

    def remove_reader(self, sock: socket.socket) -> bool:
        """Stop watching ``sock`` for reading; returns whether a reader was registered."""
        return self._remove_io(sock, selectors.EVENT_READ)

    def remove_writer(self, sock: socket.socket) -> bool:
        """Stop watching ``sock`` for writing; returns whether a writer was registered."""
        return self._remove_io(sock, selectors.EVENT_WRITE)

    def _add_io(
        self, sock: socket.socket, event: int, fn: Callable[..., object], args: tuple[Any, ...]
    ) -> Handle:
        self._check_closed()
        handle = Handle(self, fn, args)
        try:
            key = self._selector.get_key(sock)
        except KeyError:
            handles = (handle, None) if event == selectors.EVENT_READ else (None, handle)
            self._selector.register(sock, event, handles)
            return handle
        reader, writer = key.data
        # Cancel the replaced handle, in case this step has already queued it.
        if event == selectors.EVENT_READ:
            if reader is not None:
                reader.cancel()
            reader = handle
        else:
            if writer is not None:
                writer.cancel()
            writer = handle
        self._selector.modify(sock, key.events | event, (reader, writer))
        return handle

    def _remove_io(self, sock: socket.socket, event: int) -> bool:
        if self._closed:
            return False
        try:
            key = self._selector.get_key(sock)
        except (KeyError, ValueError):
            return False  # ValueError: the socket is already closed, so it was unregistered
        reader, writer = key.data
        old = reader if event == selectors.EVENT_READ else writer
        if old is None:
            return False
        old.cancel()
        remaining = key.events & ~event
        if remaining == 0:
            self._selector.unregister(sock)
        elif event == selectors.EVENT_READ:
            self._selector.modify(sock, remaining, (None, writer))
        else:
            self._selector.modify(sock, remaining, (reader, None))
        return True

    # -- running -----------------------------------------------------------------------

    def run_forever(self) -> None:
        """Run loop steps until ``stop()`` is called.

        Each ``select`` waits at most ``MAX_SELECT_TIMEOUT_S``. A ``stop()``
        made before this call ends the run after one step, as in asyncio.
        """
        self._enter_run("run_forever")
        try:
            while not self._stopping:
                self._run_once(MAX_SELECT_TIMEOUT_S)
        finally:
            self._stopping = False
            self._running_thread = None

    def run_once(self, timeout_s: float = 0.0) -> None:
        """Run one loop step, waiting at most ``timeout_s`` seconds for I/O or a timer."""
        self._enter_run("run_once")
        try:
            self._run_once(timeout_s)
        finally:
            self._running_thread = None

    def run_until_complete(
        self,
        future: LoopFuture[T] | concurrent.futures.Future[T],
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> T:
        """Run the loop until ``future`` is done and return its result or raise its exception.

        Accepts this loop's ``LoopFuture`` or a ``concurrent.futures.Future``
        completed by another thread, which wakes the loop when it finishes.
        Raises ``MessagingTimeout`` after ``timeout_s`` seconds and leaves the
        future pending, so cancel it if you give up. Raises ``RuntimeError``
        when called from a callback of this loop, because the loop cannot run
        itself, and when ``stop()`` is called before the future completes.
        """
        if isinstance(future, LoopFuture) and future.loop is not self:
            raise ValueError(f"{future!r} belongs to another loop; run that loop instead")
        self._enter_run("run_until_complete")
        try:
            if isinstance(future, concurrent.futures.Future):
                future.add_done_callback(lambda _: self._write_to_self())
            deadline = time.monotonic() + timeout_s
            while not future.done():
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    raise MessagingTimeout(
                        f"run_until_complete timed out after {timeout_s} s with {future!r} "
                        f"still pending"
                    )
                self._run_once(min(remaining_s, MAX_SELECT_TIMEOUT_S))
                if self._stopping and not future.done():
                    raise RuntimeError(
                        f"stop() was called before {future!r} completed; the future is "
                        f"still pending"
                    )
        finally:
            self._stopping = False
            self._running_thread = None
        return future.result()

    def stop(self) -> None:
        """Make ``run_forever`` return after the current step; callable from any thread."""
        self._stopping = True
        if self._running_thread is not None and self._running_thread != threading.get_ident():
            self._write_to_self()

    def is_running(self) -> bool:
        """True while a thread is inside ``run_forever``, ``run_once`` or ``run_until_complete``."""
        return self._running_thread is not None

    def _enter_run(self, method: str) -> None:
        with self._run_lock:
            self._claim_running_thread(method)

    def _claim_running_thread(self, method: str) -> None:
        self._check_closed()
        if self._running_thread == threading.get_ident():
            raise RuntimeError(
                f"{method}() was called from a callback running on this loop; a loop cannot "
                f"wait for itself without deadlocking. Schedule the follow-up work with "
                f"call_soon() or a done callback instead"
            )
        if self._running_thread is not None:
            raise RuntimeError(
                f"{method}() was called while this loop runs in another thread; hand it work "
                f"with call_soon_threadsafe() instead"
            )
        self._running_thread = threading.get_ident()

    def _run_once(self, max_wait_s: float) -> None:
        self.iterations += 1
        self._drop_cancelled_timers()
        if self._ready or self._stopping:
            timeout_s = 0.0
        elif self._scheduled:
            timeout_s = min(max(0.0, self._scheduled[0][0] - time.monotonic()), max_wait_s)
        else:
            timeout_s = max_wait_s
        for key, mask in self._selector.select(max(0.0, timeout_s)):
            if key.fileobj is self._wake_reader:
                self._read_from_self()
                continue
            reader, writer = key.data
            if mask & selectors.EVENT_READ and reader is not None:
                self._ready.append(reader)
            if mask & selectors.EVENT_WRITE and writer is not None:
                self._ready.append(writer)

        now = time.monotonic()
        while self._scheduled and self._scheduled[0][0] <= now:
            _, _, timer = heapq.heappop(self._scheduled)
            timer._in_heap = False
            if timer.cancelled:
                self._timer_cancelled_count -= 1
            else:
                self._ready.append(timer)

        # Run only what is ready now. Callbacks scheduled by these run next step, after
        # another poll, so a callback that reschedules itself cannot starve the sockets.
        for _ in range(len(self._ready)):
            handle = self._ready.popleft()
            if not handle.cancelled:
                self.callbacks_run += 1
                handle._run()

    def _drop_cancelled_timers(self) -> None:
        while self._scheduled and self._scheduled[0][2].cancelled:
            _, _, timer = heapq.heappop(self._scheduled)
            timer._in_heap = False
            self._timer_cancelled_count -= 1

    def _read_from_self(self) -> None:
        try:
            while self._wake_reader.recv(4096):
                pass
        except BlockingIOError:
            pass

    # -- errors, executors, waiting from other threads -------------------------------

    def set_exception_handler(self, handler: ExceptionHandler | None) -> None:
        """Route callback errors to ``handler(loop, context)``; None restores logging them.

        ``context`` has the keys ``"message"``, ``"exception"`` and ``"handle"``.
        A handler that raises is itself logged by the default handler.
        """
        self._exception_handler = handler

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        """Report an error that a callback raised, through the configured handler or the log."""
        self.callback_errors += 1
        if self._exception_handler is not None:
            try:
                self._exception_handler(self, context)
                return
            except Exception as error:
                log.error("exception handler %r raised %r while handling: %s",
                          self._exception_handler, error, context["message"], exc_info=error)
        log.error("%s on %r", context["message"], self, exc_info=context.get("exception"))

    def run_in_executor(
        self, executor: concurrent.futures.Executor, fn: Callable[..., T], *args: Any
    ) -> LoopFuture[T]:
        """Run blocking ``fn(*args)`` on ``executor`` and return a future settled on this loop.

        The worker thread hands the outcome back with ``call_soon_threadsafe``,
        so the ``LoopFuture`` is only ever touched by the loop's thread.
        Cancelling the returned future cancels the work if it has not started.
        The caller owns ``executor`` and shuts it down.
        """
        loop_future: LoopFuture[T] = LoopFuture(self)
        work = executor.submit(fn, *args)

        def copy_outcome(done: concurrent.futures.Future[T]) -> None:
            if loop_future.done():
                return
            if done.cancelled():
                loop_future.cancel()
            elif done.exception() is not None:
                loop_future.set_exception(done.exception())  # type: ignore[arg-type]
            else:
                loop_future.set_result(done.result())

        def on_work_done(done: concurrent.futures.Future[T]) -> None:
            try:
                self.call_soon_threadsafe(copy_outcome, done)
            except RuntimeError:
                log.warning("%r finished after its loop %r closed; outcome dropped: %r",
                            fn, self, done)

        def on_loop_future_done(done: LoopFuture[T]) -> None:
            if done.cancelled():
                work.cancel()

        work.add_done_callback(on_work_done)
        loop_future.add_done_callback(on_loop_future_done)
        return loop_future

    def run_in_loop_thread(
        self, fn: Callable[..., T], *args: Any, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> T:
        """Run ``fn(*args)`` on the running loop from another thread, and wait for its result.

        Raises ``RuntimeError`` when called on the loop's own thread, where the
        wait would block the very loop that must run ``fn``. Raises
        ``MessagingTimeout`` if the loop has not run ``fn`` within ``timeout_s``.
        """
        if self._running_thread == threading.get_ident():
            raise RuntimeError(
                "run_in_loop_thread() was called on the loop's own thread, where waiting would "
                "deadlock; call fn directly or schedule it with call_soon()"
            )
        outcome: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            if not outcome.set_running_or_notify_cancel():
                return
            try:
                outcome.set_result(fn(*args))
            except Exception as error:
                outcome.set_exception(error)

        self.call_soon_threadsafe(call)
        try:
            return outcome.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError as error:
            outcome.cancel()
            raise MessagingTimeout(
                f"the loop did not run {fn!r} within {timeout_s} s; is it running?"
            ) from error

    # -- lifetime and display --------------------------------------------------------

    def close(self) -> None:
        """Release the selector and the wake-up sockets; idempotent, not while running."""
        if self._running_thread is not None:
            raise RuntimeError("cannot close a running loop; call stop() and wait for it first")
        if self._closed:
            return
        self._closed = True
        self._ready.clear()
        self._scheduled.clear()
        self._selector.close()
        self._wake_reader.close()
        self._wake_writer.close()

    def is_closed(self) -> bool:
        """True after ``close()``."""
        return self._closed

    def _check_closed(self) -> None:
        if self._closed:
            raise RuntimeError("this event loop is closed; create a new EventLoop")

    def __enter__(self) -> EventLoop:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        """Counters and queue sizes for display in a notebook."""
        readers = writers = 0
        if not self._closed:
            for key in self._selector.get_map().values():
                if key.fileobj is self._wake_reader:
                    continue
                readers += key.data[0] is not None
                writers += key.data[1] is not None
        return {
            "readers": readers,
            "writers": writers,
            "timers": len(self._scheduled) - self._timer_cancelled_count,
            "ready": len(self._ready),
            "iterations": self.iterations,
            "callbacks_run": self.callbacks_run,
            "callback_errors": self.callback_errors,
        }

    def __repr__(self) -> str:
        if self._closed:
            return "<EventLoop closed>"
        state = "running" if self._running_thread is not None else "idle"
        counts = self.stats()
        return (
            f"<EventLoop {state}: {counts['readers']} readers, {counts['writers']} writers, "
            f"{counts['timers']} timers, {counts['ready']} ready>"
        )


def __getattr__(name: str) -> Any:
    # The echo service imports this module, so it is loaded on first use, not at import.
    if name in ("EchoServer", "EchoClient"):
        return getattr(importlib.import_module(".eventloop_echo", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
