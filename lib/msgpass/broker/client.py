"""Clients of the teaching broker: ``Producer``, ``Consumer`` and ``Admin``.

Each client keeps one framed TCP connection and sends one request at a time,
waiting for its reply (see ``protocol`` for the wire format).

- ``Producer.send`` returns the record's (partition, offset) only after the
  broker made it durable; ``send_batch`` does the same for many records in
  one request and one fsync per partition, which is how to go fast.
- ``Consumer`` joins a consumer group and reads the partitions the group
  assigns it. ``poll`` returns ``Delivery`` objects; each must be acked with
  ``ack`` within the broker's ack timeout, or it is delivered again.
  ``on_assigned`` and ``on_revoked`` are called with lists of
  ``TopicPartition`` when a rebalance changes the consumer's partitions.
- ``Admin`` creates topics and reads partitions and committed offsets
  directly, outside any group.

Every call has a timeout, and errors the broker reports arrive as
``RemoteError`` with the broker's code (for example ``"unknown_topic"``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from ..errors import MessagingError, RemoteError
from ..tcp import FramedConnection, connect
from .groups import Strategy, TopicPartition, strategy_name
from .protocol import (
    check_reply,
    decode_message,
    decode_runs,
    encode_message,
    pack_records,
    records_from_reply,
)
from .records import Record

__all__ = ["Delivery", "Producer", "Consumer", "Admin", "DEFAULT_CLIENT_TIMEOUT_S"]

log = logging.getLogger(__name__)

DEFAULT_CLIENT_TIMEOUT_S = 10.0  # seconds a request may take, on top of any fetch wait
FETCH_WAIT_S = 1.0  # maximum seconds one fetch request inside poll() waits on the broker

PartitionCallback = Callable[[list[TopicPartition]], None]


@dataclass(frozen=True)
class Delivery:
    """One record delivered to a consumer; pass it back to ``ack`` or ``nack``."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
    deliveries: int
    headers: Mapping[str, str] = field(default_factory=dict)


class _Client:
    """A connection that sends one request and waits for its reply."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._conn: FramedConnection = connect(host, port, timeout_s=timeout_s, nodelay=True)

    def request(
        self, header: dict[str, Any], payload: bytes = b"", *, extra_s: float = 0.0
    ) -> tuple[dict[str, Any], bytes]:
        timeout = self.timeout_s + extra_s
        self._conn.send(encode_message(header, payload), timeout_s=timeout)
        reply, reply_payload = decode_message(self._conn.recv(timeout_s=timeout))
        check_reply(reply)
        return reply, reply_payload

    def close(self) -> None:
        """Close the connection. Calling it again does nothing."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Admin(_Client):
    """Create topics and inspect partitions and committed offsets."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, timeout_s: float = DEFAULT_CLIENT_TIMEOUT_S
    ) -> None:
        super().__init__(host, port, timeout_s)

    def create_topic(self, name: str, partitions: int = 1) -> bool:
        """Create a topic; return False if it already exists with that many partitions."""
        reply, _ = self.request({"op": "create_topic", "topic": name, "partitions": partitions})
        return bool(reply["created"])

    def read(
        self, topic: str, partition: int, offset: int = 0, max_records: int = 500
    ) -> list[Record]:
        """Return up to ``max_records`` stored records of a partition from ``offset`` on."""
        header = {
            "op": "read",
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "max_records": max_records,
        }
        reply, payload = self.request(header)
        return [record for _, _, _, record in records_from_reply(reply, payload)]

    def offsets(self) -> dict[str, list[tuple[int, int]]]:
        """Return every topic's (start_offset, end_offset) per partition."""
        reply, _ = self.request({"op": "metadata"})
        return {name: [(s, e) for s, e in pairs] for name, pairs in reply["topics"].items()}

    def committed(self, group: str, topic: str, partition: int) -> int | None:
        """Return a group's committed offset of a partition, or None if it never committed."""
        reply, _ = self.request(
            {"op": "committed", "group": group, "topic": topic, "partition": partition}
        )
        value = reply["committed"]
        return None if value is None else int(value)


class Producer(_Client):
    """Append records to topics; every send returns after the broker made it durable."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, timeout_s: float = DEFAULT_CLIENT_TIMEOUT_S
    ) -> None:
        super().__init__(host, port, timeout_s)
        self.records_sent = 0

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, int]:
        """Send one record and return its (partition, offset) once it is durable."""
        (result,) = self.send_batch(
            topic,
            [(key, value)],
            partition=partition,
            headers=None if headers is None else [headers],
        )
        return result

    def send_batch(
        self,
        topic: str,
        messages: Iterable[bytes | tuple[bytes | None, bytes]],
        *,
        partition: int | None = None,
        headers: Sequence[Mapping[str, str]] | None = None,
    ) -> list[tuple[int, int]]:
        """Send many records in one request; return each one's (partition, offset) in order.

        ``messages`` contains values, or (key, value) pairs. The broker appends
        them with one fsync per partition and replies once all are durable,
        so either every record of the reply is stored or the call raises.
        """
        pairs = [m if isinstance(m, tuple) else (None, m) for m in messages]
        sizes, payload = pack_records(pairs)
        header: dict[str, Any] = {
            "op": "produce",
            "topic": topic,
            "partition": partition,
            "records": sizes,
        }
        if headers is not None:
            header["headers"] = [dict(h) for h in headers]
        reply, _ = self.request(header, payload)
        self.records_sent += len(pairs)
        return [(int(p), int(o)) for p, o in reply["results"]]

    def create_topic(self, name: str, partitions: int = 1) -> bool:
        """Create a topic; return False if it already exists with that many partitions."""
        reply, _ = self.request({"op": "create_topic", "topic": name, "partitions": partitions})
        return bool(reply["created"])

    def __repr__(self) -> str:
        return f"<Producer {self._conn!r}, {self.records_sent} records sent>"


class Consumer(_Client):
    """A member of a consumer group that reads, acknowledges and rejoins when it must.

    ``strategy`` is used when this member creates the group. It is the name
    of a strategy on the broker (``"range"``, ``"round_robin"``, or one given
    to ``BrokerServer(strategies=...)``) or a function ``assign(members,
    partitions) -> {member: [partitions]}``. The broker runs the strategy,
    so a function works only with a ``BrokerServer`` running in this
    process: the consumer registers the function with that server and sends
    its name. For a broker in another process it raises ``ValueError``.
    ``session_timeout_s``: if the consumer does not call the broker for that
    long, the group drops it and hands its partitions to the others::

        with Consumer(port=server.port, group="billing", topics=["orders"]) as consumer:
            for delivery in consumer.poll(timeout_s=1.0):
                handle(delivery.value)
                consumer.ack(delivery)
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        group: str,
        topics: Sequence[str],
        strategy: str | Strategy = "range",
        session_timeout_s: float = 10.0,
        max_records: int = 500,
        on_assigned: PartitionCallback | None = None,
        on_revoked: PartitionCallback | None = None,
        timeout_s: float = DEFAULT_CLIENT_TIMEOUT_S,
    ) -> None:
        super().__init__(host, port, timeout_s)
        self.group = group
        self.topics = list(topics)
        self.strategy = strategy if isinstance(strategy, str) else ""
        self.session_timeout_s = session_timeout_s
        self.max_records = max_records
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked
        self.member_id = ""
        self.generation = 0
        self.assignment: list[TopicPartition] = []
        self.rebalances = 0
        try:
            if not isinstance(strategy, str):
                self.strategy = self._register_strategy(strategy)
            self._join()
        except BaseException:
            self.close()
            raise

    def _register_strategy(self, strategy: Strategy) -> str:
        """Register a strategy function with the in-process broker; return its name."""
        if not callable(strategy):
            raise TypeError(f"strategy must be a name or a function, got {type(strategy).__name__}")
        # Imported here because the package imports this module, and
        # `python -m msgpass.broker.server` must not find the server module imported.
        from .server import find_in_process

        address = self._conn.peer_address
        server = None if address is None else find_in_process(address)
        if server is None:
            where = "unknown" if address is None else f"{address[0]}:{address[1]}"
            raise ValueError(
                f"strategy {strategy_name(strategy)!r} is a Python function, and the broker at "
                f"{where} does not run in this process, so it cannot call it. Pass the name "
                f"of a strategy registered on the broker instead, or start the broker in this "
                f"process with BrokerServer"
            )
        return server.register_strategy(strategy)

    def _join(self) -> None:
        reply, _ = self.request(
            {
                "op": "join",
                "group": self.group,
                "topics": self.topics,
                "session_timeout_s": self.session_timeout_s,
                "strategy": self.strategy,
            }
        )
        self.member_id = str(reply["member_id"])
        self._switch(int(reply["generation"]), reply["assignment"])

    def _switch(self, generation: int, assignment: list[list[Any]]) -> None:
        new = [TopicPartition(str(t), int(p)) for t, p in assignment]
        old = self.assignment
        self.generation = generation
        self.assignment = new
        revoked = [tp for tp in old if tp not in new]
        added = [tp for tp in new if tp not in old]
        if revoked or added:
            self.rebalances += 1
        if revoked:
            self._call(self.on_revoked, revoked, "on_revoked")
        if added:
            self._call(self.on_assigned, added, "on_assigned")

    def _call(
        self, callback: PartitionCallback | None, tps: list[TopicPartition], name: str
    ) -> None:
        if callback is None:
            return
        try:
            callback(tps)
        except Exception:
            # A failing callback must not break the consumer's bookkeeping.
            log.exception("consumer %s: %s callback failed for %s", self.member_id, name, tps)

    def poll(self, timeout_s: float = 1.0) -> list[Delivery]:
        """Wait up to ``timeout_s`` seconds for records of this member's partitions.

        Returns as soon as some arrive, or an empty list at the deadline.
        Every call is also a heartbeat. A rebalance is handled here: the
        callbacks run and the next request uses the new generation. If the
        group dropped this member (session timeout), it joins again.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            wait = max(0.0, min(deadline - time.monotonic(), FETCH_WAIT_S))
            try:
                reply, payload = self.request(
                    {
                        "op": "fetch",
                        "group": self.group,
                        "member_id": self.member_id,
                        "generation": self.generation,
                        "max_records": self.max_records,
                        "wait_s": wait,
                    },
                    extra_s=wait,
                )
            except RemoteError as error:
                if error.code != "unknown_member":
                    raise
                log.warning("consumer %s: %s; joining again", self.member_id, error)
                self._switch(self.generation, [])
                self._join()
                continue
            if int(reply["generation"]) != self.generation:
                self._switch(int(reply["generation"]), reply["assignment"])
                continue
            deliveries = [
                Delivery(topic, partition, offset, key, value, timestamp_ms, count, headers)
                for topic, partition, counts, fields in decode_runs(reply, payload)
                for count, (offset, timestamp_ms, key, value, headers) in zip(
                    counts, fields, strict=True
                )
            ]
            if deliveries or time.monotonic() >= deadline:
                return deliveries

    def ack(self, *deliveries: Delivery) -> dict[TopicPartition, int]:
        """Acknowledge deliveries in one request; return the committed offsets they touched.

        When this returns, the broker has persisted the committed offsets. A
        committed offset ``c`` means every record below ``c`` is acknowledged.
        """
        if not deliveries:
            return {}
        reply, _ = self.request({"op": "ack", "group": self.group, "ranges": _ranges(deliveries)})
        return {TopicPartition(t, p): int(c) for t, p, c in reply["committed"]}

    def nack(self, *deliveries: Delivery) -> None:
        """Hand deliveries back for redelivery now (or to the dead-letter topic when spent)."""
        if deliveries:
            self.request({"op": "nack", "group": self.group, "ranges": _ranges(deliveries)})

    def committed(self, topic: str, partition: int) -> int | None:
        """Return the group's committed offset of a partition, or None if it never committed."""
        reply, _ = self.request(
            {"op": "committed", "group": self.group, "topic": topic, "partition": partition}
        )
        value = reply["committed"]
        return None if value is None else int(value)

    def close(self) -> None:
        """Leave the group, so its partitions move at once, and close the connection."""
        if self.member_id and not self._conn.closed:
            try:
                self.request({"op": "leave", "group": self.group, "member_id": self.member_id})
            except MessagingError as error:  # the broker may be gone; its session timeout covers it
                log.info("consumer %s: leave failed: %s", self.member_id, error)
        super().close()

    def __repr__(self) -> str:
        return (
            f"<Consumer {self.member_id or 'not joined'} of group {self.group!r}, generation "
            f"{self.generation}, partitions {[f'{t}/{p}' for t, p in self.assignment]}>"
        )


def _ranges(deliveries: Iterable[Delivery]) -> list[list[Any]]:
    """Return ``[topic, partition, first, end]`` runs covering the deliveries' offsets.

    Deliveries in the order ``poll`` returned them give one run per
    partition. Any other order gives more, shorter runs that cover the same
    offsets, and acking an offset twice does nothing, so duplicates are harmless.
    """
    ranges: list[list[Any]] = []
    last: list[Any] = [None, None, 0, 0]
    for delivery in deliveries:
        if (
            delivery.offset == last[3]
            and delivery.partition == last[1]
            and delivery.topic == last[0]
        ):
            last[3] += 1
        else:
            last = [delivery.topic, delivery.partition, delivery.offset, delivery.offset + 1]
            ranges.append(last)
    return ranges
