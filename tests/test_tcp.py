"""Tests of msgpass.tcp over real loopback sockets.

Misbehaving peers are plain sockets that write chosen bytes: half a frame, a
hostile header, or nothing at all. No test sleeps to wait for something, so
every wait is a recv with a timeout or a handshake.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator

import pytest

from msgpass.errors import (
    ConnectionClosed,
    EndpointClosed,
    FrameTooLarge,
    IncompleteFrame,
    MessagingError,
    MessagingTimeout,
    ProtocolError,
)
from msgpass.framing import DEFAULT_MAX_FRAME_BYTES, encode_frame, frame_header
from msgpass.tcp import (
    DEFAULT_TIMEOUT_S,
    RECV_BUFFER_BYTES,
    AsyncFramedConnection,
    FramedConnection,
    FramedServer,
    ThreadedServer,
    connect,
    format_address,
    open_connection,
    start_server,
)

pytestmark = pytest.mark.timeout(10)

SHORT_TIMEOUT_S = 0.05


@pytest.fixture
def server() -> Iterator[FramedServer]:
    with FramedServer() as listening:
        yield listening


@pytest.fixture
def pair(server: FramedServer) -> Iterator[tuple[FramedConnection, FramedConnection]]:
    """A connected (client, server side) pair of framed connections."""
    with connect(port=server.port) as client, server.accept() as accepted:
        yield client, accepted


@pytest.fixture
def raw_pair(server: FramedServer) -> Iterator[tuple[socket.socket, FramedConnection]]:
    """A raw client socket, for writing chosen bytes, and the framed server side."""
    with (
        socket.create_connection(server.address, timeout=DEFAULT_TIMEOUT_S) as raw,
        server.accept() as accepted,
    ):
        yield raw, accepted


def closed_port() -> int:
    """Return a loopback port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# -- blocking round trips ---------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 4, 100, 65_535, 65_536, 65_537, 1_048_576, 3_000_001])
def test_round_trip_sizes(pair: tuple[FramedConnection, FramedConnection], size: int) -> None:
    client, accepted = pair
    payload = bytes(i % 251 for i in range(size))

    # A sender thread, because a large frame does not fit in the socket buffers.
    sender = threading.Thread(target=client.send, args=(payload,))
    sender.start()
    received = accepted.recv()
    sender.join()

    assert received == payload
    assert type(received) is bytes
    assert accepted.stats()["frames_received"] == 1
    assert accepted.stats()["bytes_received"] == size
    assert client.stats()["bytes_sent"] == size


def test_round_trip_both_directions(pair: tuple[FramedConnection, FramedConnection]) -> None:
    client, accepted = pair
    client.send(b"ping")
    assert accepted.recv() == b"ping"
    accepted.send(b"pong")
    assert client.recv() == b"pong"


def test_send_accepts_bytearray_and_memoryview(
    pair: tuple[FramedConnection, FramedConnection],
) -> None:
    client, accepted = pair
    client.send(bytearray(b"abc"))
    client.send(memoryview(b"defg"))
    client.send(memoryview(bytes(100_000)))
    assert accepted.recv() == b"abc"
    assert accepted.recv() == b"defg"
    assert accepted.recv() == bytes(100_000)


def test_several_frames_one_write(raw_pair: tuple[socket.socket, FramedConnection]) -> None:
    raw, accepted = raw_pair
    payloads = [b"", b"a", b"bc" * 50, bytes(70_000), b"last"]
    raw.sendall(b"".join(encode_frame(p) for p in payloads))

    assert [accepted.recv() for _ in payloads] == payloads


def test_frame_split_in_pieces(raw_pair: tuple[socket.socket, FramedConnection]) -> None:
    raw, accepted = raw_pair
    frame = encode_frame(b"hello, stream")
    for i in range(len(frame)):
        raw.sendall(frame[i : i + 1])

    assert accepted.recv() == b"hello, stream"


def test_socketpair_round_trip() -> None:
    left, right = socket.socketpair()
    with FramedConnection(left) as sender, FramedConnection(right) as receiver:
        sender.send(b"over a socket pair")
        assert receiver.recv() == b"over a socket pair"
        assert "open" in repr(receiver)


def test_iteration_stops_on_clean_close(
    raw_pair: tuple[socket.socket, FramedConnection],
) -> None:
    raw, accepted = raw_pair
    raw.sendall(encode_frame(b"one") + encode_frame(b"two"))
    raw.close()

    assert list(accepted) == [b"one", b"two"]


# -- blocking error paths ---------------------------------------------------


def test_close_between_frames(raw_pair: tuple[socket.socket, FramedConnection]) -> None:
    raw, accepted = raw_pair
    raw.sendall(encode_frame(b"whole"))
    raw.close()

    assert accepted.recv() == b"whole"
    with pytest.raises(ConnectionClosed) as caught:
        accepted.recv()
    assert not isinstance(caught.value, IncompleteFrame)


def test_close_mid_body(raw_pair: tuple[socket.socket, FramedConnection]) -> None:
    raw, accepted = raw_pair
    raw.sendall(frame_header(10) + b"abc")
    raw.close()

    with pytest.raises(IncompleteFrame) as caught:
        accepted.recv()
    assert caught.value.received_bytes == 7
    assert caught.value.expected_bytes == 14


def test_close_mid_header(raw_pair: tuple[socket.socket, FramedConnection]) -> None:
    raw, accepted = raw_pair
    raw.sendall(b"\x00\x00")
    raw.close()

    with pytest.raises(IncompleteFrame) as caught:
        accepted.recv()
    assert caught.value.received_bytes == 2
    assert caught.value.expected_bytes is None


def test_iteration_raises_incomplete_frame(
    raw_pair: tuple[socket.socket, FramedConnection],
) -> None:
    raw, accepted = raw_pair
    raw.sendall(encode_frame(b"ok") + frame_header(5) + b"x")
    raw.close()

    received = []
    with pytest.raises(IncompleteFrame):
        for payload in accepted:
            received.append(payload)
    assert received == [b"ok"]


def test_oversized_header_rejected(raw_pair: tuple[socket.socket, FramedConnection]) -> None:
    raw, accepted = raw_pair
    raw.sendall(b"\xff\xff\xff\xff")

    with pytest.raises(FrameTooLarge) as caught:
        accepted.recv()
    assert caught.value.declared_bytes == 2**32 - 1
    # The receive buffer never grew towards the declared size.
    assert len(accepted._buffer) == RECV_BUFFER_BYTES
    # The stream position is lost, so later receives raise ProtocolError.
    with pytest.raises(ProtocolError):
        accepted.recv()


def test_max_frame_bytes_per_connection(server: FramedServer) -> None:
    with (
        connect(port=server.port, max_frame_bytes=10) as client,
        server.accept() as accepted,
    ):
        with pytest.raises(FrameTooLarge):
            client.send(bytes(11))
        accepted.send(bytes(11))
        with pytest.raises(FrameTooLarge):
            client.recv()


def test_recv_timeout(pair: tuple[FramedConnection, FramedConnection]) -> None:
    client, _ = pair
    with pytest.raises(MessagingTimeout) as caught:
        client.recv(timeout_s=SHORT_TIMEOUT_S)
    assert isinstance(caught.value, TimeoutError)


def test_recv_timeout_keeps_partial_frame(
    raw_pair: tuple[socket.socket, FramedConnection],
) -> None:
    raw, accepted = raw_pair
    frame = encode_frame(b"0123456789")
    raw.sendall(frame[:7])
    with pytest.raises(MessagingTimeout):
        accepted.recv(timeout_s=SHORT_TIMEOUT_S)

    raw.sendall(frame[7:])
    assert accepted.recv() == b"0123456789"


# -- what the error messages tell the reader -----------------------------------


def test_recv_timeout_message_names_both_ends(
    pair: tuple[FramedConnection, FramedConnection],
) -> None:
    client, accepted = pair
    with pytest.raises(MessagingTimeout) as caught:
        client.recv(timeout_s=SHORT_TIMEOUT_S)
    message = str(caught.value)
    peer = format_address(accepted.local_address)
    local = format_address(client.local_address)
    assert message.startswith(f"recv timed out after {SHORT_TIMEOUT_S:g} s waiting for a frame")
    assert f"from {peer} (local {local})" in message
    assert "the peer sent nothing in time" in message.lower()
    assert "raise timeout_s" in message


def test_recv_timeout_message_mid_body(
    raw_pair: tuple[socket.socket, FramedConnection],
) -> None:
    raw, accepted = raw_pair
    raw.sendall(frame_header(10) + b"abc")
    with pytest.raises(MessagingTimeout) as caught:
        accepted.recv(timeout_s=SHORT_TIMEOUT_S)
    message = str(caught.value)
    assert "in the middle of a frame" in message
    assert "7 of 14 frame bytes arrived" in message
    assert "the next recv continues this frame" in message


def test_recv_timeout_message_mid_header(
    raw_pair: tuple[socket.socket, FramedConnection],
) -> None:
    raw, accepted = raw_pair
    raw.sendall(b"\x00\x00")
    with pytest.raises(MessagingTimeout, match="2 of the 4 header bytes arrived"):
        accepted.recv(timeout_s=SHORT_TIMEOUT_S)


def test_accept_timeout_message_formats_address(server: FramedServer) -> None:
    with pytest.raises(MessagingTimeout) as caught:
        server.accept(timeout_s=SHORT_TIMEOUT_S)
    message = str(caught.value)
    assert message.startswith(
        f"accept on 127.0.0.1:{server.port} timed out after {SHORT_TIMEOUT_S:g} s"
    )
    assert "('127.0.0.1'" not in message
    assert "raise timeout_s" in message


def test_closed_between_frames_message(raw_pair: tuple[socket.socket, FramedConnection]) -> None:
    raw, accepted = raw_pair
    peer = format_address(raw.getsockname())
    raw.close()
    with pytest.raises(ConnectionClosed) as caught:
        accepted.recv()
    message = str(caught.value)
    assert f"the peer {peer} closed the connection" in message
    assert format_address(accepted.local_address) in message
    assert "between frames" in message


def test_send_too_large_message_is_sender_side(server: FramedServer) -> None:
    with (
        connect(port=server.port, max_frame_bytes=10) as client,
        server.accept() as accepted,
    ):
        with pytest.raises(FrameTooLarge) as sent:
            client.send(bytes(11))
        assert sent.value.side == "sender"
        assert "payload of 11 bytes exceeds max_frame_bytes=10" in str(sent.value)
        assert "peer is broken" not in str(sent.value)

        accepted.send(bytes(11))
        with pytest.raises(FrameTooLarge) as received:
            client.recv()
        assert received.value.side == "receiver"
        assert "frame header declares 11 bytes" in str(received.value)


def test_send_timeout_message(server: FramedServer) -> None:
    with socket.socket() as raw_client:
        raw_client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        raw_client.settimeout(DEFAULT_TIMEOUT_S)
        raw_client.connect(server.address)
        with (
            FramedConnection(raw_client.dup()) as client,
            server.accept() as accepted,
            pytest.raises(MessagingTimeout) as caught,
        ):
            # The peer never reads, so 8 MiB cannot leave before the timeout.
            client.send(bytes(8 * 1024 * 1024), timeout_s=0.2)
    message = str(caught.value)
    assert message.startswith(f"send timed out after 0.2 s writing a frame of {8 * 2**20 + 4}")
    assert f"to {format_address(accepted.local_address)} (local " in message
    assert "can no longer send" in message


def test_send_timeout_breaks_sending(server: FramedServer) -> None:
    with socket.socket() as raw_client:
        raw_client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        raw_client.settimeout(DEFAULT_TIMEOUT_S)
        raw_client.connect(server.address)
        with FramedConnection(raw_client.dup()) as client, server.accept():
            # The peer never reads, so 8 MiB cannot leave before the timeout.
            with pytest.raises(MessagingTimeout):
                client.send(bytes(8 * 1024 * 1024), timeout_s=0.2)
            with pytest.raises(MessagingError, match="part-way"):
                client.send(b"next")


def test_connect_refused() -> None:
    port = closed_port()
    with pytest.raises(ConnectionClosed, match="server running") as caught:
        connect(port=port, timeout_s=1.0)
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_connect_requires_port() -> None:
    with pytest.raises(ValueError, match="port is required"):
        connect()


@pytest.mark.parametrize("timeout_s", [0, -1.0, float("nan")])
def test_non_positive_timeouts_rejected(
    pair: tuple[FramedConnection, FramedConnection], timeout_s: float
) -> None:
    client, _ = pair
    with pytest.raises(ValueError, match="positive"):
        client.recv(timeout_s=timeout_s)
    with pytest.raises(ValueError, match="positive"):
        client.send(b"x", timeout_s=timeout_s)
    with pytest.raises(ValueError, match="positive"):
        connect(port=1, timeout_s=timeout_s)


def test_send_text_raises_type_error(pair: tuple[FramedConnection, FramedConnection]) -> None:
    client, _ = pair
    with pytest.raises(TypeError, match="encode"):
        client.send("text")  # type: ignore[arg-type]


def test_use_after_close(pair: tuple[FramedConnection, FramedConnection]) -> None:
    client, _ = pair
    client.close()
    client.close()  # a second close does nothing

    with pytest.raises(EndpointClosed):
        client.send(b"x")
    with pytest.raises(EndpointClosed):
        client.recv()
    assert "closed" in repr(client)


def test_server_accept_after_close(server: FramedServer) -> None:
    server.close()
    with pytest.raises(EndpointClosed):
        server.accept()


def test_accept_timeout(server: FramedServer) -> None:
    with pytest.raises(MessagingTimeout):
        server.accept(timeout_s=SHORT_TIMEOUT_S)


@pytest.mark.parametrize("nodelay", [False, True])
def test_nodelay_option_sets_socket(server: FramedServer, nodelay: bool) -> None:
    with connect(port=server.port, nodelay=nodelay) as client:
        flag = client._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert bool(flag) is nodelay
        assert client.nodelay is nodelay

        client.nodelay = not nodelay
        flag = client._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert bool(flag) is not nodelay


def test_server_nodelay_applies_to_accepted() -> None:
    with (
        FramedServer(nodelay=True) as server,
        connect(port=server.port) as client,
        server.accept() as accepted,
    ):
        assert accepted.nodelay is True
        assert client.nodelay is False


def test_addresses_and_repr(pair: tuple[FramedConnection, FramedConnection]) -> None:
    client, accepted = pair
    assert client.peer_address == accepted.local_address
    assert client.local_address == accepted.peer_address
    assert "open" in repr(client)
    assert str(client.peer_address[1]) in repr(client)  # type: ignore[index]


# -- ThreadedServer ---------------------------------------------------------


def test_threaded_server_serves_clients() -> None:
    with ThreadedServer(lambda request: request.upper()) as server:
        with connect(port=server.port) as first, connect(port=server.port) as second:
            first.send(b"a")
            second.send(b"b")
            assert first.recv() == b"A"
            assert second.recv() == b"B"
        assert server.stats()["connections_accepted"] == 2
        assert server.stats()["requests_handled"] == 2


def test_threaded_server_none_reply() -> None:
    seen: list[bytes] = []

    def record(request: bytes) -> bytes | None:
        seen.append(request)
        return b"done" if request == b"last" else None

    with ThreadedServer(record) as server, connect(port=server.port) as client:
        client.send(b"first")
        client.send(b"last")
        assert client.recv() == b"done"
        assert seen == [b"first", b"last"]


def test_threaded_server_stop_leaves_nothing() -> None:
    before = set(threading.enumerate())
    server = ThreadedServer(lambda request: request, name="stop-test").start()
    port = server.port
    # One idle client keeps a connection thread blocked in recv.
    with connect(port=port) as client:
        client.send(b"hi")
        assert client.recv() == b"hi"
        server.stop(timeout_s=2.0)

        with pytest.raises(ConnectionClosed):
            client.recv()

    leftover = [t for t in threading.enumerate() if t not in before]
    assert leftover == []
    with pytest.raises(ConnectionClosed):
        connect(port=port, timeout_s=1.0)
    server.stop()  # a second stop does nothing


def test_threaded_server_stop_before_start() -> None:
    server = ThreadedServer(lambda request: request)
    port = server.port
    server.stop()
    with pytest.raises(ConnectionClosed):
        connect(port=port, timeout_s=1.0)


def test_threaded_server_start_twice() -> None:
    with (
        ThreadedServer(lambda request: request) as server,
        pytest.raises(RuntimeError, match="cannot start"),
    ):
        server.start()


def test_threaded_server_handler_error(caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: bytes) -> bytes:
        if request == b"boom":
            raise ValueError("handler exploded")
        return request

    caplog.set_level(logging.ERROR, logger="msgpass.tcp_threaded")
    with ThreadedServer(handler) as server:
        with connect(port=server.port) as bad, connect(port=server.port) as good:
            bad.send(b"boom")
            with pytest.raises(ConnectionClosed):
                bad.recv()

            good.send(b"still there")
            assert good.recv() == b"still there"

        with connect(port=server.port) as late:
            late.send(b"later")
            assert late.recv() == b"later"
        assert server.stats()["handler_errors"] == 1

    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1
    assert format_address(bad.local_address) in failures[0].getMessage()
    assert failures[0].exc_info is not None


def test_threaded_server_stop_raises_when_stuck() -> None:
    release = threading.Event()
    entered = threading.Event()

    def blocking_handler(request: bytes) -> bytes:
        entered.set()
        release.wait(DEFAULT_TIMEOUT_S)
        return request

    before = set(threading.enumerate())
    server = ThreadedServer(blocking_handler).start()
    try:
        with connect(port=server.port) as client:
            client.send(b"x")
            assert entered.wait(DEFAULT_TIMEOUT_S)
            with pytest.raises(MessagingTimeout, match="still running"):
                server.stop(timeout_s=0.1)
    finally:
        release.set()
        for thread in set(threading.enumerate()) - before:
            thread.join(DEFAULT_TIMEOUT_S)


# -- asyncio ----------------------------------------------------------------


async def echo(conn: AsyncFramedConnection) -> None:
    async for payload in conn:
        await conn.send(payload)


def test_async_round_trip() -> None:
    async def scenario() -> None:
        async with await start_server(echo) as server:
            async with await open_connection(port=server.port) as client:
                for size in (0, 1, 100, 70_000, 1_048_576):
                    payload = bytes(i % 251 for i in range(size))
                    await client.send(payload)
                    assert await client.recv() == payload
                assert client.stats()["frames_received"] == 5
            assert server.stats()["connections_accepted"] == 1

    asyncio.run(scenario())


def test_async_recv_timeout() -> None:
    async def scenario() -> None:
        async with (
            await start_server(echo) as server,
            await open_connection(port=server.port) as client,
        ):
            with pytest.raises(MessagingTimeout) as caught:
                await client.recv(timeout_s=SHORT_TIMEOUT_S)
            assert isinstance(caught.value, TimeoutError)
            # The connection still works after a timeout.
            await client.send(b"after")
            assert await client.recv() == b"after"

    asyncio.run(scenario())


def test_async_recv_timeout_message() -> None:
    async def scenario() -> None:
        async with (
            await start_server(echo) as server,
            await open_connection(port=server.port) as client,
        ):
            with pytest.raises(MessagingTimeout) as caught:
                await client.recv(timeout_s=SHORT_TIMEOUT_S)
            message = str(caught.value)
            peer = format_address(client.peer_address)
            local = format_address(client.local_address)
            assert message.startswith(f"recv timed out after {SHORT_TIMEOUT_S:g} s")
            assert f"{peer} (local {local})" in message
            assert "raise timeout_s" in message
            assert "('127.0.0.1'" not in message

    asyncio.run(scenario())


def test_async_send_timeout_message() -> None:
    never_read = asyncio.Event()

    async def hold_without_reading(conn: AsyncFramedConnection) -> None:
        await never_read.wait()

    async def scenario() -> None:
        async with (
            await start_server(hold_without_reading) as server,
            await open_connection(port=server.port) as client,
        ):
            # More than the loopback socket buffers of both ends can hold.
            payload = bytes(DEFAULT_MAX_FRAME_BYTES)
            with pytest.raises(MessagingTimeout) as caught:
                await client.send(payload, timeout_s=0.2)
            message = str(caught.value)
            assert message.startswith("send timed out after 0.2 s waiting for the peer")
            assert format_address(client.peer_address) in message
            assert "raise timeout_s" in message
            never_read.set()

    asyncio.run(scenario())


def test_async_send_too_large_is_sender_side() -> None:
    async def scenario() -> None:
        async with (
            await start_server(echo) as server,
            await open_connection(port=server.port, max_frame_bytes=10) as client,
        ):
            with pytest.raises(FrameTooLarge, match="payload of 11 bytes exceeds") as caught:
                await client.send(bytes(11))
            assert caught.value.side == "sender"

    asyncio.run(scenario())


def test_async_clean_close() -> None:
    async def send_two_and_close(conn: AsyncFramedConnection) -> None:
        await conn.send(b"one")
        await conn.send(b"two")

    async def scenario() -> None:
        async with (
            await start_server(send_two_and_close) as server,
            await open_connection(port=server.port) as client,
        ):
            received = [payload async for payload in client]
            assert received == [b"one", b"two"]
            with pytest.raises(ConnectionClosed) as caught:
                await client.recv()
            assert not isinstance(caught.value, IncompleteFrame)

    asyncio.run(scenario())


def test_async_mid_frame_close() -> None:
    received: list[BaseException] = []
    done = threading.Event()

    async def record(conn: AsyncFramedConnection) -> None:
        try:
            await conn.recv()
        except IncompleteFrame as error:
            received.append(error)
        done.set()

    async def scenario() -> None:
        async with await start_server(record) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(frame_header(10) + b"abc")
            writer.write_eof()
            # The server closes its side only after the handler has returned.
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()

    asyncio.run(scenario())
    assert done.is_set()
    assert len(received) == 1
    error = received[0]
    assert isinstance(error, IncompleteFrame)
    assert error.received_bytes == 7
    assert error.expected_bytes == 14


def test_async_oversized_header() -> None:
    async def scenario() -> None:
        def send_hostile_header(
            _reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            writer.write(b"\xff\xff\xff\xff")
            writer.close()

        listener = await asyncio.start_server(send_hostile_header, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        async with await open_connection(port=port) as client:
            with pytest.raises(FrameTooLarge):
                await client.recv()
        listener.close()
        await listener.wait_closed()

    asyncio.run(scenario())


def test_async_server_close_cancels_handlers() -> None:
    cancelled = []

    async def wait_forever(conn: AsyncFramedConnection) -> None:
        await conn.send(b"ready")
        try:
            await conn.recv(timeout_s=None)
        except asyncio.CancelledError:
            cancelled.append(conn.peer_address)
            raise

    async def scenario() -> None:
        server = await start_server(wait_forever)
        async with await open_connection(port=server.port) as client:
            assert await client.recv() == b"ready"
            assert server.stats()["connections_open"] == 1

            await server.close()

            assert cancelled == [client._writer.get_extra_info("sockname")[:2]]
            assert server.stats()["connections_open"] == 0
            with pytest.raises(ConnectionClosed):
                await client.recv()
        with pytest.raises(ConnectionClosed):
            await open_connection(port=server.port, timeout_s=1.0)

    asyncio.run(scenario())


def test_async_handler_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def fail_on_boom(conn: AsyncFramedConnection) -> None:
        async for payload in conn:
            if payload == b"boom":
                raise ValueError("handler exploded")
            await conn.send(payload)

    async def scenario() -> None:
        async with await start_server(fail_on_boom) as server:
            async with await open_connection(port=server.port) as bad:
                await bad.send(b"boom")
                with pytest.raises(ConnectionClosed):
                    await bad.recv()
            async with await open_connection(port=server.port) as good:
                await good.send(b"fine")
                assert await good.recv() == b"fine"
            assert server.stats()["handler_errors"] == 1

    caplog.set_level(logging.ERROR, logger="msgpass.tcp_asyncio")
    asyncio.run(scenario())
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1


def test_async_send_nowait() -> None:
    async def scenario() -> None:
        async with (
            await start_server(echo) as server,
            await open_connection(port=server.port) as client,
        ):
            for i in range(100):
                client.send_nowait(b"%d" % i)
            replies = [await client.recv() for _ in range(100)]
            assert replies == [b"%d" % i for i in range(100)]
            assert client.stats()["frames_sent"] == 100

    asyncio.run(scenario())


def test_async_bad_input_and_closed() -> None:
    async def scenario() -> None:
        async with await start_server(echo) as server:
            client = await open_connection(port=server.port)
            with pytest.raises(TypeError, match="encode"):
                await client.send("text")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="positive"):
                await client.recv(timeout_s=0)
            await client.close()
            await client.close()
            with pytest.raises(EndpointClosed):
                await client.send(b"x")
            with pytest.raises(EndpointClosed):
                await client.recv()
            with pytest.raises(EndpointClosed):
                client.send_nowait(b"x")

    asyncio.run(scenario())


def test_async_connect_refused() -> None:
    port = closed_port()
    with pytest.raises(ConnectionClosed, match="server running"):
        asyncio.run(open_connection(port=port, timeout_s=1.0))


@pytest.mark.parametrize("nodelay", [False, True])
def test_async_nodelay_option(nodelay: bool) -> None:
    async def scenario() -> None:
        async with (
            await start_server(echo, nodelay=nodelay) as server,
            await open_connection(port=server.port, nodelay=nodelay) as client,
        ):
            sock = client._writer.get_extra_info("socket")
            flag = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            assert bool(flag) is nodelay
            assert client.nodelay is nodelay

    asyncio.run(scenario())
