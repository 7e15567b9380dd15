"""The checker of exercise ``selectors-echo-handler`` in lab 7 (an event loop from scratch).

The learner writes ``on_readable`` and ``on_writable`` of a connection class
for a non-blocking echo server. The checker runs the server loop itself
(``EchoHarness``: accept, ``select``, dispatch to the connection registered as
``key.data``) on 127.0.0.1 and port 0 in a helper thread, then drives it with
real clients: several at once, a large payload to a reader with a small
``SO_RCVBUF`` (which forces partial writes on the server), and an idle
client. Every byte must come back in order, the server must close each
connection after the client's end of stream, and an idle connection must not
make the loop spin.

``styles_loop_checks`` re-exports ``EchoHarness`` and ``check_echo_handlers``.
"""

from __future__ import annotations

import random
import selectors
import socket
import threading
import time
from typing import Any

from .checking import CheckFailed, CheckReport, expect_equal, short_repr
from .timed_calls import TimedCheck

__all__ = [
    "ECHO_EXERCISE_ID",
    "EchoHarness",
    "check_echo_handlers",
]

ECHO_EXERCISE_ID = "selectors-echo-handler"

SELECT_TIMEOUT_S = 0.05  # the harness loop checks its stop flag this often
CLIENT_TIMEOUT_S = 3.0  # every blocking client call gives up after this long
STOP_TIMEOUT_S = 5.0  # how long stopping the harness may take
CONCURRENT_CLIENTS = 6
MAX_CLIENT_PAYLOAD_BYTES = 200 * 1024
LARGE_PAYLOAD_BYTES = 4 * 1024 * 1024
SLOW_READER_RCVBUF_BYTES = 4096  # Linux doubles the value given (socket(7))
SLOW_READER_RECV_BYTES = 1024
# SO_SNDBUF of the server's sockets in the slow-reader check. The slow reader
# starts reading only after it has sent the whole payload, so the server's
# send buffer and the reader's receive buffer together hold far less than the
# payload, and send() must return short counts. Smaller send buffers stalled
# on delayed ACKs on Linux (see the NOTE in msgpass.styles.eventloop_echo).
SLOW_READER_SERVER_SNDBUF_BYTES = 128 * 1024
IDLE_WINDOW_S = 0.2
# A correct server makes no on_writable() call while a connection is idle. One
# that keeps EVENT_WRITE registered makes one per select(), thousands in the window.
MAX_IDLE_WRITABLE_CALLS = 5


# ---------------------------------------------------------------------------
# selectors-echo-handler: the server loop the learner's handlers run in
# ---------------------------------------------------------------------------


class EchoHarness:
    """A selectors server loop that runs a learner's connection class in a helper thread.

    Accepted sockets are handed to ``connection_class(selector, sock)``, which
    registers itself as ``key.data``. The loop calls ``on_readable()`` and
    ``on_writable()`` as the selector reports readiness. An exception raised
    by a handler stops the loop and is re-raised by ``stop()``, so the report
    points at the learner's line. ``stop()`` closes whatever the learner left
    open.
    """

    def __init__(self, connection_class: Any, send_buffer_bytes: int | None = None) -> None:
        self.connection_class = connection_class
        self.send_buffer_bytes = send_buffer_bytes
        self.connections: list[Any] = []
        self.writable_calls = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._run, name="checker-echo-loop", daemon=True)

    def __enter__(self) -> EchoHarness:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop(raise_error=False)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for key, mask in self._selector.select(SELECT_TIMEOUT_S):
                    if key.data is None:
                        self._accept()
                    else:
                        self._dispatch(key.data, key.fileobj, mask)
        except BaseException as error:  # re-raised by stop() in the checking thread
            self.error = error

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            if self.send_buffer_bytes is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)
            self.connections.append(self.connection_class(self._selector, sock))

    def _dispatch(self, connection: Any, sock: Any, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            connection.on_readable()
        # on_readable() may have closed the socket or stopped watching it for writing.
        if mask & selectors.EVENT_WRITE and sock.fileno() != -1 and self._watching(sock):
            self.writable_calls += 1
            connection.on_writable()

    def _watching(self, sock: Any) -> bool:
        try:
            return bool(self._selector.get_key(sock).events & selectors.EVENT_WRITE)
        except KeyError:
            return False

    def open_connections(self) -> int:
        """Return how many accepted sockets the learner's code has not closed yet."""
        return sum(1 for connection in self.connections if connection.sock.fileno() != -1)

    def stop(self, raise_error: bool = True) -> None:
        """Stop the loop, close every socket, and re-raise a handler's exception."""
        self._stop.set()
        self._thread.join(STOP_TIMEOUT_S)
        stopped = not self._thread.is_alive()
        if stopped:
            for connection in self.connections:
                connection.sock.close()
            self._selector.close()
        self._listener.close()
        if raise_error and self.error is not None:
            raise self.error
        if raise_error and not stopped:
            raise CheckFailed(
                expected=f"the server loop to stop within {STOP_TIMEOUT_S} s",
                actual="a handler is still running; does it block or loop forever?",
                hint="handlers must never block: call recv() and send() once per event",
            )


class _Client:
    """One echo client in a thread: send the payload in pieces, shut down, read to EOF."""

    def __init__(
        self, port: int, payload: bytes, pieces: list[int], *, slow_reader: bool = False
    ) -> None:
        self.payload = payload
        self.pieces = pieces
        self.received = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.recv_bytes = 65536
        self.slow_reader = slow_reader
        self._written = threading.Event()
        if slow_reader:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_READER_RCVBUF_BYTES)
            self.recv_bytes = SLOW_READER_RECV_BYTES
        self.sock.settimeout(CLIENT_TIMEOUT_S)
        self.sock.connect(("127.0.0.1", port))
        self._reader = threading.Thread(target=self._read, name="checker-client-read", daemon=True)
        self._writer = threading.Thread(
            target=self._write, name="checker-client-write", daemon=True
        )

    def start(self) -> None:
        self._reader.start()
        self._writer.start()

    def _write(self) -> None:
        try:
            offset = 0
            for size in self.pieces:
                self.sock.sendall(self.payload[offset : offset + size])
                offset += size
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as error:
            self.error = self.error or error
        finally:
            self._written.set()

    def _read(self) -> None:
        # A slow reader lets the echo pile up in the server until it has sent everything.
        if self.slow_reader and not self._written.wait(CLIENT_TIMEOUT_S):
            return
        try:
            while chunk := self.sock.recv(self.recv_bytes):
                self.received += chunk
            self.eof = True
        except OSError as error:
            self.error = self.error or error

    def join(self, deadline: float) -> None:
        for thread in (self._writer, self._reader):
            thread.join(max(0.0, deadline - time.monotonic()))

    def running(self) -> bool:
        return self._writer.is_alive() or self._reader.is_alive()

    def close(self) -> None:
        self.sock.close()


def _random_pieces(rng: random.Random, total: int) -> list[int]:
    pieces = []
    while total > 0:
        size = min(total, rng.randint(1, 64 * 1024))
        pieces.append(size)
        total -= size
    return pieces


def _run_clients(harness: EchoHarness, clients: list[_Client], what: str) -> None:
    """Run the clients to the end and check every byte, the EOF, and the server's state."""
    try:
        for client in clients:
            client.start()
        deadline = time.monotonic() + CLIENT_TIMEOUT_S * 2
        # Poll with a deadline, so a handler that raised ends the check at once.
        while time.monotonic() < deadline and harness.error is None:
            if not any(client.running() for client in clients):
                break
            for client in clients:
                client.join(min(deadline, time.monotonic() + SELECT_TIMEOUT_S))
        if harness.error is not None:
            harness.stop()  # re-raises the learner's exception with its traceback
        for index, client in enumerate(clients):
            _check_client(client, index, what)
        _wait_closed(harness, what)
    finally:
        for client in clients:
            client.close()


def _check_client(client: _Client, index: int, what: str) -> None:
    sent = len(client.payload)
    got = len(client.received)
    if bytes(client.received) != client.payload[:got]:
        first_bad = next(i for i in range(got) if client.received[i] != client.payload[i])
        raise CheckFailed(
            expected=f"client {index} ({what}) to get its bytes back in order",
            actual=f"byte {first_bad} of {got} received differs from what it sent",
            hint="echo the bytes in the order received; after send(), drop only the "
            "bytes it reports as sent",
        )
    if got < sent:
        raise CheckFailed(
            expected=f"client {index} ({what}) to get all {sent} bytes back",
            actual=f"{got} bytes, then "
            + ("the server closed the connection" if client.eof else f"nothing ({client.error})"),
            hint="send() may take only part of the buffer: keep the rest, and watch "
            "EVENT_WRITE until the buffer is empty; close only when nothing is left to send",
        )
    if got > sent:
        raise CheckFailed(
            expected=f"client {index} ({what}) to get exactly {sent} bytes back",
            actual=f"{got} bytes: some were sent twice",
        )
    if not client.eof:
        raise CheckFailed(
            expected=f"the server to close client {index}'s connection after its end of stream",
            actual=f"the connection stayed open ({short_repr(client.error)})",
            hint="recv() returning b'' means the client is done sending: close the "
            "connection once its echo has been sent",
        )


def _wait_closed(harness: EchoHarness, what: str) -> None:
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while harness.open_connections() and time.monotonic() < deadline:
        time.sleep(SELECT_TIMEOUT_S)  # polling with a deadline for the server thread to close
    if harness.open_connections():
        raise CheckFailed(
            expected=f"every server-side socket closed after {what}",
            actual=f"{harness.open_connections()} still open",
            hint="call self.close() when the peer is done and nothing is left to send",
        )


def check_one_client(connection_class: Any, rng: random.Random) -> None:
    with EchoHarness(connection_class) as harness:
        clients = [_Client(harness.port, b"hello, selectors", [5, 11])]
        clients.append(_Client(harness.port, b"", []))  # connects and sends nothing
        _run_clients(harness, clients, "one short message, and one empty connection")
        harness.stop()


def check_concurrent_clients(connection_class: Any, rng: random.Random) -> None:
    with EchoHarness(connection_class) as harness:
        clients = []
        for _ in range(CONCURRENT_CLIENTS):
            payload = rng.randbytes(rng.randint(1, MAX_CLIENT_PAYLOAD_BYTES))
            clients.append(_Client(harness.port, payload, _random_pieces(rng, len(payload))))
        _run_clients(harness, clients, f"{CONCURRENT_CLIENTS} clients at once")
        harness.stop()


def check_slow_reader(connection_class: Any, rng: random.Random) -> None:
    with EchoHarness(connection_class, SLOW_READER_SERVER_SNDBUF_BYTES) as harness:
        payload = rng.randbytes(LARGE_PAYLOAD_BYTES)
        client = _Client(harness.port, payload, _random_pieces(rng, len(payload)), slow_reader=True)
        _run_clients(harness, [client], f"a {LARGE_PAYLOAD_BYTES // 2**20} MiB slow reader")
        harness.stop()


def check_idle_connection(connection_class: Any, rng: random.Random) -> None:
    with EchoHarness(connection_class) as harness:
        with socket.create_connection(("127.0.0.1", harness.port), CLIENT_TIMEOUT_S) as sock:
            sock.sendall(b"ping")
            reply = b""
            while len(reply) < 4:
                chunk = sock.recv(4)
                if not chunk:
                    break
                reply += chunk
            expect_equal(reply, b"ping", "the echo of b'ping'")
            calls_before = harness.writable_calls
            # A measurement window, not a wait for an event: count handler calls while idle.
            time.sleep(IDLE_WINDOW_S)
            idle_calls = harness.writable_calls - calls_before
        if idle_calls > MAX_IDLE_WRITABLE_CALLS:
            raise CheckFailed(
                expected=f"at most {MAX_IDLE_WRITABLE_CALLS} on_writable() calls on an idle "
                f"connection in {IDLE_WINDOW_S} s",
                actual=f"{idle_calls} calls: the loop spins",
                hint="a socket is almost always writable: watch EVENT_WRITE only while bytes "
                "wait to be sent, then modify() back to EVENT_READ",
            )
        harness.stop()


def check_echo_handlers(
    connection_class: Any, *, seed: int = 0, quiet: bool = False
) -> CheckReport:
    """Check a learner's echo connection class in a real selectors server on loopback.

    Prints one line and returns a ``CheckReport`` when every check passes.
    Raises ``ExerciseFailed`` naming the first failed check, with a hint.
    """
    check = TimedCheck(ECHO_EXERCISE_ID, seed=seed)
    check.add(
        "one client",
        check_one_client,
        hint="in on_readable(), append what recv() returns to self.outgoing and watch "
        "EVENT_WRITE; in on_writable(), send() and drop what was sent",
    )
    check.add(
        "several clients at once",
        check_concurrent_clients,
        hint="keep each connection's bytes in its own self.outgoing",
    )
    check.add(
        "large payload, slow reader",
        check_slow_reader,
        hint="send() on a non-blocking socket may take only part of the buffer, and "
        "sendall() raises BlockingIOError midway: keep the rest for the next on_writable()",
    )
    check.add(
        "idle connection does not spin",
        check_idle_connection,
        hint="modify() the registration back to EVENT_READ once self.outgoing is empty",
    )
    return check.run(connection_class, quiet=quiet)
