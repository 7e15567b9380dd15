"""The lookup server, its wire format and the blocking client, over real loopback TCP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest

from msgpass.errors import MessagingTimeout, ProtocolError, RemoteError
from msgpass.styles.lookup import (
    Faults,
    LookupClient,
    LookupServer,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
    fetch_balance_blocking,
)
from msgpass.tcp import connect

pytestmark = pytest.mark.timeout(30)

SHORT_TIMEOUT_S = 0.1  # for requests whose reply is dropped or held on purpose


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition still false after {timeout_s} s")
        time.sleep(0.001)


# -- wire format ------------------------------------------------------------------


def test_request_round_trip() -> None:
    assert decode_request(encode_request("user:alice", 7)) == ("user:alice", 7)
    assert decode_request(encode_request("user:alice")) == ("user:alice", None)


def test_request_is_plain_json() -> None:
    assert json.loads(encode_request("k", 3)) == {"op": "get", "key": "k", "id": 3}


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xfe",
        b"not json",
        b"[1, 2]",
        b'{"op": "put", "key": "k"}',
        b'{"op": "get", "key": 5}',
        b'{"op": "get", "key": "k", "id": "7"}',
        b'{"op": "get", "key": "k", "id": true}',
    ],
)
def test_request_decoding_rejects_invalid(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_request(payload)


def test_encode_request_rejects_non_str_key() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        encode_request(42)  # type: ignore[arg-type]


def test_reply_round_trip_value() -> None:
    assert decode_reply(encode_reply(3, value="42")) == (3, "42")


def test_reply_round_trip_error() -> None:
    request_id, outcome = decode_reply(encode_reply(4, code="not_found", error="not found: k"))

    assert request_id == 4
    assert isinstance(outcome, RemoteError)
    assert outcome.code == "not_found"
    assert "not found: k" in str(outcome)


@pytest.mark.parametrize(
    "payload", [b'{"value": "1"}', b'{"ok": true, "value": 1}', b'{"ok": true, "id": "x"}']
)
def test_reply_decoding_rejects_invalid(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_reply(payload)


# -- the two-step task, blocking --------------------------------------------------


@pytest.mark.parametrize(("user", "balance"), [("alice", "100"), ("bob", "250")])
def test_blocking_fetch_returns_balance(user: str, balance: str) -> None:
    with LookupServer() as server:
        assert fetch_balance_blocking(server.port, user, timeout_s=2.0) == balance


def test_blocking_fetch_missing_user() -> None:
    with LookupServer() as server:
        with pytest.raises(RemoteError, match="not found: user:zed") as caught:
            fetch_balance_blocking(server.port, "zed", timeout_s=2.0)
        stats = server.stats()

    assert caught.value.code == "not_found"
    assert stats["requests"] == 1  # step 2 never ran


def test_blocking_fetch_missing_balance() -> None:
    with LookupServer() as server, pytest.raises(RemoteError, match="balance:13"):
        fetch_balance_blocking(server.port, "carol", timeout_s=2.0)


def test_blocking_fetch_dropped_step_two_times_out() -> None:
    faults = Faults(drop_keys=frozenset({"balance:42"}))
    with LookupServer(faults=faults) as server:
        with pytest.raises(MessagingTimeout, match="balance:42"):
            fetch_balance_blocking(server.port, "alice", timeout_s=SHORT_TIMEOUT_S)
        stats = server.stats()

    assert stats["dropped"] == 1
    assert stats["replies"] == 1


def test_client_skips_late_reply() -> None:
    faults = Faults(hold_keys=frozenset({"user:alice"}))
    with LookupServer(faults=faults) as server, LookupClient(server.port) as client:
        with pytest.raises(MessagingTimeout):
            client.get("user:alice", timeout_s=SHORT_TIMEOUT_S)
        assert server.release_held() == 1

        assert client.get("user:bob") == "7"
        assert client.stats()["late_replies"] == 1


def test_service_delay_causes_timeout() -> None:
    with LookupServer(delay_s=2.0) as server, LookupClient(server.port) as client:
        with pytest.raises(MessagingTimeout, match="user:alice"):
            client.get("user:alice", timeout_s=SHORT_TIMEOUT_S)
        started = time.monotonic()
    # stop() cuts the 2 s service delay short.
    assert time.monotonic() - started < 1.5


# -- faults ---------------------------------------------------------------------


def test_fail_every_is_deterministic() -> None:
    with LookupServer(faults=Faults(fail_every=2)) as server, LookupClient(server.port) as client:
        outcomes = []
        for _ in range(4):
            try:
                outcomes.append(client.get("user:alice"))
            except RemoteError as error:
                outcomes.append(error.code)

    assert outcomes == ["42", "unavailable", "42", "unavailable"]


def _failure_pattern(seed: int) -> list[bool]:
    faults = Faults(fail_probability=0.5, seed=seed)
    pattern = []
    with LookupServer(faults=faults) as server, LookupClient(server.port) as client:
        for _ in range(20):
            try:
                client.get("user:alice")
                pattern.append(False)
            except RemoteError:
                pattern.append(True)
    return pattern


def test_seeded_failures_repeat() -> None:
    first = _failure_pattern(seed=1)

    assert first == _failure_pattern(seed=1)
    assert any(first)
    assert not all(first)
    assert first != _failure_pattern(seed=2)


def test_drop_every_counts_requests() -> None:
    with LookupServer(faults=Faults(drop_every=3)) as server, LookupClient(server.port) as client:
        assert client.get("user:alice") == "42"
        assert client.get("user:bob") == "7"
        with pytest.raises(MessagingTimeout):
            client.get("user:alice", timeout_s=SHORT_TIMEOUT_S)
        assert client.get("user:alice") == "42"
        stats = server.stats()

    assert stats["dropped"] == 1
    assert stats["requests"] == 4


@pytest.mark.parametrize(
    "kwargs", [{"drop_every": -1}, {"fail_probability": 1.5}, {"drop_probability": -0.1}]
)
def test_faults_reject_invalid(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Faults(**kwargs)  # type: ignore[arg-type]


def test_server_rejects_negative_delay() -> None:
    with pytest.raises(ValueError, match="delay_s"):
        LookupServer(delay_s=-1.0)


# -- the server itself ------------------------------------------------------------


def test_server_replies_bad_request() -> None:
    with LookupServer() as server, connect(port=server.port, timeout_s=2.0) as conn:
        conn.send(b"{broken")
        request_id, outcome = decode_reply(conn.recv())
        stats = server.stats()

    assert request_id is None
    assert isinstance(outcome, RemoteError)
    assert outcome.code == "bad_request"
    assert stats["bad_requests"] == 1


def test_server_binds_loopback_port() -> None:
    with LookupServer() as server:
        host, port = server.address

    assert host == "127.0.0.1"
    assert port > 0


def test_stop_releases_held_reply_and_threads() -> None:
    threads_before = threading.active_count()
    server = LookupServer(faults=Faults(hold_keys=frozenset({"user:alice"}))).start()
    with connect(port=server.port, timeout_s=2.0) as conn:
        conn.send(encode_request("user:alice", 1))
        server.wait_held(1, timeout_s=2.0)
        server.stop(timeout_s=2.0)

    wait_until(lambda: threading.active_count() <= threads_before)
    assert server.stats()["connections_open"] == 0


def test_wait_held_times_out() -> None:
    with LookupServer() as server, pytest.raises(MessagingTimeout, match="0 of 1"):
        server.wait_held(1, timeout_s=SHORT_TIMEOUT_S)


def test_stats_and_repr() -> None:
    with LookupServer() as server:
        fetch_balance_blocking(server.port, "alice", timeout_s=2.0)
        stats = server.stats()
        text = repr(server)

    assert stats["requests"] == 2
    assert stats["replies"] == 2
    assert stats["connections_accepted"] == 1
    assert "2 requests" in text
