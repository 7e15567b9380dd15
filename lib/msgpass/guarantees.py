"""Delivery guarantees: at-most-once, at-least-once, exactly-once processing, ordered delivery.

A network may lose, duplicate and reorder messages, and nodes may crash. What
a sender and a receiver promise each other on top of such a network is a
*delivery guarantee*, and each one here is built from a small node class that
runs on ``msgpass.sim`` and ``msgpass.explore``:

- ``AtMostOnceSender`` (fire and forget) sends each message once. A lost
  message is never processed. With ``DedupReceiver`` on the other side, a
  copy made by the network is not processed twice either.
- ``AtLeastOnceSender`` retransmits every message until an ``Ack`` for it
  arrives, up to ``max_attempts`` sends, and reports the messages it gave up on.
  A lost ``Ack`` makes it send a message the receiver already has, so with a
  ``PlainReceiver`` some messages are processed twice.
- ``DedupReceiver`` remembers the ids it processed and acknowledges every copy
  but processes it once. At-least-once sending plus this deduplication gives
  exactly-once *processing*, also called effectively-once. Exactly-once
  *delivery* over a lossy network is impossible in general, because the sender
  can never tell a lost message from a lost acknowledgement.
- ``OrderedReceiver`` keeps a resequencing buffer and hands messages to the
  application in sequence order, with no gaps and no duplicates.

A message is identified by the pair (sender id, ``seq``), where ``seq``
numbers a sender's messages 0, 1, 2 and so on. A receiver records what the
application processed in ``processed``, a list of such pairs in processing
order, and ``count_outcomes`` turns that list into the number of messages
processed 0 times, once and more than once.

Crash behaviour, chosen per class and stated in its docstring: ``processed``
models the application's database, so it survives a crash. The sender's
outbox (``acked``, ``attempts``) survives too, as if it were on disk, and a
restarted sender resends what is still unacknowledged. ``DedupReceiver``
keeps its memory of processed ids only when ``durable`` is true.

Left out on purpose: flow control (a sender sends all its messages at once),
cumulative acknowledgements and selective repeat, and persistence to a real disk.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .node import Node

__all__ = [
    "Data",
    "Ack",
    "Outcomes",
    "Receiver",
    "PlainReceiver",
    "DedupReceiver",
    "OrderedReceiver",
    "AtMostOnceSender",
    "AtLeastOnceSender",
    "count_outcomes",
    "DEFAULT_RETRY_S",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_DEDUP_MEMORY",
    "DEFAULT_MAX_BUFFER",
]

DEFAULT_RETRY_S = 0.05  # 50 ms: several round trips of the simulator's default 1 ms link
DEFAULT_MAX_ATTEMPTS = 10  # sends of one message, the first one included
DEFAULT_DEDUP_MEMORY = 10_000  # message ids a DedupReceiver remembers
DEFAULT_MAX_BUFFER = 1_000  # early messages an OrderedReceiver buffers while a gap is open


@dataclass(frozen=True)
class Data:
    """One application message: the ``seq``-th message of its sender, carrying ``payload``."""

    seq: int
    payload: str


@dataclass(frozen=True)
class Ack:
    """The receiver's acknowledgement that it has taken message ``seq`` of the addressee."""

    seq: int


@dataclass(frozen=True)
class Outcomes:
    """How many of the expected messages were processed 0 times, once and more than once.

    ``unexpected`` counts processed ids that were never sent, which only a
    buggy receiver produces.
    """

    never: int
    once: int
    more_than_once: int
    unexpected: int = 0

    @property
    def exactly_once(self) -> bool:
        """Whether every expected message was processed exactly once, and nothing else was."""
        return self.never == 0 and self.more_than_once == 0 and self.unexpected == 0


def count_outcomes(
    expected: Iterable[tuple[str, int]], processed: Iterable[tuple[str, int]]
) -> Outcomes:
    """Count how often each expected (sender, seq) id appears in ``processed``.

    >>> count_outcomes([("a", 0), ("a", 1)], [("a", 1), ("a", 1)])
    Outcomes(never=1, once=0, more_than_once=1, unexpected=0)
    """
    expected_ids = set(expected)
    times = Counter(processed)
    return Outcomes(
        never=sum(1 for key in expected_ids if times[key] == 0),
        once=sum(1 for key in expected_ids if times[key] == 1),
        more_than_once=sum(1 for key in expected_ids if times[key] > 1),
        unexpected=sum(1 for key in times if key not in expected_ids),
    )


# ---------------------------------------------------------------------------
# Receivers
# ---------------------------------------------------------------------------


class Receiver(Node):
    """Base class of the receivers: ``process`` records what the application processed.

    ``processed`` lists (sender, seq) pairs in the order the application saw
    them. It models the application's durable state, so a crash keeps it.
    Subclasses decide when to call ``process`` and when to send an ``Ack``.
    """

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.processed: list[tuple[str, int]] = []

    def process(self, sender: str, message: Data) -> None:
        """Hand ``message`` to the application: record it in ``processed``."""
        self.processed.append((sender, message.seq))

    @property
    def processed_seqs(self) -> list[int]:
        """The ``seq`` of each processed message, in processing order, whatever its sender."""
        return [seq for _, seq in self.processed]


class PlainReceiver(Receiver):
    """Process every copy that arrives and acknowledge it: no deduplication at all."""

    def on_Data(self, sender: str, message: Data) -> None:
        self.process(sender, message)
        self.send(sender, Ack(message.seq))


class DedupReceiver(Receiver):
    """Process each (sender, seq) id once, and acknowledge every copy, duplicates included.

    Acknowledging a duplicate matters: the duplicate usually means that the
    sender never got the first ``Ack``, and without a new one it retransmits
    until it gives up.

    The memory is bounded: the receiver remembers the last ``memory`` ids it
    processed and forgets the oldest when a new one comes in. A copy that
    arrives after its id was forgotten is processed again. The window is
    therefore safe only if it holds every id that can still be retransmitted
    or still be in the network, that is, the ids of at least
    ``max_attempts * retry_s`` plus the maximum network delay worth of traffic.

    With ``durable=False`` the memory is volatile and a crash erases it, so
    retransmissions that arrive after a restart are processed a second time.
    ``durable=True`` models storing the ids in the same transaction as the
    effect of processing, which is what makes the pair survive a crash together.
    """

    def __init__(
        self, node_id: str, *, memory: int = DEFAULT_DEDUP_MEMORY, durable: bool = True
    ) -> None:
        if memory < 1:
            raise ValueError(f"invalid memory={memory}: a receiver must remember at least 1 id")
        super().__init__(node_id)
        self.memory = memory
        self.durable = durable
        # A dict used as an ordered set: the oldest id comes first.
        self.seen: dict[tuple[str, int], None] = {}
        self.duplicates = 0

    def on_Data(self, sender: str, message: Data) -> None:
        key = (sender, message.seq)
        if key in self.seen:
            self.duplicates += 1
        else:
            self.process(sender, message)
            self.seen[key] = None
            if len(self.seen) > self.memory:
                del self.seen[next(iter(self.seen))]
        self.send(sender, Ack(message.seq))

    def on_crash(self) -> None:
        if not self.durable:
            self.seen.clear()


class OrderedReceiver(Receiver):
    """Process each sender's messages in ``seq`` order from 0, with no gaps and no duplicates.

    A message that arrives early waits in a resequencing buffer until every
    message before it has been processed. A copy of a message that was already
    processed or is already buffered is acknowledged and ignored. A message more
    than ``max_buffer`` places ahead of the next expected one is discarded
    without an ``Ack``, so the sender retransmits it later, when there is room.

    NOTE: the buffer is volatile, yet buffered messages are acknowledged. A
    receiver that may crash must store its buffer, or acknowledge a message
    only once it is processed, the way TCP's cumulative acknowledgements do.
    """

    def __init__(self, node_id: str, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        if max_buffer < 1:
            raise ValueError(f"invalid max_buffer={max_buffer}: expected at least 1")
        super().__init__(node_id)
        self.max_buffer = max_buffer
        self.next_seq: dict[str, int] = {}  # sender -> seq of the next message to process
        self.buffer: dict[str, dict[int, Data]] = {}  # sender -> seq -> early message

    def on_Data(self, sender: str, message: Data) -> None:
        expected = self.next_seq.get(sender, 0)
        waiting = self.buffer.setdefault(sender, {})
        if message.seq >= expected + self.max_buffer:
            return  # no room: no Ack, so the sender tries again later
        if message.seq >= expected:
            waiting.setdefault(message.seq, message)
        while expected in waiting:
            self.process(sender, waiting.pop(expected))
            expected += 1
        self.next_seq[sender] = expected
        self.send(sender, Ack(message.seq))


# ---------------------------------------------------------------------------
# Senders
# ---------------------------------------------------------------------------


class AtMostOnceSender(Node):
    """Send each payload once, at start, and never retransmit (fire and forget).

    ``acked`` collects the ``Ack`` replies, which show what arrived, but the
    sender does nothing about the rest. It counts one operation per message
    sent, for the simulator's messages-per-operation figure.
    """

    def __init__(self, node_id: str, dest: str, payloads: Sequence[str]) -> None:
        super().__init__(node_id)
        self.dest = dest
        self.payloads = list(payloads)
        self.acked: set[int] = set()

    def on_start(self) -> None:
        for seq, payload in enumerate(self.payloads):
            self.send(self.dest, Data(seq, payload))
            self.count_operation()

    def on_restart(self) -> None:
        """Do nothing: an at-most-once sender never sends a message twice, crash or not."""

    def on_Ack(self, sender: str, message: Ack) -> None:
        self.acked.add(message.seq)


class AtLeastOnceSender(Node):
    """Send every payload, and retransmit each one until it is acknowledged.

    Every ``retry_s`` seconds the ``retry`` timer resends each message that
    has no ``Ack`` yet. A message sent ``max_attempts`` times in all without
    an ``Ack`` is given up and listed in ``gave_up``. The timer stops once
    every message is acknowledged or given up, so a finished sender leaves
    the network idle. ``attempts`` maps each seq to the number of times it
    was sent.

    The outbox (``acked``, ``attempts``, ``gave_up``) survives a crash, as
    if it were on disk. On restart the sender resends what is still pending and
    arms its timer again. It counts one operation per message acknowledged.
    """

    def __init__(
        self,
        node_id: str,
        dest: str,
        payloads: Sequence[str],
        *,
        retry_s: float = DEFAULT_RETRY_S,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        if not retry_s > 0:
            raise ValueError(f"invalid retry_s={retry_s!r}: expected a number of seconds > 0")
        if max_attempts < 1:
            raise ValueError(f"invalid max_attempts={max_attempts}: expected at least 1")
        super().__init__(node_id)
        self.dest = dest
        self.payloads = list(payloads)
        self.retry_s = retry_s
        self.max_attempts = max_attempts
        self.acked: set[int] = set()
        self.attempts: dict[int, int] = {}
        self.gave_up: set[int] = set()

    def pending(self) -> list[int]:
        """Return the seqs that are neither acknowledged nor given up, in order."""
        return [
            seq
            for seq in range(len(self.payloads))
            if seq not in self.acked and seq not in self.gave_up
        ]

    def on_start(self) -> None:
        self._send_pending()

    def on_restart(self) -> None:
        self._send_pending()

    def on_Ack(self, sender: str, message: Ack) -> None:
        if message.seq not in self.acked:
            self.acked.add(message.seq)
            self.count_operation()

    def on_timer_retry(self) -> None:
        self._send_pending()

    def _send_pending(self) -> None:
        """Send each pending message once more, or give it up if it used all its attempts."""
        resent = False
        for seq in self.pending():
            if self.attempts.get(seq, 0) >= self.max_attempts:
                self.gave_up.add(seq)
                self.log.info("gave up on message %d after %d sends", seq, self.attempts[seq])
                continue
            self.attempts[seq] = self.attempts.get(seq, 0) + 1
            self.send(self.dest, Data(seq, self.payloads[seq]))
            resent = True
        if resent:
            self.set_timer(self.retry_s, "retry")
