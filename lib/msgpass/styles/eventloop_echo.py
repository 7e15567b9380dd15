"""A framed echo server and client written on the teaching ``EventLoop``.

This is the event loop's proof: one thread serves many clients without
blocking on any of them. Each connection owns three pieces of state that a
blocking server keeps implicitly on a thread's stack: a ``FrameDecoder``, an
outgoing buffer and a flag that records whether the peer has finished
sending. ``msgpass.styles.eventloop_stream.FramedStream`` keeps that state,
and both ends of the echo service here are built on it.

The server also applies backpressure. It stops reading from a client whose
unsent replies exceed ``PAUSE_READING_BYTES`` and resumes once they are sent,
which is what asyncio's ``pause_reading`` and ``resume_reading`` are for.

Left out on purpose: idle timeouts, a cap on the number of connections, and
TLS.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import socket
from types import TracebackType

from ..errors import ConnectionClosed, MessagingError, ProtocolError, translate_os_error
from ..framing import DEFAULT_MAX_FRAME_BYTES
from .eventloop import EventLoop, LoopFuture
from .eventloop_stream import RECV_BYTES, FramedStream

__all__ = [
    "ACCEPT_RETRY_DELAY_S",
    "PAUSE_READING_BYTES",
    "RECV_BYTES",
    "EchoClient",
    "EchoServer",
]

log = logging.getLogger(__name__)

# After accept() fails for lack of resources (EMFILE, ENOBUFS), the server stops
# accepting for this long instead of retrying on every loop step. asyncio waits 1 s.
ACCEPT_RETRY_DELAY_S = 1.0
# A client's unsent replies above this size pause reading from that client.
PAUSE_READING_BYTES = 1024 * 1024


class _EchoConnection(FramedStream):
    """The server's side of one client: every frame received is sent back unchanged."""

    def __init__(self, server: EchoServer, sock: socket.socket, label: str) -> None:
        super().__init__(server.loop, sock, label, server.max_frame_bytes, connected=True)
        self._server = server

    def _on_frame(self, payload: bytes) -> None:
        self._server.frames_echoed += 1
        self.write_frame(payload)
        if len(self._outgoing) > PAUSE_READING_BYTES:
            self.stop_reading()  # resumed by _on_drained once the client has read the replies

    def _on_drained(self) -> None:
        if self._close_when_drained:
            self.close()
        elif not self.closed:
            self.start_reading()

    def _on_closed(self, error: MessagingError | None) -> None:
        self._server._forget(self)


class EchoServer:
    """A framed echo server that runs on an ``EventLoop``; it serves every client on one thread.

    ::

        with EventLoop() as loop, EchoServer(loop) as server:
            client = EchoClient(loop, port=server.port)
            assert loop.run_until_complete(client.request(b"ping"), timeout_s=5) == b"ping"

    The listening socket binds to ``host`` and ``port`` (0 picks a free port,
    which ``port`` then gives). A client that closes its side gets its pending
    replies and is then closed. A client that breaks the framing is
    disconnected, and the error is logged with its address.
    ``send_buffer_bytes`` sets ``SO_SNDBUF`` on accepted sockets, which labs use
    to force partial writes.

    NOTE: keep ``send_buffer_bytes`` at 128 KiB or more on loopback. With 32 KiB,
    a 4 MiB echo took about 3.7 s instead of 0.013 s (Linux 6.18, 2 cores, one
    run), because each buffer's worth of data waited for the receiver's delayed
    ACK to free the send buffer. Setting TCP_QUICKACK after every ``recv``
    removed the stall and TCP_NODELAY did not.
    """

    def __init__(
        self,
        loop: EventLoop,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        send_buffer_bytes: int | None = None,
        backlog: int = 64,
    ) -> None:
        self.loop = loop
        self.max_frame_bytes = max_frame_bytes
        self.send_buffer_bytes = send_buffer_bytes
        self._connections: set[_EchoConnection] = set()
        self.connections_accepted = 0
        self.frames_echoed = 0
        # Byte and send counters of connections already closed; stats() adds the open ones.
        self._closed_totals = {"bytes_received": 0, "bytes_sent": 0, "partial_sends": 0}
        self.closed = False
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=backlog)
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()[:2]
        loop.add_reader(self._listener, self._accept)

    def _accept(self) -> None:
        # Accept every connection that is waiting, not just one per readiness event.
        while True:
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up before we accepted; take the next one
            except OSError as error:
                log.error(
                    "accept on port %d failed: %s; accepting again in %.1f s",
                    self.port,
                    error,
                    ACCEPT_RETRY_DELAY_S,
                )
                self.loop.remove_reader(self._listener)
                self.loop.call_later(ACCEPT_RETRY_DELAY_S, self._resume_accepting)
                return
            sock.setblocking(False)
            if self.send_buffer_bytes is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)
            self.connections_accepted += 1
            connection = _EchoConnection(self, sock, f"client {address[0]}:{address[1]}")
            self._connections.add(connection)
            connection.start_reading()

    def _resume_accepting(self) -> None:
        if not self.closed:
            self.loop.add_reader(self._listener, self._accept)

    def _forget(self, connection: _EchoConnection) -> None:
        self._connections.discard(connection)
        self._closed_totals["bytes_received"] += connection.bytes_received
        self._closed_totals["bytes_sent"] += connection.bytes_sent
        self._closed_totals["partial_sends"] += connection.partial_sends

    def close(self) -> None:
        """Close the listening socket and every client connection, dropping unsent replies."""
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self._listener)
        self._listener.close()
        for connection in list(self._connections):
            connection.close()

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        """Counters over every connection so far, for display in a notebook."""
        counters = {
            "connections_open": len(self._connections),
            "connections_accepted": self.connections_accepted,
            "frames_echoed": self.frames_echoed,
        }
        for name, closed_total in self._closed_totals.items():
            open_total = sum(getattr(connection, name) for connection in self._connections)
            counters[name] = closed_total + open_total
        return counters

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._connections)} connections"
        return f"<EchoServer {self.host}:{self.port} {state}, {self.frames_echoed} frames echoed>"


class EchoClient(FramedStream):
    """A client of ``EchoServer`` on the same loop; ``request`` returns a ``LoopFuture``.

    The connection is opened without blocking: ``connect_ex`` starts it, and the
    socket becomes writable when it completes. Requests made before then wait
    in the outgoing buffer. Replies arrive in request order, so the client
    keeps a queue of pending futures and settles the oldest with each reply.
    When the connection fails or closes, every pending future gets the error.
    """

    def __init__(
        self,
        loop: EventLoop,
        port: int,
        host: str = "127.0.0.1",
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        send_buffer_bytes: int | None = None,
    ) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        super().__init__(loop, sock, f"echo server {host}:{port}", max_frame_bytes, False)
        self._pending: collections.deque[LoopFuture[bytes]] = collections.deque()
        self.error: MessagingError | None = None
        try:
            sock.setblocking(False)
            if send_buffer_bytes is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
            result = sock.connect_ex((host, port))
        except OSError as error:
            sock.close()
            raise translate_os_error(error, f"connect to {host}:{port}") from error
        if result == 0:
            self._on_connected()
        elif result in (errno.EINPROGRESS, errno.EWOULDBLOCK):
            loop.add_writer(sock, self._on_connect_ready)
            self._writing = True
        else:
            self._fail_connect(result)

    def _on_connect_ready(self) -> None:
        # A non-blocking connect reports its outcome through SO_ERROR once writable.
        result = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self.loop.remove_writer(self.sock)
        self._writing = False
        if result != 0:
            self._fail_connect(result)
            return
        self._on_connected()

    def _fail_connect(self, error_number: int) -> None:
        # OSError(errno, ...) returns the matching subclass, such as ConnectionRefusedError.
        error = OSError(error_number, os.strerror(error_number))
        self._fail(translate_os_error(error, f"connect to {self.label}"))

    def _on_connected(self) -> None:
        self._connected = True
        self.start_reading()
        self._flush()

    def request(self, payload: bytes) -> LoopFuture[bytes]:
        """Send ``payload`` as one frame and return a future for the echoed reply."""
        future: LoopFuture[bytes] = LoopFuture(self.loop)
        if self.closed:
            future.set_exception(self.error or ConnectionClosed(f"{self!r} is closed"))
            return future
        self._pending.append(future)
        self.write_frame(payload)
        return future

    def _on_frame(self, payload: bytes) -> None:
        while self._pending:
            future = self._pending.popleft()
            if not future.cancelled():
                future.set_result(payload)
                return
        self._fail(ProtocolError(f"{self.label} sent a reply with no request waiting for it"))

    def _on_closed(self, error: MessagingError | None) -> None:
        self.error = error
        failure = error or ConnectionClosed(f"connection to {self.label} closed")
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(failure)

    def stats(self) -> dict[str, int]:
        """Counters for display in a notebook."""
        return {
            "pending": len(self._pending),
            "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_sent,
            "bytes_unsent": len(self._outgoing),
            "partial_sends": self.partial_sends,
        }

    def __repr__(self) -> str:
        state = "connected" if self._connected else "connecting"
        if self.closed:
            state = "closed"
        return f"<EchoClient to {self.label} {state}, {len(self._pending)} pending>"
