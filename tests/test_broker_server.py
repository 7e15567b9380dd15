"""msgpass.broker over real loopback TCP: produce, consume, groups, redelivery, restarts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from msgpass.broker import Admin, BrokerServer, Consumer, Delivery, Producer, TopicPartition
from msgpass.errors import RemoteError

ACK_TIMEOUT_S = 0.2


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BrokerServer]:
    with BrokerServer(tmp_path / "data", ack_timeout_s=ACK_TIMEOUT_S, max_deliveries=3) as broker:
        yield broker


def _topic(server: BrokerServer, name: str = "orders", partitions: int = 4) -> None:
    with Admin(port=server.port) as admin:
        admin.create_topic(name, partitions)


def _drain(
    consumer: Consumer, expected: int, *, deadline_s: float = 5.0, ack: bool = True
) -> list[Delivery]:
    """Poll until ``expected`` deliveries arrived or the deadline passed."""
    received: list[Delivery] = []
    deadline = time.monotonic() + deadline_s
    while len(received) < expected and time.monotonic() < deadline:
        batch = consumer.poll(timeout_s=0.5)
        if ack and batch:
            consumer.ack(*batch)
        received.extend(batch)
    return received


def test_produce_and_consume_in_partition_order(server: BrokerServer):
    _topic(server)
    with Producer(port=server.port) as producer:
        results = producer.send_batch("orders", [(b"k%d" % (i % 3), b"v%d" % i) for i in range(60)])
    with Consumer(port=server.port, group="g", topics=["orders"]) as consumer:
        received = _drain(consumer, 60)
    assert sorted((d.partition, d.offset) for d in received) == sorted(results)
    for partition in range(4):
        offsets = [d.offset for d in received if d.partition == partition]
        assert offsets == list(range(len(offsets)))  # dense and in order
    by_key: dict[bytes | None, set[int]] = {}
    for delivery in received:
        by_key.setdefault(delivery.key, set()).add(delivery.partition)
    assert all(len(partitions) == 1 for partitions in by_key.values())


def test_errors_for_unknown_topic_and_bad_partition(server: BrokerServer):
    _topic(server, partitions=2)
    with Producer(port=server.port) as producer:
        with pytest.raises(RemoteError) as unknown:
            producer.send("missing", b"x")
        assert unknown.value.code == "unknown_topic"
        with pytest.raises(RemoteError) as bad:
            producer.send("orders", b"x", partition=7)
        assert bad.value.code == "unknown_partition"
        with pytest.raises(RemoteError) as invalid:
            producer.create_topic("../escape", 1)
        assert invalid.value.code == "invalid_request"


def test_rebalance_on_join_and_leave(server: BrokerServer):
    _topic(server, partitions=4)
    revoked: list[TopicPartition] = []
    first = Consumer(
        port=server.port,
        group="g",
        topics=["orders"],
        strategy="round_robin",
        on_revoked=revoked.extend,
    )
    second = Consumer(port=server.port, group="g", topics=["orders"])
    try:
        first.poll(timeout_s=0.05)
        assert len(first.assignment) == 2
        assert len(second.assignment) == 2
        assert first.generation == second.generation
        assert not set(first.assignment) & set(second.assignment)
        assert len(revoked) == 2

        third = Consumer(port=server.port, group="g", topics=["orders"])
        first.poll(timeout_s=0.05)
        second.poll(timeout_s=0.05)
        owners = [first.assignment, second.assignment, third.assignment]
        assert first.generation == second.generation == third.generation
        assert sorted(tp for tps in owners for tp in tps) == [
            TopicPartition("orders", p) for p in range(4)
        ]
        assert sorted(len(tps) for tps in owners) == [1, 1, 2]

        third.close()
        first.poll(timeout_s=0.05)
        second.poll(timeout_s=0.05)
        assert len(first.assignment) + len(second.assignment) == 4
    finally:
        first.close()
        second.close()


def test_session_timeout_hands_partitions_over(server: BrokerServer):
    _topic(server, partitions=2)
    with Producer(port=server.port) as producer:
        producer.send_batch("orders", [b"a", b"b", b"c", b"d"])
    silent = Consumer(port=server.port, group="g", topics=["orders"], session_timeout_s=0.2)
    alive = Consumer(port=server.port, group="g", topics=["orders"], session_timeout_s=5.0)
    try:
        alive.poll(timeout_s=0.01)
        assert len(alive.assignment) == 1
        # `silent` never polls again, so the broker drops it after 0.2 s. A waiting
        # poll of `alive` receives the new generation and both partitions' records.
        received = _drain(alive, 4)
        assert len(alive.assignment) == 2
        assert sorted(d.value for d in received) == [b"a", b"b", b"c", b"d"]
    finally:
        alive.close()
        silent.close()


def test_no_partition_shared_within_generation(server: BrokerServer):
    _topic(server, partitions=3)
    with Producer(port=server.port) as producer:
        producer.send_batch("orders", [b"%d" % i for i in range(90)])
    consumers = [
        Consumer(port=server.port, group="g", topics=["orders"], max_records=5) for _ in range(2)
    ]
    seen: dict[tuple[int, int], str] = {}  # (generation, partition) -> member
    try:
        deadline = time.monotonic() + 5
        total = 0
        while total < 90 and time.monotonic() < deadline:
            for consumer in consumers:
                batch = consumer.poll(timeout_s=0.05)
                for delivery in batch:
                    owner = seen.setdefault(
                        (consumer.generation, delivery.partition), consumer.member_id
                    )
                    assert owner == consumer.member_id
                consumer.ack(*batch)
                total += len(batch)
        assert total == 90
    finally:
        for consumer in consumers:
            consumer.close()


def test_unacked_delivery_redelivered_then_dead_lettered(server: BrokerServer):
    _topic(server, partitions=1)
    with Producer(port=server.port) as producer:
        producer.send("orders", b"poison", key=b"k", headers={"trace": "t-1"})
        producer.send("orders", b"fine")
    with Consumer(port=server.port, group="g", topics=["orders"]) as consumer:
        counts = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(counts) < 3:
            for delivery in consumer.poll(timeout_s=0.5):
                if delivery.value == b"poison":
                    counts.append(delivery.deliveries)  # never acked
                else:
                    consumer.ack(delivery)
        assert counts == [1, 2, 3]
        with Admin(port=server.port) as admin:
            deadline = time.monotonic() + 5
            while admin.offsets().get("orders.dlq", [(0, 0)])[0][1] == 0:
                consumer.poll(timeout_s=0.1)  # the broker dead-letters during a fetch
                assert time.monotonic() < deadline, "record never reached orders.dlq"
            (dead,) = admin.read("orders.dlq", 0)
            assert admin.committed("g", "orders", 0) == 2
    assert dead.value == b"poison"
    assert dead.key == b"k"
    assert dead.headers == {
        "trace": "t-1",
        "original_topic": "orders",
        "original_partition": "0",
        "original_offset": "0",
        "deliveries": "3",
        "group": "g",
    }


def test_nack_redelivers_at_once(server: BrokerServer):
    _topic(server, partitions=1)
    with Producer(port=server.port) as producer:
        producer.send("orders", b"retry me")
    with Consumer(port=server.port, group="g", topics=["orders"]) as consumer:
        (first,) = consumer.poll(timeout_s=1)
        consumer.nack(first)
        (second,) = consumer.poll(timeout_s=1)
        assert (second.offset, second.deliveries) == (0, 2)
        consumer.ack(second)


def test_committed_offset_needs_contiguous_acks(server: BrokerServer):
    _topic(server, partitions=1)
    with Producer(port=server.port) as producer:
        producer.send_batch("orders", [b"0", b"1", b"2"])
    with Consumer(port=server.port, group="g", topics=["orders"]) as consumer:
        deliveries = _drain(consumer, 3, ack=False)
        tp = TopicPartition("orders", 0)
        assert consumer.ack(deliveries[2]) == {tp: 0}
        assert consumer.ack(deliveries[1]) == {tp: 0}
        assert consumer.ack(deliveries[0]) == {tp: 3}
        assert consumer.committed("orders", 0) == 3


def test_consumer_restart_resumes_from_committed(server: BrokerServer):
    _topic(server, partitions=1)
    with Producer(port=server.port) as producer:
        producer.send_batch("orders", [b"%d" % i for i in range(10)])
    with Consumer(port=server.port, group="g", topics=["orders"]) as consumer:
        first = _drain(consumer, 10, ack=False)
        consumer.ack(*first[:4], first[6])  # 0-3 and 6: committed offset 4
    with Consumer(port=server.port, group="g", topics=["orders"]) as restarted:
        assert restarted.committed("orders", 0) == 4
        again = _drain(restarted, 5)
        assert restarted.committed("orders", 0) == 10
    # Offset 6 was acked, so only the unacked ones come back, each for the second time.
    assert [d.offset for d in again] == [4, 5, 7, 8, 9]
    assert {d.deliveries for d in again} == {2}


def test_broker_restart_keeps_topics_data_and_offsets(tmp_path: Path):
    data = tmp_path / "data"
    with BrokerServer(data, ack_timeout_s=ACK_TIMEOUT_S) as server:
        _topic(server, partitions=2)
        with Producer(port=server.port) as producer:
            written = producer.send_batch("orders", [b"%d" % i for i in range(20)])
        with Consumer(port=server.port, group="g", topics=["orders"]) as consumer:
            _drain(consumer, 20)
            committed = {p: consumer.committed("orders", p) for p in range(2)}
        with Producer(port=server.port) as producer:
            producer.send_batch("orders", [b"late-1", b"late-2"], partition=0)
    assert committed == {0: 10, 1: 10}

    with BrokerServer(data, ack_timeout_s=ACK_TIMEOUT_S) as server:
        with Admin(port=server.port) as admin:
            assert admin.offsets() == {"orders": [(0, 12), (0, 10)]}
            stored = admin.read("orders", 0) + admin.read("orders", 1)
            assert len(stored) == 22
            assert admin.committed("g", "orders", 1) == 10
        assert {(p, o) for p, o in written} <= {(0, o) for o in range(12)} | {
            (1, o) for o in range(10)
        }
        with Consumer(port=server.port, group="g", topics=["orders"]) as consumer:
            resumed = _drain(consumer, 2)
    assert [d.value for d in resumed] == [b"late-1", b"late-2"]


def test_memory_mode_forgets_everything(tmp_path: Path):
    with BrokerServer(None, durability="memory") as server:
        _topic(server, partitions=1)
        with Producer(port=server.port) as producer:
            assert producer.send("orders", b"gone") == (0, 0)
    assert list(tmp_path.iterdir()) == []
    with BrokerServer(None, durability="memory") as server, Admin(port=server.port) as admin:
        assert admin.offsets() == {}
