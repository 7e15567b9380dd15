"""The lookup service: one small networked task that every asynchronous style solves.

Section 3.2 of the book writes the same two-step task in blocking, callback,
future, promise and event styles. The task needs a real server, and this
module provides it, with the wire format and a plain blocking client:

1. Ask for ``user:alice``. The server replies with an account id, ``"42"``.
2. Ask for ``balance:42``, a key that depends on the first reply. The server
   replies ``"100"``.

Each request and reply is one JSON object in one ``msgpass.framing`` frame,
for example ``{"op": "get", "key": "user:alice", "id": 7}``. The encoders and
decoders live in ``msgpass.styles.lookup_wire``, which documents the format,
and are imported from here. Error codes are ``not_found``, ``bad_request`` and
``unavailable`` (an injected failure, see ``Faults``). Clients raise
``msgpass.errors.RemoteError`` with that code.

The server can misbehave on purpose, so that each style's failure paths and
timeouts can be shown. ``delay_s`` adds a service delay to every request.
``Faults`` drops or fails replies every k-th request, with a seeded
probability, or for chosen keys, and it can hold a reply until the test
releases it.

Left out on purpose: authentication, writes, and persistence. The data is a
dict given to the server.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from types import TracebackType

from ..errors import MessagingTimeout, ProtocolError, RemoteError
from ..tcp import DEFAULT_TIMEOUT_S, FramedConnection, ThreadedServer, check_timeout, connect
from .lookup_wire import decode_reply, decode_request, encode_reply, encode_request

__all__ = [
    "DEFAULT_DATA",
    "Faults",
    "LookupServer",
    "LookupClient",
    "encode_request",
    "decode_request",
    "encode_reply",
    "decode_reply",
    "user_key",
    "balance_key",
    "fetch_balance_blocking",
]

log = logging.getLogger(__name__)

DEFAULT_DATA: dict[str, str] = {
    "user:alice": "42",
    "balance:42": "100",
    "user:bob": "7",
    "balance:7": "250",
    # carol has an account id but no balance, so her second step fails.
    "user:carol": "13",
}
STOP_TIMEOUT_S = 5.0  # how long stop() waits for the server's threads


def user_key(user: str) -> str:
    """Return the key of the first step: the user's account id."""
    return f"user:{user}"


def balance_key(account_id: str) -> str:
    """Return the key of the second step: the balance of an account."""
    return f"balance:{account_id}"


# -- the server -----------------------------------------------------------------


@dataclass(frozen=True)
class Faults:
    """Misbehaviour the server injects, to exercise clients' failure paths.

    A dropped request gets no reply, so the client's timeout fires. A failed
    request gets an ``unavailable`` error reply. A held request gets its reply
    only after ``LookupServer.release_held()``, which lets a test produce a
    late reply without guessing at timings.

    ``*_every`` counts requests from 1 in arrival order (0 turns it off), and
    ``*_probability`` draws from a ``random.Random(seed)``, once per request.
    Both are reproducible only when requests arrive in a fixed order, for
    example from one client that waits for each reply.
    """

    drop_every: int = 0
    fail_every: int = 0
    drop_probability: float = 0.0
    fail_probability: float = 0.0
    drop_keys: frozenset[str] = frozenset()
    fail_keys: frozenset[str] = frozenset()
    hold_keys: frozenset[str] = frozenset()
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop_every", "fail_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (off) or a positive count of requests")
        for name in ("drop_probability", "fail_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)!r}")


class LookupServer:
    """The lookup service on a ``msgpass.tcp.ThreadedServer``, one thread per client.

    It binds ``127.0.0.1`` and a free port. Use it as a context manager so that
    its threads and sockets are gone afterwards::

        with LookupServer() as server:
            print(fetch_balance_blocking(server.port, "alice", timeout_s=1.0))  # 100

    ``delay_s`` is the service time added to every request. ``faults``
    injects dropped, failed and held replies. ``stats()`` counts what happened.
    """

    def __init__(
        self,
        data: dict[str, str] | None = None,
        *,
        delay_s: float = 0.0,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if delay_s < 0:
            raise ValueError(f"delay_s must be 0 or more seconds, got {delay_s!r}")
        self.data = dict(DEFAULT_DATA if data is None else data)
        self.delay_s = delay_s
        self.faults = Faults() if faults is None else faults
        self._random = random.Random(self.faults.seed)
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._held: list[threading.Event] = []
        self._counts = dict.fromkeys(
            ("requests", "replies", "not_found", "bad_requests", "dropped", "failed", "held"), 0
        )
        self._server = ThreadedServer(self._handle, host, port, name="lookup-server")

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self._server.port

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on."""
        return self._server.address

    def start(self) -> LookupServer:
        """Start serving and return the server."""
        self._server.start()
        return self

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Release held replies, cut delays short, and stop every server thread."""
        self._stopping.set()
        self.release_held()
        self._server.stop(timeout_s)

    def __enter__(self) -> LookupServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _handle(self, payload: bytes) -> bytes | None:
        """Serve one request; runs on the connection's thread and returns the reply."""
        try:
            key, request_id = decode_request(payload)
        except ProtocolError as error:
            self._count("requests", "bad_requests")
            log.info("lookup server: bad request %r: %s", payload[:80], error)
            return encode_reply(None, code="bad_request", error=str(error))

        with self._lock:
            self._counts["requests"] += 1
            number = self._counts["requests"]
            fault = self._choose_fault(number, key)
        if self.delay_s > 0:
            # Service time; wait() returns early when stop() is called.
            self._stopping.wait(self.delay_s)

        if fault == "drop":
            self._count("dropped")
            log.debug("lookup server: dropping request %s (%s)", request_id, key)
            return None
        if fault == "hold":
            self._wait_until_released(request_id, key)
        if fault == "fail":
            self._count("failed", "replies")
            return encode_reply(
                request_id, code="unavailable", error=f"injected failure for request {number}"
            )
        value = self.data.get(key)
        if value is None:
            self._count("not_found", "replies")
            return encode_reply(request_id, code="not_found", error=f"not found: {key}")
        self._count("replies")
        return encode_reply(request_id, value=value)

    def _choose_fault(self, number: int, key: str) -> str | None:
        faults = self.faults
        # Draw both numbers for every request, so the sequence does not depend on the keys.
        drop_draw = self._random.random()
        fail_draw = self._random.random()
        if key in faults.hold_keys:
            return "hold"
        dropped = key in faults.drop_keys or drop_draw < faults.drop_probability
        if dropped or (faults.drop_every and number % faults.drop_every == 0):
            return "drop"
        failed = key in faults.fail_keys or fail_draw < faults.fail_probability
        if failed or (faults.fail_every and number % faults.fail_every == 0):
            return "fail"
        return None

    def _wait_until_released(self, request_id: int | None, key: str) -> None:
        released = threading.Event()
        with self._lock:
            self._held.append(released)
            self._counts["held"] += 1
            self._lock.notify_all()
        log.debug("lookup server: holding the reply to request %s (%s)", request_id, key)
        if self._stopping.is_set():
            return
        # No timeout needed: release_held() and stop() both set the event.
        released.wait()

    def release_held(self) -> int:
        """Let every held reply go out now, and return how many were released."""
        with self._lock:
            held, self._held = self._held, []
        for event in held:
            event.set()
        return len(held)

    def wait_held(self, count: int, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Wait until ``count`` requests have been held in total (including released ones).

        Raises ``MessagingTimeout`` after ``timeout_s`` seconds. Tests use it to
        know that a request reached the server before they time it out or cancel it.
        """
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._counts["held"] < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise MessagingTimeout(
                        f"only {self._counts['held']} of {count} requests were held "
                        f"after {timeout_s} s; did the client send them?"
                    )
                self._lock.wait(remaining)

    def _count(self, *names: str) -> None:
        with self._lock:
            for name in names:
                self._counts[name] += 1

    def stats(self) -> dict[str, int]:
        """Request counters and the TCP server's connection counters."""
        with self._lock:
            counts = dict(self._counts)
        tcp_stats = self._server.stats()
        counts["connections_accepted"] = tcp_stats["connections_accepted"]
        counts["connections_open"] = tcp_stats["connections_open"]
        return counts

    def __repr__(self) -> str:
        host, port = self.address
        return (
            f"<LookupServer on {host}:{port}, {len(self.data)} keys, delay {self.delay_s} s, "
            f"{self._counts['requests']} requests>"
        )


# -- the blocking client ----------------------------------------------------------


class LookupClient:
    """A blocking client with one connection: ``get`` sends a request and waits for its reply.

    ``timeout_s`` is the default of every ``get``. A reply to an earlier
    request that timed out is recognised by its id and skipped, so it cannot
    be taken for the reply to a later request. Use the client from one
    thread at a time::

        with LookupClient(server.port) as client:
            account = client.get("user:alice")  # "42"
    """

    def __init__(
        self, port: int, host: str = "127.0.0.1", *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.timeout_s = check_timeout(timeout_s)
        self._conn: FramedConnection = connect(host, port, timeout_s=timeout_s)
        self._next_id = 1
        self.requests_sent = 0
        self.replies_received = 0
        self.late_replies = 0

    def get(self, key: str, *, timeout_s: float | None = None) -> str:
        """Return the value stored under ``key``, waiting at most ``timeout_s`` seconds.

        Raises ``RemoteError`` when the server replies with an error (code
        ``not_found`` for a missing key), ``MessagingTimeout`` when no reply
        comes in time, and ``ConnectionClosed`` when the server has gone.
        """
        timeout = self.timeout_s if timeout_s is None else check_timeout(timeout_s)
        request_id = self._next_id
        self._next_id += 1
        deadline = None if timeout is None else time.monotonic() + timeout
        self._conn.send(encode_request(key, request_id), timeout_s=timeout)
        self.requests_sent += 1
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise MessagingTimeout(f"get {key!r} (request {request_id}) timed out")
            try:
                payload = self._conn.recv(timeout_s=remaining)
            except MessagingTimeout as error:
                message = f"get {key!r} (request {request_id}) timed out after {timeout} s"
                raise MessagingTimeout(message) from error
            reply_id, outcome = decode_reply(payload)
            if reply_id == request_id:
                break
            self.late_replies += 1
            log.debug(
                "skipping late reply to request %s while waiting for %s", reply_id, request_id
            )
        self.replies_received += 1
        if isinstance(outcome, RemoteError):
            raise outcome
        return outcome

    def close(self) -> None:
        """Close the connection. Calling it again does nothing."""
        self._conn.close()

    def __enter__(self) -> LookupClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        """Request and reply counters."""
        return {
            "requests_sent": self.requests_sent,
            "replies_received": self.replies_received,
            "late_replies": self.late_replies,
        }

    def __repr__(self) -> str:
        state = "closed" if self._conn.closed else "open"
        return f"<LookupClient {state}, {self.requests_sent} requests sent>"


def fetch_balance_blocking(
    port: int, user: str, timeout_s: float = DEFAULT_TIMEOUT_S, host: str = "127.0.0.1"
) -> str:
    """Run the two-step task in blocking style and return ``user``'s balance.

    Each step waits at most ``timeout_s`` seconds. The code reads top to
    bottom, and errors travel up the stack by themselves: this is what every
    other style tries to get back.
    """
    with LookupClient(port, host, timeout_s=timeout_s) as client:
        account_id = client.get(user_key(user))
        return client.get(balance_key(account_id))
