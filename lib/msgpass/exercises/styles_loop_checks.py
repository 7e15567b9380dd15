"""The checkers of the two exercises in lab 7 (an event loop from scratch).

``once-emitter``. The learner completes ``once(event, fn)`` of a minimal
event emitter class whose ``on``, ``off`` and ``emit`` are given. ``off``
recognises a wrapper by its ``listener`` attribute, as Node.js does. The
checker asserts that the listener runs exactly once, with the emitted
arguments and in its registration order. ``off(event, fn)`` with the
original function must remove it. It must still run once when a listener
emits the same event again (a re-entrant emit) or raises.

``selectors-echo-handler``. The learner writes ``on_readable`` and
``on_writable`` of a connection class for a non-blocking echo server. The
checker runs the server loop itself (accept, ``select``, dispatch to the
connection registered as ``key.data``) on 127.0.0.1 and port 0 in a helper
thread, then drives it with real clients: several at once, a large payload to
a reader with a small ``SO_RCVBUF`` (which forces partial writes on the
server), and an idle client. Every byte must come back in order, the server
must close each connection after the client's end of stream, and an idle
connection must not make the loop spin.
"""

from __future__ import annotations

import contextlib
import random
import selectors
import socket
import threading
import time
from typing import Any

from .checking import Check, CheckFailed, CheckReport, expect_equal, short_repr

__all__ = [
    "ECHO_EXERCISE_ID",
    "ONCE_EXERCISE_ID",
    "EchoHarness",
    "check_echo_handlers",
    "check_once_emitter",
]

ONCE_EXERCISE_ID = "once-emitter"
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
# once-emitter
# ---------------------------------------------------------------------------


class _Recorder:
    """A listener that records the arguments of every call."""

    def __init__(self, name: str, calls: list[tuple[str, tuple[Any, ...]]]) -> None:
        self.name = name
        self.calls = calls

    def __call__(self, *args: Any) -> None:
        self.calls.append((self.name, args))

    def __repr__(self) -> str:
        return f"<listener {self.name}>"


def _names(calls: list[tuple[str, tuple[Any, ...]]]) -> list[str]:
    return [name for name, _ in calls]


def check_runs_once(emitter_class: Any, rng: random.Random) -> None:
    emitter = emitter_class()
    calls: list[tuple[str, tuple[Any, ...]]] = []
    emitter.once("ping", _Recorder("fn", calls))
    first = emitter.emit("ping")
    second = emitter.emit("ping")
    expect_equal(len(calls), 1, "the number of calls after two emits")
    expect_equal(first, True, "the first emit()'s return value (a listener ran)")
    expect_equal(
        second,
        False,
        "the second emit()'s return value (no listener left)",
        hint="the once listener must remove its own registration when it fires",
    )


def check_arguments(emitter_class: Any, rng: random.Random) -> None:
    emitter = emitter_class()
    calls: list[tuple[str, tuple[Any, ...]]] = []
    args = (rng.randint(1, 1000), "two", {"three": 3})
    emitter.once("data", _Recorder("fn", calls))
    emitter.emit("data", *args)
    expect_equal(calls, [("fn", args)], "the calls recorded")


def check_order(emitter_class: Any, rng: random.Random) -> None:
    emitter = emitter_class()
    calls: list[tuple[str, tuple[Any, ...]]] = []
    emitter.on("tick", _Recorder("a", calls))
    emitter.once("tick", _Recorder("b", calls))
    emitter.on("tick", _Recorder("c", calls))
    emitter.emit("tick")
    emitter.emit("tick")
    expect_equal(
        _names(calls),
        ["a", "b", "c", "a", "c"],
        "the listeners called by two emits of on(a), once(b), on(c)",
        hint="register the wrapper with self.on(), so it keeps its place among the others",
    )


def check_off_with_original(emitter_class: Any, rng: random.Random) -> None:
    emitter = emitter_class()
    calls: list[tuple[str, tuple[Any, ...]]] = []
    fn = _Recorder("fn", calls)
    emitter.once("ping", fn)
    removed = emitter.off("ping", fn)
    emitter.emit("ping")
    expect_equal(
        removed,
        True,
        "off('ping', fn) after once('ping', fn)",
        hint="set wrapper.listener = fn, so off() can find the wrapper by the original function",
    )
    expect_equal(calls, [], "the calls after off()")


def check_reentrant_emit(emitter_class: Any, rng: random.Random) -> None:
    emitter = emitter_class()
    calls: list[tuple[str, tuple[Any, ...]]] = []

    def emits_again(*args: Any) -> None:
        calls.append(("fn", args))
        if len(calls) < 5:  # a wrong answer would recurse; stop it after a few levels
            emitter.emit("ping", "again")

    emitter.once("ping", emits_again)
    emitter.emit("ping", "first")
    expect_equal(
        calls,
        [("fn", ("first",))],
        "the calls of a once listener that emits its own event",
        hint="remove the registration before calling fn, so an emit inside fn does not find it",
    )


def check_reentrant_two_listeners(emitter_class: Any, rng: random.Random) -> None:
    emitter = emitter_class()
    calls: list[tuple[str, tuple[Any, ...]]] = []

    def first(*args: Any) -> None:
        calls.append(("first", args))
        emitter.emit("ping", "inner")

    emitter.once("ping", first)
    emitter.once("ping", _Recorder("second", calls))
    emitter.emit("ping", "outer")
    # A snapshot-based emit runs "second" inside the inner emit. An emit that claims
    # once listeners when it takes its snapshot runs it in the outer emit instead.
    # Both are right, as long as each once listener runs exactly once.
    expect_equal(
        sorted(_names(calls)),
        ["first", "second"],
        "the listeners run when the first of two once listeners emits the event again",
        hint="emit() calls a snapshot of the listeners, so an outer emit may still call "
        "a wrapper that already ran: keep a 'fired' flag in the wrapper and return if set",
    )


def check_removed_when_raising(emitter_class: Any, rng: random.Random) -> None:
    emitter = emitter_class()
    calls: list[tuple[str, tuple[Any, ...]]] = []

    def fails(*args: Any) -> None:
        calls.append(("fails", args))
        raise ValueError("listener failed")

    emitter.once("ping", fails)
    with contextlib.suppress(ValueError):  # the given emit() lets the exception propagate
        emitter.emit("ping")
    emitter.emit("ping")
    expect_equal(
        len(calls),
        1,
        "the calls of a once listener that raised, after two emits",
        hint="remove the registration before calling fn, so it is gone even if fn raises",
    )


def check_once_emitter(emitter_class: Any, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check the ``once`` method of a learner's minimal event emitter class.

    Prints one line and returns a ``CheckReport`` when every check passes.
    Raises ``ExerciseFailed`` naming the first failed check, with a hint.
    """
    check = Check(ONCE_EXERCISE_ID, seed=seed)
    check.add(
        "runs exactly once",
        check_runs_once,
        hint="register a wrapper with self.on(); the wrapper removes itself with "
        "self.off() and then calls fn",
    )
    check.add("arguments passed", check_arguments, hint="call fn(*args) with the emitted args")
    check.add("order among listeners", check_order, hint="register the wrapper with self.on()")
    check.add(
        "off with the original function",
        check_off_with_original,
        hint="set wrapper.listener = fn before registering the wrapper",
    )
    check.add(
        "re-entrant emit",
        check_reentrant_emit,
        hint="remove the registration before calling fn",
    )
    check.add(
        "re-entrant emit, two once listeners",
        check_reentrant_two_listeners,
        hint="keep a 'fired' flag in the wrapper and return at once if it is set",
    )
    check.add(
        "removed when the listener raises",
        check_removed_when_raising,
        hint="remove the registration before calling fn",
    )
    return check.run(emitter_class, quiet=quiet)


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
    check = Check(ECHO_EXERCISE_ID, seed=seed)
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
