"""The Lazy Pirate client: reliable request/reply on top of REQ sockets.

A REQ socket whose reply is lost is stuck: it rejects every new request with
``EFSM`` (see ``zmq_reqrep``). The Lazy Pirate pattern, named in Hintjens'
ZeroMQ guide, recovers on the client side alone:

1. send the request and poll for the reply with a timeout;
2. on timeout, close the socket with linger 0, which drops the request still
   queued and any late reply with it, and open a new REQ socket;
3. resend the same request, with the same request id;
4. after a bounded number of attempts, give up with a clear error.

The server may run a request more than once (when only the reply was lost),
so the request keeps its id across attempts and the client accepts only a
reply that carries that id.

Left out on purpose: backoff between attempts (a real client waits longer
after each failure so a struggling server can recover) and a choice between
several servers.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import Self

import zmq

from .errors import EndpointClosed, RequestFailed
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
from .zmq_reqrep import DEFAULT_TIMEOUT_S, Reply, _new_client_id, _parse_reply, _raise_if_error

__all__ = ["LazyPirateClient"]

log = logging.getLogger(__name__)


class LazyPirateClient:
    """A reliable request/reply client: poll with a timeout, reconnect and resend, give up.

    Each ``request()`` makes up to ``max_attempts`` attempts. An attempt sends
    the request on a REQ socket and polls ``timeout_s`` seconds for the reply.
    On timeout the socket is closed with linger 0 and a fresh one is opened
    for the next attempt. After the last attempt the client raises
    ``RequestFailed`` naming the request, the endpoint, the attempts and the
    timeout. The worst-case wait is therefore ``max_attempts * timeout_s``.
    A ``timeout_s`` that is not a positive, finite number of seconds raises
    ``TypeError`` or ``ValueError`` here, as in ``request()``.

        with LazyPirateClient(server.endpoint, timeout_s=0.1, max_attempts=3) as client:
            reply = client.request(b"ping")     # Reply(request_id=..., payload=..., attempts=1)
    """

    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_attempts: int = 3,
        client_id: str | None = None,
        context: ZmqContext | None = None,
    ) -> None:
        timeout_s = check_timeout_s(timeout_s)
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
            raise TypeError(f"max_attempts must be an int, got {type(max_attempts).__name__}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.client_id = client_id if client_id is not None else _new_client_id()
        self._owns_context = context is None
        self._context: ZmqContext = context if context is not None else zmq.Context()
        self._socket: ZmqSocket | None = None
        self._closed = False
        self._sequence = 0
        self._attempts = 0
        self._retries = 0
        self._replies = 0
        self._failures = 0
        self._stale = 0
        self._reconnects = 0

    def request(self, payload: Payload) -> Reply:
        """Send ``payload`` until a matching reply arrives, and return that reply.

        Raises ``RequestFailed`` after ``max_attempts`` attempts without a reply
        and at once when the server's handler failed. A ``payload`` that is not
        bytes-like raises ``TypeError`` before anything is sent.
        """
        check_payload(payload)
        if self._closed:
            raise EndpointClosed(f"Lazy Pirate client for {self.endpoint} is closed")
        self._sequence += 1
        request_id = f"{self.client_id}-{self._sequence}"

        for attempt in range(1, self.max_attempts + 1):
            self._attempts += 1
            if attempt > 1:
                self._retries += 1
            body = self._attempt(request_id, payload)
            if body is not None:
                self._replies += 1
                return Reply(request_id=request_id, payload=body, attempts=attempt)
            log.info(
                "request %s to %s: no reply within %s s (attempt %d of %d)",
                request_id, self.endpoint, self.timeout_s, attempt, self.max_attempts,
            )
            # The REQ socket still waits for the lost reply, so it cannot send again.
            self._discard_socket()

        self._failures += 1
        log.warning("request %s to %s: giving up after %d attempts",
                    request_id, self.endpoint, self.max_attempts)
        raise RequestFailed(
            f"request {request_id} to {self.endpoint} got no reply after {self.max_attempts} "
            f"attempts of {self.timeout_s} s each; the server is down, overloaded or dropping "
            f"replies. Check that it runs on that endpoint, or raise timeout_s or max_attempts"
        )

    def _attempt(self, request_id: str, payload: Payload) -> bytes | None:
        """Send once and wait for the matching reply; return None on timeout."""
        socket = self._ensure_socket()
        deadline = time.monotonic() + self.timeout_s
        try:
            socket.send_multipart([request_id.encode("ascii"), payload])
            while True:
                remaining_ms = round((deadline - time.monotonic()) * 1000)
                if remaining_ms <= 0 or not socket.poll(remaining_ms, zmq.POLLIN):
                    return None
                frames = socket.recv_multipart(zmq.NOBLOCK)
                reply_id, status, body = _parse_reply(frames, self.endpoint)
                if reply_id == request_id.encode("ascii"):
                    _raise_if_error(status, body, request_id, self.endpoint)
                    return body
                # NOTE: with a fresh REQ socket per attempt a stale reply cannot reach us,
                # because it dies with the closed socket. A client that reuses its socket
                # (ZMQ_REQ_RELAXED) relies on this id check to skip late replies.
                self._stale += 1
                log.info("request %s: ignored stale reply %r", request_id, reply_id)
        except zmq.Again:
            return None
        except zmq.ZMQError as error:
            raise translate_zmq_error(error, f"request {request_id} to {self.endpoint}") from error

    def _ensure_socket(self) -> ZmqSocket:
        if self._socket is None:
            socket = open_socket(self._context, zmq.REQ)
            socket.setsockopt(zmq.SNDTIMEO, max(1, round(self.timeout_s * 1000)))
            try:
                connect(socket, self.endpoint)
            except BaseException:
                socket.close(linger=0)
                raise
            self._socket = socket
            self._reconnects += 1
        return self._socket

    def _discard_socket(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def close(self) -> None:
        """Close the socket with linger 0 and terminate the context if this client created it."""
        if self._closed:
            return
        self._discard_socket()
        self._closed = True
        if self._owns_context:
            self._context.term()

    def stats(self) -> dict[str, int]:
        """Counters over all requests: attempts, retries, replies, failures, stale replies."""
        return {
            "requests": self._sequence,
            "attempts": self._attempts,
            "retries": self._retries,
            "replies": self._replies,
            "failures": self._failures,
            "stale_replies": self._stale,
            "sockets_opened": self._reconnects,
        }

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<LazyPirateClient {state} endpoint={self.endpoint} timeout_s={self.timeout_s} "
            f"max_attempts={self.max_attempts} retries={self._retries} failures={self._failures}>"
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
