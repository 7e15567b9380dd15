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
probability, so the lab and the tests can watch Lazy Pirate work. It lives
in ``msgpass.zmq_reply_server``, which explains why it binds a ROUTER
socket, and is imported from here. This module keeps the protocol's
constants and the client side: ``RequestClient`` and ``request``.

Left out on purpose: a reply cache for duplicate requests, heartbeats
(Paranoid Pirate) and failover between several servers (Binary Star).
"""

from __future__ import annotations

import importlib
import logging
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import zmq

from .errors import EndpointClosed, MessagingTimeout, ProtocolError, RequestFailed
from .zmq_common import (
    Payload,
    ZmqContext,
    ZmqSocket,
    check_payload,
    check_timeout_s,
    connect,
    open_socket,
    translate_zmq_error,
)

if TYPE_CHECKING:
    from .zmq_reply_server import ReplyServer

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
DEFAULT_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Reply:
    """A reply that a ``LazyPirateClient`` accepted."""

    request_id: str
    payload: bytes
    attempts: int


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


# -- ReplyServer, defined in zmq_reply_server -----------------------------------
# zmq_reply_server imports the status constants from here, so its names are loaded on
# first use rather than at the top of this file, which would make the imports
# circular.


_REPLY_SERVER_NAMES = frozenset({"ReplyServer", "SEEN_IDS_KEPT"})


def __getattr__(name: str) -> Any:
    if name not in _REPLY_SERVER_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(".zmq_reply_server", __package__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | _REPLY_SERVER_NAMES)
