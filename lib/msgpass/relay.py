"""A loopback TCP relay that forwards bytes and records them, to show what the wire carries.

Anyone on the path between two programs (a switch, a Wi-Fi access point, a
compromised router) sees every byte they exchange. ``Relay`` plays that
observer on one machine: it listens on ``127.0.0.1``, and for each client
that connects it opens a connection to the target server, forwards bytes in
both directions unchanged, and keeps a copy of each chunk it forwarded. A lab
points a client at ``relay.port`` instead of the server's port, then searches
``relay.captured()`` for the plaintext::

    with Relay(target_port=server.port) as relay:
        with connect(port=relay.port) as conn:
            conn.send(b"secret")
            conn.recv()
        assert b"secret" in relay.captured("client->server")

One thread serves every connection with a selector. It waits in the selector
with no timeout, and ``stop()`` wakes it through a socket pair, closes every
socket and joins the thread. A reset or any other error on one connection
closes that connection only. An error the relay did not expect is also logged
with the connection number, and the thread goes on serving the others.

Left out on purpose: changing, dropping or injecting bytes (an active
attacker), and IPv6.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
from dataclasses import dataclass
from types import TracebackType

from .errors import MessagingTimeout, translate_os_error
from .tcp_common import check_port, check_timeout, format_address

__all__ = ["CLIENT_TO_SERVER", "SERVER_TO_CLIENT", "Chunk", "Relay"]

log = logging.getLogger(__name__)

CLIENT_TO_SERVER = "client->server"
SERVER_TO_CLIENT = "server->client"
CHUNK_BYTES = 64 * 1024  # the maximum size of one recv
DEFAULT_MAX_CAPTURE_BYTES = 4 * 1024 * 1024  # bytes kept; later chunks are forwarded, not kept
DEFAULT_TIMEOUT_S = 5.0  # for connecting to the target and for each forwarding send


@dataclass(frozen=True)
class Chunk:
    """The bytes one ``recv`` read on one connection, forwarded unchanged."""

    connection: int
    direction: str
    data: bytes


class _Pipe:
    """One client connection and its connection to the target."""

    def __init__(self, number: int, client: socket.socket, server: socket.socket) -> None:
        self.number = number
        self.peer = {client: server, server: client}
        self.direction = {client: CLIENT_TO_SERVER, server: SERVER_TO_CLIENT}
        self.open_directions = 2  # each ends when its sender closes its side

    def close(self) -> None:
        for sock in self.peer:
            with contextlib.suppress(OSError):
                sock.close()


class Relay:
    """Forward every connection made to ``port`` to ``target_host:target_port``, and record it.

    ``captured(direction)`` returns the recorded bytes, ``chunks`` each
    recorded read. A chunk is recorded before it is forwarded, so whatever
    a peer has received is already there. At most ``max_capture_bytes`` are kept; later bytes are
    still forwarded and counted in ``stats()``. ``timeout_s`` bounds the
    connection to the target and each forwarding send.
    """

    def __init__(
        self,
        target_port: int,
        target_host: str = "127.0.0.1",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_capture_bytes: int = DEFAULT_MAX_CAPTURE_BYTES,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        name: str = "msgpass-relay",
    ) -> None:
        self.target = (target_host, check_port(target_port, required=True))
        check_port(port, required=False)
        if max_capture_bytes < 0:
            raise ValueError(f"max_capture_bytes must be 0 or more, got {max_capture_bytes}")
        self.max_capture_bytes = max_capture_bytes
        self.timeout_s = check_timeout(timeout_s)
        self.name = name
        try:
            self._listener = socket.create_server((host, port))
        except OSError as error:
            raise translate_os_error(error, f"listen on {host}:{port}") from error
        self._listener.setblocking(False)
        self._address: tuple[str, int] = self._listener.getsockname()[:2]
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._lock = threading.Lock()
        self._chunks: list[Chunk] = []
        self._captured_bytes = 0
        self._pipes: dict[socket.socket, _Pipe] = {}
        self._thread: threading.Thread | None = None
        self._state = "created"  # then "running", then "stopped"
        self.connections = 0
        self.bytes_forwarded = {CLIENT_TO_SERVER: 0, SERVER_TO_CLIENT: 0}
        self.bytes_not_captured = 0

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) clients connect to."""
        return self._address

    @property
    def port(self) -> int:
        """The port clients connect to instead of the target's."""
        return self._address[1]

    # -- starting and stopping -------------------------------------------

    def start(self) -> Relay:
        """Start the forwarding thread and return the relay. Raises if already started."""
        with self._lock:
            if self._state != "created":
                raise RuntimeError(f"{self!r} cannot start: it is {self._state}")
            self._state = "running"
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        log.info(
            "%s forwarding %s to %s",
            self.name,
            format_address(self._address),
            format_address(self.target),
        )
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop forwarding, close every socket and join the thread. Calling it again does nothing.

        Raises ``MessagingTimeout`` if the thread is still running after
        ``timeout_s`` seconds, which happens when a forwarding send is stuck.
        """
        with self._lock:
            previous, self._state = self._state, "stopped"
        if previous == "stopped":
            return
        if self._thread is not None:
            self._wake_writer.send(b"x")
            self._thread.join(timeout_s)
        for pipe in set(self._pipes.values()):
            pipe.close()
        self._pipes.clear()
        self._listener.close()
        self._wake_reader.close()
        self._wake_writer.close()
        if self._thread is not None and self._thread.is_alive():
            raise MessagingTimeout(
                f"{self.name}: thread still running {timeout_s} s after stop(); a forwarding "
                f"send is stuck because a peer does not read"
            )
        log.info("%s stopped after %d connections", self.name, self.connections)

    def __enter__(self) -> Relay:
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

    # -- the forwarding thread -------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        except Exception:
            # Only a failure of the selector itself gets here, because _serve handles the errors
            # of each connection. This log line explains why later connections hang.
            log.exception("%s: forwarding thread failed, so nothing more is forwarded", self.name)
            raise

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    sock = key.fileobj
                    if sock is self._wake_reader:
                        return
                    if sock is self._listener:
                        self._accept_logging_errors(selector)
                        continue
                    assert isinstance(sock, socket.socket)
                    # One select() can report both sockets of a connection. If handling the
                    # first one closed the connection, the second is no longer in _pipes.
                    pipe = self._pipes.get(sock)
                    if pipe is None:
                        continue
                    self._forward_logging_errors(selector, sock, pipe)

    def _accept_logging_errors(self, selector: selectors.BaseSelector) -> None:
        try:
            self._accept(selector)
        except Exception:
            log.exception("%s: accepting a connection failed unexpectedly", self.name)

    def _forward_logging_errors(
        self, selector: selectors.BaseSelector, sock: socket.socket, pipe: _Pipe
    ) -> None:
        """Forward one read, and close only this connection if that fails unexpectedly."""
        try:
            self._forward(selector, sock, pipe)
        except Exception:
            log.exception(
                "%s: connection %d failed unexpectedly while forwarding %s, so it is closed",
                self.name,
                pipe.number,
                pipe.direction[sock],
            )
            self._close_pipe(selector, pipe)

    def _accept(self, selector: selectors.BaseSelector) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return  # the client gave up between select and accept
        try:
            server = socket.create_connection(self.target, timeout=self.timeout_s)
        except OSError as error:
            log.warning(
                "%s: connecting to %s failed, so the client is dropped: %s",
                self.name,
                format_address(self.target),
                error,
            )
            client.close()
            return
        # Forwarding sends block for at most timeout_s. Reads happen only when the selector
        # reports data, so they return at once.
        # NOTE: a peer that stops reading stalls every connection of the relay for
        # up to timeout_s. A production proxy buffers per connection instead.
        client.settimeout(self.timeout_s)
        with self._lock:
            self.connections += 1
            pipe = _Pipe(self.connections, client, server)
            self._pipes[client] = pipe
            self._pipes[server] = pipe
        for sock in (client, server):
            selector.register(sock, selectors.EVENT_READ)
        log.debug("%s: connection %d opened", self.name, pipe.number)

    def _forward(self, selector: selectors.BaseSelector, sock: socket.socket, pipe: _Pipe) -> None:
        direction = pipe.direction[sock]
        try:
            data = sock.recv(CHUNK_BYTES)
            if data:
                # Recorded first, so bytes that reached the peer are already in captured().
                self._record(pipe.number, direction, data)
                pipe.peer[sock].sendall(data)
        except OSError as error:
            # A reset or a stuck send ends the whole connection, both directions.
            log.info("%s: connection %d ended: %s", self.name, pipe.number, error)
            self._close_pipe(selector, pipe)
            return
        if not data:
            # The sender closed its side, so close the same side towards the other peer.
            selector.unregister(sock)
            with contextlib.suppress(OSError):
                pipe.peer[sock].shutdown(socket.SHUT_WR)
            pipe.open_directions -= 1
            if pipe.open_directions == 0:
                self._close_pipe(selector, pipe)

    def _close_pipe(self, selector: selectors.BaseSelector, pipe: _Pipe) -> None:
        for sock in pipe.peer:
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(sock)
            with self._lock:
                self._pipes.pop(sock, None)
        pipe.close()
        log.debug("%s: connection %d closed", self.name, pipe.number)

    def _record(self, number: int, direction: str, data: bytes) -> None:
        with self._lock:
            self.bytes_forwarded[direction] += len(data)
            room = self.max_capture_bytes - self._captured_bytes
            kept = data[:room]
            self.bytes_not_captured += len(data) - len(kept)
            if kept:
                self._chunks.append(Chunk(connection=number, direction=direction, data=kept))
                self._captured_bytes += len(kept)

    # -- what was captured -----------------------------------------------

    @property
    def chunks(self) -> list[Chunk]:
        """A copy of every recorded chunk, in the order the relay forwarded them."""
        with self._lock:
            return list(self._chunks)

    def captured(self, direction: str | None = None) -> bytes:
        """Return the recorded bytes joined, of one direction or (``None``) of both.

        ``direction`` is ``CLIENT_TO_SERVER`` or ``SERVER_TO_CLIENT``. With
        both, the chunks of different connections and directions are joined
        in forwarding order, which suits a search for a plaintext.
        """
        if direction not in (None, CLIENT_TO_SERVER, SERVER_TO_CLIENT):
            raise ValueError(
                f"direction must be {CLIENT_TO_SERVER!r}, {SERVER_TO_CLIENT!r} or None, "
                f"got {direction!r}"
            )
        with self._lock:
            return b"".join(
                chunk.data
                for chunk in self._chunks
                if direction is None or chunk.direction == direction
            )

    def clear(self) -> None:
        """Forget what was recorded so far, so the next capture starts empty."""
        with self._lock:
            self._chunks.clear()
            self._captured_bytes = 0

    def stats(self) -> dict[str, int]:
        """Connection and byte counters, for display in a notebook."""
        with self._lock:
            return {
                "connections": self.connections,
                "open_connections": len(self._pipes) // 2,
                "bytes_client_to_server": self.bytes_forwarded[CLIENT_TO_SERVER],
                "bytes_server_to_client": self.bytes_forwarded[SERVER_TO_CLIENT],
                "bytes_captured": self._captured_bytes,
                "bytes_not_captured": self.bytes_not_captured,
            }

    def __repr__(self) -> str:
        return (
            f"<Relay {self.name!r} {self._state} {format_address(self._address)} -> "
            f"{format_address(self.target)}, {self.connections} connections>"
        )
