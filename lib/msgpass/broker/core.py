"""The broker's state machine: topics, groups and delivery, without any networking.

``Broker`` ties the pieces together. It owns the partition logs of every
topic, the consumer groups, and each group's delivery state per partition.
Every public method takes one lock, so the broker behaves as if requests ran
one at a time, in the order they took the lock. ``BrokerServer`` calls these
methods from one thread per client connection.

On disk (``Durability.FSYNC``) the data directory looks like this::

    data_dir/
      topics/<topic>/topic.json                 {"partitions": 3}
      topics/<topic>/<partition>/<offset>.log   segment files
      groups/<group>.json                       {"<topic>/<partition>": committed offset}

A topic exists once its ``topic.json`` is in place, which is written last and
atomically, so a crash in the middle of creating a topic leaves no half
topic. Committed offsets are written atomically and fsynced before the reply
to an ack request is sent, so a consumer that received that reply can rely on
the committed offset after a crash.

NOTE: one lock for the whole broker, held across fsync, keeps the reasoning
simple but serialises all partitions; Kafka appends to partitions in
parallel and lets followers replicate before it acknowledges.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..errors import RemoteError
from .delivery import PartitionDelivery
from .groups import STRATEGIES, ConsumerGroup, Strategy, TopicPartition
from .partition_log import DEFAULT_SEGMENT_BYTES, Durability, NewRecord, PartitionLog
from .records import Record, decode_records
from .segments import fsync_directory, write_file_atomically

__all__ = [
    "DLQ_SUFFIX",
    "Broker",
    "Delivered",
    "FetchResult",
    "FetchedRun",
    "EncodedFetchResult",
]

log = logging.getLogger(__name__)

DLQ_SUFFIX = ".dlq"
DEFAULT_ACK_TIMEOUT_S = 30.0
DEFAULT_MAX_DELIVERIES = 5
MAX_WAIT_S = 5.0  # maximum seconds a fetch waits for records before it returns empty
_T = TypeVar("_T")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")


@dataclass(frozen=True)
class Delivered:
    """A record handed to a consumer, with where it came from and how often it went out."""

    topic: str
    partition: int
    record: Record
    deliveries: int


@dataclass(frozen=True)
class FetchResult:
    """The result of a fetch: the member's generation and assignment, and any records."""

    generation: int
    assignment: list[TopicPartition]
    deliveries: list[Delivered]


@dataclass(frozen=True)
class FetchedRun:
    """Consecutive records of one partition handed out by a fetch, still in the stored layout."""

    topic: str
    partition: int
    first_offset: int
    data: bytes
    deliveries: list[int]  # per record: how often it has gone out, this time included


@dataclass(frozen=True)
class EncodedFetchResult:
    """The result of ``fetch_encoded``: like ``FetchResult``, with records as stored bytes."""

    generation: int
    assignment: list[TopicPartition]
    runs: list[FetchedRun]


class Broker:
    """Topics, consumer groups and at-least-once delivery behind one lock.

    ``data_dir`` is required for ``Durability.FSYNC`` and must be None for
    ``Durability.MEMORY``. Opening a data directory that holds an earlier
    broker's files recovers its topics, records and committed offsets.
    ``strategies`` adds named assignment strategies to the built-in
    ``"range"`` and ``"round_robin"``, for this broker only.
    """

    def __init__(
        self,
        data_dir: Path | str | None,
        *,
        durability: Durability | str = Durability.FSYNC,
        ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        retention_bytes: int | None = None,
        retention_age_s: float | None = None,
        strategies: Mapping[str, Strategy] | None = None,
    ) -> None:
        self.durability = Durability(durability)
        self.data_dir = None if data_dir is None else Path(data_dir)
        if (self.data_dir is None) != (self.durability is Durability.MEMORY):
            raise ValueError(
                "durability 'fsync' needs a data_dir and durability 'memory' takes none, "
                f"got durability={self.durability.value!r} and data_dir={data_dir!r}"
            )
        if ack_timeout_s <= 0:
            raise ValueError(f"ack_timeout_s must be positive, got {ack_timeout_s}")
        self.ack_timeout_s = ack_timeout_s
        self.max_deliveries = max_deliveries
        self.segment_bytes = segment_bytes
        self.retention_bytes = retention_bytes
        self.retention_age_s = retention_age_s
        self.strategies: dict[str, Strategy] = dict(STRATEGIES)
        for name, strategy in (strategies or {}).items():
            self.add_strategy(name, strategy)
        self._condition = threading.Condition()
        self._closed = False
        self._topics: dict[str, list[PartitionLog]] = {}
        self._round_robin: dict[str, int] = {}
        self._groups: dict[str, ConsumerGroup] = {}
        self._deliveries: dict[tuple[str, TopicPartition], PartitionDelivery] = {}
        self._committed: dict[str, dict[TopicPartition, int]] = {}
        if self.data_dir is not None:
            self._load(self.data_dir)

    # -- startup and recovery --------------------------------------------

    def _load(self, data_dir: Path) -> None:
        for sub in ("topics", "groups"):
            (data_dir / sub).mkdir(parents=True, exist_ok=True)
        fsync_directory(data_dir)
        for meta in sorted((data_dir / "topics").glob("*/topic.json")):
            partitions = int(json.loads(meta.read_text())["partitions"])
            name = meta.parent.name
            self._topics[name] = [self._open_log(name, p) for p in range(partitions)]
        for path in sorted((data_dir / "groups").glob("*.json")):
            stored = json.loads(path.read_text())
            committed: dict[TopicPartition, int] = {}
            for key, offset in stored.items():
                topic, _, partition = key.rpartition("/")
                committed[TopicPartition(topic, int(partition))] = int(offset)
            self._committed[path.stem] = committed
        log.info(
            "recovered %d topics and %d groups from %s",
            len(self._topics),
            len(self._committed),
            data_dir,
        )

    def _open_log(self, topic: str, partition: int) -> PartitionLog:
        directory = None
        if self.data_dir is not None:
            directory = self.data_dir / "topics" / topic / str(partition)
        return PartitionLog(
            directory,
            durability=self.durability,
            segment_bytes=self.segment_bytes,
            retention_bytes=self.retention_bytes,
            retention_age_s=self.retention_age_s,
        )

    # -- topics and records ----------------------------------------------

    def create_topic(self, name: str, partitions: int = 1) -> bool:
        """Create a topic; return False if it already exists with that many partitions.

        Raises ``RemoteError`` (code ``"topic_exists"``) if it exists with a
        different partition count, and ``ValueError`` for an invalid name.
        """
        _check_name("topic", name)
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise ValueError(f"partitions must be a positive int, got {partitions!r}")
        with self._condition:
            return self._create_topic(name, partitions)

    def _create_topic(self, name: str, partitions: int) -> bool:
        existing = self._topics.get(name)
        if existing is not None:
            if len(existing) != partitions:
                raise RemoteError(
                    f"topic {name!r} already exists with {len(existing)} partitions, "
                    f"not {partitions}",
                    code="topic_exists",
                )
            return False
        logs = [self._open_log(name, p) for p in range(partitions)]
        if self.data_dir is not None:
            topic_dir = self.data_dir / "topics" / name
            fsync_directory(topic_dir)
            fsync_directory(topic_dir.parent)
            durable = self.durability is Durability.FSYNC
            write_file_atomically(
                topic_dir / "topic.json", {"partitions": partitions}, durable=durable
            )
        self._topics[name] = logs
        log.info("created topic %s with %d partitions", name, partitions)
        return True

    def partition_count(self, topic: str) -> int:
        """Return the number of partitions of ``topic``; raise ``RemoteError`` if it is unknown."""
        return len(self._logs(topic))

    def _logs(self, topic: str) -> list[PartitionLog]:
        logs = self._topics.get(topic)
        if logs is None:
            raise RemoteError(
                f"topic {topic!r} not found; create it first with create_topic",
                code="unknown_topic",
            )
        return logs

    def produce(
        self, topic: str, records: Sequence[NewRecord], partition: int | None = None
    ) -> list[tuple[int, int]]:
        """Append records and return each one's (partition, offset), once they are durable.

        Without ``partition``, a record with a key goes to
        ``crc32(key) % partitions`` (same key, same partition, so same order)
        and one without a key to the next partition in turn. The records for
        each partition are appended as one batch with one fsync.
        """
        with self._condition:
            logs = self._logs(topic)
            if partition is not None and not 0 <= partition < len(logs):
                raise RemoteError(
                    f"topic {topic!r} has partitions 0..{len(logs) - 1}, not {partition}",
                    code="unknown_partition",
                )
            chosen = [self._choose_partition(topic, len(logs), r, partition) for r in records]
            batches: dict[int, list[NewRecord]] = {}
            for number, record in zip(chosen, records, strict=True):
                batches.setdefault(number, []).append(record)
            now_ms = time.time_ns() // 1_000_000
            offsets: dict[int, list[int]] = {}
            for number, batch in batches.items():
                offsets[number] = logs[number].append(batch, now_ms)
                logs[number].apply_retention(now_ms)
            self._condition.notify_all()
        positions = {number: iter(values) for number, values in offsets.items()}
        return [(number, next(positions[number])) for number in chosen]

    def _choose_partition(
        self, topic: str, count: int, record: NewRecord, partition: int | None
    ) -> int:
        if partition is not None:
            return partition
        if record.key is not None:
            return zlib.crc32(record.key) % count
        turn = self._round_robin.get(topic, 0)
        self._round_robin[topic] = turn + 1
        return turn % count

    def read(self, topic: str, partition: int, offset: int, max_records: int = 500) -> list[Record]:
        """Return up to ``max_records`` records of a partition from ``offset``, outside groups."""
        with self._condition:
            return self._log(TopicPartition(topic, partition)).read(offset, max_records)

    def read_bytes(
        self, topic: str, partition: int, offset: int, max_records: int = 500
    ) -> tuple[int, int, bytes]:
        """Return (first_offset, count, bytes) of stored records, like ``read`` but not decoded."""
        with self._condition:
            return self._log(TopicPartition(topic, partition)).read_bytes(offset, max_records)

    def _log(self, tp: TopicPartition) -> PartitionLog:
        logs = self._logs(tp.topic)
        if not 0 <= tp.partition < len(logs):
            raise RemoteError(
                f"partition {tp.partition} of topic {tp.topic!r} not found",
                code="unknown_partition",
            )
        return logs[tp.partition]

    def end_offsets(self) -> dict[str, list[tuple[int, int]]]:
        """Return each topic's (start_offset, end_offset) per partition."""
        with self._condition:
            return {
                name: [(p.start_offset, p.end_offset) for p in logs]
                for name, logs in self._topics.items()
            }

    # -- consumer groups -------------------------------------------------

    def add_strategy(self, name: str, strategy: Strategy) -> None:
        """Make ``strategy`` available to this broker's groups as ``name``.

        Raises ``ValueError`` when ``name`` is taken by another strategy, and
        ``TypeError`` when ``strategy`` is not callable.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a strategy name must be a non-empty str, got {name!r}")
        if not callable(strategy):
            raise TypeError(f"strategy {name!r} must be callable, got {type(strategy).__name__}")
        existing = self.strategies.get(name)
        if existing is not None and existing is not strategy:
            raise ValueError(f"strategy name {name!r} is already used by {existing!r}")
        self.strategies[name] = strategy

    def join(
        self,
        group: str,
        topics: Sequence[str],
        *,
        session_timeout_s: float = 10.0,
        strategy: str | Strategy = "range",
    ) -> tuple[str, int, list[TopicPartition]]:
        """Add a member to ``group`` and return (member_id, generation, its partitions).

        ``strategy`` is a name in ``strategies`` or an assignment function,
        and is used only when this member creates the group. Raises
        ``RemoteError`` with code ``"unknown_strategy"`` for an unknown name
        and ``"invalid_assignment"`` when the strategy's result is invalid.
        """
        _check_name("group", group)
        if isinstance(strategy, str) and strategy not in self.strategies:
            raise RemoteError(
                f"unknown assignment strategy {strategy!r}; this broker has "
                f"{sorted(self.strategies)}",
                code="unknown_strategy",
            )
        with self._condition:
            for topic in topics:
                self._logs(topic)
            state = self._groups.get(group)
            if state is None or not state.members:
                state = ConsumerGroup(
                    group, self.partition_count, strategy=strategy, strategies=self.strategies
                )
                self._groups[group] = state
            member_id = self._changing(
                state, lambda: state.join(topics, session_timeout_s, time.monotonic())
            )
            return member_id, state.generation, state.assignment[member_id]

    def leave(self, group: str, member_id: str) -> None:
        """Remove a member from its group, handing its partitions to the others at once."""
        with self._condition:
            state = self._groups.get(group)
            if state is not None:
                self._changing(state, lambda: state.leave(member_id))

    def _changing(self, state: ConsumerGroup, change: Callable[[], _T]) -> _T:
        """Run a membership change and release in-flight records of partitions that moved."""
        before = {tp: m for m, tps in state.assignment.items() for tp in tps}
        result = change()
        after = {tp: m for m, tps in state.assignment.items() for tp in tps}
        for tp, owner in before.items():
            if after.get(tp) != owner:
                delivery = self._deliveries.get((state.name, tp))
                if delivery is not None:
                    delivery.release()
        self._condition.notify_all()
        return result

    def fetch(
        self,
        group: str,
        member_id: str,
        generation: int,
        *,
        max_records: int = 500,
        wait_s: float = 0.0,
    ) -> FetchResult:
        """Deliver up to ``max_records`` records of the member's partitions within ``wait_s``.

        The call is also the member's heartbeat. If ``generation`` is not the
        group's current one, it returns the new generation and assignment with
        no records, so the member can switch before it reads anything.
        Raises ``RemoteError`` with code ``"unknown_member"`` if the member
        is no longer in the group.
        """
        result = self.fetch_encoded(
            group, member_id, generation, max_records=max_records, wait_s=wait_s
        )
        delivered: list[Delivered] = []
        for run in result.runs:
            decoded = decode_records(run.data, first_offset=run.first_offset)
            if decoded.problem is not None or len(decoded.records) != len(run.deliveries):
                raise OSError(
                    f"{run.topic}/{run.partition}: stored record at or after offset "
                    f"{run.first_offset} is damaged: {decoded.problem}"
                )
            for record, count in zip(decoded.records, run.deliveries, strict=True):
                delivered.append(Delivered(run.topic, run.partition, record, count))
        return FetchResult(result.generation, result.assignment, delivered)

    def fetch_encoded(
        self,
        group: str,
        member_id: str,
        generation: int,
        *,
        max_records: int = 500,
        wait_s: float = 0.0,
    ) -> EncodedFetchResult:
        """Do what ``fetch`` does, but return the records as the bytes stored on disk.

        ``BrokerServer`` sends these bytes to the consumer as they are, so the
        broker neither decodes nor re-encodes a record on the way out, and the
        consumer checks every CRC. Kafka brokers go further and copy such byte
        ranges from the segment file to the socket with ``sendfile``.
        """
        deadline = time.monotonic() + min(max(wait_s, 0.0), MAX_WAIT_S)
        with self._condition:
            state = self._group(group)
            while True:
                now = time.monotonic()
                self._changing(state, lambda: state.expire(now))  # noqa: B023
                state.heartbeat(member_id, now)
                assigned = state.assignment.get(member_id, [])
                if generation != state.generation or self._closed:
                    return EncodedFetchResult(state.generation, assigned, [])
                runs = self._take(state, member_id, assigned, max_records, now)
                if runs or now >= deadline:
                    return EncodedFetchResult(state.generation, assigned, runs)
                self._condition.wait(self._wake_time(state, assigned, deadline) - now)

    def _wake_time(
        self, state: ConsumerGroup, assigned: list[TopicPartition], deadline: float
    ) -> float:
        wake = deadline
        for tp in assigned:
            delivery = self._deliveries.get((state.name, tp))
            next_deadline = None if delivery is None else delivery.next_deadline()
            if next_deadline is not None:
                wake = min(wake, next_deadline)
        for member in state.members.values():
            wake = min(wake, member.last_seen_s + member.session_timeout_s + 0.001)
        return wake

    def _take(
        self,
        state: ConsumerGroup,
        member_id: str,
        assigned: list[TopicPartition],
        max_records: int,
        now: float,
    ) -> list[FetchedRun]:
        runs: list[FetchedRun] = []
        taken = 0
        for tp in assigned:
            if taken >= max_records:
                break
            partition_log = self._log(tp)
            delivery = self._delivery(state.name, tp)
            delivery.skip_to(partition_log.start_offset)
            dead = delivery.expire(now)
            if dead:
                self._dead_letter(state.name, tp, dead, delivery)
            handouts = delivery.take(partition_log.end_offset, max_records - taken, member_id, now)
            taken += len(handouts)
            counts = {h.offset: h.deliveries for h in handouts}
            for first, end in _consecutive_runs(sorted(counts)):
                # skip_to ran under the same lock, so every handed-out offset is stored.
                start, count, data = partition_log.read_bytes(first, end - first)
                if start != first or count != end - first:
                    raise OSError(
                        f"{tp.topic}/{tp.partition}: offsets {first}..{end - 1} were handed "
                        f"out but the log returned {count} records from {start}"
                    )
                deliveries = [counts[offset] for offset in range(first, end)]
                runs.append(FetchedRun(tp.topic, tp.partition, first, data, deliveries))
        return runs

    def _delivery(self, group: str, tp: TopicPartition) -> PartitionDelivery:
        delivery = self._deliveries.get((group, tp))
        if delivery is None:
            committed = self._committed.get(group, {}).get(tp)
            partition_log = self._log(tp)
            if committed is None:
                committed = partition_log.start_offset
            committed = min(committed, partition_log.end_offset)
            delivery = PartitionDelivery(
                committed, ack_timeout_s=self.ack_timeout_s, max_deliveries=self.max_deliveries
            )
            self._deliveries[(group, tp)] = delivery
        return delivery

    def _dead_letter(
        self, group: str, tp: TopicPartition, offsets: list[int], delivery: PartitionDelivery
    ) -> None:
        """Copy records that failed ``max_deliveries`` times to ``<topic>.dlq`` and settle them."""
        dlq = tp.topic + DLQ_SUFFIX
        if dlq not in self._topics:
            self._create_topic(dlq, 1)
        now_ms = time.time_ns() // 1_000_000
        for offset in offsets:
            (record,) = self._log(tp).read(offset, 1)
            headers = dict(record.headers)
            headers.update(
                {
                    "original_topic": tp.topic,
                    "original_partition": str(tp.partition),
                    "original_offset": str(offset),
                    "deliveries": str(self.max_deliveries),
                    "group": group,
                }
            )
            self._topics[dlq][0].append([NewRecord(record.value, record.key, headers)], now_ms)
            log.warning(
                "group %s: %s/%d offset %d failed %d deliveries; moved to %s",
                group,
                tp.topic,
                tp.partition,
                offset,
                self.max_deliveries,
                dlq,
            )
            delivery.settle_dead(offset)
        self._persist_committed(group)

    # -- acknowledgements ------------------------------------------------

    def ack(self, group: str, acks: Sequence[tuple[str, int, int]]) -> dict[TopicPartition, int]:
        """Acknowledge (topic, partition, offset) triples; return the committed offsets touched.

        The committed offsets are persisted (and fsynced in FSYNC mode) before
        this returns. Raises ``RemoteError`` for an unknown topic or partition
        before acknowledging anything. Raises ``ValueError`` for an offset
        never delivered; the acks before it in ``acks`` stay acknowledged
        and persisted.
        """
        with self._condition:
            deliveries = self._deliveries_of(group, acks)
            changed = False
            try:
                for topic, partition, offset in acks:
                    changed |= deliveries[(topic, partition)].ack(offset)
            finally:
                if changed:
                    self._persist_committed(group)
            return {TopicPartition(t, p): d.committed for (t, p), d in deliveries.items()}

    def nack(self, group: str, nacks: Sequence[tuple[str, int, int]]) -> None:
        """Return delivered records for redelivery now, or to the dead-letter topic if spent.

        Raises ``RemoteError`` for an unknown topic or partition before
        returning any record.
        """
        with self._condition:
            deliveries = self._deliveries_of(group, nacks)
            for topic, partition, offset in nacks:
                delivery = deliveries[(topic, partition)]
                dead = delivery.nack(offset)
                if dead:
                    self._dead_letter(group, TopicPartition(topic, partition), dead, delivery)
            self._condition.notify_all()

    def _deliveries_of(
        self, group: str, items: Sequence[tuple[str, int, int]]
    ) -> dict[tuple[str, int], PartitionDelivery]:
        """Look up the delivery state of every partition in ``items`` once, before any change.

        Acks usually come in long runs of one partition, so each state is
        looked up once. An unknown topic or partition raises here, so a
        request that names one changes nothing.
        """
        deliveries: dict[tuple[str, int], PartitionDelivery] = {}
        for topic, partition, _ in items:
            if (topic, partition) not in deliveries:
                tp = TopicPartition(topic, partition)
                deliveries[(topic, partition)] = self._delivery(group, tp)
        return deliveries

    def committed(self, group: str, topic: str, partition: int) -> int | None:
        """Return the group's committed offset of a partition, or None if it never committed."""
        tp = TopicPartition(topic, partition)
        with self._condition:
            delivery = self._deliveries.get((group, tp))
            if delivery is not None:
                return delivery.committed
            return self._committed.get(group, {}).get(tp)

    def _persist_committed(self, group: str) -> None:
        stored = self._committed.setdefault(group, {})
        for (name, tp), delivery in self._deliveries.items():
            if name == group:
                stored[tp] = delivery.committed
        if self.data_dir is not None:
            content = {f"{tp.topic}/{tp.partition}": offset for tp, offset in stored.items()}
            write_file_atomically(
                self.data_dir / "groups" / f"{group}.json",
                content,
                durable=self.durability is Durability.FSYNC,
            )

    def _group(self, group: str) -> ConsumerGroup:
        state = self._groups.get(group)
        if state is None:
            raise RemoteError(
                f"group {group!r} has no members; join it first", code="unknown_member"
            )
        return state

    def describe_group(self, group: str) -> dict[str, object]:
        """Return the group's generation, assignment and delivery counters, for a notebook."""
        with self._condition:
            described = dict(self._group(group).describe())
            described["delivery"] = {
                f"{tp.topic}/{tp.partition}": d.stats()
                for (name, tp), d in self._deliveries.items()
                if name == group
            }
            return described

    def close(self) -> None:
        """Wake every waiting fetch and close every segment file."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
            for logs in self._topics.values():
                for partition_log in logs:
                    partition_log.close()

    def __repr__(self) -> str:
        return (
            f"<Broker {self.durability.value} {self.data_dir or 'in memory'}, "
            f"{len(self._topics)} topics, {len(self._groups)} groups>"
        )


def _consecutive_runs(offsets: list[int]) -> list[tuple[int, int]]:
    """Split sorted ``offsets`` into runs of consecutive offsets: (first, end), end excluded."""
    runs: list[tuple[int, int]] = []
    for offset in offsets:
        if runs and runs[-1][1] == offset:
            runs[-1] = (runs[-1][0], offset + 1)
        else:
            runs.append((offset, offset + 1))
    return runs


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"invalid {kind} name {name!r}: use 1 to 200 letters, digits, '.', '_' or '-', "
            f"not starting with '.' or '-'"
        )
