"""At-least-once delivery for one group and one partition: in flight, acked, committed.

The broker hands a record to a consumer and waits for an acknowledgement.
``PartitionDelivery`` keeps the bookkeeping for one (group, partition):

- ``in_flight``: offsets delivered and not yet acknowledged, each with a
  deadline. A record not acked by its deadline (``ack_timeout_s``) is
  redelivered, and its delivery count goes up by one.
- ``redeliver``: offsets waiting to go out again (ack timed out, negative
  acknowledgement, or the partition moved to another member). They go out
  before any new record.
- after ``max_deliveries`` failed deliveries a record is *dead*: the broker
  copies it to the dead-letter topic and counts it as acknowledged, so it no
  longer blocks the partition.
- ``committed``: every offset below it is acknowledged. Acks may arrive out
  of order (offset 7 before offset 5), so the committed offset is the end of
  the contiguous acknowledged prefix and moves only when the gap closes.

Only ``committed`` is persisted. After a broker restart, delivery resumes at
the committed offset, so records that were delivered or even acked above a
gap are delivered again: at least once, never skipped.

NOTE: the delivery counts live in memory only, so a restart resets them; a
production broker stores them with the records or in a side log.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

__all__ = ["InFlight", "Handout", "PartitionDelivery"]


@dataclass
class InFlight:
    """A delivered, unacknowledged record: when its ack is due and how often it went out."""

    deadline_s: float
    deliveries: int
    member_id: str


@dataclass(frozen=True)
class Handout:
    """An offset to deliver now, with the number of times it has been delivered including now."""

    offset: int
    deliveries: int


class PartitionDelivery:
    """Delivery state of one partition for one consumer group.

    ``committed`` starts at the persisted committed offset (or the log's
    start offset). Times are ``time.monotonic()`` seconds passed in by the
    caller.
    """

    def __init__(self, committed: int, *, ack_timeout_s: float, max_deliveries: int) -> None:
        if max_deliveries < 1:
            raise ValueError(f"max_deliveries must be at least 1, got {max_deliveries}")
        self.committed = committed
        self.next_offset = committed  # the first offset never delivered
        self.ack_timeout_s = ack_timeout_s
        self.max_deliveries = max_deliveries
        self.in_flight: dict[int, InFlight] = {}
        self._redeliver: list[int] = []  # a heap of offsets
        self._counts: dict[int, int] = {}  # deliveries so far of offsets waiting in _redeliver
        self._acked_above: set[int] = set()  # acked offsets above a gap
        self.redeliveries = 0
        self.dead_lettered = 0

    def expire(self, now_s: float) -> list[int]:
        """Move in-flight records past their ack deadline to redelivery; return the dead ones.

        A record that has already gone out ``max_deliveries`` times is not
        queued again: its offset is returned so that the caller can copy it to
        the dead-letter topic and then call ``settle_dead``.
        """
        dead: list[int] = []
        for offset, entry in list(self.in_flight.items()):
            if entry.deadline_s <= now_s:
                del self.in_flight[offset]
                dead.extend(self._requeue(offset, entry.deliveries))
        return dead

    def nack(self, offset: int) -> list[int]:
        """Return an in-flight record for redelivery at once; return it if it is now dead."""
        entry = self.in_flight.pop(offset, None)
        if entry is None:
            return []
        return self._requeue(offset, entry.deliveries)

    def release(self) -> None:
        """Queue every in-flight record for redelivery, because the partition changed owner."""
        for offset, entry in self.in_flight.items():
            self._counts[offset] = entry.deliveries
            heapq.heappush(self._redeliver, offset)
        self.in_flight.clear()

    def _requeue(self, offset: int, deliveries: int) -> list[int]:
        if deliveries >= self.max_deliveries:
            return [offset]
        self._counts[offset] = deliveries
        heapq.heappush(self._redeliver, offset)
        self.redeliveries += 1
        return []

    def take(
        self, end_offset: int, max_records: int, member_id: str, now_s: float
    ) -> list[Handout]:
        """Pick up to ``max_records`` offsets to deliver now: redeliveries first, then new ones.

        ``end_offset`` is the log's end. Each picked offset becomes in flight
        with a deadline ``ack_timeout_s`` from ``now_s``.
        """
        handouts: list[Handout] = []
        deadline = now_s + self.ack_timeout_s
        while self._redeliver and len(handouts) < max_records:
            offset = heapq.heappop(self._redeliver)
            deliveries = self._counts.pop(offset) + 1
            self.in_flight[offset] = InFlight(deadline, deliveries, member_id)
            handouts.append(Handout(offset, deliveries))
        while self.next_offset < end_offset and len(handouts) < max_records:
            offset = self.next_offset
            self.next_offset += 1
            self.in_flight[offset] = InFlight(deadline, 1, member_id)
            handouts.append(Handout(offset, 1))
        return handouts

    def ack(self, offset: int) -> bool:
        """Acknowledge ``offset``; return True if the committed offset moved.

        Acking an offset twice, or one below ``committed``, does nothing.
        Raises ``ValueError`` for an offset that was never delivered.
        """
        if offset >= self.next_offset:
            raise ValueError(
                f"offset {offset} was never delivered (next undelivered offset is "
                f"{self.next_offset}), so it cannot be acknowledged"
            )
        if offset < self.committed or offset in self._acked_above:
            return False
        self.in_flight.pop(offset, None)
        if offset in self._counts:
            # Acked late, after its ack timeout had queued it for redelivery.
            del self._counts[offset]
            self._redeliver.remove(offset)
            heapq.heapify(self._redeliver)
        self._acked_above.add(offset)
        return self._advance()

    def settle_dead(self, offset: int) -> bool:
        """Count a dead-lettered record as acknowledged; return True if ``committed`` moved."""
        self.dead_lettered += 1
        self._acked_above.add(offset)
        return self._advance()

    def skip_to(self, start_offset: int) -> None:
        """Jump over records that retention deleted before they were consumed."""
        if self.committed < start_offset:
            self.committed = start_offset
            self.next_offset = max(self.next_offset, start_offset)
            self.in_flight = {o: e for o, e in self.in_flight.items() if o >= start_offset}
            self._acked_above = {o for o in self._acked_above if o >= start_offset}
            self._redeliver = [o for o in self._redeliver if o >= start_offset]
            heapq.heapify(self._redeliver)
            self._counts = {o: c for o, c in self._counts.items() if o >= start_offset}

    def _advance(self) -> bool:
        before = self.committed
        while self.committed in self._acked_above:
            self._acked_above.remove(self.committed)
            self.committed += 1
        return self.committed != before

    def next_deadline(self) -> float | None:
        """The earliest ack deadline in flight, so a waiting fetch knows when to wake."""
        return min((entry.deadline_s for entry in self.in_flight.values()), default=None)

    def has_ready(self, end_offset: int) -> bool:
        """Whether ``take`` would return something now."""
        return bool(self._redeliver) or self.next_offset < end_offset

    def stats(self) -> dict[str, int]:
        """Counters and positions, for display in a notebook."""
        return {
            "committed": self.committed,
            "next_offset": self.next_offset,
            "in_flight": len(self.in_flight),
            "waiting_redelivery": len(self._redeliver),
            "acked_above_gap": len(self._acked_above),
            "redeliveries": self.redeliveries,
            "dead_lettered": self.dead_lettered,
        }

    def __repr__(self) -> str:
        return (
            f"<PartitionDelivery committed {self.committed}, next {self.next_offset}, "
            f"{len(self.in_flight)} in flight, {len(self._redeliver)} to redeliver>"
        )
