"""A request/reply TCP server in background threads, the simplest server a lab can run.

One thread accepts clients. Each client gets its own thread, which loops:
receive a frame, call ``handler(payload)``, send the reply back if the handler
returned one. Threads suit this job because every call they make blocks, and a
blocked thread costs nothing but its stack.

Stopping is the hard part, and the reason this module exists. A thread blocked
in ``accept`` or ``recv`` does not notice a flag being set, and on Linux not
even its socket being closed by another thread. So the accept thread waits in
a selector on the listener and on one end of a socket pair, and ``stop()``
writes a byte to the other end. Connection threads are woken with
``shutdown()``, which makes a blocked ``recv`` return end of stream. ``stop()``
then joins every thread, so a lab can be re-run in the same kernel without a
port or a thread left behind.

Import it from ``msgpass.tcp``.
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from types import TracebackType

from .errors import ConnectionClosed, MessagingError, MessagingTimeout
from .framing import DEFAULT_MAX_FRAME_BYTES
from .tcp import FramedConnection, FramedServer, format_address

__all__ = ["ThreadedServer"]

log = logging.getLogger(__name__)

Handler = Callable[[bytes], bytes | None]


class ThreadedServer:
    """Serve framed requests with ``handler``, one thread per connection.

    ``handler(payload)`` returns the reply, or None to send nothing. If it
    raises, the error is logged with the client's address, that connection
    is closed, and the server keeps serving everyone else::

        with ThreadedServer(lambda request: request.upper()) as server:
            with connect(port=server.port) as conn:
                conn.send(b"hi")
                assert conn.recv() == b"HI"

    ``start()`` begins listening, ``stop()`` closes the listener and every
    connection and joins every thread. The context manager does both.

    ``ssl_context`` (a server-side ``ssl.SSLContext``) serves over TLS. The
    handshake runs in the connection's thread, and a client that fails it is
    logged as an ended connection, not as a handler error.
    """

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        nodelay: bool = False,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        name: str = "msgpass-tcp-server",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        self.handler = handler
        self.name = name
        # Idle clients may wait between requests as long as they like, so the
        # server's connections block in recv without a timeout. stop() wakes them.
        # NOTE: production servers close idle connections after a timeout and
        # cap the number of threads; a lab has a handful of clients.
        self._server = FramedServer(
            host,
            port,
            nodelay=nodelay,
            max_frame_bytes=max_frame_bytes,
            timeout_s=None,
            ssl_context=ssl_context,
        )
        self._lock = threading.Lock()
        self._connections: dict[FramedConnection, threading.Thread] = {}
        self._accept_thread: threading.Thread | None = None
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._state = "created"  # then "running", then "stopped"
        self.connections_accepted = 0
        self.requests_handled = 0
        self.handler_errors = 0

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on."""
        return self._server.address

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self._server.port

    def start(self) -> ThreadedServer:
        """Start the accept thread and return the server. Raises if already started."""
        with self._lock:
            if self._state != "created":
                raise RuntimeError(f"{self!r} cannot start: it is {self._state}")
            self._state = "running"
            self._accept_thread = threading.Thread(
                target=self._accept_loop, name=f"{self.name}-accept", daemon=True
            )
            self._accept_thread.start()
        log.info("%s listening on %s:%d", self.name, *self.address)
        return self

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake_reader in ready:
                    return
                try:
                    # The selector reported a pending client, so this returns at once.
                    conn = self._server.accept(timeout_s=1.0)
                except MessagingError as error:
                    # A client that connects and resets at once lands here; keep going.
                    log.warning("%s: accept failed: %s", self.name, error)
                    continue
                self._start_connection(conn)

    def _start_connection(self, conn: FramedConnection) -> None:
        thread = threading.Thread(
            target=self._serve,
            args=(conn,),
            name=f"{self.name}-{format_address(conn.peer_address)}",
            daemon=True,
        )
        with self._lock:
            if self._state != "running":
                conn.close()
                return
            self._connections[conn] = thread
            self.connections_accepted += 1
            thread.start()

    def _serve(self, conn: FramedConnection) -> None:
        peer = format_address(conn.peer_address)
        log.debug("%s: serving %s", self.name, peer)
        try:
            for request in conn:
                reply = self.handler(request)
                with self._lock:
                    self.requests_handled += 1
                if reply is not None:
                    conn.send(reply)
        except ConnectionClosed as error:
            # Includes a client that vanished mid-frame, and stop() waking us up.
            if self._state == "running":
                log.info("%s: connection from %s ended: %s", self.name, peer, error)
        except Exception:
            with self._lock:
                self.handler_errors += 1
            log.exception("%s: request from %s failed; closing that connection", self.name, peer)
        finally:
            conn.close()
            with self._lock:
                self._connections.pop(conn, None)
            log.debug("%s: closed connection from %s", self.name, peer)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the listener and every connection, then join every thread.

        Raises ``MessagingTimeout`` if a thread is still running after
        ``timeout_s`` seconds, which happens when a handler itself blocks.
        Calling ``stop()`` again does nothing.
        """
        with self._lock:
            previous, self._state = self._state, "stopped"
        if previous == "stopped":
            return
        deadline = time.monotonic() + timeout_s
        stuck: list[str] = []
        if self._accept_thread is not None:
            self._wake_writer.send(b"x")
            self._accept_thread.join(timeout_s)
            if self._accept_thread.is_alive():
                stuck.append(self._accept_thread.name)
        # No new connection is registered once the state is "stopped".
        self._server.close()
        with self._lock:
            live = list(self._connections.items())
        for conn, _ in live:
            conn._shutdown()
        for conn, thread in live:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                stuck.append(thread.name)
                conn.close()
        self._wake_reader.close()
        self._wake_writer.close()
        if stuck:
            raise MessagingTimeout(
                f"{self.name}: threads still running {timeout_s} s after stop(): "
                f"{', '.join(stuck)}. A handler is probably blocked, so give every "
                f"blocking call in the handler a timeout"
            )
        log.info("%s stopped after %d connections", self.name, self.connections_accepted)

    def __enter__(self) -> ThreadedServer:
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

    def stats(self) -> dict[str, int]:
        """Connection and request counters, for display in a notebook."""
        with self._lock:
            return {
                "connections_accepted": self.connections_accepted,
                "connections_open": len(self._connections),
                "requests_handled": self.requests_handled,
                "handler_errors": self.handler_errors,
            }

    def __repr__(self) -> str:
        host, port = self.address
        return (
            f"<ThreadedServer {self.name!r} {self._state} on {host}:{port}, "
            f"{len(self._connections)} open connections>"
        )
