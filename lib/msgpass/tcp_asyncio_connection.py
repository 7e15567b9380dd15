"""One framed TCP connection on asyncio: ``AsyncFramedConnection`` and ``open_connection``.

The blocking ``msgpass.tcp.FramedConnection`` parks a thread in every
``recv``. Here a coroutine awaits instead, so one event loop can serve every
connection. The API follows one naming rule: only calls that can wait are
``async``. ``send`` awaits until the kernel has room again, while
``send_nowait`` only queues the bytes and returns.

Reading a frame uses ``StreamReader.readexactly`` twice: 4 bytes of header,
``parse_header`` to check the declared length against ``max_frame_bytes``, and
only then the body. A hostile length is rejected before anything is read or
allocated for it.

Backpressure: ``StreamWriter.write`` never blocks. When the peer reads slowly,
the bytes pile up in the transport's buffer, and ``drain()`` is what waits for
that buffer to fall below its high-water mark. ``send`` always awaits
``drain()``. ``send_nowait`` skips it, so a loop of ``send_nowait`` calls
against a slow reader grows memory without limit.

Left out on purpose: TLS and reconnection. The server side is in
``msgpass.tcp_asyncio``. Import these names from ``msgpass.tcp``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from types import TracebackType

from .errors import (
    ConnectionClosed,
    EndpointClosed,
    IncompleteFrame,
    MessagingTimeout,
    translate_os_error,
)
from .framing import (
    DEFAULT_MAX_FRAME_BYTES,
    HEADER_BYTES,
    check_max_frame_bytes,
    frame_header,
    parse_header,
)
from .tcp_common import (
    DEFAULT_TIMEOUT_S,
    check_port,
    check_timeout,
    connect_timeout_message,
    format_address,
    format_seconds,
    payload_size,
)

__all__ = [
    "STREAM_LIMIT_BYTES",
    "open_connection",
    "AsyncFramedConnection",
    "set_nodelay",
]

log = logging.getLogger(__name__)

STREAM_LIMIT_BYTES = 256 * 1024  # StreamReader buffer size before it pauses reading
CLOSE_TIMEOUT_S = 1.0  # how long close() waits for the transport to finish closing


class AsyncFramedConnection:
    """A TCP connection on asyncio that sends and receives whole payloads.

    Built by ``open_connection`` on the client side and handed to the
    handler by ``start_server`` on the server side::

        async with await open_connection(port=server.port) as conn:
            await conn.send(b"ping")
            reply = await conn.recv()

    ``timeout_s`` is the default for ``send`` and ``recv``. A ``recv`` that
    times out in the middle of a body keeps the header it read, so the next
    ``recv`` finishes the same frame.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.max_frame_bytes = check_max_frame_bytes(max_frame_bytes)
        self.timeout_s = check_timeout(timeout_s)
        self._reader = reader
        self._writer = writer
        self._peer_address = _address_or_none(writer.get_extra_info("peername"))
        self._local_address = _address_or_none(writer.get_extra_info("sockname"))
        self._pending_length: int | None = None  # body length once its header is read
        self._closed = False
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_received = 0
        self.bytes_received = 0

    @property
    def peer_address(self) -> tuple[str, int] | None:
        """The other end's (host, port)."""
        return self._peer_address

    @property
    def local_address(self) -> tuple[str, int] | None:
        """This end's (host, port)."""
        return self._local_address

    def _endpoints(self) -> str:
        return f"{format_address(self._peer_address)} (local {format_address(self._local_address)})"

    @property
    def nodelay(self) -> bool:
        """Whether TCP_NODELAY is set on the underlying socket."""
        sock = self._writer.get_extra_info("socket")
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    @nodelay.setter
    def nodelay(self, enabled: bool) -> None:
        sock = self._writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if enabled else 0)

    def send_nowait(self, payload: bytes) -> None:
        """Queue one frame for sending and return at once.

        Nothing waits for the peer, so nothing limits the memory that queued
        frames take. Use ``send`` unless you await ``send`` or ``drain``-like
        progress somewhere else.
        """
        self._check_open()
        size = payload_size(payload)
        # One write per frame: header and payload leave in the same segment.
        self._writer.write(frame_header(size, self.max_frame_bytes) + payload)
        self.frames_sent += 1
        self.bytes_sent += size

    async def send(self, payload: bytes, *, timeout_s: float | None = None) -> None:
        """Send one frame, then wait until the transport's buffer has room again.

        Raises ``MessagingTimeout`` if the peer does not read within
        ``timeout_s`` seconds (None uses the connection's timeout) and
        ``ConnectionClosed`` if the peer has gone.
        """
        self.send_nowait(payload)
        timeout = self._timeout(timeout_s)
        try:
            async with asyncio.timeout(timeout):
                await self._writer.drain()
        except TimeoutError as error:
            queued = self._writer.transport.get_write_buffer_size()
            raise MessagingTimeout(
                f"send timed out after {format_seconds(timeout)} waiting for the peer "
                f"{self._endpoints()} to read: {queued} bytes are still queued. The frame "
                f"stays queued and goes out when the peer reads, so raise timeout_s or check "
                f"that the peer reads"
            ) from error
        except OSError as error:
            action = f"send to {format_address(self._peer_address)}"
            raise translate_os_error(error, action) from error

    async def recv(self, *, timeout_s: float | None = None) -> bytes:
        """Wait for the next frame and return its payload.

        Raises like the blocking ``FramedConnection.recv``: ``ConnectionClosed``
        on a clean close between frames, ``IncompleteFrame`` on a close inside
        one, ``FrameTooLarge`` before reading an oversized body, and
        ``MessagingTimeout`` after ``timeout_s`` seconds.
        """
        self._check_open()
        timeout = self._timeout(timeout_s)
        try:
            async with asyncio.timeout(timeout):
                if self._pending_length is None:
                    self._pending_length = await self._read_header()
                length = self._pending_length
                try:
                    payload = await self._reader.readexactly(length)
                except asyncio.IncompleteReadError as error:
                    received = HEADER_BYTES + len(error.partial)
                    raise IncompleteFrame(received, HEADER_BYTES + length) from error
        except TimeoutError as error:
            raise MessagingTimeout(self._recv_timeout_message(timeout)) from error
        except OSError as error:
            action = f"recv from {format_address(self._peer_address)}"
            raise translate_os_error(error, action) from error
        self._pending_length = None
        self.frames_received += 1
        self.bytes_received += length
        return payload

    def _recv_timeout_message(self, timeout: float | None) -> str:
        waited = format_seconds(timeout)
        if self._pending_length is None:
            return (
                f"recv timed out after {waited} waiting for a frame from {self._endpoints()}. "
                f"The peer sent nothing in time, so raise timeout_s or check that the peer "
                f"sends (for example, that it replies to your request)"
            )
        return (
            f"recv timed out after {waited} waiting for the {self._pending_length}-byte body "
            f"of a frame from {self._endpoints()}. Its header is kept, so the next recv "
            f"continues this frame. Raise timeout_s, or check that the peer sends whole frames"
        )

    async def _read_header(self) -> int:
        try:
            header = await self._reader.readexactly(HEADER_BYTES)
        except asyncio.IncompleteReadError as error:
            if not error.partial:
                raise ConnectionClosed(
                    f"the peer {self._endpoints()} closed the connection between frames"
                ) from error
            raise IncompleteFrame(len(error.partial), None) from error
        # NOTE: after FrameTooLarge the stream position is lost; close the connection.
        return parse_header(header, self.max_frame_bytes)

    def __aiter__(self) -> AsyncIterator[bytes]:
        """Yield payloads until the peer closes cleanly between frames."""
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            try:
                payload = await self.recv()
            except IncompleteFrame:
                raise
            except ConnectionClosed:
                return
            yield payload

    def _timeout(self, timeout_s: float | None) -> float | None:
        return self.timeout_s if timeout_s is None else check_timeout(timeout_s)

    def _check_open(self) -> None:
        if self._closed:
            raise EndpointClosed(f"{self!r} is closed; open a new connection")

    @property
    def closed(self) -> bool:
        """True once ``close()`` has started."""
        return self._closed

    async def close(self) -> None:
        """Close the connection and wait briefly for the transport to finish.

        Calling it again does nothing. A peer that already reset the
        connection is not an error here.
        """
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._writer.wait_closed()
        except (OSError, TimeoutError) as error:
            log.debug("closing connection to %s: %s", format_address(self._peer_address), error)

    async def __aenter__(self) -> AsyncFramedConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def stats(self) -> dict[str, int]:
        """Frame and byte counters, plus bytes queued in the transport."""
        transport = self._writer.transport
        return {
            "frames_sent": self.frames_sent,
            "bytes_sent": self.bytes_sent,
            "frames_received": self.frames_received,
            "bytes_received": self.bytes_received,
            "write_buffer_bytes": 0 if self._closed else transport.get_write_buffer_size(),
        }

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        peer = format_address(self._peer_address)
        return (
            f"<AsyncFramedConnection {state} -> {peer}, sent {self.frames_sent}, "
            f"received {self.frames_received}>"
        )


async def open_connection(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    nodelay: bool = False,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
) -> AsyncFramedConnection:
    """Connect to ``host:port`` within ``timeout_s`` seconds.

    ``timeout_s`` is then the connection's default for ``send`` and ``recv``.
    Raises ``ConnectionClosed`` if nothing listens there and
    ``MessagingTimeout`` if connecting takes too long.
    """
    check_port(port, required=True)
    timeout = check_timeout(timeout_s)
    action = f"connect to {host}:{port}"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=STREAM_LIMIT_BYTES)
    except TimeoutError as error:
        raise MessagingTimeout(connect_timeout_message(action, timeout)) from error
    except OSError as error:
        raise translate_os_error(error, action) from error
    set_nodelay(writer, nodelay)
    return AsyncFramedConnection(reader, writer, max_frame_bytes=max_frame_bytes, timeout_s=timeout)


def _address_or_none(address: object) -> tuple[str, int] | None:
    if not isinstance(address, tuple):
        return None  # unknown, or a Unix-domain socket
    return (str(address[0]), int(address[1]))


def set_nodelay(writer: asyncio.StreamWriter, enabled: bool) -> None:
    """Set or clear TCP_NODELAY on the socket under ``writer``."""
    # asyncio turns TCP_NODELAY on for every TCP transport (CPython 3.6 and later).
    # Setting it explicitly makes nodelay=False mean the same here as in msgpass.tcp.
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if enabled else 0)
