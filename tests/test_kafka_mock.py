"""msgpass.kafka_mock: librdkafka's mock cluster as a context manager that leaves nothing behind."""

from __future__ import annotations

import gc
import time

import psutil
import pytest
from confluent_kafka import KafkaException, TopicPartition

from msgpass.errors import MessagingTimeout
from msgpass.kafka_mock import (
    BOOTSTRAP_ENV,
    MOCK_PARTITIONS,
    KafkaCluster,
    mock_cluster,
    partition_for_key,
)

POLL_DEADLINE_S = 10.0


@pytest.fixture(autouse=True)
def _no_external_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BOOTSTRAP_ENV, raising=False)


def _inet_sockets() -> int:
    return len(psutil.Process().net_connections(kind="inet"))


def _native_threads() -> int:
    return psutil.Process().num_threads()


def _wait_until(condition, deadline_s: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)  # polling the process's state with a deadline, not waiting for an event
    return True


def _consume(consumer, count: int) -> list:  # type: ignore[no-untyped-def]
    messages = []
    deadline = time.monotonic() + POLL_DEADLINE_S
    while len(messages) < count and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None:
            continue
        if message.error() is not None:
            raise KafkaException(message.error())
        messages.append(message)
    return messages


def test_mock_cluster_reports_brokers() -> None:
    with mock_cluster(num_brokers=3) as cluster:
        assert isinstance(cluster, KafkaCluster)
        assert cluster.is_mock
        assert cluster.num_brokers == 3
        addresses = cluster.bootstrap_servers.split(",")
        assert len(addresses) == 3
        assert all(address.startswith("127.0.0.1:") for address in addresses)
        assert "mock" in repr(cluster) and "open" in repr(cluster)
    assert cluster.closed
    assert "closed" in repr(cluster)


def test_produce_and_consume_round_trip() -> None:
    with mock_cluster() as cluster:
        topic = cluster.create_topic(cluster.new_topic_name("round-trip"))
        producer = cluster.producer({"linger.ms": 1})
        for number in range(10):
            producer.produce(topic, key=f"key-{number}", value=f"value {number}")
        assert producer.flush(5.0) == 0
        consumer = cluster.consumer("round-trip-group")
        consumer.assign([TopicPartition(topic, p) for p in range(MOCK_PARTITIONS)])
        messages = _consume(consumer, 10)
        values = sorted(message.value().decode() for message in messages)
        assert values == sorted(f"value {number}" for number in range(10))
        assert cluster.stats()["topics"] == [topic]


def test_keyed_records_follow_crc32() -> None:
    with mock_cluster() as cluster:
        topic = cluster.create_topic(cluster.new_topic_name("keys"))
        producer = cluster.producer()
        placed: dict[bytes, set[int]] = {}

        def on_delivery(error, message) -> None:  # type: ignore[no-untyped-def]
            assert error is None
            placed.setdefault(message.key(), set()).add(message.partition())

        keys = [f"customer-{n}".encode() for n in range(12)]
        for key in keys * 3:
            producer.produce(topic, key=key, value=b"x", on_delivery=on_delivery)
        assert producer.flush(5.0) == 0
        for key in keys:
            assert placed[key] == {partition_for_key(key, MOCK_PARTITIONS)}


def test_partition_for_key_rejects_empty_key() -> None:
    with pytest.raises(ValueError, match="random"):
        partition_for_key(b"", 4)


def test_create_topic_rejects_other_partition_counts() -> None:
    with mock_cluster(num_brokers=1) as cluster:
        with pytest.raises(ValueError, match="4 partitions"):
            cluster.create_topic("six", num_partitions=6)
        with pytest.raises(ValueError, match="1 or more"):
            cluster.create_topic("none", num_partitions=0)


def test_committed_offsets_survive_restart() -> None:
    with mock_cluster() as cluster:
        topic = cluster.create_topic(cluster.new_topic_name("offsets"))
        producer = cluster.producer()
        for number in range(8):
            producer.produce(topic, key=b"same-key", value=str(number))
        assert producer.flush(5.0) == 0
        partitions = [TopicPartition(topic, p) for p in range(MOCK_PARTITIONS)]

        first = cluster.consumer("offsets-group", {"enable.auto.commit": False})
        first.assign(partitions)
        for message in _consume(first, 3):
            first.commit(message=message, asynchronous=False)
        first.close()

        second = cluster.consumer("offsets-group", {"enable.auto.commit": False})
        second.assign(partitions)
        rest = [int(message.value()) for message in _consume(second, 5)]
        assert rest == [3, 4, 5, 6, 7]


def test_close_stops_clients_and_brokers() -> None:
    gc.collect()
    sockets_before, threads_before = _inet_sockets(), _native_threads()
    with mock_cluster() as cluster:
        topic = cluster.create_topic(cluster.new_topic_name("cleanup"))
        producer = cluster.producer()
        producer.produce(topic, value=b"x")
        consumer = cluster.consumer("cleanup-group")
        consumer.assign([TopicPartition(topic, 0)])
        consumer.poll(0.1)
        assert _inet_sockets() > sockets_before
    assert _wait_until(lambda: _inet_sockets() == sockets_before), "sockets left open"
    assert _wait_until(lambda: _native_threads() == threads_before), "librdkafka threads left"
    with pytest.raises(RuntimeError, match="closed"):
        cluster.producer()


def test_clients_closed_by_the_lab_are_fine() -> None:
    with mock_cluster(num_brokers=1) as cluster:
        consumer = cluster.consumer("early-close")
        producer = cluster.producer()
        consumer.close()
        producer.close()
    assert cluster.closed


def test_external_cluster_that_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 9 on loopback (discard) has no Kafka broker, so the metadata request times out.
    monkeypatch.setenv(BOOTSTRAP_ENV, "127.0.0.1:9")
    with pytest.raises(MessagingTimeout, match=BOOTSTRAP_ENV), mock_cluster(timeout_s=0.5):
        pass  # pragma: no cover - never reached


def test_environment_ignored_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BOOTSTRAP_ENV, "127.0.0.1:9")
    with mock_cluster(num_brokers=1, use_environment=False) as cluster:
        assert cluster.is_mock


def test_rejects_zero_brokers() -> None:
    with pytest.raises(ValueError, match="num_brokers"), mock_cluster(num_brokers=0):
        pass  # pragma: no cover - never reached
