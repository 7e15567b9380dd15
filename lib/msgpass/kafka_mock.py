"""A Kafka cluster for a lab: librdkafka's built-in mock cluster, or a real one.

The labs on Kafka use the real client, ``confluent-kafka``, which wraps the C
library librdkafka. librdkafka contains a *mock cluster*: when a client is
configured with ``test.mock.num.brokers``, it starts that many brokers inside
the process, listening on loopback ports and speaking the Kafka protocol. Any
other client can then connect to them like to a real cluster. The mock
cluster lives as long as the client that created it.

``mock_cluster()`` wraps that in a context manager. It yields a
``KafkaCluster`` whose ``bootstrap_servers`` is the broker list. The cluster
creates producers and consumers for the lab and remembers them, so that
leaving the ``with`` block flushes and closes every client before it closes
the client that owns the mock brokers. No thread or socket stays behind::

    with mock_cluster() as cluster:
        topic = cluster.create_topic("orders")
        producer = cluster.producer()
        producer.produce(topic, key=b"alice", value=b"order 1")
        producer.flush(5.0)

When the environment variable ``KAFKA_BOOTSTRAP_SERVERS`` is set,
``mock_cluster()`` yields that cluster instead, and the same lab runs against
it.

What the mock leaves out, as librdkafka 2.16 implements it: there is no
CreateTopics request, so topics are created automatically on first use, always
with 4 partitions. A consumer group's first join waits 3 s, as a real broker
does with ``group.initial.rebalance.delay.ms``, and a later rebalance waits
``session.timeout.ms`` minus 1 s. Data lives in memory only, so a mock
cluster shows nothing about the throughput or durability of a real one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from .errors import MessagingTimeout

__all__ = [
    "BOOTSTRAP_ENV",
    "MOCK_PARTITIONS",
    "MOCK_GROUP_SETTINGS",
    "KafkaCluster",
    "mock_cluster",
    "partition_for_key",
]

log = logging.getLogger(__name__)

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"  # when set, labs use this cluster instead of the mock
MOCK_PARTITIONS = 4  # librdkafka's mock creates every topic with this many partitions
METADATA_TIMEOUT_S = 10.0  # how long to wait for brokers and topic metadata
FLUSH_TIMEOUT_S = 10.0  # how long closing waits for a producer's queued messages

# Consumer group timing on the mock cluster. Its first join of an empty group
# waits a fixed 3 s, and a member that has been silent for session.timeout.ms
# is removed, so the session must last longer than 3 s or no member ever
# survives the first join (3 s and below never finished joining when tried
# with librdkafka 2.16). A later rebalance waits session.timeout.ms - 1000 ms,
# here 2.5 s. Real brokers reject sessions shorter than their
# group.min.session.timeout.ms (6 s by default), so these apply to the mock only.
MOCK_GROUP_SETTINGS: dict[str, Any] = {
    "session.timeout.ms": 3500,
    "heartbeat.interval.ms": 300,
}
REAL_GROUP_SETTINGS: dict[str, Any] = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
}


class KafkaCluster:
    """The brokers of one lab, and every client the lab created on them.

    ``bootstrap_servers`` is the comma-separated ``host:port`` list that
    clients connect to. ``is_mock`` is true when the brokers are
    librdkafka's mock cluster. Create clients with ``producer()`` and
    ``consumer()``, so that ``close()`` (called when the ``mock_cluster()``
    block ends) flushes and closes them. Clients that the lab closes itself
    are fine too: closing a client twice does nothing.
    """

    def __init__(self, bootstrap_servers: str, *, is_mock: bool, num_brokers: int) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.is_mock = is_mock
        self.num_brokers = num_brokers
        self.producers: list[Producer] = []
        self.consumers: list[Consumer] = []
        self.topics: list[str] = []
        self.closed = False

    def __repr__(self) -> str:
        kind = "mock" if self.is_mock else "external"
        state = "closed" if self.closed else "open"
        return (
            f"<KafkaCluster {kind} {self.bootstrap_servers} {state}: {len(self.topics)} topics, "
            f"{len(self.producers)} producers, {len(self.consumers)} consumers>"
        )

    def stats(self) -> dict[str, object]:
        """Return the cluster's address and how many topics and clients the lab created."""
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "is_mock": self.is_mock,
            "brokers": self.num_brokers,
            "topics": list(self.topics),
            "producers": len(self.producers),
            "consumers": len(self.consumers),
            "closed": self.closed,
        }

    # -- clients ------------------------------------------------------------

    def producer(self, settings: Mapping[str, Any] | None = None) -> Producer:
        """Create a producer on this cluster; ``settings`` are librdkafka properties."""
        self._check_open()
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers, "logger": log}
        config.update(settings or {})
        producer = Producer(config)
        self.producers.append(producer)
        return producer

    def consumer(self, group_id: str, settings: Mapping[str, Any] | None = None) -> Consumer:
        """Create a consumer in group ``group_id``; ``settings`` override the defaults.

        The defaults read a partition from its start when the group has no
        committed offset (``auto.offset.reset=earliest``), and use short
        group timeouts on the mock (``MOCK_GROUP_SETTINGS``) so that joins
        and rebalances take seconds, not tens of seconds.
        """
        self._check_open()
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            "logger": log,
        }
        config.update(MOCK_GROUP_SETTINGS if self.is_mock else REAL_GROUP_SETTINGS)
        config.update(settings or {})
        consumer = Consumer(config)
        self.consumers.append(consumer)
        return consumer

    # -- topics -------------------------------------------------------------

    def new_topic_name(self, prefix: str) -> str:
        """Return ``prefix`` plus a random suffix, so a rerun never reads an old run's messages."""
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    def create_topic(
        self,
        name: str,
        num_partitions: int = MOCK_PARTITIONS,
        *,
        timeout_s: float = METADATA_TIMEOUT_S,
    ) -> str:
        """Create topic ``name`` and wait until every partition has a leader; return the name.

        On the mock cluster the topic is created by asking for its metadata,
        which creates it with ``MOCK_PARTITIONS`` partitions, so any other
        ``num_partitions`` raises ``ValueError``. On a real cluster an
        ``AdminClient`` creates it with up to 3 replicas. Raises
        ``MessagingTimeout`` when the topic is not ready within ``timeout_s``.
        """
        self._check_open()
        if num_partitions < 1:
            raise ValueError(f"num_partitions must be 1 or more, got {num_partitions}")
        if self.is_mock and num_partitions != MOCK_PARTITIONS:
            raise ValueError(
                f"librdkafka's mock cluster creates every topic with {MOCK_PARTITIONS} "
                f"partitions, so num_partitions={num_partitions} is not possible on it"
            )
        if not self.is_mock:
            self._create_with_admin(name, num_partitions, timeout_s)
        self._wait_for_leaders(name, num_partitions, timeout_s)
        self.topics.append(name)
        return name

    def _create_with_admin(self, name: str, num_partitions: int, timeout_s: float) -> None:
        # NOTE: this path runs only against a real cluster, which the tests never start.
        admin = AdminClient(_client_config(self.bootstrap_servers))
        replicas = min(3, self.num_brokers)
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=num_partitions, replication_factor=replicas)],
            operation_timeout=timeout_s,
        )
        try:
            futures[name].result(timeout=timeout_s)
        except TimeoutError as error:
            raise MessagingTimeout(
                f"creating topic {name!r} on {self.bootstrap_servers} timed out after {timeout_s} s"
            ) from error

    def _wait_for_leaders(self, name: str, num_partitions: int, timeout_s: float) -> None:
        # A producer requests the topic's metadata, and the mock creates the topic
        # on that request, because producers may create topics by default.
        probe = Producer(_client_config(self.bootstrap_servers))
        try:
            self._poll_metadata(probe, name, num_partitions, timeout_s)
        finally:
            probe.close()

    def _poll_metadata(
        self, probe: Producer, name: str, num_partitions: int, timeout_s: float
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise MessagingTimeout(
                    f"topic {name!r} did not get a leader for each of its {num_partitions} "
                    f"partitions on {self.bootstrap_servers} within {timeout_s} s"
                )
            try:
                topic = probe.list_topics(topic=name, timeout=min(remaining_s, 1.0)).topics.get(
                    name
                )
            except KafkaException:
                continue  # the metadata request timed out; ask again until the deadline
            if (
                topic is not None
                and topic.error is None
                and len(topic.partitions) >= num_partitions
                and all(p.leader >= 0 for p in topic.partitions.values())
            ):
                return

    # -- shutdown -----------------------------------------------------------

    def close(self) -> None:
        """Close every consumer, then flush and close every producer. Safe to call twice."""
        for consumer in self.consumers:
            consumer.close()  # leaves its group; does nothing if already closed
        for producer in self.producers:
            with contextlib.suppress(RuntimeError):  # raised when the lab already closed it
                unsent = producer.flush(FLUSH_TIMEOUT_S)
                if unsent:
                    log.warning("closing a producer with %d messages still unsent", unsent)
            producer.close()
        self.consumers.clear()
        self.producers.clear()
        self.closed = True

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this KafkaCluster is closed: create a new one with mock_cluster()")


@contextlib.contextmanager
def mock_cluster(
    num_brokers: int = 3,
    *,
    use_environment: bool = True,
    timeout_s: float = METADATA_TIMEOUT_S,
) -> Iterator[KafkaCluster]:
    """Start a mock Kafka cluster of ``num_brokers`` brokers on loopback, and stop it at exit.

    With ``use_environment`` (the default) and ``KAFKA_BOOTSTRAP_SERVERS``
    set, yields that cluster instead of starting a mock. At exit, every
    client created through the cluster is closed first, then the mock
    brokers stop. Raises ``MessagingTimeout`` when the brokers do not respond
    within ``timeout_s``.
    """
    if num_brokers < 1:
        raise ValueError(f"num_brokers must be 1 or more, got {num_brokers}")
    external = os.environ.get(BOOTSTRAP_ENV, "").strip() if use_environment else ""
    if external:
        cluster = KafkaCluster(
            external, is_mock=False, num_brokers=_count_brokers(external, timeout_s)
        )
        log.info("using the Kafka cluster at %s from %s", external, BOOTSTRAP_ENV)
        try:
            yield cluster
        finally:
            cluster.close()
        return

    # The mock brokers belong to this producer: they stop when it is closed.
    owner_config = _client_config("")
    del owner_config["bootstrap.servers"]  # the mock replaces it with its own brokers
    owner_config["test.mock.num.brokers"] = num_brokers
    owner = Producer(owner_config)
    try:
        try:
            metadata = owner.list_topics(timeout=timeout_s)
        except KafkaException as error:
            raise MessagingTimeout(
                f"librdkafka's mock cluster did not respond within {timeout_s} s: {error}"
            ) from error
        brokers = sorted(metadata.brokers.values(), key=lambda broker: broker.id)
        bootstrap = ",".join(f"{broker.host}:{broker.port}" for broker in brokers)
        cluster = KafkaCluster(bootstrap, is_mock=True, num_brokers=len(brokers))
        log.info("mock Kafka cluster with %d brokers at %s", len(brokers), bootstrap)
        try:
            yield cluster
        finally:
            cluster.close()
    finally:
        owner.close()
        log.info("mock Kafka cluster stopped")


def _client_config(bootstrap_servers: str) -> dict[str, Any]:
    # librdkafka's log lines go to this module's logger, silent unless the lab
    # configures logging, instead of to the notebook's stderr.
    return {"bootstrap.servers": bootstrap_servers, "logger": log}


def _count_brokers(bootstrap_servers: str, timeout_s: float) -> int:
    admin = AdminClient(_client_config(bootstrap_servers))
    try:
        return len(admin.list_topics(timeout=timeout_s).brokers)
    except KafkaException as error:
        raise MessagingTimeout(
            f"the Kafka cluster at {bootstrap_servers} (from {BOOTSTRAP_ENV}) did not respond "
            f"within {timeout_s} s: {error}"
        ) from error


def partition_for_key(key: bytes, num_partitions: int) -> int:
    """Return the partition that librdkafka's default partitioner picks for a non-empty ``key``.

    librdkafka's default partitioner is ``consistent_random``: the CRC32 of
    the key modulo the number of partitions, and a random partition for an
    empty or missing key. The Java producer hashes keys with murmur2
    instead, so the same key can land in a different partition when a Java
    client writes it (librdkafka's ``murmur2_random`` matches Java).
    """
    if not key:
        raise ValueError(
            "an empty key has no fixed partition: consistent_random picks one at random"
        )
    return zlib.crc32(key) % num_partitions
