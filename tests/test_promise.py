"""Tests of msgpass.styles.promise: settling, chaining, ordering, threads, combinators, leaks.

Handlers run on a dispatcher thread, so every test waits with
``result(timeout_s)`` or a ``threading.Event``, never with a sleep. Tests that
depend on when handlers run block a private dispatcher with a gate first.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import CancelledError as ConcurrentCancelledError
from concurrent.futures import Future as ConcurrentFuture
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msgpass.errors import InvalidStateError, MessagingTimeout
from msgpass.styles import dispatcher as dispatcher_module
from msgpass.styles import promise as promise_module
from msgpass.styles.promise import (
    FULFILLED,
    PENDING,
    REJECTED,
    Dispatcher,
    Promise,
    Settlement,
)

TIMEOUT_S = 5.0


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    private = Dispatcher(name="test-dispatcher")
    yield private
    private.close(TIMEOUT_S)


def block(dispatcher: Dispatcher) -> threading.Event:
    """Queue a handler that blocks the dispatcher until the returned event is set."""
    gate = threading.Event()
    dispatcher.call_soon(gate.wait, TIMEOUT_S)
    return gate


# ---------------------------------------------------------------- settling


def test_then_chain_passes_values() -> None:
    promise = Promise(lambda resolve, reject: resolve(41))
    chained = promise.then(lambda value: value + 1).then(lambda value: value * 2)

    assert chained.result(TIMEOUT_S) == 84
    assert promise.state == FULFILLED
    assert chained.state == FULFILLED


def test_repr_shows_state() -> None:
    promise, resolve, _ = Promise.with_resolvers()
    promise.then(print)

    assert repr(promise) == f"<Promise #{promise.id} pending handlers=1>"
    resolve("x")
    promise.wait(TIMEOUT_S)
    assert repr(promise) == f"<Promise #{promise.id} fulfilled value='x'>"

    rejected = Promise.reject(ValueError("bad"))
    assert repr(rejected) == f"<Promise #{rejected.id} rejected error=ValueError('bad')>"
    rejected.catch(lambda error: None)

    unwatched: Promise[int] = Promise()
    assert repr(unwatched) == f"<Promise #{unwatched.id} pending handlers=0>"


def test_executor_second_settle_ignored(caplog: pytest.LogCaptureFixture) -> None:
    late_error = ValueError("too late")

    def executor(resolve: Any, reject: Any) -> None:
        resolve(1)
        resolve(2)
        reject(late_error)

    with caplog.at_level(logging.WARNING, logger="msgpass.styles.promise"):
        promise = Promise(executor)

    assert promise.result(TIMEOUT_S) == 1
    assert "reject(ValueError('too late')) ignored" in caplog.text
    assert f"promise #{promise.id}" in caplog.text


def test_executor_raise_rejects() -> None:
    error = KeyError("missing")

    def executor(resolve: Any, reject: Any) -> None:
        raise error

    promise = Promise(executor)

    assert promise.exception(TIMEOUT_S) is error
    assert promise.state == REJECTED


def test_executor_raise_after_resolve_logged(caplog: pytest.LogCaptureFixture) -> None:
    def executor(resolve: Any, reject: Any) -> None:
        resolve("done")
        raise RuntimeError("after resolve")

    with caplog.at_level(logging.WARNING, logger="msgpass.styles.promise"):
        promise = Promise(executor)

    assert promise.result(TIMEOUT_S) == "done"
    assert "RuntimeError('after resolve')" in caplog.text


def test_fulfill_twice_raises() -> None:
    promise: Promise[int] = Promise()
    promise.fulfill(1)

    with pytest.raises(InvalidStateError, match="already resolved"):
        promise.fulfill(2)
    with pytest.raises(InvalidStateError):
        promise.reject_with(ValueError("x"))
    assert promise.result(TIMEOUT_S) == 1


def test_fulfill_while_adopting_raises() -> None:
    inner, _, _ = Promise.with_resolvers()
    promise, resolve, _ = Promise.with_resolvers()
    resolve(inner)

    assert promise.state == PENDING
    with pytest.raises(InvalidStateError):
        promise.fulfill(1)


def test_fulfill_derived_promise_raises() -> None:
    source: Promise[int] = Promise()
    derived = source.then(lambda value: value)

    with pytest.raises(InvalidStateError):
        derived.fulfill(5)
    source.fulfill(3)
    assert derived.result(TIMEOUT_S) == 3


def test_fulfill_with_promise_raises_type_error() -> None:
    promise: Promise[Any] = Promise()

    with pytest.raises(TypeError, match="with_resolvers"):
        promise.fulfill(Promise.resolve(1))
    assert promise.state == PENDING


def test_reject_requires_exception_instance() -> None:
    promise, _, reject = Promise.with_resolvers()

    with pytest.raises(TypeError, match="exception instance"):
        reject("not an exception")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        promise.reject_with(ValueError)  # type: ignore[arg-type]
    assert promise.state == PENDING


def test_resolve_with_itself_rejects() -> None:
    promise, resolve, _ = Promise.with_resolvers()
    resolve(promise)

    assert isinstance(promise.exception(TIMEOUT_S), TypeError)


# ------------------------------------------------------- when handlers run


def test_handler_never_runs_inside_then(dispatcher: Dispatcher) -> None:
    events: list[str] = []
    threads: list[threading.Thread] = []
    gate = block(dispatcher)
    promise = Promise.resolve("v", dispatcher=dispatcher)

    def handler(value: str) -> None:
        events.append("handler")
        threads.append(threading.current_thread())

    chained = promise.then(handler)
    events.append("then returned")
    assert events == ["then returned"]

    gate.set()
    chained.wait(TIMEOUT_S)
    assert events == ["then returned", "handler"]
    assert threads[0] is not threading.current_thread()


def test_then_inside_handler_not_reentrant() -> None:
    events: list[str] = []
    settled = Promise.resolve(1)

    def outer(value: int) -> Promise[Any]:
        inner = settled.then(lambda _: events.append("inner"))
        events.append("outer after then")
        return inner

    settled.then(outer).wait(TIMEOUT_S)

    assert events == ["outer after then", "inner"]


def test_handlers_run_in_registration_order(dispatcher: Dispatcher) -> None:
    order: list[int] = []
    promise: Promise[str] = Promise(dispatcher=dispatcher)
    before = [promise.then(lambda _, i=i: order.append(i)) for i in range(100)]
    promise.fulfill("go")
    after = [promise.then(lambda _, i=i: order.append(i)) for i in range(100, 200)]

    Promise.all(before + after, dispatcher=dispatcher).wait(TIMEOUT_S)

    assert order == list(range(200))


def test_wait_from_own_dispatcher_raises() -> None:
    pending: Promise[int] = Promise()
    settled = Promise.resolve("ready")
    seen: list[BaseException] = []

    def handler(_: object) -> str:
        try:
            pending.wait(TIMEOUT_S)
        except RuntimeError as error:
            seen.append(error)
        return settled.result(TIMEOUT_S)

    assert Promise.resolve(None).then(handler).result(TIMEOUT_S) == "ready"
    assert len(seen) == 1
    assert "deadlock" in str(seen[0])
    pending.fulfill(0)


def wait_until(condition: Any, what: str) -> None:
    """Poll ``condition()`` until it is true; fail after TIMEOUT_S seconds."""
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.001)


def test_wait_on_settled_promise_creates_no_event() -> None:
    promise = Promise.resolve("done")
    promise.wait(TIMEOUT_S)

    assert promise._waiter is None


def test_wait_from_thread_woken_by_fulfill() -> None:
    promise: Promise[str] = Promise()
    results: list[str] = []
    waiter_thread = threading.Thread(target=lambda: results.append(promise.result(TIMEOUT_S)))
    waiter_thread.start()

    wait_until(lambda: promise._waiter is not None, "the thread waits on the promise")
    promise.fulfill("woken")
    waiter_thread.join(TIMEOUT_S)

    assert results == ["woken"]


def test_promise_has_no_instance_dict() -> None:
    promise = Promise.resolve(1)

    assert not hasattr(promise, "__dict__")
    with pytest.raises(AttributeError):
        promise.extra = 1  # type: ignore[attr-defined]


def test_wait_timeout_raises_messaging_timeout() -> None:
    promise: Promise[int] = Promise()

    with pytest.raises(MessagingTimeout, match=f"promise #{promise.id} still pending"):
        promise.wait(0.01)
    with pytest.raises(TimeoutError):
        promise.result(0.01)
    promise.fulfill(1)


# ------------------------------------------------------------ chaining


def test_handler_raise_rejects_with_traceback() -> None:
    def fail_in_handler(value: int) -> int:
        raise ValueError(f"bad value {value}")

    chained = Promise.resolve(7).then(fail_in_handler)
    error = chained.exception(TIMEOUT_S)

    assert isinstance(error, ValueError)
    assert str(error) == "bad value 7"
    frames = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    assert "fail_in_handler" in frames


def test_missing_handler_passes_outcome_through() -> None:
    error = ValueError("x")

    assert Promise.resolve(3).then(None, lambda e: 0).result(TIMEOUT_S) == 3
    assert Promise.reject(error).then(lambda v: v).exception(TIMEOUT_S) is error


def test_rejection_skips_fulfil_handlers() -> None:
    calls: list[str] = []
    error = LookupError("first step failed")

    chained = (
        Promise.reject(error)
        .then(lambda v: calls.append("step 2"))
        .then(lambda v: calls.append("step 3"))
        .catch(lambda e: f"recovered from {e}")
    )

    assert chained.result(TIMEOUT_S) == "recovered from first step failed"
    assert calls == []


def test_handler_returning_promise_adopted() -> None:
    inner, resolve_inner, _ = Promise.with_resolvers()
    chained = Promise.resolve(1).then(lambda _: inner)

    with pytest.raises(MessagingTimeout):
        chained.wait(0.01)
    resolve_inner("inner value")
    assert chained.result(TIMEOUT_S) == "inner value"


def test_handler_returning_rejected_promise_rejects() -> None:
    error = ValueError("inner")

    chained = Promise.resolve(1).then(lambda _: Promise.reject(error))

    assert chained.exception(TIMEOUT_S) is error


def test_handler_returning_concurrent_future_adopted() -> None:
    future: ConcurrentFuture[str] = ConcurrentFuture()
    chained = Promise.resolve(1).then(lambda _: future)

    future.set_result("from future")

    assert chained.result(TIMEOUT_S) == "from future"


def test_adopted_cancelled_future_rejects() -> None:
    future: ConcurrentFuture[str] = ConcurrentFuture()
    promise = Promise.resolve(future)

    future.cancel()

    assert isinstance(promise.exception(TIMEOUT_S), ConcurrentCancelledError)


def test_handler_returning_coroutine_rejects() -> None:
    async def coroutine() -> int:
        return 1

    chained = Promise.resolve(1).then(lambda _: coroutine())
    error = chained.exception(TIMEOUT_S)

    assert isinstance(error, TypeError)
    assert "promise_from_asyncio" in str(error)


def test_finally_passes_value_and_error() -> None:
    calls: list[str] = []
    error = ValueError("kept")

    fulfilled = Promise.resolve("value").finally_(lambda: calls.append("a"))
    rejected = Promise.reject(error).finally_(lambda: calls.append("b"))

    assert fulfilled.result(TIMEOUT_S) == "value"
    assert rejected.exception(TIMEOUT_S) is error
    assert sorted(calls) == ["a", "b"]


def test_finally_raise_replaces_outcome() -> None:
    replacement = RuntimeError("cleanup failed")

    def cleanup() -> None:
        raise replacement

    assert Promise.resolve(1).finally_(cleanup).exception(TIMEOUT_S) is replacement
    replaced = Promise.reject(ValueError("original")).finally_(cleanup)
    assert replaced.exception(TIMEOUT_S) is replacement


def test_finally_waits_for_returned_promise() -> None:
    cleanup, finish_cleanup, _ = Promise.with_resolvers()
    error = ValueError("original")
    fulfilled = Promise.resolve("value").finally_(lambda: cleanup)
    rejected = Promise.reject(error).finally_(lambda: cleanup)

    with pytest.raises(MessagingTimeout):
        fulfilled.wait(0.01)
    finish_cleanup(None)

    assert fulfilled.result(TIMEOUT_S) == "value"
    assert rejected.exception(TIMEOUT_S) is error


def test_finally_rejected_cleanup_replaces_value() -> None:
    cleanup_error = OSError("close failed")

    chained = Promise.resolve("value").finally_(lambda: Promise.reject(cleanup_error))

    assert chained.exception(TIMEOUT_S) is cleanup_error


# ------------------------------------------------------------ combinators


def test_all_keeps_input_order() -> None:
    inputs = [Promise.with_resolvers() for _ in range(3)]
    combined = Promise.all([promise for promise, _, _ in inputs] + ["plain"])

    for index in (2, 0, 1):
        inputs[index][1](f"value {index}")

    assert combined.result(TIMEOUT_S) == ["value 0", "value 1", "value 2", "plain"]


def test_all_fails_fast() -> None:
    pending, _, _ = Promise.with_resolvers()
    error = ValueError("one failed")

    combined = Promise.all([pending, Promise.reject(error), Promise.resolve(1)])

    assert combined.exception(TIMEOUT_S) is error
    assert pending.state == PENDING


def test_all_of_nothing_is_empty_list() -> None:
    assert Promise.all([]).result(TIMEOUT_S) == []


def test_all_settled_reports_each_outcome() -> None:
    error = KeyError("k")

    combined = Promise.all_settled([Promise.resolve(1), Promise.reject(error), 3])

    assert combined.result(TIMEOUT_S) == [
        Settlement(FULFILLED, value=1),
        Settlement(REJECTED, error=error),
        Settlement(FULFILLED, value=3),
    ]


def test_race_takes_first_settled() -> None:
    slow, _, _ = Promise.with_resolvers()
    fast, _, reject_fast = Promise.with_resolvers()
    error = TimeoutError("fast one failed")

    raced = Promise.race([slow, fast])
    reject_fast(error)

    assert raced.exception(TIMEOUT_S) is error
    with pytest.raises(ValueError, match="at least one input"):
        Promise.race([])


def test_any_takes_first_fulfilled() -> None:
    promise = Promise.any([Promise.reject(ValueError("a")), Promise.resolve("b")])

    assert promise.result(TIMEOUT_S) == "b"


def test_any_all_rejected_groups_errors() -> None:
    errors = [ValueError("a"), KeyError("b"), OSError("c")]
    inputs = [Promise.with_resolvers() for _ in errors]
    combined = Promise.any([promise for promise, _, _ in inputs])

    for index in (1, 2, 0):
        inputs[index][2](errors[index])
    group = combined.exception(TIMEOUT_S)

    assert isinstance(group, ExceptionGroup)
    assert list(group.exceptions) == errors
    assert "all 3 promises were rejected" in str(group)


def test_any_with_cancelled_error_is_base_group() -> None:
    combined = Promise.any([Promise.reject(asyncio.CancelledError()), Promise.reject(ValueError())])

    group = combined.exception(TIMEOUT_S)

    assert isinstance(group, BaseExceptionGroup)
    assert not isinstance(group, ExceptionGroup)
    with pytest.raises(ValueError, match="at least one input"):
        Promise.any([])


# ---------------------------------------------------------------- threads


def test_concurrent_then_and_fulfill() -> None:
    threads_count = 8
    handlers_per_thread = 50
    barrier = threading.Barrier(threads_count + 1)
    promise: Promise[int] = Promise()
    calls: list[int] = []
    calls_lock = threading.Lock()
    chained: list[Promise[Any]] = []

    def record(value: int) -> int:
        with calls_lock:
            calls.append(value)
        return value

    def register() -> None:
        barrier.wait(TIMEOUT_S)
        chained.extend(promise.then(record) for _ in range(handlers_per_thread))

    workers = [threading.Thread(target=register) for _ in range(threads_count)]
    for worker in workers:
        worker.start()
    barrier.wait(TIMEOUT_S)
    promise.fulfill(9)
    for worker in workers:
        worker.join(TIMEOUT_S)

    assert Promise.all(chained).result(TIMEOUT_S) == [9] * threads_count * handlers_per_thread
    assert len(calls) == threads_count * handlers_per_thread


def test_concurrent_fulfill_exactly_one_wins() -> None:
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    promise: Promise[int] = Promise()
    outcomes: list[str] = []

    def try_fulfill(value: int) -> None:
        barrier.wait(TIMEOUT_S)
        try:
            promise.fulfill(value)
        except InvalidStateError:
            outcomes.append("refused")
        else:
            outcomes.append("won")

    workers = [threading.Thread(target=try_fulfill, args=(i,)) for i in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(TIMEOUT_S)

    assert sorted(outcomes) == ["refused"] * (threads_count - 1) + ["won"]
    assert promise.result(TIMEOUT_S) in range(threads_count)


def test_concurrent_resolvers_settle_once() -> None:
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    promise, resolve, reject = Promise.with_resolvers()

    def settle(index: int) -> None:
        barrier.wait(TIMEOUT_S)
        if index % 2:
            resolve(index)
        else:
            reject(ValueError(index))

    workers = [threading.Thread(target=settle, args=(i,)) for i in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(TIMEOUT_S)

    promise.wait(TIMEOUT_S)
    assert promise.state in (FULFILLED, REJECTED)
    if promise.state == REJECTED:
        promise.catch(lambda error: None)


# ------------------------------------------------------- unhandled rejections


def test_unhandled_rejection_logged_on_gc(caplog: pytest.LogCaptureFixture) -> None:
    promise = Promise.reject(ConnectionError("server went away"))
    promise_id = promise.id

    with caplog.at_level(logging.ERROR, logger="msgpass.styles.promise"):
        del promise
        gc.collect()

    messages = [record.getMessage() for record in caplog.records]
    assert any(f"promise #{promise_id} was rejected" in message for message in messages)
    assert "ConnectionError('server went away')" in caplog.text


def test_unhandled_handler_error_logged_on_gc(caplog: pytest.LogCaptureFixture) -> None:
    def fail(value: int) -> None:
        raise ValueError("handler failed")

    chained = Promise.resolve(1).then(fail)
    chained.wait(TIMEOUT_S)
    chained_id = chained.id

    with caplog.at_level(logging.ERROR, logger="msgpass.styles.promise"):
        del chained
        gc.collect()

    assert f"promise #{chained_id} was rejected" in caplog.text


def test_handled_rejection_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="msgpass.styles.promise"):
        caught = Promise.reject(ValueError("caught"))
        caught.catch(lambda error: None).wait(TIMEOUT_S)
        read = Promise.reject(ValueError("read"))
        assert read.exception(TIMEOUT_S) is not None
        combined = Promise.all([Promise.reject(ValueError("first")), Promise.reject(KeyError())])
        combined.exception(TIMEOUT_S)
        del caught, read, combined
        gc.collect()

    assert caplog.records == []


# ------------------------------------------------------------- dispatcher


def test_dispatcher_logs_failing_callback(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(promise: Promise[int]) -> None:
        raise RuntimeError("callback bug")

    promise = Promise.resolve(1, dispatcher=dispatcher)
    with caplog.at_level(logging.ERROR, logger="msgpass.styles.dispatcher"):
        promise.add_done_callback(fail)
        assert promise.then(lambda value: value + 1).result(TIMEOUT_S) == 2

    assert "callback bug" in caplog.text
    assert dispatcher.stats()["failed"] == 1


def test_dispatcher_thread_exits_when_idle() -> None:
    idle = Dispatcher(name="idle-test", idle_exit_s=0.05)
    first = threading.Event()
    idle.call_soon(first.set)
    assert first.wait(TIMEOUT_S)

    for thread in threading.enumerate():
        if thread.name.startswith("idle-test"):
            thread.join(TIMEOUT_S)
            assert not thread.is_alive(), "dispatcher thread did not exit when idle"

    second = threading.Event()
    idle.call_soon(second.set)
    assert second.wait(TIMEOUT_S)
    assert idle.stats()["threads_started"] == 2
    idle.close(TIMEOUT_S)


def test_dispatcher_close_drains_queue() -> None:
    closing = Dispatcher(name="close-test")
    ran: list[int] = []
    gate = block(closing)
    for index in range(5):
        closing.call_soon(ran.append, index)
    assert "queued=" in repr(closing)

    gate.set()
    closing.close(TIMEOUT_S)

    assert ran == [0, 1, 2, 3, 4]
    assert "closed" in repr(closing)
    with pytest.raises(RuntimeError, match="closed"):
        closing.call_soon(ran.append, 5)


def test_dispatcher_wakes_when_parked() -> None:
    # A long idle exit, so the thread parks instead of exiting.
    patient = Dispatcher(name="parked-test", idle_exit_s=60.0)
    first = threading.Event()
    patient.call_soon(first.set)
    assert first.wait(TIMEOUT_S)
    wait_until(lambda: patient._parked, "the dispatcher thread waits for work")

    second = threading.Event()
    patient.call_soon(second.set)

    assert second.wait(TIMEOUT_S)
    assert patient.stats()["threads_started"] == 1
    patient.close(TIMEOUT_S)


def test_dispatcher_keeps_order_of_nested_calls(dispatcher: Dispatcher) -> None:
    order: list[str] = []
    done = threading.Event()
    gate = block(dispatcher)

    def outer(name: str) -> None:
        order.append(name)
        dispatcher.call_soon(order.append, f"{name} nested")

    dispatcher.call_soon(outer, "a")
    dispatcher.call_soon(outer, "b")
    dispatcher.call_soon(lambda: dispatcher.call_soon(done.set))
    gate.set()

    assert done.wait(TIMEOUT_S)
    assert order == ["a", "b", "a nested", "b nested"]


def test_promises_on_two_dispatchers_adopt() -> None:
    first = Dispatcher(name="first-test")
    second = Dispatcher(name="second-test")
    source, resolve, _ = Promise.with_resolvers(dispatcher=first)
    chained = Promise.resolve(None, dispatcher=second).then(lambda _: source)

    resolve("across")

    assert chained.result(TIMEOUT_S) == "across"
    first.close(TIMEOUT_S)
    second.close(TIMEOUT_S)


def test_dispatcher_names_reexported_by_promise() -> None:
    assert promise_module.Dispatcher is dispatcher_module.Dispatcher
    assert promise_module.default_dispatcher is dispatcher_module.default_dispatcher
    assert promise_module.DISPATCHER_IDLE_EXIT_S == dispatcher_module.DISPATCHER_IDLE_EXIT_S


def test_dispatcher_rejects_invalid_idle_exit() -> None:
    with pytest.raises(ValueError, match="idle_exit_s"):
        Dispatcher(idle_exit_s=0)


# ------------------------------------------------------ property-based tests


@settings(max_examples=50, deadline=None)
@given(raise_at=st.lists(st.booleans(), min_size=1, max_size=12))
def test_chain_rejects_at_first_raise(raise_at: list[bool]) -> None:
    calls: list[int] = []

    def step(index: int, should_raise: bool, value: int) -> int:
        calls.append(index)
        if should_raise:
            raise ValueError(index)
        return value + 1

    promise: Promise[int] = Promise.resolve(0)
    for index, should_raise in enumerate(raise_at):
        promise = promise.then(lambda value, i=index, r=should_raise: step(i, r, value))
    error = promise.exception(TIMEOUT_S)

    if True in raise_at:
        first = raise_at.index(True)
        assert isinstance(error, ValueError)
        assert error.args == (first,)
        assert calls == list(range(first + 1))
    else:
        assert error is None
        assert promise.result(TIMEOUT_S) == len(raise_at)
        assert calls == list(range(len(raise_at)))


@settings(max_examples=50, deadline=None)
@given(
    outcomes=st.lists(st.booleans(), min_size=1, max_size=8),
    data=st.data(),
)
def test_all_matches_settlement_order(outcomes: list[bool], data: st.DataObject) -> None:
    order = data.draw(st.permutations(range(len(outcomes))))
    inputs = [Promise.with_resolvers() for _ in outcomes]
    errors = [ValueError(index) for index in range(len(outcomes))]
    combined = Promise.all([promise for promise, _, _ in inputs])

    for index in order:
        _, resolve, reject = inputs[index]
        if outcomes[index]:
            resolve(index)
        else:
            reject(errors[index])
    error = combined.exception(TIMEOUT_S)

    failed_in_order = [index for index in order if not outcomes[index]]
    if failed_in_order:
        assert error is errors[failed_in_order[0]]
    else:
        assert combined.result(TIMEOUT_S) == list(range(len(outcomes)))
