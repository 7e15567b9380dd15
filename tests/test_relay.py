"""Tests of msgpass.relay: bytes pass through unchanged, and the relay records them.

The server behind the relay is a ``ThreadedServer`` echo; clients are framed
TCP connections or raw sockets. Waits are recv calls with timeouts or polls
with a deadline.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from msgpass.errors import ConnectionClosed
from msgpass.relay import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Relay
from msgpass.tcp import ThreadedServer, connect

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def echo_server() -> Iterator[ThreadedServer]:
    with ThreadedServer(lambda payload: payload.upper()) as server:
        yield server


@pytest.fixture
def relay(echo_server: ThreadedServer) -> Iterator[Relay]:
    with Relay(target_port=echo_server.port) as running:
        yield running


def test_forwards_and_records(relay: Relay) -> None:
    with connect(port=relay.port) as conn:
        conn.send(b"hello relay")
        assert conn.recv() == b"HELLO RELAY"
    assert b"hello relay" in relay.captured(CLIENT_TO_SERVER)
    assert b"HELLO RELAY" in relay.captured(SERVER_TO_CLIENT)
    assert b"HELLO RELAY" not in relay.captured(CLIENT_TO_SERVER)
    assert relay.captured() == b"".join(chunk.data for chunk in relay.chunks)


def test_counts_bytes(relay: Relay) -> None:
    with connect(port=relay.port) as conn:
        conn.send(b"x" * 10)
        conn.recv()
    stats = relay.stats()
    assert stats["connections"] == 1
    assert stats["bytes_client_to_server"] == 14  # 4-byte header and 10-byte payload
    assert stats["bytes_server_to_client"] == 14
    assert stats["bytes_captured"] == 28


def test_large_transfer_unchanged(relay: Relay) -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB, many chunks
    with connect(port=relay.port, timeout_s=10.0) as conn:
        conn.send(payload)
        assert conn.recv() == payload.upper()


def test_connections_are_separate(relay: Relay) -> None:
    with connect(port=relay.port) as first, connect(port=relay.port) as second:
        first.send(b"one")
        second.send(b"two")
        assert second.recv() == b"TWO"
        assert first.recv() == b"ONE"
    numbers = {chunk.connection for chunk in relay.chunks}
    assert numbers == {1, 2}


def test_capture_limit() -> None:
    with (
        ThreadedServer(lambda payload: None) as server,
        Relay(target_port=server.port, max_capture_bytes=8) as relay,
    ):
        with connect(port=relay.port) as conn:
            conn.send(b"0123456789")
        wait_for_bytes(relay, 14)
        assert relay.captured() == b"\x00\x00\x00\n0123"
        assert relay.stats()["bytes_not_captured"] == 6


def test_clear_forgets(relay: Relay) -> None:
    with connect(port=relay.port) as conn:
        conn.send(b"a")
        conn.recv()
    relay.clear()
    assert relay.captured() == b""


def test_half_close_propagates(relay: Relay) -> None:
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5.0) as raw:
        raw.sendall(b"\x00\x00\x00\x02hi")
        raw.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := raw.recv(100):
            received += chunk
    assert received == b"\x00\x00\x00\x02HI"


def test_target_down_closes_client() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        free_port = probe.getsockname()[1]
    with (
        Relay(target_port=free_port) as relay,
        connect(port=relay.port) as conn,
        pytest.raises(ConnectionClosed),
    ):
        conn.recv(timeout_s=5.0)


def test_stop_is_idempotent_and_joins(echo_server: ThreadedServer) -> None:
    relay = Relay(target_port=echo_server.port).start()
    conn = connect(port=relay.port)
    conn.send(b"open")
    conn.recv()
    relay.stop()
    relay.stop()
    assert not any(thread.name == relay.name for thread in threading.enumerate())
    with pytest.raises(ConnectionClosed):
        conn.recv(timeout_s=5.0)
    conn.close()
    assert "stopped" in repr(relay)


def test_argument_checks(echo_server: ThreadedServer) -> None:
    with pytest.raises(ValueError, match="port is required"):
        Relay(target_port=0)
    with Relay(target_port=echo_server.port) as relay:
        with pytest.raises(ValueError, match="direction"):
            relay.captured("sideways")
        with pytest.raises(RuntimeError, match="cannot start"):
            relay.start()


def wait_for_bytes(relay: Relay, count: int, timeout_s: float = 5.0) -> None:
    """Poll ``stats()`` until the relay has forwarded ``count`` client bytes."""
    deadline = time.monotonic() + timeout_s
    while relay.stats()["bytes_client_to_server"] < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"relay forwarded {relay.stats()} before the deadline")
        threading.Event().wait(0.005)
