"""A small log-structured message broker that a reader can follow end to end.

The broker teaches what Kafka-style brokers do, in about 2000 lines:

- **Topics and partitions.** A topic is split into partitions. Each partition
  is an append-only log with dense offsets 0, 1, 2, ..., and order holds only
  within a partition (``partition_log``).
- **Durable segments.** A log is cut into segment files of length-prefixed,
  CRC-checked records. After a crash the torn tail of the last write is found
  by its length or CRC and truncated (``records``, ``segments``). In
  ``"fsync"`` mode a produce request is acknowledged only after its batch is
  fsynced, so an acknowledged record survives ``kill -9`` of the broker. In
  ``"memory"`` mode everything is lost when the process ends.
- **Retention** deletes whole old segments by total size or by age.
- **Consumer groups** share partitions between members with the range or the
  round-robin strategy. They rebalance when a member joins, leaves or misses
  its session timeout, and generation ids keep two members of one generation
  off the same partition (``groups``).
- **At-least-once delivery**: unacknowledged records are redelivered after
  the ack timeout, records that fail ``max_deliveries`` times go to the
  dead-letter topic ``<topic>.dlq``, and the committed offset is the end of the
  contiguous acknowledged prefix, persisted per group (``delivery``).
- **The wire**: a JSON header and raw payload bytes in ``msgpass.tcp`` frames,
  never pickle (``protocol``, ``server``, ``client``).

Left out on purpose: replication and leader election, transactions and
exactly-once delivery, compaction, quotas, authentication and TLS.

A first run::

    from msgpass.broker import Admin, BrokerServer, Consumer, Producer

    with BrokerServer(None, durability="memory") as server:
        with Admin(port=server.port) as admin:
            admin.create_topic("orders", partitions=2)
        with Producer(port=server.port) as producer:
            producer.send("orders", b"one", key=b"customer-7")
        with Consumer(port=server.port, group="billing", topics=["orders"]) as consumer:
            for delivery in consumer.poll(timeout_s=1.0):
                consumer.ack(delivery)
"""

from typing import TYPE_CHECKING, Any

from .client import Admin, Consumer, Delivery, Producer
from .core import DLQ_SUFFIX, Broker
from .groups import TopicPartition, assign_range, assign_round_robin
from .partition_log import Durability, NewRecord, PartitionLog
from .records import Record, decode_records, encode_record

if TYPE_CHECKING:
    from .server import BrokerServer

__all__ = [
    "Admin",
    "Broker",
    "BrokerServer",
    "Consumer",
    "DLQ_SUFFIX",
    "Delivery",
    "Durability",
    "NewRecord",
    "PartitionLog",
    "Producer",
    "Record",
    "TopicPartition",
    "assign_range",
    "assign_round_robin",
    "decode_records",
    "encode_record",
]


def __getattr__(name: str) -> Any:
    # BrokerServer is imported on first use, so that `python -m msgpass.broker.server`
    # does not find the module already imported by this package.
    if name == "BrokerServer":
        from .server import BrokerServer

        return BrokerServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
