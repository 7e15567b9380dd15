"""Tests of msgpass.relay: bytes pass through unchanged, and the relay records them.

The server behind the relay is a ``ThreadedServer`` echo; clients are framed
TCP connections or raw sockets. Waits are recv calls with timeouts or polls
with a deadline.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from msgpass import tls
from msgpass.errors import CertificateVerificationError, ConnectionClosed
from msgpass.framing import encode_frame
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


# -- resets and unexpected errors must end one connection, never the relay --


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_reset_while_both_sides_readable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as target:
        target.settimeout(5.0)
        with Relay(target_port=target.getsockname()[1]) as relay:
            # While the test holds the relay's lock, its thread waits in _accept before it
            # registers the new pair of sockets. The reset and the server's bytes both arrive
            # in that time, so the next select() reports both sockets of the pair at once.
            with relay._lock:
                client = socket.create_connection(("127.0.0.1", relay.port), timeout=5.0)
                server_side, _ = target.accept()
                server_side.sendall(b"from the server")
                reset_abruptly(client)
            with server_side:
                wait_for_open_connections(relay, 0)
            assert_relay_forwards(relay, target)


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_resets_with_data_both_ways(relay: Relay) -> None:
    payload = b"x" * 256 * 1024  # large enough that the echo is still flowing at the reset
    for _ in range(50):
        client = socket.create_connection(("127.0.0.1", relay.port), timeout=5.0)
        client.sendall(encode_frame(payload))
        client.recv(1)  # the echo has started, so bytes are in flight both ways
        client.sendall(encode_frame(payload)[:1000])
        reset_abruptly(client)
    wait_for_open_connections(relay, 0)
    assert relay_thread_alive(relay)
    with connect(port=relay.port) as conn:
        conn.send(b"still there")
        assert conn.recv() == b"STILL THERE"
    assert relay.stats()["connections"] == 51


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_refused_tls_keeps_relay() -> None:
    ca = tls.CertificateAuthority("relay test CA")
    certificate = ca.issue_server_certificate(["localhost"])
    client_context = tls.client_context(ca.cert_pem)
    with (
        ThreadedServer(
            lambda payload: payload.upper(), ssl_context=tls.server_context(certificate)
        ) as server,
        Relay(target_port=server.port) as relay,
    ):
        for _ in range(50):
            with pytest.raises(CertificateVerificationError):
                tls.connect(port=relay.port, context=client_context, server_hostname="example.org")
        wait_for_open_connections(relay, 0)
        assert relay_thread_alive(relay)
        with tls.connect(
            port=relay.port, context=client_context, server_hostname="localhost"
        ) as conn:
            conn.send(b"after the refusals")
            assert conn.recv() == b"AFTER THE REFUSALS"


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_unexpected_error_closes_one_connection(
    relay: Relay, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    record = relay._record

    def record_failing_on_first(number: int, direction: str, data: bytes) -> None:
        if number == 1:
            raise RuntimeError("a bug in the relay")
        record(number, direction, data)

    monkeypatch.setattr(relay, "_record", record_failing_on_first)
    caplog.set_level(logging.ERROR, logger="msgpass.relay")
    with connect(port=relay.port) as broken, connect(port=relay.port) as healthy:
        broken.send(b"one")
        with pytest.raises(ConnectionClosed):
            broken.recv(timeout_s=5.0)
        healthy.send(b"two")
        assert healthy.recv() == b"TWO"
    assert relay_thread_alive(relay)
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1, [record.getMessage() for record in errors]
    assert "connection 1 " in errors[0].getMessage()
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], RuntimeError)
    assert relay.chunks[-1].connection == 2


def reset_abruptly(sock: socket.socket) -> None:
    """Close ``sock`` with SO_LINGER 0, so the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def relay_thread_alive(relay: Relay) -> bool:
    return any(thread.name == relay.name for thread in threading.enumerate())


def assert_relay_forwards(relay: Relay, target: socket.socket) -> None:
    """Open a new connection through ``relay`` to the raw ``target`` and pass bytes both ways."""
    assert relay_thread_alive(relay), "the relay thread has ended"
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5.0) as client:
        try:
            server_side, _ = target.accept()
        except TimeoutError:
            raise AssertionError("the relay accepted no later connection") from None
        with server_side:
            client.sendall(b"ping")
            assert recv_exactly(server_side, 4) == b"ping"
            server_side.sendall(b"pong")
            assert recv_exactly(client, 4) == b"pong"


def recv_exactly(sock: socket.socket, count: int) -> bytes:
    received = b""
    while len(received) < count:
        chunk = sock.recv(count - len(received))
        if not chunk:
            raise AssertionError(f"connection closed after {received!r}")
        received += chunk
    return received


def wait_for_open_connections(relay: Relay, count: int, timeout_s: float = 5.0) -> None:
    """Poll ``stats()`` until the relay has ``count`` open connections."""
    deadline = time.monotonic() + timeout_s
    while relay.stats()["open_connections"] != count:
        if time.monotonic() > deadline:
            raise AssertionError(f"relay stats {relay.stats()} before the deadline")
        threading.Event().wait(0.005)


def wait_for_bytes(relay: Relay, count: int, timeout_s: float = 5.0) -> None:
    """Poll ``stats()`` until the relay has forwarded ``count`` client bytes."""
    deadline = time.monotonic() + timeout_s
    while relay.stats()["bytes_client_to_server"] < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"relay forwarded {relay.stats()} before the deadline")
        threading.Event().wait(0.005)
