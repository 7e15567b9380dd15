"""Framed messages over TCP: blocking endpoints, and asyncio ones re-exported here.

TCP gives each side a byte stream: the bytes arrive in order and complete, but
the boundaries between ``send`` calls are lost. One message of 100 bytes may
come out of ``recv`` as 60 and then 40 bytes, and two messages may come out as
one chunk. ``msgpass.framing`` puts a 4-byte length in front of every payload,
and this module moves those frames over real sockets:

- ``FramedConnection`` wraps a connected socket with ``send`` and ``recv`` of
  whole payloads. ``connect`` opens one. ``FramedServer`` accepts them; it
  lives in ``msgpass.tcp_server`` and is imported from here.
- ``ThreadedServer`` serves requests in background threads, one per
  connection, which is enough for a lab on one laptop. It lives in
  ``msgpass.tcp_threaded`` and is imported from here.
- ``open_connection``, ``AsyncFramedConnection``, ``start_server`` and
  ``AsyncFramedServer`` do the same on asyncio. They live in
  ``msgpass.tcp_asyncio`` and ``msgpass.tcp_asyncio_connection`` and are
  imported from here.
- ``check_timeout``, ``check_port``, ``payload_size`` and the message helpers
  are shared by all of these endpoints. They live in ``msgpass.tcp_common``
  and are imported from here.

Why each frame goes out in one write call. Nagle's algorithm holds back a
small segment while earlier data is unacknowledged, and the receiver's delayed
ACK may hold the acknowledgement back: 40 to 200 ms on Linux, and RFC 1122
allows up to 500 ms. A sender that writes the 4-byte header and then the payload in two
calls can hit both at once and wait for the timer on every message. Writing
header and payload together avoids that without turning Nagle off, so
``nodelay`` stays an explicit choice (it defaults to False).

The receiver keeps one buffer per connection. It reads as much as the kernel
has ready into that buffer, cuts whole frames out of it, and grows the buffer
to fit a large frame only after the header's length has passed the
``max_frame_bytes`` check. Many small frames therefore cost one ``recv_into``,
not two per frame. A large body is read into the grown buffer and copied once
into the ``bytes`` that ``recv`` returns.

Every blocking call takes ``timeout_s``. The endpoint's default is
``DEFAULT_TIMEOUT_S``, and ``None`` waits forever only when passed explicitly
to the constructor. The timeout covers the whole call, not each system call.
The socket is non-blocking, so every ``send`` and ``recv_into`` is tried at
once. Only when the kernel has no data or no buffer space does the connection
wait in ``poll``, and then for at most the time left. Operating-system errors
become ``msgpass.errors`` classes, with the original error kept as ``__cause__``.

A ``FramedConnection`` can also carry an ``ssl.SSLSocket``, which
``msgpass.tls`` opens. Where a plain socket raises ``BlockingIOError``, a TLS
socket raises ``ssl.SSLWantReadError`` or ``ssl.SSLWantWriteError``, so the
connection waits on all three. A TLS socket has no ``sendmsg``, so frames
larger than ``COPY_LIMIT_BYTES`` go out in two writes.

Left out on purpose: reconnection and keep-alive. The simplifications a
caller could trip over (the buffer never shrinks, ThreadedServer has no idle
timeout and no thread cap) are marked with ``NOTE:`` where they sit.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .errors import (
    ConnectionClosed,
    EndpointClosed,
    IncompleteFrame,
    MessagingError,
    MessagingTimeout,
    ProtocolError,
    translate_os_error,
)
from .framing import (
    DEFAULT_MAX_FRAME_BYTES,
    HEADER_BYTES,
    check_max_frame_bytes,
    frame_header,
    parse_header,
)
from .tcp_common import DEFAULT_TIMEOUT_S as DEFAULT_TIMEOUT_S
from .tcp_common import check_port as check_port
from .tcp_common import check_timeout as check_timeout
from .tcp_common import connect_timeout_message as connect_timeout_message
from .tcp_common import format_address as format_address
from .tcp_common import format_seconds as format_seconds
from .tcp_common import payload_size as payload_size

if TYPE_CHECKING:
    from .tcp_asyncio import (
        AsyncFramedConnection,
        AsyncFramedServer,
        open_connection,
        start_server,
    )
    from .tcp_server import FramedServer
    from .tcp_threaded import ThreadedServer

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "FramedConnection",
    "connect",
    "FramedServer",
    "ThreadedServer",
    "open_connection",
    "AsyncFramedConnection",
    "start_server",
    "AsyncFramedServer",
]

log = logging.getLogger(__name__)

RECV_BUFFER_BYTES = 64 * 1024  # starting size of a connection's receive buffer
COPY_LIMIT_BYTES = 64 * 1024  # payloads up to this size are joined to their header
_HAS_POLL = hasattr(select, "poll")  # select.poll is missing on Windows
# A non-blocking call that would block raises one of these. The two TLS ones are
# not BlockingIOError subclasses.
# NOTE: the wait that follows is in the direction of the call (read for recv),
# even when TLS wants the other direction. That is only a renegotiation or a
# full send buffer during a read, which TLS 1.3 and a lab on loopback do not meet.
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class FramedConnection:
    """A connected TCP socket that sends and receives whole payloads.

    ``send(b"hello")`` on one side arrives as exactly one ``recv() == b"hello"``
    on the other, whatever TCP did to the segment boundaries::

        with connect(port=server.port) as conn:
            conn.send(b"ping")
            reply = conn.recv()

    ``timeout_s`` is the default for every ``send`` and ``recv``. Pass
    ``None`` here, explicitly, to wait forever. The connection owns the socket:
    it switches it to non-blocking mode and closes it in ``close()``.

    A ``recv`` that times out part-way through a frame keeps the bytes it read,
    so the next ``recv`` continues the same frame. A ``send`` that times out or
    fails part-way may have written half a frame, so further sends raise: the
    peer could not find the next frame boundary.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
    ) -> None:
        if not isinstance(sock, socket.socket) or sock.type != socket.SOCK_STREAM:
            raise TypeError(f"FramedConnection needs a connected TCP socket, got {sock!r}")
        self.max_frame_bytes = check_max_frame_bytes(max_frame_bytes)
        self.timeout_s = check_timeout(timeout_s)
        self._sock = sock
        # The socket stays non-blocking: every send and recv is tried at once, and
        # only a BlockingIOError leads to a wait (see _wait_until_ready).
        sock.setblocking(False)
        # The send or recv in progress, for its deadline and its timeout message.
        self._deadline: float | None = None
        self._call = "recv"
        self._call_timeout_s: float | None = None
        self._call_frame_bytes = 0  # send: the frame being written; recv: bytes awaited
        self._local_address = _address_or_none(sock.getsockname)
        self._peer_address = _address_or_none(sock.getpeername)
        # Received bytes not yet returned are self._buffer[self._start:self._end].
        self._buffer = bytearray(RECV_BUFFER_BYTES)
        self._start = 0
        self._end = 0
        self._recv_error: MessagingError | None = None
        self._send_error: MessagingError | None = None
        self._peer_closed = False
        self._closed = False
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_received = 0
        self.bytes_received = 0

    # -- sending ---------------------------------------------------------

    def send(self, payload: bytes, *, timeout_s: float | None = None) -> None:
        """Send one payload as one frame, within ``timeout_s`` seconds.

        ``timeout_s=None`` uses the connection's timeout. Raises ``TypeError``
        for text (encode it first), ``FrameTooLarge`` above
        ``max_frame_bytes``, ``MessagingTimeout`` when the peer does not read
        fast enough, and ``ConnectionClosed`` when the peer has gone.
        """
        self._check_open()
        size = payload_size(payload)
        header = frame_header(size, self.max_frame_bytes)
        if self._send_error is not None:
            raise MessagingError(
                "cannot send: an earlier send failed part-way through a frame, so the peer "
                "can no longer find frame boundaries; close this connection and open a new one"
            ) from self._send_error
        self._start_call(timeout_s, "send", HEADER_BYTES + size)
        try:
            if size <= COPY_LIMIT_BYTES:
                # Copying a small payload is cheaper than a second system call.
                self._write_all(header + payload)
            else:
                self._write_header_and_payload(header, payload)
        except MessagingTimeout as error:
            # Caught first: MessagingTimeout is a TimeoutError, and so an OSError too.
            self._send_error = error
            raise
        except OSError as error:
            action = f"send to {format_address(self._peer_address)}"
            translated = translate_os_error(error, action)
            self._send_error = translated
            raise translated from error
        self.frames_sent += 1
        self.bytes_sent += size

    def _write_header_and_payload(self, header: bytes, payload: bytes) -> None:
        if isinstance(self._sock, ssl.SSLSocket):
            # SSLSocket has no sendmsg. TLS puts each write into its own records,
            # and the payload's full-size segments are not held back by Nagle.
            self._write_all(header)
            with memoryview(payload) as view:
                self._write_all(view.cast("B"))
            return
        # sendmsg writes header and payload in one call without joining them.
        # Whatever the kernel did not take goes out with _write_all.
        while True:
            try:
                sent = self._sock.sendmsg([header, payload])
                break
            except _WOULD_BLOCK:
                self._wait_until_ready(for_write=True)
        if sent < HEADER_BYTES:
            self._write_all(header[sent:])
            sent = HEADER_BYTES
        with memoryview(payload) as view:
            self._write_all(view.cast("B")[sent - HEADER_BYTES :])

    def _write_all(self, data: bytes | memoryview) -> None:
        """Send every byte of ``data``, waiting whenever the kernel's send buffer is full."""
        try:
            sent = self._sock.send(data)
        except _WOULD_BLOCK:
            sent = 0
        if sent == len(data):
            return  # the common case, and the fast path for small frames
        with memoryview(data) as view:
            remaining = view[sent:]
            while remaining:
                try:
                    sent = self._sock.send(remaining)
                except _WOULD_BLOCK:
                    self._wait_until_ready(for_write=True)
                    continue
                remaining = remaining[sent:]

    # -- receiving -------------------------------------------------------

    def recv(self, *, timeout_s: float | None = None) -> bytes:
        """Wait for the next frame and return its payload, within ``timeout_s`` seconds.

        ``timeout_s=None`` uses the connection's timeout. Raises
        ``ConnectionClosed`` if the peer closed between frames,
        ``IncompleteFrame`` if it closed inside one, ``FrameTooLarge`` as soon
        as a header declares more than ``max_frame_bytes`` (before any memory
        is reserved for the body), and ``MessagingTimeout`` on timeout.
        """
        self._check_open()
        if self._recv_error is not None:
            raise ProtocolError(
                "cannot receive: an earlier frame was rejected, so the position of the next "
                "frame in the stream is unknown; close this connection"
            ) from self._recv_error
        self._start_call(timeout_s, "recv", HEADER_BYTES)
        self._fill(HEADER_BYTES)
        header = bytes(self._buffer[self._start : self._start + HEADER_BYTES])
        try:
            length = parse_header(header, self.max_frame_bytes)
        except ProtocolError as error:
            self._recv_error = error
            raise
        self._fill(HEADER_BYTES + length)
        body_start = self._start + HEADER_BYTES
        with memoryview(self._buffer) as view:
            payload = bytes(view[body_start : body_start + length])
        self._start = body_start + length
        self.frames_received += 1
        self.bytes_received += length
        return payload

    def __iter__(self) -> Iterator[bytes]:
        """Yield payloads until the peer closes cleanly between frames.

        Each ``recv`` uses the connection's timeout, so an idle peer raises
        ``MessagingTimeout`` out of the loop. ``IncompleteFrame`` is raised too.
        """
        while True:
            try:
                payload = self.recv()
            except IncompleteFrame:
                raise
            except ConnectionClosed:
                return
            yield payload

    def _fill(self, needed: int) -> None:
        """Read until at least ``needed`` unread bytes are in the buffer."""
        if self._end - self._start >= needed:
            return
        self._call_frame_bytes = needed
        self._make_room(needed)
        while self._end - self._start < needed:
            if self._peer_closed:
                self._raise_end_of_stream(needed)
            try:
                with memoryview(self._buffer) as view:
                    count = self._sock.recv_into(view[self._end :])
            except _WOULD_BLOCK:
                self._wait_until_ready(for_write=False)
                continue
            except OSError as error:
                action = f"recv from {format_address(self._peer_address)}"
                raise translate_os_error(error, action) from error
            if count == 0:
                self._peer_closed = True
            self._end += count

    def _make_room(self, needed: int) -> None:
        """Move unread bytes to the front and grow the buffer to hold ``needed`` bytes."""
        if self._start + needed <= len(self._buffer):
            return
        unread = self._buffer[self._start : self._end]
        if needed > len(self._buffer):
            # NOTE: the buffer keeps the size of the largest frame received so far.
            # A long-lived server would shrink it again, or read large bodies elsewhere.
            self._buffer = bytearray(needed)
        self._buffer[: len(unread)] = unread
        self._start = 0
        self._end = len(unread)

    def _raise_end_of_stream(self, needed: int) -> None:
        unread = self._end - self._start
        if unread == 0:
            raise ConnectionClosed(
                f"the peer {format_address(self._peer_address)} closed the connection to "
                f"{format_address(self._local_address)} between frames"
            )
        if needed == HEADER_BYTES:
            raise IncompleteFrame(unread, None)
        raise IncompleteFrame(unread, needed)

    # -- timeouts, state and display -------------------------------------

    def _start_call(self, timeout_s: float | None, call: str, frame_bytes: int) -> None:
        """Start the clock for one ``send`` or ``recv`` call.

        ``call`` and ``frame_bytes`` (the frame being sent, or the bytes a
        ``recv`` waits for) are kept for the message of a timeout.
        """
        timeout = self.timeout_s if timeout_s is None else check_timeout(timeout_s)
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._call = call
        self._call_timeout_s = timeout
        self._call_frame_bytes = frame_bytes

    def _timeout_error(self) -> MessagingTimeout:
        """Return the timeout error of the call in progress, saying what it waited for."""
        peer = format_address(self._peer_address)
        local = format_address(self._local_address)
        waited = format_seconds(self._call_timeout_s)
        if self._call == "send":
            return MessagingTimeout(
                f"send timed out after {waited} writing a frame of {self._call_frame_bytes} "
                f"bytes to {peer} (local {local}). The peer did not read fast enough, so the "
                f"socket buffers stayed full: raise timeout_s, or check that the peer reads. "
                f"Part of the frame may have gone out, so this connection can no longer send"
            )
        unread = self._end - self._start
        if unread == 0:
            return MessagingTimeout(
                f"recv timed out after {waited} waiting for a frame from {peer} "
                f"(local {local}). The peer sent nothing in time, so raise timeout_s or "
                f"check that the peer sends (for example, that it replies to your request)"
            )
        if self._call_frame_bytes == HEADER_BYTES:
            progress = f"{unread} of the {HEADER_BYTES} header bytes"
        else:
            progress = f"{unread} of {self._call_frame_bytes} frame bytes"
        return MessagingTimeout(
            f"recv timed out after {waited} in the middle of a frame from {peer} "
            f"(local {local}): {progress} arrived. They are kept, so the next recv "
            f"continues this frame. Raise timeout_s, or check that the peer sends whole frames"
        )

    def _wait_until_ready(self, *, for_write: bool) -> None:
        """Block until the socket can be written (or read), or the call's deadline passes.

        Trying the system call first and waiting only after ``BlockingIOError``
        costs one system call when data or buffer space is already there. A
        socket with ``settimeout`` would poll before every call, which costs two.
        """
        if self._deadline is None:
            timeout = None
        else:
            timeout = self._deadline - time.monotonic()
            if timeout <= 0:
                raise self._timeout_error()
        if _HAS_POLL:
            poller = select.poll()
            poller.register(self._sock, select.POLLOUT if for_write else select.POLLIN)
            ready = bool(poller.poll(None if timeout is None else math.ceil(timeout * 1000)))
        else:
            # NOTE: select() handles descriptors below FD_SETSIZE only (1024 on Linux),
            # so it is used only where poll() is missing.
            target = [self._sock]
            readable, writable, _ = select.select(
                [] if for_write else target, target if for_write else [], [], timeout
            )
            ready = bool(readable or writable)
        if not ready:
            raise self._timeout_error()

    def _check_open(self) -> None:
        if self._closed:
            raise EndpointClosed(f"{self!r} is closed; open a new connection")

    @property
    def nodelay(self) -> bool:
        """Whether TCP_NODELAY is set, which turns Nagle's algorithm off."""
        self._check_open()
        return bool(self._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    @nodelay.setter
    def nodelay(self, enabled: bool) -> None:
        self._check_open()
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if enabled else 0)

    @property
    def local_address(self) -> tuple[str, int] | None:
        """This end's (host, port), recorded when the connection was wrapped."""
        return self._local_address

    @property
    def peer_address(self) -> tuple[str, int] | None:
        """The other end's (host, port), or None if the socket was not connected."""
        return self._peer_address

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run."""
        return self._closed

    def close(self) -> None:
        """Close the socket. Calling it again does nothing."""
        if not self._closed:
            self._closed = True
            self._sock.close()

    def _shutdown(self) -> None:
        """Wake a thread blocked in ``recv`` or ``send`` on this connection."""
        # OSError means already closed or never connected, so there is nothing to wake.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FramedConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        """Frame and byte counters, for display in a notebook."""
        return {
            "frames_sent": self.frames_sent,
            "bytes_sent": self.bytes_sent,
            "frames_received": self.frames_received,
            "bytes_received": self.bytes_received,
            "buffered_bytes": self._end - self._start,
        }

    def __repr__(self) -> str:
        if self._closed:
            state = "closed"
        elif self._recv_error is not None or self._send_error is not None:
            state = "broken"
        elif self._peer_closed:
            state = "peer closed"
        else:
            state = "open"
        return (
            f"<FramedConnection {state} {format_address(self._local_address)} -> "
            f"{format_address(self._peer_address)}, sent {self.frames_sent}, "
            f"received {self.frames_received}>"
        )


def connect(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    nodelay: bool = False,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
) -> FramedConnection:
    """Open a TCP connection to ``host:port`` and return it as a ``FramedConnection``.

    ``timeout_s`` bounds the connection attempt and is then the connection's
    default timeout. Raises ``ConnectionClosed`` if nothing listens on the port
    and ``MessagingTimeout`` if the attempt takes too long::

        with connect(port=server.port) as conn:
            conn.send(b"ping")
    """
    check_port(port, required=True)
    timeout = check_timeout(timeout_s)
    action = f"connect to {host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError as error:  # socket.timeout is TimeoutError since Python 3.10
        raise MessagingTimeout(connect_timeout_message(action, timeout)) from error
    except OSError as error:
        raise translate_os_error(error, action) from error
    try:
        if nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = FramedConnection(sock, max_frame_bytes=max_frame_bytes, timeout_s=timeout)
    except BaseException:
        sock.close()
        raise
    log.debug("connected %s -> %s", conn.local_address, conn.peer_address)
    return conn


def _address_or_none(get_address: Callable[[], Any]) -> tuple[str, int] | None:
    try:
        address = get_address()
    except OSError:
        return None
    if not isinstance(address, tuple):
        return None  # a Unix-domain stream socket, for example from socket.socketpair()
    return (str(address[0]), int(address[1]))


# -- names defined in the sibling modules -----------------------------------
# FramedServer lives in tcp_server and ThreadedServer in tcp_threaded. Both
# import FramedConnection from here, so they are loaded on first use rather
# than at the top of this file, which would make the imports circular. The
# asyncio endpoints (tcp_asyncio) are loaded on first use
# too, so that a blocking program does not import asyncio.

_LAZY_NAMES = {
    "FramedServer": "tcp_server",
    "ThreadedServer": "tcp_threaded",
    "open_connection": "tcp_asyncio",
    "AsyncFramedConnection": "tcp_asyncio",
    "start_server": "tcp_asyncio",
    "AsyncFramedServer": "tcp_asyncio",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f".{module_name}", __package__)
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES))
