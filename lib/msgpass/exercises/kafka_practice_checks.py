"""The checker of exercise ``consumer-lag`` in lab 21 (Kafka producer and consumer practices).

The learner writes ``lag_per_partition(consumer, topic) -> dict[int, int]``:
for every partition of ``topic``, the number of records that the consumer's
group has not committed yet. That is the partition's high watermark (the
offset the next record will get) minus the group's committed offset. Where
the group has committed nothing, ``committed()`` reports ``OFFSET_INVALID``
(-1001), and the lag counts from the low watermark (the oldest record still
stored) instead.

The checker starts librdkafka's mock cluster (``msgpass.kafka_mock``),
writes a seeded number of records to each of the 4 partitions of a fresh
topic, commits seeded offsets for a fresh group (leaving some partitions
without a commit), and compares the learner's result with the lag it
computes itself. It calls the function again after more records and more
commits, so that stale or cached figures fail. It checks safety too: the
function must not commit, subscribe or assign, because a lag monitor that
moves the group's offsets or joins the group changes what it measures.

The mock cluster does not implement DeleteRecords, so its low watermark is
always 0. To test the low-watermark rule, one sub-check hands the learner a
consumer whose ``get_watermark_offsets`` reports a seeded low watermark
above 0, as a broker reports after retention has deleted the oldest
records. Every other call goes to the real consumer.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from ..kafka_mock import MOCK_PARTITIONS, KafkaCluster, mock_cluster
from .checking import CheckFailed, CheckReport, short_repr
from .timed_calls import TimedCheck

__all__ = ["EXERCISE_ID", "check_consumer_lag"]

EXERCISE_ID = "consumer-lag"
MAX_RECORDS = 12  # records written per partition and round: 1 to MAX_RECORDS, seeded
REQUEST_TIMEOUT_S = 5.0  # flushes, commits and committed-offset queries
NO_OFFSET = -1001  # librdkafka's OFFSET_INVALID: the group has no committed offset

log = logging.getLogger(__name__)

LagFunction = Callable[[Any, str], Any]


class _RetentionConsumer:
    """A consumer whose low watermarks are raised, as if retention had deleted old records.

    Only ``get_watermark_offsets`` differs from the wrapped consumer. It
    reports ``max(low, deleted_below[partition])`` as the low watermark.
    """

    def __init__(self, consumer: Consumer, deleted_below: dict[int, int]) -> None:
        self._consumer = consumer
        self._deleted_below = deleted_below

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)

    def get_watermark_offsets(self, partition: TopicPartition, *args: Any, **kwargs: Any) -> Any:
        watermarks = self._consumer.get_watermark_offsets(partition, *args, **kwargs)
        if watermarks is None:
            return None
        low, high = watermarks
        return max(low, self._deleted_below.get(partition.partition, 0)), high


class _Scenario:
    """One topic and one group on a mock cluster, with the records and commits a check made."""

    def __init__(self, cluster: KafkaCluster, rng: random.Random) -> None:
        self.cluster = cluster
        self.rng = rng
        self.topic = cluster.create_topic(cluster.new_topic_name("lag-check"))
        self.group = cluster.new_topic_name("lag-group")
        self.high = {partition: 0 for partition in range(MOCK_PARTITIONS)}
        self.committed: dict[int, int] = {}
        self.producer = cluster.producer({"linger.ms": 1})
        # The committer stores offsets for the group. It never subscribes, so
        # it commits without joining the group and without the mock's 3 s join.
        self.committer = cluster.consumer(self.group, {"enable.auto.commit": False})
        self.monitor = cluster.consumer(self.group, {"enable.auto.commit": False})

    def write(self, counts: dict[int, int]) -> None:
        for partition, count in counts.items():
            for number in range(count):
                self.producer.produce(
                    self.topic, value=f"record {number}".encode(), partition=partition
                )
            self.high[partition] += count
        unsent = self.producer.flush(REQUEST_TIMEOUT_S)
        if unsent:
            raise RuntimeError(
                f"the checker could not write {unsent} records to the mock cluster within "
                f"{REQUEST_TIMEOUT_S} s; run the cell again"
            )

    def write_random(self) -> None:
        self.write({p: self.rng.randint(1, MAX_RECORDS) for p in range(MOCK_PARTITIONS)})

    def commit(self, offsets: dict[int, int]) -> None:
        entries = [TopicPartition(self.topic, p, offset) for p, offset in offsets.items()]
        self.committer.commit(offsets=entries, asynchronous=False)
        self.committed.update(offsets)

    def commit_random(self, partitions: list[int]) -> None:
        self.commit(
            {p: self.rng.randint(self.committed.get(p, 0), self.high[p]) for p in partitions}
        )

    def broker_committed(self) -> dict[int, int]:
        entries = self.committer.committed(
            [TopicPartition(self.topic, p) for p in range(MOCK_PARTITIONS)],
            timeout=REQUEST_TIMEOUT_S,
        )
        return {e.partition: e.offset for e in entries if e.offset != NO_OFFSET}

    def expected_lag(self, low: dict[int, int] | None = None) -> dict[int, int]:
        low = low or {}
        return {
            p: self.high[p] - self.committed.get(p, low.get(p, 0)) for p in range(MOCK_PARTITIONS)
        }


def _call(candidate: LagFunction, consumer: Any, scenario: _Scenario, when: str) -> dict[int, int]:
    """Call the learner's function, and check the shape of its result and its side effects."""
    result = candidate(consumer, scenario.topic)
    if not isinstance(result, dict):
        raise CheckFailed(
            expected="lag_per_partition() to return a dict {partition: lag}",
            actual=f"{type(result).__name__} {short_repr(result)} {when}",
            hint="build a dict whose keys are partition numbers (int) and values are lags (int)",
        )
    wrong_types = [
        (k, v) for k, v in result.items() if not isinstance(k, int) or not isinstance(v, int)
    ]
    if wrong_types:
        raise CheckFailed(
            expected="int partition numbers as keys and int lags as values",
            actual=f"entries such as {short_repr(wrong_types[:2])} {when}",
            hint="use TopicPartition.partition as the key, and subtract two offsets (ints)",
        )
    if consumer.assignment():
        raise CheckFailed(
            expected="a consumer with no assigned partitions after the call",
            actual=f"assigned partitions {sorted(tp.partition for tp in consumer.assignment())}",
            hint="do not call assign() or subscribe(): committed() and "
            "get_watermark_offsets() need neither, and joining the group would change it",
        )
    stored = scenario.broker_committed()
    if stored != scenario.committed:
        raise CheckFailed(
            expected=f"the group's committed offsets to stay {scenario.committed}",
            actual=f"{stored} after the call {when}",
            hint="a lag monitor only reads: never call commit() in lag_per_partition()",
        )
    return result


def _expect_lag(
    actual: dict[int, int], expected: dict[int, int], scenario: _Scenario, when: str
) -> None:
    missing = sorted(set(expected) - set(actual))
    if missing:
        without_commit = [p for p in missing if p not in scenario.committed]
        hint = (
            "a partition where the group has committed nothing still has a lag: "
            "committed() returns OFFSET_INVALID (-1001) there, so count from the low watermark"
            if without_commit
            else "list every partition of the topic, from consumer.list_topics(topic)"
        )
        raise CheckFailed(
            expected=f"a lag for every partition {sorted(expected)} {when}",
            actual=f"partitions {sorted(actual)}",
            hint=hint,
        )
    extra = sorted(set(actual) - set(expected))
    if extra:
        raise CheckFailed(
            expected=f"partitions {sorted(expected)} only {when}",
            actual=f"also partitions {extra}",
            hint="take the partition numbers from the topic's metadata",
        )
    for partition in sorted(expected):
        if actual[partition] == expected[partition]:
            continue
        committed = scenario.committed.get(partition)
        if committed is None and actual[partition] >= 1000:
            hint = (
                "committed() returned OFFSET_INVALID (-1001) for this partition, which is no "
                "offset: count the lag from the low watermark instead"
            )
        elif committed is None and actual[partition] == scenario.high[partition]:
            hint = (
                "with no committed offset, the lag is the high watermark minus the LOW "
                "watermark, the oldest record still stored, not minus 0"
            )
        elif committed is None:
            hint = (
                "with no committed offset, the lag is the high watermark minus the low "
                "watermark: the records the group has not read yet"
            )
        else:
            hint = (
                "lag is the high watermark (from get_watermark_offsets(..., cached=False)) "
                "minus the committed offset (from committed())"
            )
        raise CheckFailed(
            expected=f"lag {expected[partition]} in partition {partition} {when} (high "
            f"watermark {scenario.high[partition]}, committed "
            f"{committed if committed is not None else 'nothing'})",
            actual=f"{actual[partition]} (whole result {short_repr(actual)})",
            hint=hint,
        )


def _with_scenario(
    run: Callable[[LagFunction, _Scenario], None],
) -> Callable[[Any, random.Random], None]:
    def sub_check(candidate: LagFunction, rng: random.Random) -> None:
        with mock_cluster(num_brokers=1, use_environment=False) as cluster:
            run(candidate, _Scenario(cluster, rng))

    return sub_check


def _check_nothing_committed(candidate: LagFunction, scenario: _Scenario) -> None:
    scenario.write_random()
    actual = _call(candidate, scenario.monitor, scenario, "when the group has committed nothing")
    _expect_lag(actual, scenario.expected_lag(), scenario, "when the group has committed nothing")


def _check_some_committed(candidate: LagFunction, scenario: _Scenario) -> None:
    scenario.write_random()
    partitions = list(range(MOCK_PARTITIONS))
    scenario.rng.shuffle(partitions)
    # One partition fully consumed, one partly, the others never committed.
    scenario.commit({partitions[0]: scenario.high[partitions[0]]})
    scenario.commit_random([partitions[1]])
    when = f"after commits {dict(sorted(scenario.committed.items()))}"
    actual = _call(candidate, scenario.monitor, scenario, when)
    _expect_lag(actual, scenario.expected_lag(), scenario, when)


def _check_follows_changes(candidate: LagFunction, scenario: _Scenario) -> None:
    for round_number in range(1, 4):
        scenario.write_random()
        committed_now = scenario.rng.sample(range(MOCK_PARTITIONS), k=round_number)
        scenario.commit_random(committed_now)
        when = f"in round {round_number} of writes and commits"
        actual = _call(candidate, scenario.monitor, scenario, when)
        _expect_lag(actual, scenario.expected_lag(), scenario, when)


def _check_retention(candidate: LagFunction, scenario: _Scenario) -> None:
    scenario.write(
        {p: MAX_RECORDS + scenario.rng.randint(1, MAX_RECORDS) for p in range(MOCK_PARTITIONS)}
    )
    scenario.commit({0: scenario.high[0] - 2})
    deleted_below = {p: scenario.rng.randint(1, MAX_RECORDS) for p in range(1, MOCK_PARTITIONS)}
    consumer = _RetentionConsumer(scenario.monitor, deleted_below)
    when = f"when retention has deleted the records below offsets {deleted_below}"
    actual = _call(candidate, consumer, scenario, when)
    _expect_lag(actual, scenario.expected_lag(deleted_below), scenario, when)


def _check_empty_topic(candidate: LagFunction, scenario: _Scenario) -> None:
    when = "on a topic with no records"
    actual = _call(candidate, scenario.monitor, scenario, when)
    _expect_lag(actual, scenario.expected_lag(), scenario, when)


def check_consumer_lag(
    lag_per_partition: LagFunction, *, seed: int = 0, quiet: bool = False
) -> CheckReport:
    """Check ``lag_per_partition(consumer, topic)`` against a mock Kafka cluster.

    Each sub-check starts its own one-broker mock cluster, so that no state
    leaks between them. Raises ``ExerciseFailed`` with a short report at the
    first wrong result. Prints one line when every check passes, unless
    ``quiet``. Takes about a second, because no consumer joins a group.
    """
    check = TimedCheck(EXERCISE_ID, seed=seed)
    check.add(
        "nothing committed",
        _with_scenario(_check_nothing_committed),
        hint="with no committed offset, the lag of a partition is high watermark minus low "
        "watermark",
    )
    check.add(
        "some partitions committed",
        _with_scenario(_check_some_committed),
        hint="lag is high watermark minus committed offset, per partition",
    )
    check.add(
        "lag follows new records and commits",
        _with_scenario(_check_follows_changes),
        hint="ask the broker on every call: get_watermark_offsets(tp, timeout=..., "
        "cached=False) and committed(partitions, timeout=...)",
    )
    check.add(
        "retention raised the low watermark",
        _with_scenario(_check_retention),
        hint="with no committed offset, count from the low watermark that "
        "get_watermark_offsets() returns, not from 0",
    )
    check.add(
        "empty topic",
        _with_scenario(_check_empty_topic),
        hint="an empty partition has high watermark 0 and lag 0",
    )
    return check.run(lag_per_partition, quiet=quiet)
