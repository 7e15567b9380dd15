"""Tests of msgpass.labsupport.DelayServer over real loopback connections.

Overlap is shown by the server's own counters, never by timing. A test that
needs several requests in service at once gives them a delay far longer than
the test and waits until ``max_in_service`` reaches the expected count. Closing
the server then cancels the requests that are still waiting.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable

import pytest

from msgpass import labsupport
from msgpass.errors import ConnectionClosed, EndpointClosed, MessagingError
from msgpass.labsupport import REQUEST_ID, DelayServer
from msgpass.tcp import FramedConnection, FramedServer, connect, open_connection

pytestmark = pytest.mark.timeout(10)

TIMEOUT_S = 2.0  # limit for every blocking call and every wait in these tests
LONG_DELAY_S = 30.0  # longer than any test, so close() cancels these requests
POLL_INTERVAL_S = 0.001


def wait_until(condition: Callable[[], bool], description: str) -> None:
    """Poll ``condition`` until it is true, failing the test after ``TIMEOUT_S``."""
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {TIMEOUT_S} s waiting until {description}")
        time.sleep(POLL_INTERVAL_S)


@pytest.fixture
def short_close_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorten how long close() waits for connections that are still in use.

    A connection whose client is still connected, or whose handler is waiting
    out a delay, would otherwise hold close() for the full grace period.
    """
    monkeypatch.setattr(labsupport, "CLOSE_GRACE_S", 0.01)


def request(request_id: int, body: bytes = b"") -> bytes:
    return REQUEST_ID.pack(request_id) + body


def open_client(server: DelayServer) -> FramedConnection:
    return connect("127.0.0.1", server.port, timeout_s=TIMEOUT_S)


# -- replies -------------------------------------------------------------------


@pytest.mark.parametrize("concurrent", [True, False])
def test_reply_echoes_request(concurrent: bool) -> None:
    with DelayServer(0.0, concurrent=concurrent) as server, open_client(server) as conn:
        sent = request(7, b"payload")
        conn.send(sent)
        reply = conn.recv()

    assert reply == sent
    assert REQUEST_ID.unpack_from(reply) == (7,)


def test_empty_request_echoed() -> None:
    with DelayServer(0.0) as server, open_client(server) as conn:
        conn.send(b"")
        assert conn.recv() == b""


def test_concurrent_pipelined_replies() -> None:
    sent = [request(request_id) for request_id in range(8)]

    with DelayServer(0.0) as server, open_client(server) as conn:
        for payload in sent:
            conn.send(payload)
        replies = [conn.recv() for _ in sent]
    stats = server.stats()  # read after close(), when the server thread has ended

    # Concurrent replies may come back in any order, so compare as sets.
    assert sorted(replies) == sorted(sent)
    assert stats["connections"] == 1
    assert stats["requests"] == len(sent)
    assert stats["replies"] == len(sent)


def test_asyncio_client() -> None:
    async def exchange(port: int) -> bytes:
        conn = await open_connection("127.0.0.1", port, timeout_s=TIMEOUT_S)
        async with conn:
            await conn.send(request(3))
            return await conn.recv()

    with DelayServer(0.0) as server:
        reply = asyncio.run(exchange(server.port))

    assert reply == request(3)


# -- concurrent versus one at a time --------------------------------------------


def test_concurrent_serves_in_parallel() -> None:
    count = 4
    with DelayServer(LONG_DELAY_S, concurrent=True) as server, open_client(server) as conn:
        for request_id in range(count):
            conn.send(request(request_id))
        wait_until(
            lambda: server.stats()["max_in_service"] == count,
            f"all {count} requests are in service",
        )
    stats = server.stats()

    assert stats["max_in_service"] > 1
    assert stats["max_in_service"] == count
    assert stats["replies"] == 0  # closing the server cancelled the waiting requests


def test_sequential_serves_one_at_a_time() -> None:
    sent = [request(request_id) for request_id in range(5)]

    with DelayServer(0.002, concurrent=False) as server, open_client(server) as conn:
        # All requests are sent before the first reply is read, so a concurrent
        # server would have had several of them in service at once.
        for payload in sent:
            conn.send(payload)
        replies = [conn.recv() for _ in sent]
    stats = server.stats()

    assert replies == sent  # served in arrival order
    assert stats["max_in_service"] == 1
    assert stats["replies"] == len(sent)


@pytest.mark.usefixtures("short_close_grace")
def test_sequential_is_per_connection() -> None:
    # concurrent=False serialises the requests of one connection. Two clients
    # still have one request each in service at the same time.
    with (
        DelayServer(LONG_DELAY_S, concurrent=False) as server,
        open_client(server) as first,
        open_client(server) as second,
    ):
        first.send(request(1))
        second.send(request(2))
        wait_until(
            lambda: server.stats()["max_in_service"] == 2,
            "both connections have a request in service",
        )
    stats = server.stats()

    assert stats["connections"] == 2
    assert stats["max_in_service"] == 2


# -- lifecycle -------------------------------------------------------------------


def test_close_ends_thread_and_port() -> None:
    threads_before = set(threading.enumerate())
    server = DelayServer(0.0)
    server.start()
    assert set(threading.enumerate()) - threads_before, "start() did not start a thread"
    port = server.port

    server.close()

    assert set(threading.enumerate()) - threads_before == set()
    with pytest.raises(ConnectionClosed, match="refused"):
        connect("127.0.0.1", port, timeout_s=TIMEOUT_S)


@pytest.mark.usefixtures("short_close_grace")
def test_close_cancels_requests_in_service() -> None:
    threads_before = set(threading.enumerate())
    server = DelayServer(LONG_DELAY_S)
    server.start()
    try:
        with open_client(server) as conn:
            conn.send(request(1))
            wait_until(lambda: server.stats()["max_in_service"] == 1, "the request is in service")

            server.close()  # while the client is still connected

            assert set(threading.enumerate()) - threads_before == set()
            with pytest.raises(ConnectionClosed):
                conn.recv()
    finally:
        server.close()

    assert server.stats()["replies"] == 0


def test_close_twice_is_harmless() -> None:
    server = DelayServer(0.0)
    server.start()
    server.close()
    server.close()

    assert "closed" in repr(server)


def test_close_before_start() -> None:
    server = DelayServer(0.0)
    server.close()

    with pytest.raises(EndpointClosed, match="starts only once; this one is closed"):
        server.start()


def test_start_twice_raises() -> None:
    with DelayServer(0.0) as server:
        with pytest.raises(EndpointClosed, match="starts only once; this one is running"):
            server.start()
        # The failed second start() leaves the running server untouched.
        with open_client(server) as conn:
            conn.send(request(1))
            assert conn.recv() == request(1)


def test_start_after_close_raises() -> None:
    server = DelayServer(0.0)
    server.start()
    server.close()

    with pytest.raises(EndpointClosed, match="this one is closed"):
        server.start()


def test_context_manager_closes() -> None:
    threads_before = set(threading.enumerate())
    with DelayServer(0.0) as server:
        assert "running" in repr(server)
        assert server.port != 0
    port = server.port

    assert "closed" in repr(server)
    assert set(threading.enumerate()) - threads_before == set()
    with pytest.raises(ConnectionClosed):
        connect("127.0.0.1", port, timeout_s=TIMEOUT_S)


def test_context_manager_closes_on_error() -> None:
    threads_before = set(threading.enumerate())
    with pytest.raises(RuntimeError, match="inside the block"), DelayServer(0.0) as server:
        raise RuntimeError("inside the block")

    assert set(threading.enumerate()) - threads_before == set()
    with pytest.raises(ConnectionClosed):
        connect("127.0.0.1", server.port, timeout_s=TIMEOUT_S)


def test_port_in_use_raises() -> None:
    threads_before = set(threading.enumerate())
    with FramedServer() as occupant:
        server = DelayServer(0.0, port=occupant.port)
        with pytest.raises(MessagingError, match=f"listen on 127.0.0.1:{occupant.port}"):
            server.start()

    assert set(threading.enumerate()) - threads_before == set()
    assert "closed" in repr(server)


# -- invalid arguments -------------------------------------------------------------


@pytest.mark.parametrize("delay_s", [-0.001, -1, math.nan, math.inf])
def test_invalid_delay_raises_value_error(delay_s: float) -> None:
    with pytest.raises(ValueError, match="delay_s must be a finite number of seconds"):
        DelayServer(delay_s)


@pytest.mark.parametrize("delay_s", ["0.1", None, True])
def test_non_number_delay_raises_type_error(delay_s: object) -> None:
    with pytest.raises(TypeError, match="delay_s must be a number of seconds"):
        DelayServer(delay_s)  # type: ignore[arg-type]


@pytest.mark.parametrize("port", [-1, 65536])
def test_invalid_port_raises(port: int) -> None:
    with pytest.raises(ValueError, match="port must be between 0 and 65535"):
        DelayServer(0.0, port=port)


# -- display -------------------------------------------------------------------


def test_stats_and_repr() -> None:
    with DelayServer(0.001, concurrent=False) as server:
        with open_client(server) as conn:
            conn.send(request(1))
            conn.recv()
        # The server thread counts a reply just after sending it, so the client
        # can read the reply before the count changes.
        wait_until(lambda: server.stats()["replies"] == 1, "the reply is counted")
        text = repr(server)
    stats = server.stats()

    assert stats["delay_s"] == 0.001
    assert stats["concurrent"] is False
    assert stats["connections"] == 1
    assert stats["requests"] == 1
    assert stats["replies"] == 1
    assert stats["max_in_service"] == 1
    assert f"running on 127.0.0.1:{server.port}" in text
    assert "one at a time" in text
    assert "1/1 requests answered" in text
