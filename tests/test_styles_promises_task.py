"""The promise-style two-step lookup: balances, errors from either step, timeouts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from msgpass.errors import EndpointClosed, MessagingTimeout, RemoteError
from msgpass.styles.callbacks import CallbackClient
from msgpass.styles.dispatcher import Dispatcher
from msgpass.styles.lookup import Faults, LookupServer
from msgpass.styles.promise import FULFILLED, REJECTED
from msgpass.styles.promises_task import fetch_balance_promise, get_promise

pytestmark = pytest.mark.timeout(30)

SHORT_TIMEOUT_S = 0.1  # for requests whose reply is dropped on purpose
WAIT_S = 5.0  # upper bound for anything the test waits for


@pytest.fixture
def server() -> Iterator[LookupServer]:
    with LookupServer() as running:
        yield running


@pytest.mark.parametrize(("user", "balance"), [("alice", "100"), ("bob", "250")])
def test_fetch_returns_balance(server: LookupServer, user: str, balance: str) -> None:
    with CallbackClient(server.port) as client:
        promise = fetch_balance_promise(client, user)
        assert promise.result(WAIT_S) == balance
        assert promise.state == FULFILLED

    assert server.stats()["replies"] == 2


def test_get_promise_returns_value(server: LookupServer) -> None:
    with CallbackClient(server.port) as client:
        assert get_promise(client, "user:alice").result(WAIT_S) == "42"


def test_missing_user_stops_after_step_one(server: LookupServer) -> None:
    with CallbackClient(server.port) as client:
        promise = fetch_balance_promise(client, "zed")
        error = promise.exception(WAIT_S)

    assert isinstance(error, RemoteError)
    assert error.code == "not_found"
    assert promise.state == REJECTED
    assert server.stats()["requests"] == 1


def test_missing_balance_rejects_in_step_two(server: LookupServer) -> None:
    with CallbackClient(server.port) as client:
        error = fetch_balance_promise(client, "carol").exception(WAIT_S)

    assert isinstance(error, RemoteError)
    assert error.code == "not_found"
    assert "balance:13" in str(error)
    assert server.stats()["requests"] == 2


def test_dropped_reply_times_out() -> None:
    faults = Faults(drop_keys=frozenset({"balance:42"}))
    with LookupServer(faults=faults) as server, CallbackClient(server.port) as client:
        promise = fetch_balance_promise(client, "alice", timeout_s=SHORT_TIMEOUT_S)
        error = promise.exception(WAIT_S)

    assert isinstance(error, MessagingTimeout)


def test_closed_client_rejects_chain(server: LookupServer) -> None:
    client = CallbackClient(server.port)
    client.close()

    error = fetch_balance_promise(client, "alice").exception(WAIT_S)

    assert isinstance(error, EndpointClosed)


def test_handlers_run_on_given_dispatcher(server: LookupServer) -> None:
    dispatcher = Dispatcher("test-promises-task")
    try:
        with CallbackClient(server.port) as client:
            promise = fetch_balance_promise(client, "alice", dispatcher=dispatcher)
            assert promise.dispatcher is dispatcher
            assert promise.result(WAIT_S) == "100"
    finally:
        dispatcher.close(WAIT_S)
