"""The checker of exercise ``commit-after-processing`` in lab 15 (Kafka).

The learner writes two functions:

- ``consumer_settings() -> dict``: the librdkafka properties of a consumer
  that commits offsets itself and reads a new group's partitions from their
  start (``enable.auto.commit`` false, ``auto.offset.reset`` earliest);
- ``consume_batch(consumer, process, max_messages, timeout_s) -> int``: poll
  until ``max_messages`` messages are processed or ``timeout_s`` has passed,
  call ``process(message)`` on each, commit each message's offset (or the
  batch's) synchronously *after* ``process`` returned, and return how many
  messages it processed.

The checker runs the functions against librdkafka's mock cluster
(``msgpass.kafka_mock``). Each sub-check writes its own topic of 4
partitions and starts consumers in its own group. It injects two faults:
``process`` raising an error, and crashes (``SimulatedCrash``) at seeded
points, either while a message is processed or just before a commit reaches
the broker. After each crash the consumer is closed, as a dead process's
connections are, and a new consumer of the same group carries on.

Safety, checked after every call and every crash against the offsets the
broker has stored for the group: every offset below a committed offset was
processed (nothing is skipped), no commit names a message before ``process``
returned for it, and a normal return leaves nothing processed uncommitted.
Liveness: every message written is processed, and the duplicates after a
crash are only messages processed but not yet committed when it happened.

Left out on purpose: a time limit on the learner's code. A
``consume_batch`` that ignores ``timeout_s`` and waits for messages that
never come is stopped by the notebook's cell timeout, not by the checker.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from ..kafka_mock import MOCK_GROUP_SETTINGS, MOCK_PARTITIONS, KafkaCluster, mock_cluster
from .checking import CheckFailed, CheckReport, short_repr
from .timed_calls import TimedCheck

__all__ = ["EXERCISE_ID", "SimulatedCrash", "check_commit_after_processing"]

EXERCISE_ID = "commit-after-processing"
MESSAGES = 24  # messages written per sub-check, spread over the topic's 4 partitions
KEYS = 7  # distinct keys, so that every partition gets some messages
BATCH = 5  # max_messages given to each consume_batch() call
CALL_TIMEOUT_S = 1.0  # timeout_s given to each consume_batch() call
DRAIN_DEADLINE_S = 10.0  # how long one consumer may take to process what it is given
# A consumer that subscribes waits for the mock's first group join (3 s) or a
# rebalance (session.timeout.ms - 1 s = 2.5 s) before it gets partitions.
GROUP_DRAIN_DEADLINE_S = 15.0
REQUEST_TIMEOUT_S = 5.0  # committed-offset queries and flushes
NO_OFFSET = -1001  # librdkafka's OFFSET_INVALID: the group has no committed offset

MessageId = tuple[int, int]  # (partition, offset)

log = logging.getLogger(__name__)


class SimulatedCrash(BaseException):
    """The consumer's process dies at this point, so no code of the consumer runs after it.

    A ``BaseException``, so that ``except Exception`` in the learner's code
    cannot catch it, just as no code can catch ``kill -9``.
    """


class InjectedProcessingError(Exception):
    """``process()`` failed on this message, for example because a database was down."""


@dataclass
class _Candidate:
    consumer_settings: Callable[[], Any]
    consume_batch: Callable[..., Any]


@dataclass
class _Ledger:
    """The messages one sub-check wrote and processed, and the faults it injects."""

    topic: str
    written: set[MessageId] = field(default_factory=set)
    processed: list[MessageId] = field(default_factory=list)  # in order, duplicates included
    delivered: set[MessageId] = field(default_factory=set)  # returned by poll() or consume()
    crash_in_process_after: int | None = None  # crash instead of processing message number N
    crash_at_commit_after: int | None = None  # crash at the first commit after N are processed
    fail_once: MessageId | None = None  # process() raises on the first delivery of this message
    failed: set[MessageId] = field(default_factory=set)  # process() raised for these
    violation: CheckFailed | None = None  # the first finding, kept in case learner code hides it
    auto_offset_store: bool = True

    def process(self, message: Any) -> None:
        """The ``process`` callback given to the learner's ``consume_batch``."""
        if not isinstance(message, Message) or message.error() is not None:
            self.record(
                CheckFailed(
                    expected="process() to be called with a Message from poll() that has no error",
                    actual=short_repr(message),
                    hint="call process(message) with the Message object itself, and only when "
                    "message.error() is None",
                )
            )
        partition, offset = message.partition(), message.offset()
        assert partition is not None and offset is not None  # set on every consumed message
        key = (partition, offset)
        limit = self.crash_in_process_after
        if limit is not None and len(self.processed) >= limit:
            self.crash_in_process_after = None
            raise SimulatedCrash(f"crash while processing partition {partition} offset {offset}")
        if key == self.fail_once:
            self.fail_once = None
            self.failed.add(key)
            raise InjectedProcessingError(
                f"processing partition {partition} offset {offset} failed"
            )
        self.processed.append(key)

    def record(self, finding: CheckFailed) -> NoReturn:
        if self.violation is None:
            self.violation = finding
        raise finding

    def raise_violation(self) -> None:
        if self.violation is not None:
            raise self.violation


class _WatchedConsumer:
    """A consumer that forwards every call, and checks each ``commit()`` before it is sent.

    The learner's ``consume_batch`` gets this object instead of the consumer.
    """

    def __init__(self, consumer: Consumer, ledger: _Ledger) -> None:
        self._consumer = consumer
        self._ledger = ledger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)

    def poll(self, *args: Any, **kwargs: Any) -> Message | None:
        message = self._consumer.poll(*args, **kwargs)
        if message is not None and message.error() is None:
            self._note_delivered(message)
        return message

    def consume(self, *args: Any, **kwargs: Any) -> list[Message]:
        messages = self._consumer.consume(*args, **kwargs)
        for message in messages:
            if message.error() is None:
                self._note_delivered(message)
        return messages

    def commit(
        self,
        message: Message | None = None,
        offsets: list[TopicPartition] | None = None,
        asynchronous: bool = True,
    ) -> Any:
        ledger = self._ledger
        if asynchronous is not False:
            ledger.record(
                CheckFailed(
                    expected="commit(..., asynchronous=False)",
                    actual="an asynchronous commit, which returns before the broker has stored it",
                    hint="pass asynchronous=False, so that consume_batch() returns only after "
                    "the broker has stored the offsets",
                )
            )
        for partition, committed in self._targets(message, offsets).items():
            self._check_commit_target(partition, committed)
        limit = ledger.crash_at_commit_after
        if limit is not None and len(ledger.processed) >= limit:
            ledger.crash_at_commit_after = None
            raise SimulatedCrash("crash before the commit reached the broker")
        if message is not None:
            return self._consumer.commit(message=message, asynchronous=False)
        if offsets is not None:
            return self._consumer.commit(offsets=offsets, asynchronous=False)
        return self._consumer.commit(asynchronous=False)

    def _note_delivered(self, message: Message) -> None:
        partition, offset = message.partition(), message.offset()
        if partition is not None and offset is not None:
            self._ledger.delivered.add((partition, offset))

    def _targets(
        self, message: Message | None, offsets: list[TopicPartition] | None
    ) -> dict[int, int]:
        """Return the offset that a commit() call stores, per partition of the topic."""
        targets: dict[int, int] = {}
        if message is not None:
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None:
                targets[partition] = offset + 1
        for entry in offsets or []:
            if entry.topic == self._ledger.topic and entry.offset >= 0:
                targets[entry.partition] = entry.offset
        if message is None and offsets is None and self._ledger.auto_offset_store:
            # commit() without arguments stores each partition's position: one
            # past the last message that poll() or consume() returned.
            for partition, offset in self._ledger.delivered:
                targets[partition] = max(targets.get(partition, 0), offset + 1)
        return targets

    def _check_commit_target(self, partition: int, committed: int) -> None:
        ledger = self._ledger
        if committed == 0:
            return
        last = (partition, committed - 1)
        if last in ledger.processed:
            return
        if last in ledger.failed:
            ledger.record(
                CheckFailed(
                    expected=f"no commit of offset {committed} in partition {partition}, because "
                    f"process() raised for the message at offset {committed - 1}",
                    actual=f"a commit of offset {committed}, which skips that message",
                    hint="let the exception from process() propagate out of consume_batch(): "
                    "a message whose processing failed must be read again after a restart",
                )
            )
        if last in ledger.delivered:
            ledger.record(
                CheckFailed(
                    expected=f"offset {committed} of partition {partition} to be committed only "
                    f"after process() returned for the message at offset {committed - 1}",
                    actual=f"a commit of offset {committed} before that message was processed",
                    hint="call process(message) first, and commit only after it returns: a "
                    "crash between the commit and the processing loses the message",
                )
            )
        ledger.record(
            CheckFailed(
                expected=f"a committed offset in partition {partition} of at most one past the "
                f"last processed message",
                actual=f"a commit of offset {committed}, but the message at offset "
                f"{committed - 1} was never delivered to consume_batch()",
                hint="the committed offset is the offset of the next message to read: "
                "message.offset() + 1, which commit(message=message) computes for you",
            )
        )


# ---------------------------------------------------------------------------
# Running consumers
# ---------------------------------------------------------------------------


def _write_messages(cluster: KafkaCluster, topic: str, ledger: _Ledger) -> None:
    producer = cluster.producer({"linger.ms": 5})

    def delivered(error: Any, message: Message) -> None:
        partition, offset = message.partition(), message.offset()
        if error is None and partition is not None and offset is not None:
            ledger.written.add((partition, offset))

    for number in range(MESSAGES):
        producer.produce(
            topic, key=f"key-{number % KEYS}", value=f"message {number}", on_delivery=delivered
        )
    producer.flush(REQUEST_TIMEOUT_S)
    producer.close()
    if len(ledger.written) != MESSAGES:
        raise RuntimeError(
            f"the checker wrote {len(ledger.written)} of {MESSAGES} messages to the mock "
            f"cluster within {REQUEST_TIMEOUT_S} s; run the cell again"
        )


def _settings(candidate: _Candidate) -> dict[str, Any]:
    settings = candidate.consumer_settings()
    if not isinstance(settings, dict) or not all(isinstance(key, str) for key in settings):
        raise CheckFailed(
            expected="consumer_settings() to return a dict of librdkafka property names",
            actual=short_repr(settings),
            hint='return a dict such as {"enable.auto.commit": ...}',
        )
    return settings


def _new_consumer(
    cluster: KafkaCluster, candidate: _Candidate, group: str, ledger: _Ledger
) -> Consumer:
    settings = _settings(candidate)
    ledger.auto_offset_store = (
        str(settings.get("enable.auto.offset.store", True)).lower() != "false"
    )
    config: dict[str, Any] = {"logger": log, **MOCK_GROUP_SETTINGS}
    config.update(settings)
    config.update({"bootstrap.servers": cluster.bootstrap_servers, "group.id": group})
    try:
        return Consumer(config)
    except KafkaException as error:
        raise CheckFailed(
            expected="settings that librdkafka accepts",
            actual=f"Consumer({short_repr(settings)}) raised: {error}",
            hint="use property names and values from librdkafka's CONFIGURATION.md, "
            "such as 'enable.auto.commit': False",
        ) from None


def _committed(consumer: Consumer, topic: str) -> dict[int, int]:
    """Return the group's committed offset per partition (partitions without one are left out)."""
    entries = consumer.committed(
        [TopicPartition(topic, partition) for partition in range(MOCK_PARTITIONS)],
        timeout=REQUEST_TIMEOUT_S,
    )
    return {entry.partition: entry.offset for entry in entries if entry.offset != NO_OFFSET}


def _check_nothing_skipped(
    committed: dict[int, int], ledger: _Ledger, settings: dict[str, Any], when: str
) -> None:
    for partition, offset in sorted(committed.items()):
        skipped = [o for o in range(offset) if (partition, o) not in ledger.processed]
        if not skipped:
            continue
        if str(settings.get("enable.auto.commit", True)).lower() != "false":
            hint = (
                "enable.auto.commit is true by default: librdkafka then commits the offsets "
                "of messages that poll() returned, processed or not. Set it to False and "
                "commit yourself after processing"
            )
        else:
            hint = (
                "commit a message's offset only after process() returned for it, and let an "
                "exception from process() propagate instead of committing past that message"
            )
        raise CheckFailed(
            expected=f"{when}, every offset below the committed offset {offset} of partition "
            f"{partition} to have been processed",
            actual=f"offsets {skipped} of partition {partition} were committed but never "
            f"processed, so a restarted consumer skips them",
            hint=hint,
        )


def _check_all_committed(committed: dict[int, int], processed_here: list[MessageId]) -> None:
    last: dict[int, int] = {}
    for partition, offset in processed_here:
        last[partition] = max(last.get(partition, -1), offset)
    for partition, offset in sorted(last.items()):
        if committed.get(partition) == offset + 1:
            continue
        raise CheckFailed(
            expected=f"after consume_batch() returned, the committed offset of partition "
            f"{partition} to be {offset + 1}: one past the last message it processed",
            actual=f"committed offset {committed.get(partition, 'none')}",
            hint="commit message.offset() + 1 (commit(message=message) does that), and commit "
            "every processed message before returning: otherwise a restart processes it again",
        )


def _run_consumer(
    cluster: KafkaCluster,
    candidate: _Candidate,
    ledger: _Ledger,
    group: str,
    *,
    want: int | None,
    subscribe: bool = False,
) -> str:
    """Run one consumer of ``group`` until it has processed ``want`` messages.

    With ``want=None`` it runs until every message written has been processed.

    Returns ``"done"``, ``"crashed"`` (a ``SimulatedCrash``) or ``"failed"``
    (``consume_batch`` raised the injected processing error). The consumer
    is closed in every case.
    """
    settings = _settings(candidate)
    consumer = _new_consumer(cluster, candidate, group, ledger)
    try:
        _check_nothing_skipped(_committed(consumer, ledger.topic), ledger, settings, "at a restart")
        if subscribe:
            consumer.subscribe([ledger.topic])
        else:
            consumer.assign(
                [TopicPartition(ledger.topic, partition) for partition in range(MOCK_PARTITIONS)]
            )
        watched = _WatchedConsumer(consumer, ledger)
        start = len(ledger.processed)
        deadline_s = GROUP_DRAIN_DEADLINE_S if subscribe else DRAIN_DEADLINE_S
        deadline = time.monotonic() + deadline_s
        while True:
            before = len(ledger.processed)
            if want is None:
                left = len(ledger.written - set(ledger.processed))
            else:
                left = want - (before - start)
            if left <= 0:
                break
            if time.monotonic() > deadline:
                _report_stalled(ledger, settings, left, before - start, deadline_s)
            # When draining, always ask for a full batch: the last call then ends
            # on its timeout with a partial batch, which must be committed too.
            limit = BATCH if want is None else min(BATCH, left)
            try:
                result = candidate.consume_batch(watched, ledger.process, limit, CALL_TIMEOUT_S)
            except SimulatedCrash:
                ledger.raise_violation()
                return "crashed"
            except Exception as error:
                ledger.raise_violation()
                if not _is_injected(error):
                    raise
                return "failed"
            ledger.raise_violation()
            _check_result(result, len(ledger.processed) - before, limit)
            committed = _committed(consumer, ledger.topic)
            _check_nothing_skipped(committed, ledger, settings, "after consume_batch() returned")
            _check_all_committed(committed, ledger.processed[start:])
        return "done"
    finally:
        consumer.close()


def _is_injected(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, InjectedProcessingError):
            return True
        error = error.__cause__ or error.__context__
    return False


def _check_result(result: object, processed: int, limit: int) -> None:
    if isinstance(result, bool) or not isinstance(result, int) or result != processed:
        raise CheckFailed(
            expected=f"consume_batch() to return the number of messages it processed ({processed})",
            actual=short_repr(result),
            hint="count the process() calls that returned, and return that count",
        )
    if processed > limit:
        raise CheckFailed(
            expected=f"at most max_messages={limit} messages processed per call",
            actual=f"{processed} messages",
            hint="stop polling once max_messages messages have been processed",
        )


def _report_stalled(
    ledger: _Ledger, settings: dict[str, Any], want: int, got: int, deadline_s: float
) -> None:
    if got == 0 and str(settings.get("auto.offset.reset", "latest")).lower() not in (
        "earliest",
        "smallest",
        "beginning",
    ):
        hint = (
            "a new group has no committed offset, so the consumer starts where "
            "auto.offset.reset says; the default, 'latest', skips every message already in "
            "the topic. Set 'auto.offset.reset': 'earliest'"
        )
    else:
        hint = (
            "poll() in a loop until max_messages messages are processed or timeout_s has "
            "passed, and call process(message) on every message without an error"
        )
    raise CheckFailed(
        expected=f"{want} more messages processed within {deadline_s:g} s",
        actual=f"{got} processed (over all consumers so far: {len(set(ledger.processed))} "
        f"of {len(ledger.written)} distinct messages)",
        hint=hint,
    )


def _check_every_message_processed(ledger: _Ledger) -> None:
    missing = sorted(ledger.written - set(ledger.processed))
    if missing:
        raise CheckFailed(
            expected=f"all {len(ledger.written)} messages processed at least once",
            actual=f"{len(missing)} never processed, for example (partition, offset) "
            f"{short_repr(missing[:5])}",
            hint="commit only what process() has finished, so that a restart reads the rest",
        )


def _check_duplicates(ledger: _Ledger, allowed: set[MessageId], why: str) -> None:
    counts = Counter(ledger.processed)
    extra = sorted(key for key, count in counts.items() if count > 1 and key not in allowed)
    if extra:
        raise CheckFailed(
            expected=f"duplicates only of messages {why}",
            actual=f"(partition, offset) {short_repr(extra[:5])} processed "
            f"{[counts[key] for key in extra[:5]]} times",
            hint="commit message.offset() + 1 after processing each message (or each batch): "
            "a committed message must not be delivered again after a restart",
        )


# ---------------------------------------------------------------------------
# Sub-checks
# ---------------------------------------------------------------------------


def _new_ledger(cluster: KafkaCluster, name: str) -> tuple[_Ledger, str]:
    topic = cluster.create_topic(cluster.new_topic_name(name))
    ledger = _Ledger(topic=topic)
    _write_messages(cluster, topic, ledger)
    return ledger, cluster.new_topic_name(f"{name}-group")


def _check_settings(cluster: KafkaCluster, candidate: _Candidate, rng: random.Random) -> None:
    ledger = _Ledger(topic="unused")
    _new_consumer(cluster, candidate, "settings-check", ledger).close()


def _check_clean_restart(cluster: KafkaCluster, candidate: _Candidate, rng: random.Random) -> None:
    ledger, group = _new_ledger(cluster, "clean-restart")
    first = rng.randint(BATCH + 1, MESSAGES - BATCH)
    _run_consumer(cluster, candidate, ledger, group, want=first)
    _run_consumer(cluster, candidate, ledger, group, want=None)
    _check_every_message_processed(ledger)
    _check_duplicates(ledger, set(), "that were processed but not committed: here, none")


def _check_processing_error(
    cluster: KafkaCluster, candidate: _Candidate, rng: random.Random
) -> None:
    ledger, group = _new_ledger(cluster, "processing-error")
    ledger.fail_once = rng.choice(sorted(ledger.written))
    outcome = _run_consumer(cluster, candidate, ledger, group, want=None)
    if outcome != "failed":
        raise CheckFailed(
            expected="consume_batch() to raise the error that process() raised",
            actual="it returned normally",
            hint="let an exception from process() propagate: do not catch it, and do not commit "
            "the message whose processing failed",
        )
    _run_consumer(cluster, candidate, ledger, group, want=None)
    _check_every_message_processed(ledger)


def _check_crashes(cluster: KafkaCluster, candidate: _Candidate, rng: random.Random) -> None:
    ledger, group = _new_ledger(cluster, "crashes")
    allowed: set[MessageId] = set()
    for crash_point in ("in process", "at commit"):
        before = len(ledger.processed)
        after = before + rng.randint(1, 2 * BATCH)
        if crash_point == "in process":
            ledger.crash_in_process_after = after
        else:
            ledger.crash_at_commit_after = after
        outcome = _run_consumer(cluster, candidate, ledger, group, want=None)
        if outcome != "crashed":
            raise CheckFailed(
                expected=f"a crash {crash_point} after {after} processed messages",
                actual=f"the consumer ended with outcome {outcome!r} and never got there",
                hint="call process(message) on every message, then commit",
            )
        allowed |= _uncommitted(cluster, ledger, group, ledger.processed[before:])
    _run_consumer(cluster, candidate, ledger, group, want=None)
    _check_every_message_processed(ledger)
    _check_duplicates(ledger, allowed, "processed but not committed before a crash")


def _check_group_restart(cluster: KafkaCluster, candidate: _Candidate, rng: random.Random) -> None:
    ledger, group = _new_ledger(cluster, "group-restart")
    ledger.crash_at_commit_after = rng.randint(BATCH, MESSAGES - BATCH)
    outcome = _run_consumer(cluster, candidate, ledger, group, want=None, subscribe=True)
    if outcome != "crashed":
        raise CheckFailed(
            expected="a crash just before a commit",
            actual=f"the consumer ended with outcome {outcome!r}",
            hint="call process(message) on every message, then commit",
        )
    allowed = _uncommitted(cluster, ledger, group, list(ledger.processed))
    _run_consumer(cluster, candidate, ledger, group, want=None, subscribe=True)
    _check_every_message_processed(ledger)
    _check_duplicates(ledger, allowed, "processed but not committed before the crash")


def _uncommitted(
    cluster: KafkaCluster, ledger: _Ledger, group: str, processed: list[MessageId]
) -> set[MessageId]:
    """Return the messages of ``processed`` at or past the group's committed offsets."""
    probe = Consumer(
        {"bootstrap.servers": cluster.bootstrap_servers, "group.id": group, "logger": log}
    )
    try:
        committed = _committed(probe, ledger.topic)
    finally:
        probe.close()
    uncommitted = {key for key in processed if key[1] >= committed.get(key[0], 0)}
    if len(uncommitted) > BATCH:
        raise CheckFailed(
            expected=f"at most {BATCH} messages (one batch) processed but not committed at a crash",
            actual=f"{len(uncommitted)} processed messages were not committed",
            hint="commit after each message or after each batch of at most max_messages",
        )
    return uncommitted


def check_commit_after_processing(
    consume_batch: Callable[..., Any],
    consumer_settings: Callable[[], Any],
    *,
    seed: int = 0,
    quiet: bool = False,
) -> CheckReport:
    """Check a learner's ``consume_batch`` and ``consumer_settings`` on a mock Kafka cluster.

    Starts librdkafka's mock cluster (always the mock, even when
    ``KAFKA_BOOTSTRAP_SERVERS`` is set), runs the sub-checks, and stops it.
    Prints a one-line summary and returns a ``CheckReport`` when every check
    passes. Raises ``ExerciseFailed`` (an ``AssertionError``) naming the
    first failed check, what was expected, what happened, and a hint.
    """
    candidate = _Candidate(consumer_settings=consumer_settings, consume_batch=consume_batch)
    with mock_cluster(use_environment=False) as cluster:

        def bind(
            run: Callable[[KafkaCluster, _Candidate, random.Random], None],
        ) -> Callable[[Any, random.Random], None]:
            return lambda candidate, rng: run(cluster, candidate, rng)

        check = TimedCheck(EXERCISE_ID, seed=seed)
        check.add(
            "consumer settings",
            bind(_check_settings),
            hint="return a dict of librdkafka consumer properties",
        )
        check.add(
            "one batch, then a clean restart",
            bind(_check_clean_restart),
            hint="process each message, then commit(message=message, asynchronous=False)",
        )
        check.add(
            "process() raises",
            bind(_check_processing_error),
            hint="let the exception propagate, and do not commit the message that failed",
        )
        check.add(
            "crashes at seeded points",
            bind(_check_crashes),
            hint="commit only after processing, and never let librdkafka commit on its own",
        )
        check.add(
            "restart in a consumer group",
            bind(_check_group_restart),
            hint="the same rules hold with subscribe(): commit after processing",
        )
        return check.run(candidate, quiet=quiet)
