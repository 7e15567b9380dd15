"""REQ/REP on ZeroMQ: strict alternation, request ids, and a server that can lose replies.

A REQ socket enforces strict alternation: send one request, receive its
reply, only then send the next. ZeroMQ checks this in the socket itself, so a
second ``send`` before the ``recv`` fails with ``EFSM`` ("wrong state"). That
is safe until a reply is lost: the server crashed, dropped it, or the network
ate it. The REQ socket then waits for a reply that will never come, and it
refuses every new request. Polling with a timeout lets the client notice the
loss, but not recover on the same socket.

The Lazy Pirate pattern (``zmq_lazy_pirate``) recovers by throwing the stuck
socket away and resending. Retrying makes delivery *at least once*: when
only the reply was lost, the server has already run the request and runs it
again on the retry. So every request carries an id, and the reply carries it
back:

    request frames:  [request_id, payload]
    reply frames:    [request_id, status, payload]     status is b"ok" or b"error"

The client keeps only a reply whose id matches the request it is waiting for
(a late reply to an earlier attempt is counted as stale and ignored), and the
server counts requests whose id it has seen before. A real server uses the
same check to notice a retry and send the cached reply instead of running the
work twice.

``ReplyServer`` can drop replies on purpose, every N-th or with a seeded
probability, so the lab and the tests can watch Lazy Pirate work. To stay
silent, a server needs a ROUTER socket: a REP socket, like REQ, must send a
reply before it may receive again. ``ReplyServer`` therefore binds a ROUTER
and handles the envelope that REP would handle for it: ``[client routing id,
b"", request_id, payload]``.

Left out on purpose: a reply cache for duplicate requests, heartbeats
(Paranoid Pirate) and failover between several servers (Binary Star).
"""

from __future__ import annotations

import itertools
import logging
import random
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import zmq

from .errors import EndpointClosed, MessagingTimeout, ProtocolError, RequestFailed
from .zmq_common import (
    LOOPBACK_ANY_PORT,
    POLL_INTERVAL_MS,
    BackgroundService,
    Payload,
    ZmqContext,
    ZmqSocket,
    bind,
    check_payload,
    check_timeout_s,
    connect,
    open_socket,
    translate_zmq_error,
)

__all__ = [
    "STATUS_OK",
    "STATUS_ERROR",
    "Reply",
    "ReplyServer",
    "RequestClient",
    "request",
]

log = logging.getLogger(__name__)

STATUS_OK = b"ok"
STATUS_ERROR = b"error"
SEEN_IDS_KEPT = 4096  # request ids a server remembers for counting duplicates
DEFAULT_TIMEOUT_S = 1.0

_server_numbers = itertools.count(1)


@dataclass(frozen=True)
class Reply:
    """A reply that a ``LazyPirateClient`` accepted."""

    request_id: str
    payload: bytes
    attempts: int


class ReplyServer(BackgroundService):
    """A request/reply server in a background thread, able to drop replies on purpose.

    ``handler(payload) -> bytes`` computes each reply, and may return any
    bytes-like object (bytes, bytearray or memoryview). If it raises, or
    returns anything else (a ``str``, or None from a missing ``return``), the
    client gets a reply with status ``b"error"`` and the error's text, so it
    fails at once with ``RequestFailed`` instead of retrying a request that
    will always fail. The server counts it in ``handler_errors``, logs it
    with the request id and goes on serving.

    If the serving thread itself fails, ``state`` becomes ``"failed"``,
    ``stats()["error"]`` shows the exception and ``stop()`` raises it (see
    ``BackgroundService``).

    Dropping: with ``drop_every=3`` the server runs the handler for every
    request but does not send the reply to the 3rd, 6th, 9th... request it
    receives. With ``drop_probability=0.2`` it drops each reply with that
    probability, drawn from ``random.Random(seed)``, so a run is repeatable
    when the requests arrive in the same order. ``drop_every=1`` makes a
    server that never replies.

        with ReplyServer(lambda payload: payload.upper()) as server:
            print(request(server.endpoint, b"hello"))     # b'HELLO'
    """

    def __init__(
        self,
        handler: Callable[[bytes], Payload],
        endpoint: str = LOOPBACK_ANY_PORT,
        *,
        drop_every: int | None = None,
        drop_probability: float = 0.0,
        seed: int = 0,
        context: ZmqContext | None = None,
    ) -> None:
        if drop_every is not None and drop_every < 1:
            raise ValueError(f"drop_every must be at least 1 or None, got {drop_every}")
        if not 0.0 <= drop_probability <= 1.0:
            raise ValueError(f"drop_probability must be between 0 and 1, got {drop_probability}")
        super().__init__(f"reply-server-{next(_server_numbers)}", context)
        self._handler = handler
        self._requested_endpoint = endpoint
        self._endpoint: str | None = None
        self._drop_every = drop_every
        self._drop_probability = drop_probability
        self._random = random.Random(seed)
        self._seen_ids: OrderedDict[bytes, None] = OrderedDict()
        self._received = 0
        self._replied = 0
        self._dropped = 0
        self._duplicates = 0
        self._handler_errors = 0
        self._malformed = 0

    @property
    def endpoint(self) -> str:
        """The bound endpoint with its real port, for clients to connect to."""
        if self._endpoint is None:
            raise EndpointClosed(f"{self.name} is not started; call start() first")
        return self._endpoint

    def start(self) -> None:
        """Bind the ROUTER socket and start serving in a background thread."""
        self._check_new()
        socket = open_socket(self._context, zmq.ROUTER)
        try:
            self._endpoint = bind(socket, self._requested_endpoint)
        except BaseException:
            socket.close(linger=0)
            raise
        log.info("%s: serving on %s", self.name, self._endpoint)
        self._start_thread(lambda: self._serve(socket))

    def _serve(self, socket: ZmqSocket) -> None:
        try:
            while not self._stopping.is_set():
                if socket.poll(POLL_INTERVAL_MS, zmq.POLLIN):
                    self._handle(socket, socket.recv_multipart(zmq.NOBLOCK))
        finally:
            socket.close(linger=0)

    def _handle(self, socket: ZmqSocket, frames: list[bytes]) -> None:
        # A REQ client's message reaches a ROUTER as [routing id, b"", request id, payload].
        if len(frames) != 4 or frames[1] != b"":
            self._malformed += 1
            log.warning("%s: dropped a malformed request of %d frames", self.name, len(frames))
            return
        routing_id, _, request_id, payload = frames
        self._received += 1
        if request_id in self._seen_ids:
            self._duplicates += 1
            log.info("%s: request %r arrived again (a client retry)", self.name, request_id)
        self._remember(request_id)

        status, body = self._run_handler(payload, request_id)

        if self._should_drop():
            self._dropped += 1
            log.info("%s: dropping the reply to request %r on purpose", self.name, request_id)
            return
        # Counted before the send: a client that already holds its reply must not
        # read a stats() that is one reply short.
        self._replied += 1
        try:
            socket.send_multipart([routing_id, b"", request_id, status, body], zmq.NOBLOCK)
        except zmq.ZMQError as error:
            self._replied -= 1
            log.warning("%s: reply to request %r not sent: %s", self.name, request_id, error)

    def _run_handler(self, payload: bytes, request_id: bytes) -> tuple[bytes, Payload]:
        """Run the handler and return the reply status and body; a failure gives an error reply."""
        try:
            return STATUS_OK, _check_handler_result(self._handler(payload))
        except Exception as error:
            self._handler_errors += 1
            log.exception("%s: handler failed on request %r", self.name, request_id)
            return STATUS_ERROR, f"{type(error).__name__}: {error}".encode()

    def _remember(self, request_id: bytes) -> None:
        self._seen_ids[request_id] = None
        if len(self._seen_ids) > SEEN_IDS_KEPT:
            self._seen_ids.popitem(last=False)

    def _should_drop(self) -> bool:
        if self._drop_every is not None and self._received % self._drop_every == 0:
            return True
        return self._drop_probability > 0.0 and self._random.random() < self._drop_probability

    def stats(self) -> dict[str, int | str | None]:
        """Counters (requests received, replies sent and dropped, retries seen, errors) and state.

        ``error`` is None while the serving thread works, and the exception
        that stopped it, as ``"Type: message"``, after it failed.
        """
        return {
            "received": self._received,
            "replied": self._replied,
            "dropped": self._dropped,
            "duplicates": self._duplicates,
            "handler_errors": self._handler_errors,
            "malformed": self._malformed,
            "state": self._state,
            "error": self._error_text(),
        }

    def __repr__(self) -> str:
        failure = f" error={self._error_text()!r}" if self._error is not None else ""
        return (
            f"<ReplyServer {self.name} {self._state} endpoint={self._endpoint} "
            f"received={self._received} replied={self._replied} dropped={self._dropped}{failure}>"
        )


def _check_handler_result(result: object) -> Payload:
    """Return the handler's result if it is bytes-like, else raise TypeError saying what to fix."""
    if isinstance(result, (bytes, bytearray, memoryview)):
        return result
    if isinstance(result, str):
        raise TypeError(
            "handler returned str, expected bytes; encode it, for example with .encode()"
        )
    if result is None:
        raise TypeError("handler returned None, expected bytes; is a return statement missing?")
    raise TypeError(f"handler returned {type(result).__name__}, expected bytes")


def _new_client_id() -> str:
    return uuid.uuid4().hex[:8]


def _parse_reply(frames: list[bytes], endpoint: str) -> tuple[bytes, bytes, bytes]:
    if len(frames) != 3:
        raise ProtocolError(
            f"reply from {endpoint} has {len(frames)} frames, expected 3 "
            f"(request id, status, payload); is it a msgpass ReplyServer?"
        )
    request_id, status, body = frames
    if status not in (STATUS_OK, STATUS_ERROR):
        raise ProtocolError(f"reply from {endpoint} has unknown status {status!r}")
    return request_id, status, body


def _raise_if_error(status: bytes, body: bytes, request_id: str, endpoint: str) -> None:
    if status == STATUS_ERROR:
        raise RequestFailed(
            f"request {request_id} to {endpoint} failed on the server: "
            f"{body.decode(errors='replace')}"
        )


class RequestClient:
    """A plain REQ client that keeps one socket, to show why a lost reply is fatal to it.

    ``request()`` raises ``MessagingTimeout`` when no reply comes in time.
    After that the socket is stuck waiting for the lost reply, and the next
    ``request()`` fails with the translated ``EFSM`` error. Use
    ``LazyPirateClient`` to recover; this class exists to show the problem.
    """

    def __init__(self, endpoint: str, *, context: ZmqContext | None = None) -> None:
        self.endpoint = endpoint
        self._owns_context = context is None
        self._context: ZmqContext = context if context is not None else zmq.Context()
        self._client_id = _new_client_id()
        self._sequence = 0
        self._timeouts = 0
        self._replies = 0
        self._socket: ZmqSocket | None = open_socket(self._context, zmq.REQ)
        connect(self._socket, endpoint)

    def request(self, payload: Payload, timeout_s: float = DEFAULT_TIMEOUT_S) -> bytes:
        """Send ``payload``, wait up to ``timeout_s`` seconds for the reply and return it.

        Raises ``MessagingTimeout`` when no reply comes, ``RequestFailed`` when
        the server's handler failed, and ``MessagingError`` (EFSM) when an
        earlier request on this socket is still waiting for its reply.
        ``payload`` must be bytes-like and ``timeout_s`` a positive, finite
        number of seconds, else ``TypeError`` or ``ValueError``.
        """
        return self._request(
            payload,
            timeout_s,
            "This REQ socket now waits for that reply and rejects new requests (EFSM): "
            "close it and open a new one, as LazyPirateClient does",
        )

    def _request(self, payload: Payload, timeout_s: float, timeout_advice: str) -> bytes:
        """Send one request and return its reply; ``timeout_advice`` ends the timeout message."""
        check_payload(payload)
        timeout_s = check_timeout_s(timeout_s)
        if self._socket is None:
            raise EndpointClosed(f"request client for {self.endpoint} is closed")
        self._sequence += 1
        request_id = f"{self._client_id}-{self._sequence}"
        timeout_ms = max(1, round(timeout_s * 1000))
        try:
            self._socket.setsockopt(zmq.SNDTIMEO, timeout_ms)
            self._socket.send_multipart([request_id.encode("ascii"), payload])
            if not self._socket.poll(timeout_ms, zmq.POLLIN):
                self._timeouts += 1
                raise MessagingTimeout(
                    f"no reply to request {request_id} from {self.endpoint} within {timeout_s} s. "
                    f"{timeout_advice}"
                )
            frames = self._socket.recv_multipart(zmq.NOBLOCK)
        except zmq.ZMQError as error:
            raise translate_zmq_error(error, f"request {request_id} to {self.endpoint}") from error

        reply_id, status, body = _parse_reply(frames, self.endpoint)
        if reply_id != request_id.encode("ascii"):
            raise ProtocolError(
                f"reply from {self.endpoint} carries id {reply_id!r}, expected {request_id!r}"
            )
        _raise_if_error(status, body, request_id, self.endpoint)
        self._replies += 1
        return body

    def close(self) -> None:
        """Close the socket with linger 0 and terminate the context if this client created it."""
        if self._socket is None:
            return
        self._socket.close(linger=0)
        self._socket = None
        if self._owns_context:
            self._context.term()

    def stats(self) -> dict[str, int]:
        """Counters: requests sent, replies received, timeouts."""
        return {"requests": self._sequence, "replies": self._replies, "timeouts": self._timeouts}

    def __repr__(self) -> str:
        state = "closed" if self._socket is None else "open"
        return f"<RequestClient {state} endpoint={self.endpoint} {self.stats()}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def request(
    endpoint: str,
    payload: Payload,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    *,
    context: ZmqContext | None = None,
) -> bytes:
    """Send one request on a new REQ socket and return the reply; the socket is closed after.

    Raises ``MessagingTimeout`` when no reply comes within ``timeout_s``
    seconds, and ``RequestFailed`` when the server's handler failed.
    ``payload`` must be bytes-like and ``timeout_s`` a positive, finite
    number of seconds, else ``TypeError`` or ``ValueError``, raised before
    any socket is opened.
    """
    check_payload(payload)
    timeout_s = check_timeout_s(timeout_s)
    with RequestClient(endpoint, context=context) as client:
        # The socket closes when this block ends, so the advice is not the
        # RequestClient one about closing a stuck socket.
        return client._request(
            payload,
            timeout_s,
            "The server is down or slow, or it dropped the reply. request() has already "
            "closed its socket, so a late reply is discarded. Check that a server runs on "
            "that endpoint, raise timeout_s, or use LazyPirateClient, which retries",
        )
