"""ROUTER/DEALER on ZeroMQ: an asynchronous server that gets the sender's id with each message.

REQ and REP hide an *envelope*. A ROUTER socket shows it: every message it
receives starts with one extra frame, the routing id of the peer it came
from, and every message it sends must start with the routing id of the peer
it goes to. The ROUTER strips that frame and delivers the rest to that peer.
So one ROUTER can serve many clients at once and answer them in any order.

A DEALER socket is the asynchronous counterpart of REQ: it sends and
receives in any order, so a client may have several requests in flight. A
DEALER adds no frames of its own. What the ROUTER sees from a DEALER that
sends ``[b"job-1", b"data"]`` is::

    [routing id, b"job-1", b"data"]

A REQ socket instead puts an empty delimiter frame in front, which is why a
ROUTER serving REQ clients sees ``[routing id, b"", ...]`` (see
``zmq_reqrep.ReplyServer``).

A peer gets a routing id from the ROUTER (5 random bytes) unless it sets one
with the ``ROUTING_ID`` option before connecting, as ``DealerClient`` does so
that the lab can print readable ids. Two connected peers must not share an
id. The server sets ``ROUTER_MANDATORY``, so a reply to a client that has
gone raises ``EHOSTUNREACH`` (counted as unroutable) instead of being
dropped without a trace.

Left out on purpose: a broker in the middle (ROUTER in front, DEALER behind,
``zmq.proxy`` between them) and load balancing by worker readiness.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import zmq

from .errors import EndpointClosed
from .zmq_common import (
    LOOPBACK_ANY_PORT,
    POLL_INTERVAL_MS,
    BackgroundService,
    ZmqContext,
    ZmqSocket,
    bind,
    connect,
    open_socket,
    translate_zmq_error,
)

__all__ = [
    "Envelope",
    "RouterServer",
    "DealerClient",
]

log = logging.getLogger(__name__)

ENVELOPES_KEPT = 100  # how many received envelopes a RouterServer keeps for inspection

_router_numbers = itertools.count(1)


@dataclass(frozen=True)
class Envelope:
    """One message as a ROUTER received it: the sender's routing id, then the payload frames."""

    routing_id: bytes
    frames: tuple[bytes, ...]


def _echo(routing_id: bytes, frames: list[bytes]) -> list[bytes]:
    return frames


class RouterServer(BackgroundService):
    """A ROUTER socket in a background thread that replies to each message's sender.

    ``handler(routing_id, frames) -> frames`` computes the reply frames; the
    server puts the sender's routing id in front. The default handler echoes
    the frames back. A handler that raises is logged with the routing id and
    that message gets no reply; the server goes on with the next one.

        with RouterServer() as server, DealerClient(server.endpoint, b"alice") as alice:
            alice.send([b"job-1", b"hello"])
            alice.recv(timeout_s=1)          # [b'job-1', b'hello']
            server.envelopes()[0]            # Envelope(routing_id=b'alice', frames=(...))
    """

    def __init__(
        self,
        handler: Callable[[bytes, list[bytes]], list[bytes]] = _echo,
        endpoint: str = LOOPBACK_ANY_PORT,
        *,
        context: ZmqContext | None = None,
    ) -> None:
        super().__init__(f"router-server-{next(_router_numbers)}", context)
        self._handler = handler
        self._requested_endpoint = endpoint
        self._endpoint: str | None = None
        self._lock = threading.Lock()
        self._envelopes: deque[Envelope] = deque(maxlen=ENVELOPES_KEPT)
        self._received = 0
        self._replied = 0
        self._unroutable = 0
        self._handler_errors = 0
        self._peers: set[bytes] = set()

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
        socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
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
        routing_id, body = frames[0], frames[1:]
        with self._lock:
            self._envelopes.append(Envelope(routing_id, tuple(body)))
            self._received += 1
            self._peers.add(routing_id)
        try:
            reply = self._handler(routing_id, body)
        except Exception:
            self._handler_errors += 1
            log.exception("%s: handler failed on a message from %r", self.name, routing_id)
            return
        try:
            socket.send_multipart([routing_id, *reply], zmq.NOBLOCK)
        except zmq.ZMQError as error:
            self._unroutable += 1
            log.warning("%s: reply to %r not sent: %s", self.name, routing_id, error)
            return
        self._replied += 1

    def envelopes(self) -> list[Envelope]:
        """Return the most recent messages received (up to ``ENVELOPES_KEPT``), oldest first."""
        with self._lock:
            return list(self._envelopes)

    def stats(self) -> dict[str, int]:
        """Counters: messages received, replies sent, distinct peers, failures."""
        with self._lock:
            return {
                "received": self._received,
                "replied": self._replied,
                "peers": len(self._peers),
                "unroutable": self._unroutable,
                "handler_errors": self._handler_errors,
            }

    def __repr__(self) -> str:
        return f"<RouterServer {self.name} {self._state} endpoint={self._endpoint} {self.stats()}>"


class DealerClient:
    """A DEALER socket with a chosen routing id: send and receive in any order.

    Use it from one thread. ``send`` and ``recv`` take a timeout and raise
    ``MessagingTimeout`` when it expires.
    """

    def __init__(
        self, endpoint: str, routing_id: bytes, *, context: ZmqContext | None = None
    ) -> None:
        if not 1 <= len(routing_id) <= 255 or routing_id[0] == 0:
            raise ValueError(
                f"routing_id must be 1 to 255 bytes and not start with a zero byte "
                f"(ZeroMQ reserves those), got {routing_id!r}"
            )
        self.endpoint = endpoint
        self.routing_id = routing_id
        self._owns_context = context is None
        self._context: ZmqContext = context if context is not None else zmq.Context()
        socket = open_socket(self._context, zmq.DEALER)
        socket.setsockopt(zmq.ROUTING_ID, routing_id)
        try:
            connect(socket, endpoint)
        except BaseException:
            socket.close(linger=0)
            if self._owns_context:
                self._context.term()
            raise
        self._socket: ZmqSocket | None = socket
        self._sent = 0
        self._received = 0

    def _open_socket(self) -> ZmqSocket:
        if self._socket is None:
            raise EndpointClosed(f"dealer {self.routing_id!r} for {self.endpoint} is closed")
        return self._socket

    def send(self, frames: Sequence[bytes], timeout_s: float = 1.0) -> None:
        """Queue one multipart message; raise ``MessagingTimeout`` if the queue stays full."""
        socket = self._open_socket()
        try:
            if not socket.poll(max(1, round(timeout_s * 1000)), zmq.POLLOUT):
                raise zmq.Again()
            socket.send_multipart(list(frames), zmq.NOBLOCK)
        except zmq.ZMQError as error:
            raise translate_zmq_error(
                error, f"dealer {self.routing_id!r}: send to {self.endpoint}"
            ) from error
        self._sent += 1

    def recv(self, timeout_s: float = 1.0) -> list[bytes]:
        """Wait up to ``timeout_s`` seconds for one multipart message and return its frames."""
        socket = self._open_socket()
        try:
            if not socket.poll(max(1, round(timeout_s * 1000)), zmq.POLLIN):
                raise zmq.Again()
            frames = socket.recv_multipart(zmq.NOBLOCK)
        except zmq.ZMQError as error:
            raise translate_zmq_error(
                error, f"dealer {self.routing_id!r}: receive from {self.endpoint}"
            ) from error
        self._received += 1
        return frames

    def close(self) -> None:
        """Close the socket with linger 0 and terminate the context if this client created it."""
        if self._socket is None:
            return
        self._socket.close(linger=0)
        self._socket = None
        if self._owns_context:
            self._context.term()

    def stats(self) -> dict[str, int]:
        """Counters: messages sent and received."""
        return {"sent": self._sent, "received": self._received}

    def __repr__(self) -> str:
        state = "closed" if self._socket is None else "open"
        return f"<DealerClient {self.routing_id!r} {state} endpoint={self.endpoint} {self.stats()}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
