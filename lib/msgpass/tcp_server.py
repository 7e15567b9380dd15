"""The listening side of framed TCP: a socket that hands out ``FramedConnection`` objects.

A TCP server owns two kinds of socket. The listening socket never carries
data. It only completes handshakes, and each ``accept`` returns a new,
connected socket for one client. ``FramedServer`` wraps the listening socket,
and each socket that ``accept`` returns is wrapped in a
``msgpass.tcp.FramedConnection``, which then carries the frames.

The server binds ``127.0.0.1`` and port 0 by default, so the operating
system picks a free port, and ``port`` reports it. ``accept`` waits at most
``timeout_s`` seconds. Every accepted connection gets the server's
``nodelay``, ``max_frame_bytes`` and ``timeout_s``.

With ``ssl_context`` (a server-side ``ssl.SSLContext``, see ``msgpass.tls``)
every accepted socket is wrapped in TLS. The handshake is not done in
``accept``: it runs inside the connection's first ``recv`` or ``send``, under
that call's timeout, so a slow or hostile client cannot stall ``accept``.
A failed handshake raises ``msgpass.errors.TLSError`` from that call.

Left out on purpose: serving several clients at once, which
``msgpass.tcp_threaded.ThreadedServer`` adds with one thread per connection
and ``msgpass.tcp_asyncio`` with one event loop. Import ``FramedServer`` from
``msgpass.tcp``.
"""

from __future__ import annotations

import logging
import socket
import ssl
from types import TracebackType

from .errors import EndpointClosed, MessagingTimeout, translate_os_error
from .framing import DEFAULT_MAX_FRAME_BYTES, check_max_frame_bytes
from .tcp import FramedConnection
from .tcp_common import DEFAULT_TIMEOUT_S, check_port, check_timeout, format_address, format_seconds

__all__ = ["FramedServer"]

log = logging.getLogger(__name__)


class FramedServer:
    """A listening TCP socket that hands out ``FramedConnection`` objects.

    It binds ``127.0.0.1`` and a free port by default. Read the port it got
    from ``port``::

        with FramedServer() as server:
            client = connect(port=server.port)
            conn = server.accept()
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        backlog: int = 128,
        nodelay: bool = False,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        check_port(port, required=False)
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError(f"ssl_context must be an ssl.SSLContext, got {ssl_context!r}")
        self.ssl_context = ssl_context
        if backlog < 0:
            raise ValueError(f"backlog must be 0 or more, got {backlog}")
        self.nodelay = nodelay
        self.max_frame_bytes = check_max_frame_bytes(max_frame_bytes)
        self.timeout_s = check_timeout(timeout_s)
        self.connections_accepted = 0
        try:
            # create_server sets SO_REUSEADDR on POSIX, so a lab can rebind a fixed port
            # while old connections sit in TIME_WAIT.
            self._listener = socket.create_server((host, port), backlog=backlog)
        except OSError as error:
            raise translate_os_error(error, f"listen on {host}:{port}") from error
        self._address: tuple[str, int] = self._listener.getsockname()[:2]
        self._closed = False
        log.debug("listening on %s", self._address)

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on."""
        return self._address

    @property
    def port(self) -> int:
        """The port the server listens on, chosen by the OS when 0 was asked for."""
        return self._address[1]

    def accept(self, *, timeout_s: float | None = DEFAULT_TIMEOUT_S) -> FramedConnection:
        """Wait up to ``timeout_s`` seconds for a client and return its connection.

        Pass ``timeout_s=None`` to wait forever. The connection gets the
        server's ``nodelay``, ``max_frame_bytes`` and ``timeout_s``.
        """
        if self._closed:
            raise EndpointClosed(f"{self!r} is closed")
        timeout = check_timeout(timeout_s)
        self._listener.settimeout(timeout)
        address = format_address(self._address)
        try:
            sock, _ = self._listener.accept()
        except TimeoutError as error:
            raise MessagingTimeout(
                f"accept on {address} timed out after {format_seconds(timeout)}: no client "
                f"connected in time. Check that the client connects to port {self.port}, "
                f"or raise timeout_s"
            ) from error
        except OSError as error:
            raise translate_os_error(error, f"accept on {address}") from error
        return self._wrap(sock)

    def _wrap(self, sock: socket.socket) -> FramedConnection:
        try:
            if self.nodelay:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                # wrap_socket takes over the descriptor and closes it if it raises.
                sock = self.ssl_context.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                )
            conn = FramedConnection(
                sock, max_frame_bytes=self.max_frame_bytes, timeout_s=self.timeout_s
            )
        except BaseException:
            sock.close()
            raise
        self.connections_accepted += 1
        log.debug("accepted %s on %s", conn.peer_address, self._address)
        return conn

    def fileno(self) -> int:
        """Return the listening socket's descriptor, so a selector can wait on the server."""
        return self._listener.fileno()

    def close(self) -> None:
        """Stop listening and free the port. Accepted connections stay open."""
        if not self._closed:
            self._closed = True
            self._listener.close()

    def __enter__(self) -> FramedServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "listening"
        if self.ssl_context is not None:
            state += " (TLS)"
        return (
            f"<FramedServer {state} on {format_address(self._address)}, "
            f"{self.connections_accepted} accepted>"
        )
