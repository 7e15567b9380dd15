"""Bridges: move one outcome between a Promise, an asyncio Future and a concurrent Future.

The three kinds of placeholder live in different worlds:

- ``concurrent.futures.Future`` is thread-safe. Its done callbacks run in the
  thread that completes it, or at once in the caller if it is already done.
- ``asyncio.Future`` belongs to one event loop and is not thread-safe. Only the
  loop's own thread may touch it. Another thread hands work over with
  ``loop.call_soon_threadsafe``, which wakes the loop up.
- ``Promise`` (``msgpass.styles.promise``) is thread-safe and runs its
  handlers on its dispatcher thread.

Every converter here returns a new object that settles like its source: same
value, same exception object (traceback included), and cancellation becomes
cancellation where the target can express it. A cancelled source rejects a
promise with the source library's ``CancelledError``, and a promise rejected with
either ``CancelledError`` cancels the future made from it.

Cancellation flows back from target to source only where the source supports
it. Cancelling the asyncio future from ``asyncio_from_concurrent``, or the
concurrent future from ``concurrent_from_asyncio``, cancels the source too,
which for a concurrent future works only while it has not started running. A
promise cannot be cancelled, so cancelling a future made from a promise just
detaches that future. A rejection that arrives after such a cancellation is
logged at warning level, so the exception does not vanish.

Left out on purpose: timeouts, which belong to the waiting side
(``Promise.result(timeout_s)``, ``asyncio.wait_for``, ``Future.result(timeout)``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Future as ConcurrentFuture
from typing import Any

from .promise import REJECTED, Dispatcher, Promise

__all__ = [
    "asyncio_from_concurrent",
    "asyncio_from_promise",
    "concurrent_from_asyncio",
    "concurrent_from_promise",
    "promise_from_asyncio",
    "promise_from_concurrent",
]

log = logging.getLogger(__name__)

# asyncio keeps only weak references to tasks, so a task created here for a
# bare coroutine is kept alive in this set until it finishes.
_tasks_in_flight: set[asyncio.Task[Any]] = set()

_CANCELLED_ERRORS = (asyncio.CancelledError, concurrent.futures.CancelledError)


def promise_from_concurrent(
    future: ConcurrentFuture[Any], *, dispatcher: Dispatcher | None = None
) -> Promise[Any]:
    """Return a promise that settles like ``future``.

    A cancelled ``future`` rejects the promise with
    ``concurrent.futures.CancelledError``. Safe to call from any thread.
    """
    promise, resolve, reject = Promise.with_resolvers(dispatcher=dispatcher)

    def transfer(done: ConcurrentFuture[Any]) -> None:
        if done.cancelled():
            reject(concurrent.futures.CancelledError(f"{done!r} was cancelled"))
        elif (error := done.exception()) is not None:
            reject(error)
        else:
            resolve(done.result())

    future.add_done_callback(transfer)
    return promise


def promise_from_asyncio(
    awaitable: asyncio.Future[Any] | Awaitable[Any],
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    dispatcher: Dispatcher | None = None,
) -> Promise[Any]:
    """Return a promise that settles like an asyncio future, task or coroutine.

    A future or task may come from any thread, because its done callback is
    attached through its own loop's ``call_soon_threadsafe``. A coroutine is
    started on ``loop`` (default: the loop running in this thread) as a task,
    or through ``asyncio.run_coroutine_threadsafe`` when ``loop`` runs in
    another thread. A cancelled task rejects the promise with
    ``asyncio.CancelledError``. Raises ``RuntimeError`` for a coroutine when
    no loop is given and none runs in this thread.
    """
    if inspect.iscoroutine(awaitable):
        running = _running_loop()
        target = loop if loop is not None else running
        if target is None:
            awaitable.close()
            raise RuntimeError(
                "promise_from_asyncio() got a coroutine but no event loop runs in this "
                "thread; pass loop= with the loop that should run it"
            )
        if target is not running:
            coroutine_future = asyncio.run_coroutine_threadsafe(awaitable, target)
            return promise_from_concurrent(coroutine_future, dispatcher=dispatcher)
        awaitable = _keep_task(target.create_task(awaitable))
    if not asyncio.isfuture(awaitable):
        raise TypeError(f"expected an asyncio future, task or coroutine, got {awaitable!r}")

    source: asyncio.Future[Any] = awaitable
    promise, resolve, reject = Promise.with_resolvers(dispatcher=dispatcher)

    def transfer(done: asyncio.Future[Any]) -> None:
        if done.cancelled():
            reject(asyncio.CancelledError(f"{done!r} was cancelled"))
        elif (error := done.exception()) is not None:
            reject(error)
        else:
            resolve(done.result())

    _call_on_loop(source.get_loop(), source.add_done_callback, transfer)
    return promise


def concurrent_from_promise(promise: Promise[Any]) -> ConcurrentFuture[Any]:
    """Return a ``concurrent.futures.Future`` that settles like ``promise``.

    A rejection with a ``CancelledError`` cancels the future. The caller may
    cancel the future until the promise settles. That detaches the future but
    leaves the promise running, because a promise cannot be cancelled.
    """
    future: ConcurrentFuture[Any] = ConcurrentFuture()

    def transfer(settled: Promise[Any]) -> None:
        error = settled.exception(timeout_s=0.0)
        if isinstance(error, _CANCELLED_ERRORS):
            future.cancel()
            return
        # Moves the future to RUNNING, after which cancel() fails, or
        # returns False if the caller has already cancelled it.
        if not future.set_running_or_notify_cancel():
            _log_detached(settled, future)
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(settled.result(timeout_s=0.0))

    promise.add_done_callback(transfer)
    return future


def asyncio_from_promise(
    promise: Promise[Any], loop: asyncio.AbstractEventLoop | None = None
) -> asyncio.Future[Any]:
    """Return an asyncio future on ``loop`` that settles like ``promise``.

    ``loop`` defaults to the loop running in this thread. The outcome is
    handed to the loop with ``call_soon_threadsafe``, because the promise
    settles on its dispatcher thread. A rejection with a ``CancelledError``
    cancels the future. Cancelling the future detaches it and leaves the
    promise running. Raises ``RuntimeError`` when no loop is given and none
    runs in this thread.
    """
    if loop is None:
        loop = asyncio.get_running_loop()
    target_loop = loop
    future = target_loop.create_future()

    def transfer_on_loop(settled: Promise[Any]) -> None:
        error = settled.exception(timeout_s=0.0)
        if future.cancelled():
            _log_detached(settled, future)
        elif isinstance(error, _CANCELLED_ERRORS):
            future.cancel(msg=str(error) or None)
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(settled.result(timeout_s=0.0))

    def transfer(settled: Promise[Any]) -> None:
        try:
            target_loop.call_soon_threadsafe(transfer_on_loop, settled)
        except RuntimeError:
            log.error(
                "promise #%d settled as %r after its event loop %r was closed; "
                "the outcome cannot be delivered",
                settled.id,
                settled,
                target_loop,
            )

    promise.add_done_callback(transfer)
    return future


def asyncio_from_concurrent(future: ConcurrentFuture[Any]) -> asyncio.Future[Any]:
    """Return an asyncio future, on the loop running in this thread, that settles like ``future``.

    This is ``asyncio.wrap_future``. Cancelling the asyncio future cancels
    ``future``, which succeeds only while it is still queued and not
    running. Call it from a coroutine or callback on the target loop.
    """
    return asyncio.wrap_future(future, loop=asyncio.get_running_loop())


def concurrent_from_asyncio(
    awaitable: asyncio.Future[Any] | Awaitable[Any],
    loop: asyncio.AbstractEventLoop | None = None,
) -> ConcurrentFuture[Any]:
    """Return a concurrent future that settles like an asyncio future, task or coroutine.

    A coroutine runs on ``loop`` (default: the loop running in this thread)
    through ``asyncio.run_coroutine_threadsafe``. Cancelling the returned
    future cancels the asyncio task or future. Do not block on the result from
    the loop's own thread, because the loop cannot run the task while it waits.
    """
    if inspect.iscoroutine(awaitable):
        target = loop if loop is not None else _running_loop()
        if target is None:
            awaitable.close()
            raise RuntimeError(
                "concurrent_from_asyncio() got a coroutine but no event loop runs in this "
                "thread; pass loop= with the loop that should run it"
            )
        return asyncio.run_coroutine_threadsafe(awaitable, target)
    if not asyncio.isfuture(awaitable):
        raise TypeError(f"expected an asyncio future, task or coroutine, got {awaitable!r}")

    source: asyncio.Future[Any] = awaitable
    source_loop = source.get_loop()
    future: ConcurrentFuture[Any] = ConcurrentFuture()

    def transfer(done: asyncio.Future[Any]) -> None:
        if done.cancelled():
            future.cancel()
            return
        if not future.set_running_or_notify_cancel():
            # The caller cancelled the concurrent future, and with it the source.
            if (error := done.exception()) is not None:
                log.warning(
                    "%r failed with %r after %r was cancelled; nothing receives the error",
                    done,
                    error,
                    future,
                )
            return
        if (error := done.exception()) is not None:
            future.set_exception(error)
        else:
            future.set_result(done.result())

    def propagate_cancel(done: ConcurrentFuture[Any]) -> None:
        if not done.cancelled():
            return
        try:
            source_loop.call_soon_threadsafe(source.cancel)
        except RuntimeError:
            log.warning("cannot cancel %r: its event loop is closed", source)

    future.add_done_callback(propagate_cancel)
    _call_on_loop(source_loop, source.add_done_callback, transfer)
    return future


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _call_on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: Any) -> None:
    """Call ``fn(*args)`` now if ``loop`` runs in this thread, else hand it to the loop's thread."""
    if _running_loop() is loop:
        fn(*args)
    else:
        loop.call_soon_threadsafe(fn, *args)


def _keep_task(task: asyncio.Task[Any]) -> asyncio.Task[Any]:
    _tasks_in_flight.add(task)
    task.add_done_callback(_tasks_in_flight.discard)
    return task


def _log_detached(settled: Promise[Any], future: object) -> None:
    if settled.state == REJECTED:
        log.warning(
            "promise #%d was rejected with %r after %r was cancelled; nothing receives the error",
            settled.id,
            settled.exception(timeout_s=0.0),
            future,
        )
