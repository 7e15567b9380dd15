"""Measuring the slow joiner: what a new subscriber loses before its subscription arrives.

``zmq_pubsub`` explains the cause: a publisher drops every message for a
subscriber whose subscription it has not received yet. This module turns
that into three experiments, which lab 5 runs in this order:

- ``measure_early_publish`` publishes while the subscription is provably
  still on its way, and every one of those messages is lost. The count does
  not depend on timing.
- ``measure_slow_joiner(handshake=False)`` publishes as soon as the
  subscribers have called ``connect()``, which is how the slow joiner shows
  up in practice. How many messages are lost depends on the machine and its
  load, and may be 0.
- ``measure_slow_joiner(handshake=True)`` first waits for every subscription
  with ``Publisher.wait_subscribers`` and loses nothing.

How ``measure_early_publish`` proves the order of events without sleeping.
When the XPUB socket receives a subscription, it adds it to its table and
queues the subscribe message for the application in the same step. The
experiment publishes right after the SUB socket's ``connect()``, then checks
with ``Publisher.subscription_pending()`` whether a subscribe message is
queued, without reading it. If
none is, the table was empty during every one of those sends, so the
publisher dropped them all. If one is queued, the subscription won the race,
nothing is proven, and the round is repeated with a new SUB socket.

NOTE: the proof rests on that one-step update inside libzmq's XPUB socket,
which no ZeroMQ document promises. It was checked with libzmq 4.3.5 (pyzmq
27.3): in 300 calls, no message published before a passed check arrived, and
``received_early`` is returned rather than assumed, so a change would show.

Left out on purpose: what happens when subscribers fall behind a fast
publisher (the high-water mark is unlimited here, see ``Publisher``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import zmq

from .errors import MessagingError, MessagingTimeout
from .zmq_common import (
    ZmqContext,
    ZmqSocket,
    check_timeout_s,
    connect,
    open_socket,
    translate_zmq_error,
)
from .zmq_pubsub import END_MARKER, Publisher, Subscriber

__all__ = [
    "EarlyPublishResult",
    "measure_early_publish",
    "SlowJoinerResult",
    "measure_slow_joiner",
]

log = logging.getLogger(__name__)

END_RESEND_INTERVAL_S = 0.01  # how often the end marker is repeated until subscribers see it
EARLY_PUBLISH_ROUNDS = 20  # rounds measure_early_publish tries before it gives up


@dataclass(frozen=True)
class EarlyPublishResult:
    """Counts of messages published before and after the subscription arrived, and received.

    ``rounds`` is the number of rounds run. Only the last one published all
    its early messages before the subscription reached the publisher, so the
    earlier rounds were discarded.
    """

    published_early: int
    received_early: int
    published_after: int
    received_after: int
    rounds: int


def measure_early_publish(
    early: int = 10,
    after: int = 10,
    *,
    topic: bytes = b"demo",
    timeout_s: float = 5.0,
    max_rounds: int = EARLY_PUBLISH_ROUNDS,
) -> EarlyPublishResult:
    """Publish ``early`` messages before the subscription has arrived and ``after`` messages after.

    A round connects a new SUB socket, publishes the ``early`` messages at
    once, and keeps the round only if the publisher still has no
    subscribe message queued (see the module docstring). It then waits for
    the subscription, publishes the ``after`` messages and an end marker,
    and counts what the subscriber received of each group. The subscriber
    reads in the caller's thread, so no background thread is involved.

    Raises ``MessagingError`` if the subscription arrived during the early
    messages in all ``max_rounds`` rounds, and ``MessagingTimeout`` if the
    subscription or the end marker does not arrive within ``timeout_s``.
    """
    timeout_s = check_timeout_s(timeout_s)
    if early < 1 or after < 0 or max_rounds < 1:
        raise ValueError(
            f"invalid counts: early and max_rounds must be at least 1 and after at least 0, "
            f"got early={early}, after={after}, max_rounds={max_rounds}"
        )
    context: ZmqContext = zmq.Context()
    try:
        for round_number in range(1, max_rounds + 1):
            sequences = _early_publish_round(context, early, after, topic, timeout_s)
            if sequences is None:
                log.debug("early publish round %d: the subscription arrived too soon", round_number)
                continue
            return EarlyPublishResult(
                published_early=early,
                received_early=sum(1 for number in sequences if number < early),
                published_after=after,
                received_after=sum(1 for number in sequences if number >= early),
                rounds=round_number,
            )
    finally:
        context.term()
    raise MessagingError(
        f"in all {max_rounds} rounds the subscription reached the publisher before "
        f"{early} messages were published; lower early or raise max_rounds"
    )


def _early_publish_round(
    context: ZmqContext, early: int, after: int, topic: bytes, timeout_s: float
) -> list[int] | None:
    """Run one round and return the sequence numbers received, or None if nothing was proven."""
    with Publisher(context=context) as publisher:
        socket = open_socket(context, zmq.SUB)
        try:
            socket.setsockopt(zmq.RCVHWM, 0)
            socket.setsockopt(zmq.SUBSCRIBE, topic)
            connect(socket, publisher.endpoint)
            for number in range(early):
                publisher.publish(topic, str(number).encode("ascii"))
            if publisher.subscription_pending():
                return None
            publisher.wait_subscribers(1, timeout_s)
            for number in range(early, early + after):
                publisher.publish(topic, str(number).encode("ascii"))
            publisher.publish_end(topic)
            return _receive_until_end(socket, publisher.endpoint, timeout_s)
        finally:
            socket.close(linger=0)


def _receive_until_end(socket: ZmqSocket, endpoint: str, timeout_s: float) -> list[int]:
    """Read ``[topic, sequence, payload]`` messages until the end marker; return the sequences."""
    deadline = time.monotonic() + timeout_s
    sequences: list[int] = []
    while True:
        remaining_ms = round((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0 or not socket.poll(remaining_ms, zmq.POLLIN):
            raise MessagingTimeout(
                f"no end marker from {endpoint} within {timeout_s} s; "
                f"received {len(sequences)} messages before giving up"
            )
        try:
            _, sequence, _ = socket.recv_multipart(zmq.NOBLOCK)
        except zmq.ZMQError as error:
            raise translate_zmq_error(error, f"receive from {endpoint}") from error
        if sequence == END_MARKER:
            return sequences
        sequences.append(int(sequence))


@dataclass(frozen=True)
class SlowJoinerResult:
    """Received and missed message counts of one run, one entry per subscriber."""

    messages: int
    handshake: bool
    received: tuple[int, ...]
    missed_at_start: tuple[int, ...]

    @property
    def missed(self) -> tuple[int, ...]:
        """Messages each subscriber never received."""
        return tuple(self.messages - count for count in self.received)


def measure_slow_joiner(
    messages: int = 1000,
    *,
    subscribers: int = 1,
    handshake: bool = True,
    topic: bytes = b"demo",
    timeout_s: float = 5.0,
) -> SlowJoinerResult:
    """Publish ``messages`` messages to freshly connected subscribers and count what they missed.

    With ``handshake=False`` the publisher starts as soon as the subscribers
    have called ``connect()``, and the first messages are usually lost (how
    many depends on the machine and its load, and may be 0). With
    ``handshake=True`` it first waits for every subscription, and no message
    is lost. Everything is closed and every thread joined before returning.
    """
    context: ZmqContext = zmq.Context()
    try:
        with Publisher(context=context) as publisher:
            group = [
                Subscriber(publisher.endpoint, topic, context=context) for _ in range(subscribers)
            ]
            try:
                for subscriber in group:
                    subscriber.start()
                if handshake:
                    publisher.wait_subscribers(subscribers, timeout_s)
                for number in range(messages):
                    publisher.publish(topic, str(number).encode("ascii"))
                _finish_stream(publisher, group, topic, timeout_s)
                received = tuple(len(subscriber.sequences) for subscriber in group)
                missed_at_start = tuple(
                    subscriber.sequences[0] if subscriber.sequences else messages
                    for subscriber in group
                )
            finally:
                for subscriber in group:
                    subscriber.stop()
    finally:
        context.term()
    return SlowJoinerResult(messages, handshake, received, missed_at_start)


def _finish_stream(
    publisher: Publisher, group: list[Subscriber], topic: bytes, timeout_s: float
) -> None:
    """Repeat the end marker until every subscriber has seen it.

    One marker is not enough: in the naive run it can itself be lost to a
    subscription that has not arrived yet.
    """
    deadline = time.monotonic() + timeout_s
    for subscriber in group:
        while True:
            publisher.publish_end(topic)
            if subscriber.wait_end(END_RESEND_INTERVAL_S):
                break
            if time.monotonic() > deadline:
                raise MessagingTimeout(
                    f"{subscriber.name} saw no end marker within {timeout_s} s; "
                    f"is it connected to {publisher.endpoint}?"
                )
