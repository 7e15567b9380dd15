"""Tests of the consumer-lag checker against librdkafka's mock cluster.

``tests/test_exercises.py`` runs the lab's reference, stub and wrong answers
through the checker. These tests cover the checker's own parts: the
reports for result shapes the wrong-answer files do not produce, the
retention wrapper, and that a run is repeatable with the same seed.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import OFFSET_INVALID, TopicPartition

from msgpass.exercises import ExerciseFailed, check_consumer_lag
from msgpass.exercises.kafka_practice_checks import _RetentionConsumer
from msgpass.kafka_mock import mock_cluster

TIMEOUT_S = 5.0


def reference_lag(consumer: Any, topic: str) -> dict[int, int]:
    metadata = consumer.list_topics(topic=topic, timeout=TIMEOUT_S)
    partitions = [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
    lag = {}
    for entry in consumer.committed(partitions, timeout=TIMEOUT_S):
        low, high = consumer.get_watermark_offsets(entry, timeout=TIMEOUT_S, cached=False)
        lag[entry.partition] = high - (low if entry.offset == OFFSET_INVALID else entry.offset)
    return lag


def test_reference_passes_every_check() -> None:
    report = check_consumer_lag(reference_lag, quiet=True)
    assert report.exercise_id == "consumer-lag"
    assert len(report.checks_passed) == 5


def test_same_seed_same_report() -> None:
    def zero_lag(consumer: Any, topic: str) -> dict[int, int]:
        return {p: 0 for p in range(4)}

    reports = []
    for _ in range(2):
        with pytest.raises(ExerciseFailed) as failure:
            check_consumer_lag(zero_lag, seed=3, quiet=True)
        reports.append(str(failure.value))
    assert reports[0] == reports[1]
    assert "hint" in reports[0]


def test_list_result_rejected() -> None:
    def as_list(consumer: Any, topic: str) -> list[int]:
        return list(reference_lag(consumer, topic).values())

    with pytest.raises(ExerciseFailed, match="return a dict"):
        check_consumer_lag(as_list, quiet=True)


def test_assigning_rejected() -> None:
    def assigns(consumer: Any, topic: str) -> dict[int, int]:
        consumer.assign([TopicPartition(topic, 0)])
        return reference_lag(consumer, topic)

    with pytest.raises(ExerciseFailed, match="do not call assign"):
        check_consumer_lag(assigns, quiet=True)


def test_retention_consumer_raises_low_watermark() -> None:
    with mock_cluster(num_brokers=1, use_environment=False) as cluster:
        topic = cluster.create_topic(cluster.new_topic_name("retention"))
        producer = cluster.producer()
        for number in range(6):
            producer.produce(topic, value=b"x", partition=number % 2)
        assert producer.flush(TIMEOUT_S) == 0
        consumer = cluster.consumer(cluster.new_topic_name("group"))
        wrapped = _RetentionConsumer(consumer, {0: 2})
        first = TopicPartition(topic, 0)
        second = TopicPartition(topic, 1)
        assert wrapped.get_watermark_offsets(first, timeout=TIMEOUT_S, cached=False) == (2, 3)
        assert wrapped.get_watermark_offsets(second, timeout=TIMEOUT_S, cached=False) == (0, 3)
        assert wrapped.assignment() == []
