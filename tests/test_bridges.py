"""Tests of msgpass.styles.bridges: outcomes and cancellation across the three kinds of future.

Coroutines run under ``asyncio.run`` inside plain test functions, or on a
loop in a background thread when the test is about crossing threads. Nothing
sleeps to wait: a blocked job holds a thread pool on a ``threading.Event``, and
the event loop is only ever yielded to with ``asyncio.sleep(0)`` until a
condition holds or a deadline passes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future as ConcurrentFuture
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msgpass.styles.bridges import (
    asyncio_from_concurrent,
    asyncio_from_promise,
    concurrent_from_asyncio,
    concurrent_from_promise,
    promise_from_asyncio,
    promise_from_concurrent,
)
from msgpass.styles.promise import REJECTED, Promise

TIMEOUT_S = 5.0


@pytest.fixture
def loop_in_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running forever in a background thread, stopped after the test."""
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        loop.call_soon(started.set)
        loop.run_forever()

    thread = threading.Thread(target=run, name="test-loop")
    thread.start()
    assert started.wait(TIMEOUT_S)
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(TIMEOUT_S)
    loop.close()


@pytest.fixture
def blocked_pool() -> Iterator[tuple[ThreadPoolExecutor, threading.Event]]:
    """A one-thread pool whose worker is busy until the returned event is set."""
    gate = threading.Event()
    pool = ThreadPoolExecutor(max_workers=1)
    pool.submit(gate.wait, TIMEOUT_S)
    yield pool, gate
    gate.set()
    pool.shutdown(wait=True)


async def yield_until(condition: Callable[[], bool]) -> None:
    """Let the running loop process callbacks until ``condition()`` holds."""
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0)


def never_set_event_waiter(started: threading.Event, cancelled: threading.Event) -> Any:
    """Return a coroutine that waits forever and records its cancellation."""

    async def wait_forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    return wait_forever()


# ------------------------------------------------- concurrent -> promise


def test_promise_from_concurrent_value() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        promise = promise_from_concurrent(pool.submit(sum, [1, 2, 3]))

        assert promise.result(TIMEOUT_S) == 6


def test_promise_from_concurrent_error() -> None:
    error = ValueError("worker failed")

    def fail() -> None:
        raise error

    with ThreadPoolExecutor(max_workers=1) as pool:
        promise = promise_from_concurrent(pool.submit(fail))

        assert promise.exception(TIMEOUT_S) is error


def test_promise_from_cancelled_concurrent_rejects() -> None:
    future: ConcurrentFuture[int] = ConcurrentFuture()
    promise = promise_from_concurrent(future)

    assert future.cancel()

    assert isinstance(promise.exception(TIMEOUT_S), concurrent.futures.CancelledError)


# ------------------------------------------------- promise -> concurrent


def test_concurrent_from_promise_value_and_error() -> None:
    error = KeyError("missing")

    fulfilled = concurrent_from_promise(Promise.resolve("v"))
    rejected = concurrent_from_promise(Promise.reject(error))

    assert fulfilled.result(TIMEOUT_S) == "v"
    assert rejected.exception(TIMEOUT_S) is error


def test_concurrent_from_promise_cancelled_error_cancels() -> None:
    future = concurrent_from_promise(Promise.reject(concurrent.futures.CancelledError()))

    with pytest.raises(concurrent.futures.CancelledError):
        future.result(TIMEOUT_S)
    assert future.cancelled()


def test_concurrent_from_promise_settled_later_from_thread() -> None:
    promise, resolve, _ = Promise.with_resolvers()
    future = concurrent_from_promise(promise)

    worker = threading.Thread(target=resolve, args=("from thread",))
    worker.start()
    worker.join(TIMEOUT_S)

    assert future.result(TIMEOUT_S) == "from thread"


def test_cancelled_concurrent_detaches_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    promise, _, reject = Promise.with_resolvers()
    future = concurrent_from_promise(promise)

    assert future.cancel()
    with caplog.at_level(logging.WARNING, logger="msgpass.styles.bridges"):
        reject(ConnectionError("late failure"))
        # A handler queued after the bridge's own callback runs after it.
        promise.catch(lambda error: None).wait(TIMEOUT_S)

    assert future.cancelled()
    assert f"promise #{promise.id} was rejected" in caplog.text
    assert "ConnectionError('late failure')" in caplog.text


# ---------------------------------------------------- promise -> asyncio


def test_asyncio_from_promise_settled_by_thread() -> None:
    async def main() -> str:
        promise, resolve, _ = Promise.with_resolvers()
        worker = threading.Thread(target=resolve, args=("value",))
        worker.start()
        try:
            return await asyncio.wait_for(asyncio_from_promise(promise), TIMEOUT_S)
        finally:
            worker.join(TIMEOUT_S)

    assert asyncio.run(main()) == "value"


def test_asyncio_from_promise_rejection_raises() -> None:
    error = OSError("refused")

    async def main() -> BaseException | None:
        try:
            await asyncio.wait_for(asyncio_from_promise(Promise.reject(error)), TIMEOUT_S)
        except OSError as raised:
            return raised
        return None

    assert asyncio.run(main()) is error


def test_asyncio_from_promise_cancelled_error_cancels() -> None:
    async def main() -> asyncio.Future[Any]:
        future = asyncio_from_promise(Promise.reject(asyncio.CancelledError("upstream")))
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(future, TIMEOUT_S)
        return future

    assert asyncio.run(main()).cancelled()


def test_await_promise_directly() -> None:
    async def main() -> int:
        return await Promise.resolve(20).then(lambda value: value + 1)

    assert asyncio.run(main()) == 21


def test_asyncio_from_promise_needs_loop() -> None:
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio_from_promise(Promise.resolve(1))


def test_cancelled_asyncio_future_detaches(caplog: pytest.LogCaptureFixture) -> None:
    promise, resolve, _ = Promise.with_resolvers()

    async def main() -> asyncio.Future[Any]:
        future = asyncio_from_promise(promise)
        future.cancel()
        resolve("ignored")
        # The second bridge's transfer is queued after the first one's.
        await asyncio_from_promise(promise)
        return future

    with caplog.at_level(logging.WARNING, logger="msgpass.styles.bridges"):
        assert asyncio.run(main()).cancelled()

    assert caplog.records == []


# ---------------------------------------------------- asyncio -> promise


def test_promise_from_task_value_and_error() -> None:
    error = ValueError("step 2 failed")

    async def succeed() -> str:
        return "balance 100"

    async def fail() -> None:
        raise error

    async def main() -> tuple[Promise[Any], Promise[Any]]:
        first = asyncio.create_task(succeed())
        second = asyncio.create_task(fail())
        promises = promise_from_asyncio(first), promise_from_asyncio(second)
        await asyncio.gather(first, second, return_exceptions=True)
        return promises

    fulfilled, rejected = asyncio.run(main())

    assert fulfilled.result(TIMEOUT_S) == "balance 100"
    assert rejected.exception(TIMEOUT_S) is error


def test_promise_from_cancelled_task_rejects() -> None:
    async def main() -> Promise[Any]:
        task = asyncio.create_task(asyncio.Event().wait())
        promise = promise_from_asyncio(task)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return promise

    promise = asyncio.run(main())

    assert isinstance(promise.exception(TIMEOUT_S), asyncio.CancelledError)
    assert promise.state == REJECTED


def test_promise_from_coroutine_on_running_loop() -> None:
    async def double(value: int) -> int:
        return value * 2

    async def main() -> int:
        return await promise_from_asyncio(double(21))

    assert asyncio.run(main()) == 42


def test_promise_from_coroutine_on_other_thread(loop_in_thread: asyncio.AbstractEventLoop) -> None:
    async def whose_thread() -> str:
        return threading.current_thread().name

    promise = promise_from_asyncio(whose_thread(), loop=loop_in_thread)

    assert promise.result(TIMEOUT_S) == "test-loop"


def test_promise_from_future_of_other_thread(loop_in_thread: asyncio.AbstractEventLoop) -> None:
    async def make_future() -> asyncio.Future[str]:
        return asyncio.get_running_loop().create_future()

    future = asyncio.run_coroutine_threadsafe(make_future(), loop_in_thread).result(TIMEOUT_S)
    promise = promise_from_asyncio(future)
    loop_in_thread.call_soon_threadsafe(future.set_result, "set on loop")

    assert promise.result(TIMEOUT_S) == "set on loop"


def test_promise_from_coroutine_without_loop_raises() -> None:
    async def nothing() -> None:
        return None

    with pytest.raises(RuntimeError, match="pass loop="):
        promise_from_asyncio(nothing())
    with pytest.raises(TypeError, match="expected an asyncio future"):
        promise_from_asyncio(42)  # type: ignore[arg-type]


# ------------------------------------------------- concurrent <-> asyncio


def test_asyncio_from_concurrent_value() -> None:
    async def main() -> int:
        with ThreadPoolExecutor(max_workers=1) as pool:
            return await asyncio_from_concurrent(pool.submit(pow, 2, 10))

    assert asyncio.run(main()) == 1024


def test_asyncio_cancel_reaches_queued_concurrent(
    blocked_pool: tuple[ThreadPoolExecutor, threading.Event],
) -> None:
    pool, _ = blocked_pool
    queued = pool.submit(pow, 2, 10)

    async def main() -> None:
        future = asyncio_from_concurrent(queued)
        future.cancel()
        await yield_until(queued.cancelled)

    asyncio.run(main())

    assert queued.cancelled()


def test_concurrent_from_coroutine_value(loop_in_thread: asyncio.AbstractEventLoop) -> None:
    async def answer() -> int:
        return 42

    assert concurrent_from_asyncio(answer(), loop_in_thread).result(TIMEOUT_S) == 42


def test_concurrent_cancel_reaches_coroutine(loop_in_thread: asyncio.AbstractEventLoop) -> None:
    started = threading.Event()
    cancelled = threading.Event()
    future = concurrent_from_asyncio(never_set_event_waiter(started, cancelled), loop_in_thread)
    assert started.wait(TIMEOUT_S)

    assert future.cancel()

    assert cancelled.wait(TIMEOUT_S)


def test_concurrent_cancel_reaches_task(loop_in_thread: asyncio.AbstractEventLoop) -> None:
    started = threading.Event()
    cancelled = threading.Event()

    async def start_task() -> asyncio.Task[None]:
        return asyncio.create_task(never_set_event_waiter(started, cancelled))

    task = asyncio.run_coroutine_threadsafe(start_task(), loop_in_thread).result(TIMEOUT_S)
    future = concurrent_from_asyncio(task)
    assert started.wait(TIMEOUT_S)

    assert future.cancel()

    assert cancelled.wait(TIMEOUT_S)


def test_concurrent_from_task_error(loop_in_thread: asyncio.AbstractEventLoop) -> None:
    error = ConnectionResetError("peer reset")

    async def fail() -> None:
        raise error

    async def start_task() -> asyncio.Task[None]:
        return asyncio.create_task(fail())

    task = asyncio.run_coroutine_threadsafe(start_task(), loop_in_thread).result(TIMEOUT_S)

    assert concurrent_from_asyncio(task).exception(TIMEOUT_S) is error


def test_concurrent_from_cancelled_task(loop_in_thread: asyncio.AbstractEventLoop) -> None:
    async def start_and_cancel() -> asyncio.Task[None]:
        task = asyncio.create_task(asyncio.Event().wait())
        task.cancel()
        return task

    task = asyncio.run_coroutine_threadsafe(start_and_cancel(), loop_in_thread).result(TIMEOUT_S)
    future = concurrent_from_asyncio(task)

    with pytest.raises(concurrent.futures.CancelledError):
        future.result(TIMEOUT_S)
    assert future.cancelled()


def test_concurrent_from_coroutine_without_loop_raises() -> None:
    async def nothing() -> None:
        return None

    with pytest.raises(RuntimeError, match="pass loop="):
        concurrent_from_asyncio(nothing())


# ------------------------------------------------------ property-based tests


outcomes = st.one_of(
    st.integers().map(lambda value: ("value", value)),
    st.sampled_from([ValueError, KeyError, OSError]).map(lambda kind: ("error", kind("boom"))),
)


@settings(max_examples=30, deadline=None)
@given(outcome=outcomes)
def test_round_trip_keeps_outcome(outcome: tuple[str, Any]) -> None:
    kind, payload = outcome
    source = Promise.resolve(payload) if kind == "value" else Promise.reject(payload)

    async def through_asyncio() -> Promise[Any]:
        as_asyncio = asyncio_from_promise(promise_from_concurrent(concurrent_from_promise(source)))
        back = promise_from_asyncio(as_asyncio)
        await asyncio.wait({as_asyncio}, timeout=TIMEOUT_S)
        return back

    final = asyncio.run(through_asyncio())

    if kind == "value":
        assert final.result(TIMEOUT_S) == payload
    else:
        assert final.exception(TIMEOUT_S) is payload
