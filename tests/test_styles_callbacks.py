"""The callback-style client: exactly-once callbacks, timeouts, late replies, failures."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from msgpass.errors import ConnectionClosed, EndpointClosed, MessagingTimeout, RemoteError
from msgpass.styles.callbacks import CallbackClient, fetch_balance_callbacks
from msgpass.styles.lookup import Faults, LookupServer

pytestmark = pytest.mark.timeout(30)

SHORT_TIMEOUT_S = 0.1  # for requests whose reply is dropped or held on purpose
WAIT_S = 5.0  # upper bound for anything the test waits for


def wait_until(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition still false after {timeout_s} s")
        time.sleep(0.001)


class Outcome:
    """Records every call of on_success and on_error, so tests can count them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self._first = threading.Event()
        self._lock = threading.Lock()

    def on_success(self, value: str) -> None:
        self._record("success", value)

    def on_error(self, error: Exception) -> None:
        self._record("error", error)

    def _record(self, kind: str, arg: object) -> None:
        with self._lock:
            self.calls.append((kind, arg))
        self._first.set()

    def wait(self) -> tuple[str, object]:
        assert self._first.wait(WAIT_S), "no callback was called"
        return self.calls[0]


@pytest.fixture
def server() -> Iterator[LookupServer]:
    with LookupServer() as running:
        yield running


def test_get_calls_on_success(server: LookupServer) -> None:
    outcome = Outcome()
    with CallbackClient(server.port) as client:
        client.get("user:alice", outcome.on_success, outcome.on_error)
        assert outcome.wait() == ("success", "42")


@pytest.mark.parametrize(("user", "balance"), [("alice", "100"), ("bob", "250")])
def test_fetch_returns_balance(server: LookupServer, user: str, balance: str) -> None:
    outcome = Outcome()
    with CallbackClient(server.port) as client:
        fetch_balance_callbacks(client, user, outcome.on_success, outcome.on_error)
        assert outcome.wait() == ("success", balance)

    assert len(outcome.calls) == 1


def test_fetch_missing_user_reaches_on_error(server: LookupServer) -> None:
    outcome = Outcome()
    with CallbackClient(server.port) as client:
        fetch_balance_callbacks(client, "zed", outcome.on_success, outcome.on_error)
        kind, error = outcome.wait()

    assert kind == "error"
    assert isinstance(error, RemoteError)
    assert error.code == "not_found"
    assert server.stats()["requests"] == 1  # step 2 never started
    assert len(outcome.calls) == 1


def test_fetch_missing_balance_reaches_on_error(server: LookupServer) -> None:
    outcome = Outcome()
    with CallbackClient(server.port) as client:
        fetch_balance_callbacks(client, "carol", outcome.on_success, outcome.on_error)
        kind, error = outcome.wait()

    assert kind == "error"
    assert "balance:13" in str(error)


def test_dropped_step_two_times_out_once() -> None:
    faults = Faults(drop_keys=frozenset({"balance:42"}))
    outcome = Outcome()
    with LookupServer(faults=faults) as server, CallbackClient(server.port) as client:
        fetch_balance_callbacks(
            client, "alice", outcome.on_success, outcome.on_error, timeout_s=SHORT_TIMEOUT_S
        )
        kind, error = outcome.wait()
        stats = client.stats()

    assert kind == "error"
    assert isinstance(error, MessagingTimeout)
    assert "balance:42" in str(error)
    assert stats["timeouts"] == 1
    assert len(outcome.calls) == 1


def test_late_reply_is_ignored() -> None:
    faults = Faults(hold_keys=frozenset({"user:alice"}))
    outcome = Outcome()
    with LookupServer(faults=faults) as server, CallbackClient(server.port) as client:
        client.get("user:alice", outcome.on_success, outcome.on_error, timeout_s=SHORT_TIMEOUT_S)
        kind, error = outcome.wait()
        server.wait_held(1)
        assert server.release_held() == 1
        wait_until(lambda: client.stats()["late_replies"] == 1)

        # The client still serves new requests after ignoring the late reply.
        second = Outcome()
        client.get("user:bob", second.on_success, second.on_error)
        assert second.wait() == ("success", "7")

    assert kind == "error"
    assert isinstance(error, MessagingTimeout)
    assert outcome.calls == [("error", error)]


def test_raising_callback_is_logged(server: LookupServer, caplog: pytest.LogCaptureFixture) -> None:
    def broken_callback(value: str) -> None:
        raise ValueError(f"cannot handle {value}")

    outcome = Outcome()
    with (
        caplog.at_level(logging.ERROR, logger="msgpass.styles.callbacks"),
        CallbackClient(server.port) as client,
    ):
        first_id = client.get("user:alice", broken_callback, outcome.on_error)
        client.get("user:bob", outcome.on_success, outcome.on_error)
        assert outcome.wait() == ("success", "7")
        stats = client.stats()

    assert stats["callback_errors"] == 1
    messages = [record.getMessage() for record in caplog.records]
    assert any(f"request {first_id} (user:alice)" in message for message in messages)
    assert len(outcome.calls) == 1


def test_raising_on_error_is_logged(server: LookupServer) -> None:
    def broken_on_error(error: Exception) -> None:
        raise RuntimeError("the error handler itself failed")

    outcome = Outcome()
    with CallbackClient(server.port) as client:
        client.get("user:zed", outcome.on_success, broken_on_error)
        client.get("user:bob", outcome.on_success, outcome.on_error)
        assert outcome.wait() == ("success", "7")
        assert client.stats()["callback_errors"] == 1


def test_close_fails_pending_requests() -> None:
    faults = Faults(hold_keys=frozenset({"user:alice"}))
    outcome = Outcome()
    with LookupServer(faults=faults) as server:
        client = CallbackClient(server.port)
        client.get("user:alice", outcome.on_success, outcome.on_error)
        server.wait_held(1)
        client.close()

    kind, error = outcome.wait()
    assert kind == "error"
    assert isinstance(error, EndpointClosed)
    assert len(outcome.calls) == 1


def test_get_after_close_raises(server: LookupServer) -> None:
    client = CallbackClient(server.port)
    client.close()
    client.close()  # a second close does nothing

    with pytest.raises(EndpointClosed):
        client.get("user:alice", print, print)
    assert "closed" in repr(client)


def test_close_from_callback_raises(server: LookupServer) -> None:
    errors: list[Exception] = []
    done = threading.Event()

    def close_inside(value: str) -> None:
        try:
            client.close()
        except RuntimeError as error:
            errors.append(error)
        done.set()

    with CallbackClient(server.port) as client:
        client.get("user:alice", close_inside, print)
        assert done.wait(WAIT_S)

    assert len(errors) == 1
    assert "I/O thread" in str(errors[0])


def test_server_stop_fails_pending() -> None:
    faults = Faults(drop_keys=frozenset({"user:alice"}))
    outcome = Outcome()
    server = LookupServer(faults=faults).start()
    client = CallbackClient(server.port)
    try:
        client.get("user:alice", outcome.on_success, outcome.on_error)
        wait_until(lambda: server.stats()["dropped"] == 1)
        server.stop()
        kind, error = outcome.wait()
        with pytest.raises(EndpointClosed):
            client.get("user:bob", print, print)
    finally:
        client.close()
        server.stop()

    assert kind == "error"
    assert isinstance(error, ConnectionClosed)
    assert "broken" in repr(client)


def test_concurrent_gets_from_many_threads(server: LookupServer) -> None:
    outcomes = [Outcome() for _ in range(40)]
    keys = ["user:alice", "user:bob", "balance:42", "balance:7"]
    expected = {"user:alice": "42", "user:bob": "7", "balance:42": "100", "balance:7": "250"}
    with CallbackClient(server.port) as client:

        def submit(start: int) -> None:
            for index in range(start, len(outcomes), 4):
                key = keys[index % 4]
                client.get(key, outcomes[index].on_success, outcomes[index].on_error)

        threads = [threading.Thread(target=submit, args=(start,)) for start in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_S)
        results = [outcome.wait() for outcome in outcomes]

    assert results == [("success", expected[keys[index % 4]]) for index in range(40)]
    assert all(len(outcome.calls) == 1 for outcome in outcomes)


def test_get_rejects_non_callable(server: LookupServer) -> None:
    with CallbackClient(server.port) as client, pytest.raises(TypeError, match="callable"):
        client.get("user:alice", "print", print)  # type: ignore[arg-type]


def test_connect_refused_raises_connection_closed() -> None:
    with LookupServer() as server:
        port = server.port
    with pytest.raises(ConnectionClosed, match="refused"):
        CallbackClient(port, timeout_s=1.0)


def test_stats_count_requests(server: LookupServer) -> None:
    outcome = Outcome()
    with CallbackClient(server.port) as client:
        fetch_balance_callbacks(client, "alice", outcome.on_success, outcome.on_error)
        outcome.wait()
        stats = client.stats()

    assert stats["requests"] == 2
    assert stats["replies"] == 2
    assert stats["pending"] == 0
