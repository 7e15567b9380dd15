"""Checkers for the exercises of the chapter 5 labs: big-data pipeline and IoT.

``partitioned-aggregation`` (lab 25): the learner writes a class
``PartitionCounter`` with ``apply(offset, value)``, which adds the words of
one record of one partition to that partition's counts, and a function
``merge_counts(counters)`` that merges the per-partition counts into one
``Counter``. Delivery is at least once, so a record may come again, and a
record whose first delivery was lost in a crash comes again after later
offsets. The merged counts are exact when each (partition, offset) is counted once.
The checker builds seeded record sets, splits them over 1, 2, 4 or 8
partitions by key, delivers each partition's records with injected
redeliveries, interleaves the partitions in a seeded order, and compares the
merged counts with the counts of one sequential pass. Safety: no word is
counted too often. Liveness: no word is counted too rarely.

``qos1-dedup`` (lab 26): the learner writes a ``SimSubscriber`` subclass whose
``on_Publish`` passes each reading to ``accept`` once, however often a QoS 1
device resends it, and sends a PUBACK for every copy. The checker runs
``SimDevice`` nodes from ``msgpass.mqtt_support`` against it on the
simulated network with seeded loss and duplication. Packet ids are reused
once acknowledged, so a packet id alone does not name a reading. Safety:
no reading is accepted twice and none that was never sent. Liveness: every
reading is accepted, and every device sees a PUBACK for every reading.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from ..mqtt_support import SIM_INTERVAL_S, SimDevice
from ..sim import LinkConfig, Simulation
from .checking import CheckFailed, CheckReport, short_repr
from .timed_calls import TimedCheck

__all__ = ["check_partitioned_aggregation", "check_qos1_dedup"]

AGGREGATION_ID = "partitioned-aggregation"
DEDUP_ID = "qos1-dedup"

PARTITION_COUNTS = (1, 2, 4, 8)
VOCABULARY = (
    "log", "kafka", "topic", "stream", "offset", "batch", "window", "key", "shard",
    "merge", "count", "order", "event", "record", "replay", "commit", "group", "lag",
)  # fmt: skip
AGGREGATION_SEEDED_RUNS = 24

BROKER_ID = "broker"  # node id of the subscriber on the simulated network
DEDUP_SEEDED_RUNS = 20
SIM_SLACK_S = 10.0  # simulated seconds after the last reading for resends to finish

Record = tuple[bytes, bytes]  # (key, value)


# ---------------------------------------------------------------------------
# partitioned-aggregation
# ---------------------------------------------------------------------------


class _AggregationCandidate:
    def __init__(self, counter_class: type[Any], merge: Callable[[list[Any]], Any]) -> None:
        self.counter_class = counter_class
        self.merge = merge


def _words(value: bytes) -> list[str]:
    return value.decode().lower().split()


def _make_records(rng: random.Random, count: int, keys: int) -> list[Record]:
    records = []
    for _ in range(count):
        key = f"user-{rng.randrange(keys)}".encode()
        line = " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(1, 6)))
        records.append((key, line.encode()))
    return records


def _partition_of(key: bytes, partitions: int) -> int:
    # Any deterministic function of the key keeps per-key order; the sum of the
    # bytes is enough here and does not depend on Python's hash seed.
    return sum(key) % partitions


def _split(records: Sequence[Record], partitions: int) -> list[list[bytes]]:
    logs: list[list[bytes]] = [[] for _ in range(partitions)]
    for key, value in records:
        logs[_partition_of(key, partitions)].append(value)
    return logs


def _deliveries(
    log: Sequence[bytes], rng: random.Random, redeliver: float, late: float
) -> list[tuple[int, bytes]]:
    """Return one partition's deliveries: every offset at least once, in log order at first.

    With probability ``redeliver`` an offset is delivered again after a few
    later ones, as after a missed acknowledgement. With probability ``late``
    an offset's only delivery comes after later offsets, as when a consumer
    crashed before processing it and the broker redelivered it later.
    """
    result: list[tuple[int, bytes]] = []
    pending: list[tuple[int, int, bytes]] = []  # (deliver after this many more, offset, value)
    for offset, value in enumerate(log):
        roll = rng.random()
        if roll < late:
            pending.append((rng.randint(1, 4), offset, value))
        else:
            result.append((offset, value))
            if roll < late + redeliver:
                pending.append((rng.randint(0, 4), offset, value))
        still: list[tuple[int, int, bytes]] = []
        for wait, pending_offset, pending_value in pending:
            if wait <= 0:
                result.append((pending_offset, pending_value))
            else:
                still.append((wait - 1, pending_offset, pending_value))
        pending = still
    result.extend((offset, value) for _, offset, value in pending)
    return result


def _interleave(
    per_partition: list[list[tuple[int, bytes]]], rng: random.Random
) -> list[tuple[int, int, bytes]]:
    """Merge partitions' delivery lists in a seeded order, keeping each list's own order."""
    cursors = [0] * len(per_partition)
    order: list[tuple[int, int, bytes]] = []
    while True:
        open_partitions = [p for p, items in enumerate(per_partition) if cursors[p] < len(items)]
        if not open_partitions:
            return order
        partition = rng.choice(open_partitions)
        offset, value = per_partition[partition][cursors[partition]]
        cursors[partition] += 1
        order.append((partition, offset, value))


def _run_aggregation(
    candidate: _AggregationCandidate,
    records: Sequence[Record],
    partitions: int,
    rng: random.Random,
    *,
    redeliver: float,
    late: float,
) -> tuple[Counter[str], Counter[str], int]:
    """Deliver ``records`` to one counter per partition; return (merged, expected, deliveries)."""
    logs = _split(records, partitions)
    per_partition = [_deliveries(log, rng, redeliver, late) for log in logs]
    counters = [candidate.counter_class() for _ in range(partitions)]
    deliveries = _interleave(per_partition, rng)
    for partition, offset, value in deliveries:
        counters[partition].apply(offset, value)
    merged = candidate.merge(counters)
    expected: Counter[str] = Counter()
    for _, value in records:
        expected.update(_words(value))
    return Counter(dict(merged)), expected, len(deliveries)


def _compare_counts(
    merged: Counter[str], expected: Counter[str], context: str, *, faults: bool = True
) -> None:
    too_many = {w: merged[w] for w in merged if merged[w] > expected.get(w, 0)}
    too_few = {w: merged.get(w, 0) for w in expected if merged.get(w, 0) < expected[w]}
    if too_many:
        word = sorted(too_many)[0]
        raise CheckFailed(
            expected=f"{word!r} counted {expected.get(word, 0)} times ({context})",
            actual=f"{merged[word]} times; words counted too often: {short_repr(sorted(too_many))}",
            hint="a redelivered record must not be counted again: remember which offsets each "
            "partition has applied, and count the words of an offset once",
        )
    if too_few:
        word = sorted(too_few)[0]
        raise CheckFailed(
            expected=f"{word!r} counted {expected[word]} times ({context})",
            actual=f"{merged.get(word, 0)} times; words counted too rarely: "
            f"{short_repr(sorted(too_few))}",
            # Without faults the sub-check's own hint names the likelier mistake.
            hint="every offset must be counted once, even one whose first delivery arrives "
            "after later offsets, and merge_counts must add the counts of all partitions"
            if faults
            else None,
        )


def _aggregation_case(
    partitions: int, redeliver: float, late: float, count: int = 60
) -> Callable[[_AggregationCandidate, random.Random], None]:
    def run(candidate: _AggregationCandidate, rng: random.Random) -> None:
        records = _make_records(rng, count, keys=12)
        merged, expected, deliveries = _run_aggregation(
            candidate, records, partitions, rng, redeliver=redeliver, late=late
        )
        context = (
            f"{len(records)} records over {partitions} partitions, {deliveries} deliveries, "
            f"{deliveries - len(records)} of them redeliveries"
        )
        _compare_counts(merged, expected, context, faults=redeliver > 0 or late > 0)

    return run


def _repeated_lines(candidate: _AggregationCandidate, rng: random.Random) -> None:
    records = [(b"user-1", b"replay the log")] * 5 + [(b"user-2", b"replay the log")] * 3
    merged, expected, _ = _run_aggregation(candidate, records, 2, rng, redeliver=0.0, late=0.0)
    _compare_counts(
        merged, expected, "8 records with the same text at different offsets", faults=False
    )


def _seeded_runs(candidate: _AggregationCandidate, rng: random.Random) -> None:
    for run in range(AGGREGATION_SEEDED_RUNS):
        partitions = rng.choice(PARTITION_COUNTS)
        records = _make_records(rng, rng.randint(1, 120), keys=rng.randint(1, 20))
        redeliver = rng.choice((0.0, 0.1, 0.3))
        late = rng.choice((0.0, 0.05, 0.2))
        merged, expected, deliveries = _run_aggregation(
            candidate, records, partitions, rng, redeliver=redeliver, late=late
        )
        _compare_counts(
            merged,
            expected,
            f"seeded run {run}: {len(records)} records, {partitions} partitions, "
            f"{deliveries} deliveries",
        )


def check_partitioned_aggregation(
    counter_class: type[Any], merge_counts: Callable[[list[Any]], Any], *, seed: int = 0
) -> CheckReport:
    """Check exercise ``partitioned-aggregation``: exact word counts under redelivery.

    ``counter_class()`` makes one partition's counter, ``apply(offset,
    value)`` counts one delivered record, and ``merge_counts(counters)``
    returns the total as a ``Counter`` (or a dict of counts). Raises
    ``ExerciseFailed`` with a hint at the first wrong result.
    """
    check = TimedCheck(AGGREGATION_ID, seed=seed)
    check.add(
        "one partition, no faults",
        _aggregation_case(1, redeliver=0.0, late=0.0),
        hint="apply() must add the words of the record (words(value)) to this partition's "
        "counts, and merge_counts() must return them",
    )
    for partitions in PARTITION_COUNTS[1:]:
        check.add(
            f"{partitions} partitions, no faults",
            _aggregation_case(partitions, redeliver=0.0, late=0.0),
            hint="merge_counts() must add up the counts of every partition: a word can appear "
            "in several partitions",
        )
    check.add(
        "same text at different offsets",
        _repeated_lines,
        hint="two records with the same text are two records: tell records apart by offset, "
        "not by their value",
    )
    check.add(
        "redeliveries",
        _aggregation_case(4, redeliver=0.3, late=0.0),
        hint="a redelivered record must not be counted again: keep the offsets each "
        "partition has applied",
    )
    check.add(
        "late first deliveries",
        _aggregation_case(4, redeliver=0.1, late=0.2),
        hint="an offset can arrive for the first time after higher offsets, so 'skip "
        "everything below the highest offset seen' loses records: keep the set of applied "
        "offsets",
    )
    check.add(
        "seeded runs",
        _seeded_runs,
        hint="count each (partition, offset) exactly once and add the partitions' counts",
    )
    return check.run(_AggregationCandidate(counter_class, merge_counts))


# ---------------------------------------------------------------------------
# qos1-dedup
# ---------------------------------------------------------------------------


def _simulate_devices(
    subscriber_class: type[Any],
    *,
    seed: int,
    devices: int,
    count: int,
    to_broker: LinkConfig,
    to_device: LinkConfig,
) -> tuple[Any, list[SimDevice]]:
    sim = Simulation(seed=seed)
    subscriber = sim.add_node(subscriber_class(BROKER_ID))
    device_nodes = []
    for number in range(devices):
        device = sim.add_node(SimDevice(f"sensor-{number}", broker=BROKER_ID, qos=1, count=count))
        sim.set_link(device.node_id, BROKER_ID, to_broker, both_ways=False)
        sim.set_link(BROKER_ID, device.node_id, to_device, both_ways=False)
        device_nodes.append(device)
    sim.run(until_s=count * SIM_INTERVAL_S * 2 + SIM_SLACK_S)
    return subscriber, device_nodes


def _judge_dedup(subscriber: Any, devices: list[SimDevice], context: str) -> None:
    readings = getattr(subscriber, "readings", None)
    if not isinstance(readings, list):
        raise CheckFailed(
            expected="the subscriber to keep SimSubscriber's readings list",
            actual=short_repr(readings),
            hint="call super().__init__(node_id) in __init__ and pass readings to self.accept()",
        )

    sent = {(d.node_id, seq) for d in devices for seq in range(d.count)}
    accepted = Counter((r.get("device"), r.get("seq")) for r in readings)

    twice = sorted(key for key, times in accepted.items() if times > 1)
    if twice:
        raise CheckFailed(
            expected=f"each reading accepted once ({context})",
            actual=f"{len(twice)} readings accepted more than once, first {twice[0]} "
            f"{accepted[twice[0]]} times",
            hint="a QoS 1 resend carries the same reading again: remember which readings you "
            "accepted, by (device, seq) from the payload, and skip repeats",
        )

    unknown = sorted(set(accepted) - sent)
    if unknown:
        raise CheckFailed(
            expected="only readings the devices sent",
            actual=f"unknown readings {short_repr(unknown)}",
            hint="pass the parsed reading of the PUBLISH to accept() unchanged",
        )

    missing = sorted(sent - set(accepted))
    if missing:
        raise CheckFailed(
            expected=f"all {len(sent)} readings accepted ({context})",
            actual=f"{len(missing)} never accepted, first {missing[0]}",
            hint="packet ids are reused once acknowledged, so a packet id (even with the "
            "client id) does not name a reading; use the device and seq in the payload",
        )

    unacked = sorted((d.node_id, seq) for d in devices for seq in d.gave_up)
    if unacked or any(d.in_flight for d in devices):
        raise CheckFailed(
            expected=f"every device to get a PUBACK for every reading ({context})",
            actual=f"devices gave up on {len(unacked)} readings, first "
            f"{unacked[0] if unacked else None}",
            hint="send Puback(message.packet_id) back to the sender for every QoS 1 copy, "
            "duplicates too: the device resends until an acknowledgement gets through",
        )


def _dedup_case(
    *,
    devices: int,
    count: int,
    to_broker: LinkConfig | None = None,
    to_device: LinkConfig | None = None,
) -> Callable[[type[Any], random.Random], None]:
    def run(subscriber_class: type[Any], rng: random.Random) -> None:
        seed = rng.randrange(2**32)
        subscriber, device_nodes = _simulate_devices(
            subscriber_class,
            seed=seed,
            devices=devices,
            count=count,
            to_broker=to_broker or LinkConfig(),
            to_device=to_device or LinkConfig(),
        )
        _judge_dedup(
            subscriber,
            device_nodes,
            f"{devices} device(s) x {count} readings, simulation seed {seed}",
        )

    return run


def _dedup_seeded_runs(subscriber_class: type[Any], rng: random.Random) -> None:
    for _ in range(DEDUP_SEEDED_RUNS):
        seed = rng.randrange(2**32)
        to_broker = LinkConfig(loss=rng.uniform(0.0, 0.2), duplicate=rng.uniform(0.0, 0.3))
        to_device = LinkConfig(loss=rng.uniform(0.0, 0.2), duplicate=rng.uniform(0.0, 0.2))
        subscriber, devices = _simulate_devices(
            subscriber_class,
            seed=seed,
            devices=3,
            count=15,
            to_broker=to_broker,
            to_device=to_device,
        )
        _judge_dedup(
            subscriber,
            devices,
            f"simulation seed {seed}, loss {to_broker.loss:.2f}/{to_device.loss:.2f}, "
            f"duplication {to_broker.duplicate:.2f}/{to_device.duplicate:.2f}",
        )


def check_qos1_dedup(subscriber_class: type[Any], *, seed: int = 0) -> CheckReport:
    """Check exercise ``qos1-dedup``: each QoS 1 reading accepted once, every copy acknowledged.

    ``subscriber_class(node_id)`` must make a ``SimSubscriber`` subclass.
    Raises ``ExerciseFailed`` with a hint at the first wrong result.
    """
    check = TimedCheck(DEDUP_ID, seed=seed)
    check.add(
        "one device, no faults",
        _dedup_case(devices=1, count=5),
        hint="accept() each reading and answer every QoS 1 PUBLISH with a Puback",
    )
    check.add(
        "three devices, no faults",
        _dedup_case(devices=3, count=5),
        hint="every device numbers its packets from 1: a packet id alone does not name a "
        "reading, so include the device",
    )
    check.add(
        "packet ids reused",
        _dedup_case(devices=1, count=30),
        hint="packet ids are reused once acknowledged: use the device and seq in the payload",
    )
    check.add(
        "duplicated packets",
        _dedup_case(devices=2, count=15, to_broker=LinkConfig(duplicate=0.4)),
        hint="the link delivered some PUBLISH packets twice: skip a reading you accepted "
        "before, but still acknowledge it",
    )
    check.add(
        "lost acknowledgements",
        _dedup_case(devices=2, count=15, to_device=LinkConfig(loss=0.4)),
        hint="when a PUBACK is lost the device resends with dup set: skip the reading, but "
        "send a Puback again",
    )
    check.add(
        "seeded loss and duplication",
        _dedup_seeded_runs,
        hint="accept each (device, seq) once and acknowledge every copy",
    )
    return check.run(subscriber_class)
