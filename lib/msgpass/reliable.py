"""Reliable delivery over a lossy network: stop-and-wait and a selective-repeat window.

The network under a ``Node`` may lose, duplicate and reorder messages. This
module builds exactly-once, in-order delivery of a list of items on top of
it, with the two classic protocols, written as ``msgpass.node.Node``
subclasses so that they run unchanged on ``msgpass.sim.Simulation``, on
``msgpass.explore.explore`` and on ``msgpass.node_real.RealRuntime``:

- **Stop-and-wait** (``StopAndWaitSender``): send one ``Data``, wait for its
  ``Ack``, resend it whenever a timer expires first. At most one item is in
  flight, so the sender idles for a round trip per item.
- **Selective repeat** (``SlidingWindowSender``): keep up to ``window`` items
  in flight, each with its own retransmission timer, so only lost items are
  resent. The receiver (``SlidingWindowReceiver``) buffers items that arrive
  early and hands them to the application in order.

Both receivers acknowledge every ``Data`` they accept, including duplicates
of items already delivered, because the sender may have missed the first
``Ack``. Each ``Ack`` carries the seq it acknowledges and ``next_expected``,
the receiver's cumulative point, so a later ``Ack`` covers a lost one.
Sequence numbers are whole indexes (0, 1, 2, ...), never reused, which is
why reordering cannot confuse either protocol. The alternating-bit protocol
uses one bit instead and is correct only on a link that keeps order.

Crash and restart keep every attribute (the ``Node`` default): a restarted
sender resends the items it has not seen acknowledged, and a restarted
receiver keeps what it delivered.

The messages live in ``msgpass.reliable_messages`` and the measurement of a
transfer (``simulate_transfer``) in ``msgpass.reliable_transfer``. This
module re-exports both, so labs import everything from here.

Left out on purpose: adaptive timeouts (TCP estimates the round-trip time and
its variance, RFC 6298), congestion control, flow control driven by the
receiver, and sequence numbers that wrap around.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from .node import Node, TimerHandle
from .reliable_messages import RELIABLE_MESSAGE_TYPES, Ack, Data, segment_bytes
from .reliable_transfer import TransferResult, simulate_transfer

__all__ = [
    "Data",
    "Ack",
    "RELIABLE_MESSAGE_TYPES",
    "DEFAULT_TIMEOUT_S",
    "ReliableSender",
    "StopAndWaitSender",
    "SlidingWindowSender",
    "SlidingWindowReceiver",
    "StopAndWaitReceiver",
    "TransferResult",
    "simulate_transfer",
    "segment_bytes",
]

log = logging.getLogger(__name__)

# A fixed retransmission timeout, in seconds. It must exceed the round-trip
# time, or the sender resends items that were not lost.
DEFAULT_TIMEOUT_S = 0.1

_RETRANSMIT_PREFIX = "retransmit_"  # timer names of the sliding window: retransmit_<seq>


# ----------------------------------------------------------------- senders


class ReliableSender(Node):
    """Base class of both senders: the items, the counters and the completion time.

    ``done`` is true once every item is acknowledged, and ``completed_at_s``
    is the time of the ``Ack`` that made it so. Each acknowledged item counts
    as one operation (``count_operation``), so ``SimStats.messages_per_operation``
    is the number of messages, both ways, that one item cost.
    """

    def __init__(self, node_id: str, peer: str, items: Sequence[str], timeout_s: float) -> None:
        super().__init__(node_id)
        if not timeout_s > 0:
            raise ValueError(f"invalid timeout_s={timeout_s!r}: expected a number of seconds > 0")
        self.peer = peer
        self.items = list(items)
        self.timeout_s = timeout_s
        self.acknowledged = 0  # items acknowledged so far
        self.completed_at_s: float | None = None
        self.data_sent = 0
        self.retransmissions = 0
        self.acks_received = 0
        self.stale_acks = 0  # acks that acknowledged nothing new

    @property
    def done(self) -> bool:
        """Whether every item has been acknowledged."""
        return self.acknowledged == len(self.items)

    def _transmit(self, seq: int) -> None:
        self.data_sent += 1
        self.send(self.peer, Data(seq, self.items[seq]))

    def _record_acknowledged(self, count: int) -> None:
        self.acknowledged += count
        self.count_operation(count)
        if self.done and self.completed_at_s is None:
            self.completed_at_s = self.now()
            self.log.debug("all %d items acknowledged", len(self.items))

    def stats(self) -> dict[str, int]:
        """Return the sender's counters: items, Data sent, retransmissions and Acks."""
        return {
            "items": len(self.items),
            "acknowledged": self.acknowledged,
            "data_sent": self.data_sent,
            "retransmissions": self.retransmissions,
            "acks_received": self.acks_received,
            "stale_acks": self.stale_acks,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.node_id!r}, acknowledged={self.acknowledged}/"
            f"{len(self.items)}, data_sent={self.data_sent}, "
            f"retransmissions={self.retransmissions})"
        )


class StopAndWaitSender(ReliableSender):
    """Send the items one at a time, resending each until its ``Ack`` arrives.

    ``seq`` is the index of the item in flight. An ``Ack`` for any other seq
    is a duplicate or a late reply to an earlier copy, and is ignored. ::

        sim.add_node(StopAndWaitSender("a", "b", ["x", "y"], timeout_s=0.1))
        sim.add_node(StopAndWaitReceiver("b"))
    """

    def __init__(
        self, node_id: str, peer: str, items: Sequence[str], timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        super().__init__(node_id, peer, items, timeout_s)
        self.seq = 0
        self.timer: TimerHandle | None = None

    def state(self) -> dict[str, Any]:
        """Return ``Node.state()`` with the timer as armed or not, for ``msgpass.explore``.

        A ``TimerHandle`` carries a fresh id each time, which would make every
        retransmission look like a new state.
        """
        state = super().state()
        state["timer"] = self.timer is not None
        return state

    def on_start(self) -> None:
        self._send_current()

    def on_Ack(self, sender: str, message: Ack) -> None:
        self.acks_received += 1
        if message.seq != self.seq or self.done:
            self.stale_acks += 1
            return
        if self.timer is not None:
            self.cancel_timer(self.timer)
            self.timer = None
        self.seq += 1
        self._record_acknowledged(1)
        self._send_current()

    def on_timer_retransmit(self) -> None:
        self.timer = None
        if not self.done:
            self.retransmissions += 1
            self._send_current()

    def _send_current(self) -> None:
        if self.seq >= len(self.items):
            if self.completed_at_s is None:  # an empty list is done at once
                self._record_acknowledged(0)
            return
        self._transmit(self.seq)
        self.timer = self.set_timer(self.timeout_s, "retransmit")


class SlidingWindowSender(ReliableSender):
    """Keep up to ``window`` items in flight; resend only the ones whose timer expires.

    This is selective repeat. ``base`` is the oldest unacknowledged item and
    ``next_seq`` the next item never sent, so ``next_seq - base <= window``.
    ``acked`` contains the acknowledged items at or above ``base``, which are the
    ones that arrived while an older item is still missing. Each item in
    flight has a timer named ``retransmit_<seq>``.
    """

    def __init__(
        self,
        node_id: str,
        peer: str,
        items: Sequence[str],
        window: int,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        super().__init__(node_id, peer, items, timeout_s)
        if not (isinstance(window, int) and window >= 1):
            raise ValueError(f"invalid window={window!r}: expected a whole number of items >= 1")
        self.window = window
        self.base = 0
        self.next_seq = 0
        self.acked: set[int] = set()
        self.timers: dict[int, TimerHandle] = {}

    def state(self) -> dict[str, Any]:
        """Return ``Node.state()`` with the seqs whose timer is armed, for ``msgpass.explore``."""
        state = super().state()
        state["timers"] = sorted(self.timers)
        return state

    def on_start(self) -> None:
        self._fill_window()

    def on_Ack(self, sender: str, message: Ack) -> None:
        self.acks_received += 1
        # Everything below next_expected is delivered, so a lost Ack is covered here.
        covered = range(self.base, min(message.next_expected, self.next_seq))
        newly = [seq for seq in covered if seq not in self.acked]
        in_flight = self.base <= message.seq < self.next_seq
        if in_flight and message.seq not in self.acked and message.seq not in newly:
            newly.append(message.seq)
        if not newly:
            self.stale_acks += 1
            return
        for seq in newly:
            self.acked.add(seq)
            timer = self.timers.pop(seq, None)
            if timer is not None:
                self.cancel_timer(timer)
        while self.base in self.acked:
            self.acked.discard(self.base)
            self.base += 1
        self._record_acknowledged(len(newly))
        self._fill_window()

    def on_timer(self, name: str) -> None:
        if not name.startswith(_RETRANSMIT_PREFIX):
            super().on_timer(name)  # raises MissingHandler for a timer this class never sets
            return
        seq = int(name[len(_RETRANSMIT_PREFIX) :])
        self.timers.pop(seq, None)
        if seq >= self.base and seq not in self.acked:
            self.retransmissions += 1
            self._send(seq)

    def on_restart(self) -> None:
        # The crash cancelled every timer, so resend each item still in flight.
        self.timers.clear()
        for seq in range(self.base, self.next_seq):
            if seq not in self.acked:
                self._send(seq)
        self._fill_window()

    def _fill_window(self) -> None:
        while self.next_seq < len(self.items) and self.next_seq < self.base + self.window:
            self._send(self.next_seq)
            self.next_seq += 1
        if not self.items and self.completed_at_s is None:
            self._record_acknowledged(0)

    def _send(self, seq: int) -> None:
        self._transmit(seq)
        self.timers[seq] = self.set_timer(self.timeout_s, f"{_RETRANSMIT_PREFIX}{seq}")


# ----------------------------------------------------------------- receivers


class SlidingWindowReceiver(Node):
    """Deliver items in order, exactly once, buffering up to ``window`` early arrivals.

    ``delivered`` is what the application has received, in order.
    ``next_expected`` is the next seq to deliver, and ``buffer`` holds items
    that arrived early, by seq. A ``Data`` at or beyond ``next_expected +
    window`` cannot come from a correct sender with the same window, so it is
    ignored without an ``Ack``.

    ``drop_probability`` injects loss on a transport that has none (such as
    loopback UDP): each arriving ``Data`` is discarded with that probability,
    drawn from the node's seeded ``random``, before the protocol sees it.
    """

    def __init__(self, node_id: str, window: int, *, drop_probability: float = 0.0) -> None:
        super().__init__(node_id)
        if not (isinstance(window, int) and window >= 1):
            raise ValueError(f"invalid window={window!r}: expected a whole number of items >= 1")
        if not 0.0 <= drop_probability < 1.0:
            raise ValueError(
                f"invalid drop_probability={drop_probability!r}: expected a probability "
                f"in [0, 1), since 1 would discard everything"
            )
        self.window = window
        self.drop_probability = drop_probability
        self.next_expected = 0
        self.buffer: dict[int, str] = {}
        self.delivered: list[str] = []
        self.discarded = 0  # Data discarded by the injected loss
        self.duplicates = 0
        self.beyond_window = 0

    def on_Data(self, sender: str, message: Data) -> None:
        if self.drop_probability and self.random.random() < self.drop_probability:
            self.discarded += 1
            return
        seq = message.seq
        if seq >= self.next_expected + self.window:
            self.beyond_window += 1
            return
        if seq < self.next_expected or seq in self.buffer:
            self.duplicates += 1
        else:
            self.buffer[seq] = message.payload
            while self.next_expected in self.buffer:
                self.delivered.append(self.buffer.pop(self.next_expected))
                self.next_expected += 1
        self.send(sender, Ack(seq, self.next_expected))

    def stats(self) -> dict[str, int]:
        """Return the receiver's counters: delivered, buffered, duplicates, discarded."""
        return {
            "delivered": len(self.delivered),
            "buffered": len(self.buffer),
            "duplicates": self.duplicates,
            "discarded": self.discarded,
            "beyond_window": self.beyond_window,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.node_id!r}, delivered={len(self.delivered)}, "
            f"buffered={sorted(self.buffer)}, duplicates={self.duplicates})"
        )


class StopAndWaitReceiver(SlidingWindowReceiver):
    """The receiver of stop-and-wait: a sliding-window receiver with a window of one item."""

    def __init__(self, node_id: str, *, drop_probability: float = 0.0) -> None:
        super().__init__(node_id, 1, drop_probability=drop_probability)
