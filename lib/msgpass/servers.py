"""Two non-blocking framed servers that hold thousands of connections on one thread.

A thread-per-connection server (``msgpass.tcp.ThreadedServer``) spends a
thread, with its stack, on every client, even an idle one. A *reactor* spends
one thread on all of them: it asks the operating system which sockets are
ready and runs a short, non-blocking step for each. This module has the same
request/reply service written twice that way:

- ``SelectorsServer`` drives a ``selectors.DefaultSelector`` (epoll on Linux)
  from one background thread. It is the Python counterpart of a Java NIO
  ``Selector`` loop. Each connection has a ``FrameDecoder`` and a bytearray
  of replies not yet sent. When that bytearray passes ``max_pending_bytes``,
  the server stops reading from that client until the client reads its
  replies, so a client that only sends cannot make the server buffer without
  limit.
- ``AsyncioServer`` runs on the caller's asyncio event loop (in a notebook,
  the kernel's own loop). Each connection is a coroutine that reads a frame,
  writes the reply and awaits ``drain()``, which is where asyncio applies
  backpressure.

Both reply to each frame with ``encode_frame(handler(payload))``, echo by
default, and count open connections, so a lab can check that a thousand
clients were served at once. ``raise_open_file_limit`` lifts the process's
soft limit on file descriptors, because every connection costs one on each
side. The load client lives in ``msgpass.servers_load``.

Left out on purpose: TLS, idle-connection timeouts in ``SelectorsServer``,
and several reactor threads (production servers often run one per core).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import selectors
import socket
import threading
from collections.abc import Callable
from types import TracebackType

from .errors import MessagingError, MessagingTimeout, ProtocolError
from .framing import DEFAULT_MAX_FRAME_BYTES, HEADER_BYTES, FrameDecoder, encode_frame, parse_header

__all__ = [
    "Handler",
    "READ_CHUNK_BYTES",
    "DEFAULT_MAX_PENDING_BYTES",
    "LISTEN_BACKLOG",
    "raise_open_file_limit",
    "SelectorsServer",
    "AsyncioServer",
]

log = logging.getLogger(__name__)

Handler = Callable[[bytes], bytes | None]

READ_CHUNK_BYTES = 16 * 1024  # maximum bytes one recv() call of the selectors server reads
DEFAULT_MAX_PENDING_BYTES = 64 * 1024  # unsent replies per client before reads pause
LISTEN_BACKLOG = 4096  # pending connections the kernel queues (Linux caps it at somaxconn)
SELECT_TIMEOUT_S = 1.0  # the maximum wait of one select() call, which stop() cuts short
IDLE_TIMEOUT_S = 60.0  # AsyncioServer closes a connection silent for this long


def _echo(payload: bytes) -> bytes:
    return payload


def raise_open_file_limit(min_soft: int) -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to at least ``min_soft``; return (old, new) soft limits.

    Every socket is a file descriptor, and many systems start processes with
    a soft limit of 1,024. An unprivileged process may raise its soft limit up
    to the hard limit. A soft limit that is already high enough is left alone.
    Raises ``MessagingError`` when the hard limit is below ``min_soft``.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft >= min_soft:
        return soft, soft
    if hard != resource.RLIM_INFINITY and hard < min_soft:
        raise MessagingError(
            f"the hard limit on open files is {hard}, below the {min_soft} needed; "
            f"raise it (ulimit -Hn as root) or use fewer connections"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (min_soft, hard))
    return soft, min_soft


class _Connection:
    """The selectors server's state for one client."""

    def __init__(self, sock: socket.socket, max_frame_bytes: int) -> None:
        self.sock = sock
        self.decoder = FrameDecoder(max_frame_bytes)
        self.outgoing = bytearray()  # encoded replies not yet accepted by send()
        self.peer_eof = False
        self.reading = True
        self.interest = selectors.EVENT_READ


class SelectorsServer:
    """Serve framed requests on one background thread with a ``selectors`` loop.

    The listener is bound by the constructor, so ``port`` is known before
    ``start()``. ``stop()`` closes every connection and joins the thread::

        with SelectorsServer() as server:          # echo server on 127.0.0.1, port 0
            print(server.port, server.stats())

    Guarantee (backpressure): the server reads from a client only while that
    client's unsent replies are below ``max_pending_bytes``. One read of
    ``READ_CHUNK_BYTES`` can still add its replies, so a client's buffer
    peaks at ``max_pending_bytes`` plus the replies to one chunk.
    ``handler`` runs on the server thread and must not block. If it raises,
    the error is logged and that client is disconnected.

    ``send_buffer_bytes``, when set, is the kernel send buffer (``SO_SNDBUF``)
    asked for on every accepted socket. Linux doubles the value and otherwise
    grows loopback buffers to several MiB, which hides backpressure in a demo.
    """

    def __init__(
        self,
        handler: Handler = _echo,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        send_buffer_bytes: int | None = None,
        name: str = "selectors-server",
    ) -> None:
        self.handler = handler
        self.send_buffer_bytes = send_buffer_bytes
        self.max_pending_bytes = max_pending_bytes
        self.max_frame_bytes = max_frame_bytes
        self.name = name
        self._listener = socket.create_server((host, port), backlog=LISTEN_BACKLOG)
        self._listener.setblocking(False)
        self._port: int = self._listener.getsockname()[1]
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._connections: dict[socket.socket, _Connection] = {}
        self._thread: threading.Thread | None = None
        self._state = "created"  # then "running", then "stopped"
        self.connections_accepted = 0
        self.peak_connections = 0
        self.requests_handled = 0
        self.reads_paused = 0
        self.max_outgoing_bytes_seen = 0
        self.errors = 0

    @property
    def port(self) -> int:
        """The port the server listens on, or listened on once stopped."""
        return self._port

    @property
    def connections_open(self) -> int:
        """Clients connected right now."""
        return len(self._connections)

    def start(self) -> SelectorsServer:
        """Start the server thread and return the server. Raises if already started."""
        if self._state != "created":
            raise RuntimeError(f"{self!r} cannot start: it is {self._state}")
        self._state = "running"
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        log.info("%s listening on 127.0.0.1:%d", self.name, self.port)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the listener and every connection, and join the server thread.

        Raises ``MessagingTimeout`` if the thread is still running after
        ``timeout_s`` seconds, which means a handler blocked. A second call
        does nothing.
        """
        previous, self._state = self._state, "stopped"
        if previous == "stopped":
            return
        if self._thread is not None:
            self._wake_writer.send(b"x")
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise MessagingTimeout(
                    f"{self.name}: server thread still running {timeout_s} s after stop(); "
                    f"a handler is probably blocking, so make it return quickly"
                )
        else:
            self._close_all()
        log.info("%s stopped after %d connections", self.name, self.connections_accepted)

    def __enter__(self) -> SelectorsServer:
        if self._state == "created":
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the reactor loop, on the server thread ------------------------------

    def _run(self) -> None:
        try:
            while self._state == "running":
                for key, events in self._selector.select(timeout=SELECT_TIMEOUT_S):
                    if key.fileobj is self._wake_reader:
                        return
                    if key.fileobj is self._listener:
                        self._accept_ready()
                    else:
                        self._serve_ready(key.data, events)
        finally:
            self._close_all()

    def _accept_ready(self) -> None:
        # Accept every client waiting in the backlog: with a thousand clients
        # connecting at once, one accept per select() would be slow.
        while True:
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as error:  # EMFILE: out of file descriptors
                self.errors += 1
                log.warning("%s: accept failed: %s", self.name, error)
                return
            sock.setblocking(False)
            if self.send_buffer_bytes is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)
            conn = _Connection(sock, self.max_frame_bytes)
            self._connections[sock] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)
            self.connections_accepted += 1
            self.peak_connections = max(self.peak_connections, len(self._connections))

    def _serve_ready(self, conn: _Connection, events: int) -> None:
        try:
            if events & selectors.EVENT_READ:
                self._read(conn)
            if conn.outgoing:
                # Try at once rather than wait for the next select(): the
                # socket is usually writable, and this saves a loop pass.
                self._write(conn)
        except (OSError, ProtocolError) as error:
            log.info("%s: closing a client after %s", self.name, error)
            self._close(conn)
            return
        except Exception:
            self.errors += 1
            log.exception("%s: handler failed; closing that client", self.name)
            self._close(conn)
            return
        if conn.peer_eof and not conn.outgoing:
            self._close(conn)
            return
        self._update_interest(conn)

    def _read(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(READ_CHUNK_BYTES)
        except BlockingIOError:
            return
        if not data:
            conn.peer_eof = True
            conn.decoder.close()  # raises IncompleteFrame if a frame was cut off
            return
        for payload in conn.decoder.feed(data):
            reply = self.handler(payload)
            self.requests_handled += 1
            if reply is not None:
                conn.outgoing += encode_frame(reply, self.max_frame_bytes)
        self.max_outgoing_bytes_seen = max(self.max_outgoing_bytes_seen, len(conn.outgoing))

    def _write(self, conn: _Connection) -> None:
        try:
            sent = conn.sock.send(conn.outgoing)
        except BlockingIOError:
            return
        del conn.outgoing[:sent]

    def _update_interest(self, conn: _Connection) -> None:
        # Ask for write readiness only while replies wait, or select() spins.
        interest = selectors.EVENT_WRITE if conn.outgoing else 0
        may_read = not conn.peer_eof and len(conn.outgoing) < self.max_pending_bytes
        if may_read:
            interest |= selectors.EVENT_READ
        elif conn.reading and not conn.peer_eof:
            self.reads_paused += 1
        conn.reading = may_read
        if interest != conn.interest:
            self._selector.modify(conn.sock, interest, conn)
            conn.interest = interest

    def _close(self, conn: _Connection) -> None:
        self._selector.unregister(conn.sock)
        del self._connections[conn.sock]
        conn.sock.close()

    def _close_all(self) -> None:
        for conn in list(self._connections.values()):
            self._close(conn)
        self._selector.close()
        self._listener.close()
        self._wake_reader.close()
        self._wake_writer.close()

    def stats(self) -> dict[str, int]:
        """Connection, request and backpressure counters, for display in a notebook.

        The server thread updates them without a lock, so a reading taken while
        it runs may be one event old.
        """
        return {
            "connections_open": self.connections_open,
            "peak_connections": self.peak_connections,
            "connections_accepted": self.connections_accepted,
            "requests_handled": self.requests_handled,
            "reads_paused": self.reads_paused,
            "max_outgoing_bytes_seen": self.max_outgoing_bytes_seen,
            "errors": self.errors,
        }

    def __repr__(self) -> str:
        return (
            f"<SelectorsServer {self.name!r} {self._state} on port {self.port}, "
            f"{self.connections_open} open connections>"
        )


class AsyncioServer:
    """Serve framed requests with asyncio streams on the running event loop.

    Start and stop it from a coroutine (in a notebook, with top-level ``await``)::

        async with AsyncioServer() as server:
            print(server.port, server.stats())

    Each connection reads a frame, writes ``encode_frame(handler(payload))``
    and awaits ``drain()``. With ``high_water_bytes`` set, each transport
    gets that high-water mark and a low-water mark of a quarter of it.
    Otherwise asyncio's defaults apply (64 KiB and 16 KiB in CPython 3.11).
    A connection silent for ``idle_timeout_s`` is closed. ``stop()`` closes
    the listener, cancels every connection and waits for them to finish.
    """

    def __init__(
        self,
        handler: Handler = _echo,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        high_water_bytes: int | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        self.handler = handler
        self.host = host
        self.requested_port = port
        self.high_water_bytes = high_water_bytes
        self.max_frame_bytes = max_frame_bytes
        self.idle_timeout_s = idle_timeout_s
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._state = "created"
        self.connections_accepted = 0
        self.peak_connections = 0
        self.requests_handled = 0
        self.errors = 0

    @property
    def port(self) -> int:
        """The port the server listens on; raises ``RuntimeError`` before ``start()``."""
        if self._server is None:
            raise RuntimeError("the server has no port until start() has run")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def connections_open(self) -> int:
        """Clients connected right now."""
        return len(self._tasks)

    async def start(self) -> AsyncioServer:
        """Listen and return the server. Raises ``RuntimeError`` if already started."""
        if self._state != "created":
            raise RuntimeError(f"{self!r} cannot start: it is {self._state}")
        self._state = "running"
        self._server = await asyncio.start_server(
            self._handle, self.host, self.requested_port, backlog=LISTEN_BACKLOG
        )
        log.info("asyncio server listening on %s:%d", self.host, self.port)
        return self

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Close the listener, cancel every connection and wait up to ``timeout_s`` for them."""
        previous, self._state = self._state, "stopped"
        if previous != "running" or self._server is None:
            return
        self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            _, still_running = await asyncio.wait(tasks, timeout=timeout_s)
            if still_running:
                raise MessagingTimeout(
                    f"{len(still_running)} connections still open {timeout_s} s after stop()"
                )
        await asyncio.wait_for(self._server.wait_closed(), timeout_s)

    async def __aenter__(self) -> AsyncioServer:
        if self._state == "created":
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # a stream handler always runs as a task
        self._tasks.add(task)
        self.connections_accepted += 1
        self.peak_connections = max(self.peak_connections, len(self._tasks))
        if self.high_water_bytes is not None:
            writer.transport.set_write_buffer_limits(high=self.high_water_bytes)
        try:
            while await self._serve_one(reader, writer):
                pass
        except (OSError, ProtocolError, asyncio.IncompleteReadError, TimeoutError) as error:
            log.info("asyncio server: closing a client after %r", error)
        except asyncio.CancelledError:
            pass  # stop() cancels every connection; the finally block closes it
        except Exception:
            self.errors += 1
            log.exception("asyncio server: handler failed; closing that client")
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; return False when the client closed between frames."""
        try:
            header = await asyncio.wait_for(reader.readexactly(HEADER_BYTES), self.idle_timeout_s)
        except asyncio.IncompleteReadError as error:
            if error.partial:
                raise
            return False
        length = parse_header(header, self.max_frame_bytes)
        payload = await asyncio.wait_for(reader.readexactly(length), self.idle_timeout_s)
        reply = self.handler(payload)
        self.requests_handled += 1
        if reply is not None:
            writer.write(encode_frame(reply, self.max_frame_bytes))
            await asyncio.wait_for(writer.drain(), self.idle_timeout_s)
        return True

    def stats(self) -> dict[str, int]:
        """Connection and request counters, for display in a notebook."""
        return {
            "connections_open": self.connections_open,
            "peak_connections": self.peak_connections,
            "connections_accepted": self.connections_accepted,
            "requests_handled": self.requests_handled,
            "errors": self.errors,
        }

    def __repr__(self) -> str:
        where = f"on port {self.port}" if self._server is not None else "not listening"
        return f"<AsyncioServer {self._state} {where}, {self.connections_open} open connections>"
