"""A ZeroMQ reply server that can lose replies on purpose, to show why clients retry.

``ReplyServer`` serves the request/reply protocol of ``msgpass.zmq_reqrep``
(request ``[request_id, payload]``, reply ``[request_id, status, payload]``)
from a background thread. It can drop replies every N-th request or with a
seeded probability, so a lab and the tests can watch a plain REQ client get
stuck and the Lazy Pirate client recover.

To stay silent, a server needs a ROUTER socket: a REP socket, like REQ, must
send a reply before it may receive again. ``ReplyServer`` therefore binds a
ROUTER and handles the envelope that REP would handle for it: ``[client
routing id, b"", request_id, payload]``. It remembers the last
``SEEN_IDS_KEPT`` request ids to count retries, which is the check a real
server would use to send a cached reply instead of running the work twice.

Left out on purpose: that reply cache, heartbeats and several workers.
Import ``ReplyServer`` from ``msgpass.zmq_reqrep``.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections import OrderedDict
from collections.abc import Callable

import zmq

from .errors import EndpointClosed
from .zmq_common import (
    LOOPBACK_ANY_PORT,
    POLL_INTERVAL_MS,
    BackgroundService,
    Payload,
    ZmqContext,
    ZmqSocket,
    bind,
    open_socket,
)
from .zmq_reqrep import STATUS_ERROR, STATUS_OK

__all__ = ["SEEN_IDS_KEPT", "ReplyServer"]

log = logging.getLogger(__name__)

SEEN_IDS_KEPT = 4096  # request ids a server remembers for counting duplicates

_server_numbers = itertools.count(1)


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
