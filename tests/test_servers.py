"""The non-blocking servers, the load client and the slow-reader harness, on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from msgpass.errors import MessagingError
from msgpass.framing import HEADER_BYTES, encode_frame, parse_header
from msgpass.servers import AsyncioServer, SelectorsServer, raise_open_file_limit
from msgpass.servers_backpressure import write_to_slow_reader
from msgpass.servers_load import LoadClient, percentile, wait_until

TIMEOUT_S = 10.0
CONNECTIONS = 200


def test_open_file_limit_kept_when_high() -> None:
    before, after = raise_open_file_limit(64)
    assert before == after


def test_open_file_limit_above_hard_rejected() -> None:
    with pytest.raises(MessagingError, match="hard limit"):
        raise_open_file_limit(2**62)


def test_percentile_of_known_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == pytest.approx(50.5)
    assert percentile([3.0], 0.99) == 3.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_selectors_server_many_connections() -> None:
    async def run() -> None:
        with SelectorsServer() as server:
            async with LoadClient(server.port, connections=CONNECTIONS) as client:
                await wait_until(lambda: server.connections_open == CONNECTIONS, TIMEOUT_S, "all")
                report = await client.run_rounds(3)
            await wait_until(lambda: server.connections_open == 0, TIMEOUT_S, "all closed")
        assert report.round_trips == 3 * CONNECTIONS
        assert report.p50_s <= report.p99_s <= report.max_s
        assert server.peak_connections == CONNECTIONS
        assert server.requests_handled == 3 * CONNECTIONS

    threads_before = threading.active_count()
    asyncio.run(run())
    assert threading.active_count() == threads_before


def test_asyncio_server_many_connections() -> None:
    async def run() -> None:
        async with AsyncioServer() as server:
            client = LoadClient(server.port, connections=CONNECTIONS)
            async with client:
                await wait_until(lambda: server.connections_open == CONNECTIONS, TIMEOUT_S, "all")
                report = await client.run_rounds(2)
        assert report.round_trips == 2 * CONNECTIONS
        assert server.peak_connections == CONNECTIONS
        assert server.connections_open == 0

    asyncio.run(run())


def test_asyncio_server_stop_closes_idle_clients() -> None:
    async def run() -> None:
        server = await AsyncioServer().start()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await wait_until(lambda: server.connections_open == 1, TIMEOUT_S, "one connection")
        await server.stop()
        assert await asyncio.wait_for(reader.read(), TIMEOUT_S) == b""
        writer.close()
        await writer.wait_closed()

    asyncio.run(run())


def test_selectors_server_handler_reply() -> None:
    server = SelectorsServer(lambda payload: payload.upper())
    with server, socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(encode_frame(b"hello") + encode_frame(b""))
        replies = []
        buffer = b""
        while len(replies) < 2:
            buffer += sock.recv(4096)
            while len(buffer) >= HEADER_BYTES:
                length = parse_header(buffer[:HEADER_BYTES])
                if len(buffer) < HEADER_BYTES + length:
                    break
                replies.append(buffer[HEADER_BYTES : HEADER_BYTES + length])
                buffer = buffer[HEADER_BYTES + length :]
    assert replies == [b"HELLO", b""]


def test_selectors_server_drops_oversized_frame() -> None:
    with SelectorsServer(max_frame_bytes=16) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S) as sock:
            sock.sendall(encode_frame(b"x" * 17))
            assert sock.recv(1) == b""  # the server closed the connection
        assert server.requests_handled == 0


def test_selectors_server_pauses_reads() -> None:
    requests = 3000
    limit = 32 * 1024

    async def run(server: SelectorsServer) -> int:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024)
        sock.settimeout(TIMEOUT_S)
        sock.connect(("127.0.0.1", server.port))
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock, limit=16 * 1024)
        for _ in range(requests):
            writer.write(encode_frame(bytes(1024)))
        await wait_until(lambda: server.reads_paused > 0, TIMEOUT_S, "reads paused")
        replies = 0
        async with asyncio.timeout(TIMEOUT_S):
            while replies < requests:
                length = parse_header(await reader.readexactly(HEADER_BYTES))
                await reader.readexactly(length)
                replies += 1
        writer.close()
        await writer.wait_closed()
        return replies

    with SelectorsServer(max_pending_bytes=limit, send_buffer_bytes=16 * 1024) as server:
        assert asyncio.run(run(server)) == requests
    # The limit, plus the replies to one 16 KiB read with their headers.
    assert server.max_outgoing_bytes_seen <= limit + 2 * 16 * 1024


def test_selectors_server_stop_twice() -> None:
    server = SelectorsServer().start()
    server.stop()
    server.stop()
    with pytest.raises(RuntimeError):
        server.start()


def test_slow_reader_drain_bounded() -> None:
    messages = [bytes([i % 256]) * 1024 for i in range(300)]

    async def with_drain(writer: object, items: list[bytes]) -> None:
        for item in items:
            writer.write(item)  # type: ignore[attr-defined]
            await writer.drain()  # type: ignore[attr-defined]

    trace = asyncio.run(write_to_slow_reader(with_drain, messages))
    assert trace.max_buffer_bytes <= trace.high_water_bytes + 1024
    assert trace.bytes_delivered == 300 * 1024
    assert trace.delivered_in_order


def test_slow_reader_no_drain_grows() -> None:
    messages = [bytes([i % 256]) * 1024 for i in range(300)]

    async def without_drain(writer: object, items: list[bytes]) -> None:
        for item in items:
            writer.write(item)  # type: ignore[attr-defined]

    trace = asyncio.run(write_to_slow_reader(without_drain, messages))
    assert trace.max_buffer_bytes > 10 * trace.high_water_bytes
    assert trace.delivered_in_order
