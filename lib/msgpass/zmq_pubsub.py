"""PUB/SUB on ZeroMQ, the slow-joiner problem, and a subscription handshake that fixes it.

A publisher sends each message to the subscribers whose subscriptions it
has received *at the moment of sending*, and drops it for everyone else. A
subscription travels from the SUB socket to the publisher as a small message
of its own, after the TCP connection and the ZeroMQ handshake. Until it
arrives, the publisher has no subscriber to send to. So a subscriber that
connects just before the publisher starts loses the first messages, and how
many depends on thread scheduling and the machine. This is the "slow joiner".
Waiting a fixed time before publishing only hides it: too short on a loaded
machine, wasted time everywhere else.

The fix here is a handshake on the publisher's own socket. An XPUB socket is
a PUB socket that also passes the subscription messages up to the
application: one frame, byte 1 for subscribe or 0 for unsubscribe, followed
by the topic. ``Publisher.wait_subscribers(n)`` reads them until n
subscriptions have arrived. The XPUB socket updates its subscription table
before it hands that message over, so every message published afterwards
reaches those subscribers.

Two socket options matter for the measurements in ``zmq_slow_joiner``:

- ``XPUB_VERBOSE``: by default XPUB passes on only the first subscription to
  a topic, so n subscribers of the same topic would look like one.
- The high-water mark (HWM): a PUB socket silently drops messages for a
  subscriber whose queue is full. The experiment sets it to 0 (no limit) so
  that every loss it counts comes from the slow joiner.

Wire format: ``[topic, sequence, payload]`` with the sequence number as ASCII
decimal, counted from 0 by the publisher, so a subscriber sees exactly which
messages it missed. An end-of-stream marker ``[topic, b"end", b""]`` tells a
subscriber that the run is over.

Left out on purpose: late-joiner catch-up (a snapshot service, as in
Hintjens' Clone pattern) and detecting a subscriber that falls behind.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from types import TracebackType
from typing import Self

import zmq

from .errors import EndpointClosed, MessagingTimeout, ProtocolError
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
    "END_MARKER",
    "Publisher",
    "Subscriber",
]

log = logging.getLogger(__name__)

END_MARKER = b"end"  # sequence frame of the end-of-stream marker

_subscriber_numbers = itertools.count(1)


class Publisher:
    """An XPUB socket that publishes numbered messages and can wait for its subscribers.

    Use it from one thread. ``publish()`` never blocks: with no subscriber
    for a topic the message is simply dropped, which is what PUB sockets do.

        with Publisher() as publisher:
            ...                                   # subscribers connect to publisher.endpoint
            publisher.wait_subscribers(2, timeout_s=5)
            publisher.publish(b"prices", b"42")
    """

    def __init__(
        self, endpoint: str = LOOPBACK_ANY_PORT, *, context: ZmqContext | None = None
    ) -> None:
        self._owns_context = context is None
        self._context: ZmqContext = context if context is not None else zmq.Context()
        socket = open_socket(self._context, zmq.XPUB)
        socket.setsockopt(zmq.XPUB_VERBOSE, 1)
        # NOTE: an unlimited HWM suits this measurement only. A real publisher keeps a
        # bound and accepts drops for slow subscribers, or uses credit-based flow control.
        socket.setsockopt(zmq.SNDHWM, 0)
        try:
            self.endpoint = bind(socket, endpoint)
        except BaseException:
            socket.close(linger=0)
            if self._owns_context:
                self._context.term()
            raise
        self._socket: ZmqSocket | None = socket
        self._sequence = 0
        self._subscriptions = 0
        self._unsubscriptions = 0

    def _open_socket(self) -> ZmqSocket:
        if self._socket is None:
            raise EndpointClosed(f"publisher on {self.endpoint} is closed")
        return self._socket

    def wait_subscribers(self, count: int, timeout_s: float) -> None:
        """Block until ``count`` subscribe messages have arrived in total, or raise on timeout.

        Counts every subscription since the publisher opened, so calling it
        again with the same ``count`` returns at once. Raises ``MessagingTimeout``
        naming how many arrived.
        """
        socket = self._open_socket()
        deadline = time.monotonic() + timeout_s
        try:
            while self._subscriptions < count:
                remaining_ms = round((deadline - time.monotonic()) * 1000)
                if remaining_ms <= 0 or not socket.poll(remaining_ms, zmq.POLLIN):
                    raise MessagingTimeout(
                        f"publisher on {self.endpoint}: {self._subscriptions} of {count} "
                        f"subscriptions arrived within {timeout_s} s; are the subscribers "
                        f"connected to this endpoint?"
                    )
                self._read_subscription(socket.recv(zmq.NOBLOCK))
        except zmq.ZMQError as error:
            raise translate_zmq_error(error, f"wait for subscribers on {self.endpoint}") from error

    def subscription_pending(self) -> bool:
        """Return whether a subscribe or unsubscribe message waits to be read, without reading it.

        It never blocks. A True result means the XPUB socket has already
        updated its subscription table for that message.
        """
        socket = self._open_socket()
        try:
            return bool(socket.poll(0, zmq.POLLIN))
        except zmq.ZMQError as error:
            raise translate_zmq_error(error, f"poll the publisher on {self.endpoint}") from error

    def _read_subscription(self, frame: bytes) -> None:
        if not frame or frame[0] not in (0, 1):
            raise ProtocolError(f"XPUB received {frame!r}, which is not a subscription message")
        if frame[0] == 1:
            self._subscriptions += 1
            log.debug("publisher %s: subscription to %r", self.endpoint, frame[1:])
        else:
            self._unsubscriptions += 1
            log.debug("publisher %s: unsubscription from %r", self.endpoint, frame[1:])

    def publish(self, topic: bytes, payload: bytes) -> int:
        """Publish ``payload`` under ``topic`` and return the sequence number it was given."""
        socket = self._open_socket()
        sequence = self._sequence
        try:
            socket.send_multipart([topic, str(sequence).encode("ascii"), payload], zmq.NOBLOCK)
        except zmq.ZMQError as error:
            raise translate_zmq_error(error, f"publish on {self.endpoint}") from error
        self._sequence += 1
        return sequence

    def publish_end(self, topic: bytes) -> None:
        """Send the end-of-stream marker under ``topic``; it takes no sequence number."""
        socket = self._open_socket()
        try:
            socket.send_multipart([topic, END_MARKER, b""], zmq.NOBLOCK)
        except zmq.ZMQError as error:
            raise translate_zmq_error(error, f"publish on {self.endpoint}") from error

    def close(self) -> None:
        """Close the socket with linger 0 and terminate the context if this publisher created it."""
        if self._socket is None:
            return
        self._socket.close(linger=0)
        self._socket = None
        if self._owns_context:
            self._context.term()

    def stats(self) -> dict[str, int]:
        """Counters: messages published, subscribe and unsubscribe messages seen."""
        return {
            "published": self._sequence,
            "subscriptions": self._subscriptions,
            "unsubscriptions": self._unsubscriptions,
        }

    def __repr__(self) -> str:
        state = "closed" if self._socket is None else "open"
        return f"<Publisher {state} endpoint={self.endpoint} {self.stats()}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Subscriber(BackgroundService):
    """A SUB socket in a background thread that records the sequence numbers it receives.

    ``start()`` connects and subscribes to ``topic`` (a prefix: ``b""`` means
    everything). ``wait_end()`` waits for the publisher's end marker.
    """

    def __init__(
        self, endpoint: str, topic: bytes = b"", *, context: ZmqContext | None = None
    ) -> None:
        super().__init__(f"subscriber-{next(_subscriber_numbers)}", context)
        self.endpoint = endpoint
        self.topic = topic
        self._lock = threading.Lock()
        self._sequences: list[int] = []
        self._ended = threading.Event()
        self._malformed = 0

    def start(self) -> None:
        """Connect, subscribe and start receiving in a background thread."""
        self._check_new()
        socket = open_socket(self._context, zmq.SUB)
        socket.setsockopt(zmq.RCVHWM, 0)
        try:
            socket.setsockopt(zmq.SUBSCRIBE, self.topic)
            connect(socket, self.endpoint)
        except BaseException:
            socket.close(linger=0)
            raise
        self._start_thread(lambda: self._receive(socket))

    def _receive(self, socket: ZmqSocket) -> None:
        try:
            while not self._stopping.is_set():
                if socket.poll(POLL_INTERVAL_MS, zmq.POLLIN):
                    self._record(socket.recv_multipart(zmq.NOBLOCK))
        finally:
            socket.close(linger=0)

    def _record(self, frames: list[bytes]) -> None:
        if len(frames) != 3:
            self._malformed += 1
            log.warning("%s: ignored a message of %d frames", self.name, len(frames))
            return
        _, sequence, _ = frames
        if sequence == END_MARKER:
            self._ended.set()
            return
        try:
            number = int(sequence)
        except ValueError:
            self._malformed += 1
            log.warning("%s: ignored a message with sequence %r", self.name, sequence)
            return
        with self._lock:
            self._sequences.append(number)

    def wait_end(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` seconds for the end marker; return whether it arrived."""
        return self._ended.wait(timeout_s)

    @property
    def sequences(self) -> list[int]:
        """A copy of the sequence numbers received so far, in arrival order."""
        with self._lock:
            return list(self._sequences)

    def stats(self) -> dict[str, int | None]:
        """Counters: messages received, the first sequence number seen, malformed messages."""
        sequences = self.sequences
        return {
            "received": len(sequences),
            "first_sequence": sequences[0] if sequences else None,
            "malformed": self._malformed,
        }

    def __repr__(self) -> str:
        return f"<Subscriber {self.name} {self._state} endpoint={self.endpoint} {self.stats()}>"
