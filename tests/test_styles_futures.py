"""The future-style task: concurrent.futures chaining, fan-out and cancellation, and asyncio."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Iterator

import pytest

from msgpass.errors import EndpointClosed, MessagingTimeout, RemoteError
from msgpass.styles.futures import (
    AsyncLookupClient,
    ExecutorLookup,
    fetch_balance,
    fetch_balance_async,
    fetch_balance_chained,
    fetch_balance_with_executor,
    fetch_balances_as_completed,
    fetch_balances_gather,
    fetch_balances_taskgroup,
    fetch_balances_wait,
    result_within,
)
from msgpass.styles.lookup import Faults, LookupServer

pytestmark = pytest.mark.timeout(30)

HOST = "127.0.0.1"
SHORT_TIMEOUT_S = 0.1  # for requests whose reply is dropped or held on purpose
WAIT_S = 5.0  # upper bound for anything the test waits for
HOLD_ALICE = Faults(hold_keys=frozenset({"user:alice"}))


def wait_until(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition still false after {timeout_s} s")
        time.sleep(0.001)


@pytest.fixture
def server() -> Iterator[LookupServer]:
    with LookupServer() as running:
        yield running


# -- concurrent.futures ------------------------------------------------------------


def test_executor_fetch_returns_balance(server: LookupServer) -> None:
    with ExecutorLookup(server.port) as lookup:
        assert fetch_balance_with_executor(lookup, "alice", timeout_s=WAIT_S) == "100"


def test_executor_fetch_missing_user(server: LookupServer) -> None:
    with ExecutorLookup(server.port) as lookup, pytest.raises(RemoteError, match="user:zed"):
        fetch_balance_with_executor(lookup, "zed", timeout_s=WAIT_S)


def test_worker_timeout_fails_future() -> None:
    faults = Faults(drop_keys=frozenset({"balance:42"}))
    with (
        LookupServer(faults=faults) as server,
        ExecutorLookup(server.port, timeout_s=SHORT_TIMEOUT_S) as lookup,
        pytest.raises(MessagingTimeout, match="balance:42"),
    ):
        fetch_balance_with_executor(lookup, "alice", timeout_s=WAIT_S)


def test_result_within_maps_timeout() -> None:
    with LookupServer(faults=HOLD_ALICE) as server, ExecutorLookup(server.port) as lookup:
        future = lookup.get("user:alice")
        with pytest.raises(MessagingTimeout, match="step 1"):
            result_within(future, SHORT_TIMEOUT_S, "step 1")
        server.release_held()
        # The running future could not be cancelled, so it still finishes.
        assert future.result(timeout=WAIT_S) == "42"


def test_chained_fetch_returns_balance(server: LookupServer) -> None:
    with ExecutorLookup(server.port) as lookup:
        assert fetch_balance_chained(lookup, "bob").result(timeout=WAIT_S) == "250"


def test_chained_fetch_step_one_error(server: LookupServer) -> None:
    with ExecutorLookup(server.port) as lookup:
        future = fetch_balance_chained(lookup, "zed")
        error = future.exception(timeout=WAIT_S)

    assert isinstance(error, RemoteError)
    assert server.stats()["requests"] == 1


def test_pending_future_cancels_running_does_not() -> None:
    with LookupServer(faults=HOLD_ALICE) as server:
        with ExecutorLookup(server.port, max_workers=1) as lookup:
            running = lookup.get("user:alice")
            server.wait_held(1)
            queued = lookup.get("user:bob")

            assert queued.cancel() is True
            assert running.cancel() is False
            server.release_held()
            assert running.result(timeout=WAIT_S) == "42"
            assert queued.cancelled()
        stats = server.stats()

    assert stats["requests"] == 1  # user:bob never reached the server


def test_cancelled_chain_stops_before_network() -> None:
    with LookupServer(faults=HOLD_ALICE) as server:
        with ExecutorLookup(server.port, max_workers=1) as lookup:
            blocker = lookup.get("user:alice")
            server.wait_held(1)
            chained = fetch_balance_chained(lookup, "bob")

            assert chained.cancel() is True
            server.release_held()
            assert blocker.result(timeout=WAIT_S) == "42"
        stats = server.stats()

    assert chained.cancelled()
    assert stats["requests"] == 1


def test_wait_fan_out_collects_each_user(server: LookupServer) -> None:
    with ExecutorLookup(server.port) as lookup:
        results = fetch_balances_wait(lookup, ["alice", "bob", "zed"], timeout_s=WAIT_S)

    assert results["alice"] == "100"
    assert results["bob"] == "250"
    assert isinstance(results["zed"], RemoteError)


def test_wait_fan_out_reports_unfinished_as_timeout() -> None:
    with LookupServer(faults=HOLD_ALICE) as server, ExecutorLookup(server.port) as lookup:
        results = fetch_balances_wait(lookup, ["alice", "bob"], timeout_s=SHORT_TIMEOUT_S * 3)
        server.release_held()

    assert results["bob"] == "250"
    assert isinstance(results["alice"], MessagingTimeout)


def test_as_completed_yields_every_user(server: LookupServer) -> None:
    with ExecutorLookup(server.port) as lookup:
        results = dict(fetch_balances_as_completed(lookup, ["alice", "bob"], timeout_s=WAIT_S))

    assert results == {"alice": "100", "bob": "250"}


def test_as_completed_timeout_names_user() -> None:
    with LookupServer(faults=HOLD_ALICE) as server, ExecutorLookup(server.port) as lookup:
        with pytest.raises(MessagingTimeout, match="alice"):
            list(fetch_balances_as_completed(lookup, ["alice", "bob"], timeout_s=0.3))
        server.release_held()


def test_get_after_close_raises(server: LookupServer) -> None:
    lookup = ExecutorLookup(server.port)
    lookup.close()

    with pytest.raises(EndpointClosed):
        lookup.get("user:alice")
    assert "closed" in repr(lookup)


def test_chained_fetch_on_closed_lookup_fails_future(server: LookupServer) -> None:
    lookup = ExecutorLookup(server.port)
    lookup.close()

    error = fetch_balance_chained(lookup, "alice").exception(timeout=WAIT_S)
    assert isinstance(error, EndpointClosed)


# -- asyncio -------------------------------------------------------------------------


def test_async_fetch_returns_balance(server: LookupServer) -> None:
    balance = asyncio.run(fetch_balance(HOST, server.port, "alice", timeout_s=WAIT_S))
    assert balance == "100"


def test_async_fetch_missing_user(server: LookupServer) -> None:
    with pytest.raises(RemoteError, match="user:zed"):
        asyncio.run(fetch_balance(HOST, server.port, "zed", timeout_s=WAIT_S))


def test_async_dropped_step_times_out() -> None:
    faults = Faults(drop_keys=frozenset({"balance:42"}))
    with LookupServer(faults=faults) as server, pytest.raises(MessagingTimeout, match="balance"):
        asyncio.run(fetch_balance(HOST, server.port, "alice", timeout_s=SHORT_TIMEOUT_S))


def test_async_client_skips_late_reply() -> None:
    async def scenario(server: LookupServer) -> tuple[str, int]:
        async with await AsyncLookupClient.open(HOST, server.port) as client:
            with pytest.raises(MessagingTimeout):
                await client.get("user:alice", timeout_s=SHORT_TIMEOUT_S)
            server.release_held()
            value = await fetch_balance_async(client, "bob", timeout_s=WAIT_S)
            return value, client.late_replies

    with LookupServer(faults=HOLD_ALICE) as server:
        assert asyncio.run(scenario(server)) == ("250", 1)


def test_async_cancel_closes_connection() -> None:
    async def scenario(server: LookupServer) -> None:
        task = asyncio.create_task(fetch_balance(HOST, server.port, "alice", timeout_s=WAIT_S))
        await asyncio.to_thread(server.wait_held, 1, WAIT_S)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    with LookupServer(faults=HOLD_ALICE) as server:
        asyncio.run(scenario(server))
        server.release_held()
        # The server reads the client's close only after its held reply is sent.
        wait_until(lambda: server.stats()["connections_open"] == 0)
        stats = server.stats()

    assert stats["requests"] == 1  # step 2 never ran


def test_gather_keeps_every_outcome(server: LookupServer) -> None:
    results = asyncio.run(
        fetch_balances_gather(HOST, server.port, ["alice", "bob", "zed"], timeout_s=WAIT_S)
    )

    assert results["alice"] == "100"
    assert results["bob"] == "250"
    assert isinstance(results["zed"], RemoteError)


def test_taskgroup_returns_all_balances(server: LookupServer) -> None:
    results = asyncio.run(
        fetch_balances_taskgroup(HOST, server.port, ["alice", "bob"], timeout_s=WAIT_S)
    )
    assert results == {"alice": "100", "bob": "250"}


def test_taskgroup_fails_fast() -> None:
    with LookupServer(faults=HOLD_ALICE) as server, pytest.raises(ExceptionGroup) as caught:
        asyncio.run(fetch_balances_taskgroup(HOST, server.port, ["alice", "zed"], timeout_s=WAIT_S))

    # zed's failure cancelled alice's task, whose reply is held, so only zed's error is there.
    assert [type(error) for error in caught.value.exceptions] == [RemoteError]


def test_concurrent_futures_timeout_is_builtin() -> None:
    # result_within relies on this equivalence, true since Python 3.11.
    assert concurrent.futures.TimeoutError is TimeoutError
