"""The broker on the network: requests over ``msgpass.tcp``, one thread per client.

``BrokerServer`` puts a ``Broker`` behind a ``ThreadedServer``. Each request
frame (see ``protocol``) is decoded, handed to the matching ``Broker``
method, and gets exactly one reply frame. The operations are:

=============  ===============================================================
op             request fields -> reply fields
=============  ===============================================================
create_topic   topic, partitions -> created
produce        topic, partition (or null), records, headers; payload ->
               results ([partition, offset] per record, once durable)
read           topic, partition, offset, max_records -> runs; payload
join           group, topics, session_timeout_s, strategy ->
               member_id, generation, assignment
leave          group, member_id -> (nothing)
fetch          group, member_id, generation, max_records, wait_s ->
               generation, assignment, runs; payload
ack, nack      group, acks ([topic, partition, offset] each) and/or ranges
               ([topic, partition, first, end], end excluded, at most
               MAX_ACK_RANGE offsets in all) -> committed
committed      group, topic, partition -> committed (or null)
metadata       (nothing) -> topics ({name: [[start, end], ...]})
=============  ===============================================================

Assignment strategies travel by name: a join request's ``"strategy"`` is a
key of the broker's table, the built-in ``"range"`` and ``"round_robin"``
plus any function given to ``BrokerServer(strategies=...)``. A Python
function cannot cross the wire, so a consumer that passes a function as its
strategy needs a ``BrokerServer`` started in its own process. The consumer
finds that server with ``find_in_process``, adds the function to the
server's table with ``register_strategy`` and sends the name it got. A
broker in another process, such as ``python -m msgpass.broker.server``,
accepts only the names in its own table.

Run it as a process, for example in a crash test::

    python -m msgpass.broker.server --data-dir /tmp/d --port 0 --durability fsync

It prints ``port <number>`` as its first line on stdout once it listens, and
stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TypeVar

from ..errors import MessagingError, ProtocolError, RemoteError
from ..tcp_threaded import ThreadedServer
from .core import DEFAULT_ACK_TIMEOUT_S, DEFAULT_MAX_DELIVERIES, Broker
from .groups import Strategy, strategy_name
from .partition_log import DEFAULT_SEGMENT_BYTES, Durability, NewRecord
from .protocol import decode_message, encode_message, error_reply, pack_runs, unpack_records

__all__ = ["BrokerServer", "MAX_ACK_RANGE", "find_in_process", "main"]

log = logging.getLogger(__name__)

# The maximum number of offsets that the ranges of one ack or nack request may
# cover together. A range expands to one offset per record, so a huge one
# would cost memory before any check.
MAX_ACK_RANGE = 1_000_000
_WILDCARD_HOSTS = {"", "0.0.0.0", "::"}

# Servers started in this process and not yet stopped, for find_in_process.
_RUNNING: weakref.WeakSet[BrokerServer] = weakref.WeakSet()


class BrokerServer:
    """A teaching broker listening on TCP: start it, read ``port``, stop it.

    ``durability="fsync"`` (the default) stores everything under
    ``data_dir`` and fsyncs each batch before acknowledging it;
    ``durability="memory"`` needs ``data_dir=None`` and loses everything
    when the process stops. ``ack_timeout_s`` is how long a consumer has to
    acknowledge a delivery before it is redelivered, and ``max_deliveries``
    how many deliveries a record gets before it goes to ``<topic>.dlq``.
    ``strategies`` names extra assignment strategies that consumers can ask
    for by name::

        with BrokerServer(tmp_path) as server:
            producer = Producer("127.0.0.1", server.port)
    """

    def __init__(
        self,
        data_dir: Path | str | None,
        *,
        durability: Durability | str = Durability.FSYNC,
        host: str = "127.0.0.1",
        port: int = 0,
        ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        retention_bytes: int | None = None,
        retention_age_s: float | None = None,
        strategies: Mapping[str, Strategy] | None = None,
    ) -> None:
        self.broker = Broker(
            data_dir,
            durability=durability,
            ack_timeout_s=ack_timeout_s,
            max_deliveries=max_deliveries,
            segment_bytes=segment_bytes,
            retention_bytes=retention_bytes,
            retention_age_s=retention_age_s,
            strategies=strategies,
        )
        self._server = ThreadedServer(self.handle, host, port, nodelay=True, name="msgpass-broker")
        self.requests_failed = 0

    @property
    def port(self) -> int:
        """The port the broker listens on, chosen by the OS when 0 was asked for."""
        return self._server.port

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the broker listens on."""
        return self._server.address

    def start(self) -> BrokerServer:
        """Start serving in background threads and return the server."""
        self._server.start()
        _RUNNING.add(self)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Wake waiting fetches, close every connection, join every thread, close the files."""
        _RUNNING.discard(self)
        self.broker.close()
        self._server.stop(timeout_s)

    def register_strategy(self, strategy: Strategy) -> str:
        """Add an assignment function to this server's strategies; return its name.

        The name is the function's ``__name__`` and its ``id``, so registering
        the same function again returns the same name. The function stays
        registered until the server is garbage-collected.
        """
        name = f"{strategy_name(strategy)}-{id(strategy):x}"
        self.broker.add_strategy(name, strategy)
        return name

    def __enter__(self) -> BrokerServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def handle(self, body: bytes) -> bytes:
        """Handle one request frame and return one reply frame; errors become error replies."""
        op = "?"
        try:
            header, payload = decode_message(body)
            op = str(header.get("op"))
            handler = _OPERATIONS.get(op)
            if handler is None:
                raise ProtocolError(f"unknown operation {op!r}; use one of {sorted(_OPERATIONS)}")
            reply, reply_payload = handler(self.broker, header, payload)
            reply["ok"] = True
            return encode_message(reply, reply_payload)
        except RemoteError as error:
            log.info("broker: %s request rejected (%s): %s", op, error.code, error)
            return error_reply(error.code, str(error))
        except (ProtocolError, ValueError, TypeError, KeyError) as error:
            self.requests_failed += 1
            log.info("broker: invalid %s request: %r", op, error)
            return error_reply("invalid_request", f"invalid {op} request: {error!r}")
        except (OSError, MessagingError) as error:
            self.requests_failed += 1
            log.exception("broker: %s request failed", op)
            return error_reply("failed", f"{op} failed on the broker: {error}")

    def stats(self) -> dict[str, int]:
        """Connection and request counters, for display in a notebook."""
        return {**self._server.stats(), "requests_failed": self.requests_failed}

    def __repr__(self) -> str:
        return f"<BrokerServer on 127.0.0.1:{self.port}, {self.broker!r}>"


def find_in_process(address: tuple[str, int]) -> BrokerServer | None:
    """Return the running ``BrokerServer`` of this process that listens on ``address``.

    ``address`` is the (ip, port) a client connected to, as
    ``FramedConnection.peer_address`` gives it. A server listening on every
    interface (``0.0.0.0`` or ``::``) matches any ip with its port.
    Returns None when no server of this process listens there.
    """
    ip, port = address[0], address[1]
    for server in list(_RUNNING):
        host, server_port = server.address[0], server.address[1]
        if server_port == port and (host == ip or host in _WILDCARD_HOSTS):
            return server
    return None


# -- one function per operation ----------------------------------------------

Reply = tuple[dict[str, Any], bytes]


def _create_topic(broker: Broker, header: dict[str, Any], payload: bytes) -> Reply:
    return {"created": broker.create_topic(header["topic"], header["partitions"])}, b""


def _produce(broker: Broker, header: dict[str, Any], payload: bytes) -> Reply:
    items = unpack_records(header["records"], payload)
    headers = header.get("headers")
    if not headers:
        records = [NewRecord(value, key) for key, value in items]
    else:
        if len(headers) != len(items):
            raise ProtocolError(f"{len(headers)} header maps for {len(items)} records")
        records = [
            NewRecord(value, key, {str(k): str(v) for k, v in extra.items()})
            for (key, value), extra in zip(items, headers, strict=True)
        ]
    partition = None if header.get("partition") is None else _required_int(header, "partition")
    results = broker.produce(header["topic"], records, partition)
    return {"results": [list(pair) for pair in results]}, b""


def _read(broker: Broker, header: dict[str, Any], payload: bytes) -> Reply:
    topic = header["topic"]
    partition = _required_int(header, "partition")
    first, count, data = broker.read_bytes(
        topic,
        partition,
        _required_int(header, "offset"),
        _field(header, "max_records", int, 500),
    )
    runs, reply_payload = pack_runs([(topic, partition, first, data, [0] * count)])
    return {"runs": runs}, reply_payload


def _join(broker: Broker, header: dict[str, Any], payload: bytes) -> Reply:
    member_id, generation, assignment = broker.join(
        header["group"],
        header["topics"],
        session_timeout_s=float(header.get("session_timeout_s", 10.0)),
        strategy=_field(header, "strategy", str, "range"),
    )
    return {
        "member_id": member_id,
        "generation": generation,
        "assignment": [list(tp) for tp in assignment],
    }, b""


def _leave(broker: Broker, header: dict[str, Any], payload: bytes) -> Reply:
    broker.leave(header["group"], header["member_id"])
    return {}, b""


def _fetch(broker: Broker, header: dict[str, Any], payload: bytes) -> Reply:
    result = broker.fetch_encoded(
        header["group"],
        header["member_id"],
        header["generation"],
        max_records=_field(header, "max_records", int, 500),
        wait_s=float(header.get("wait_s", 0.0)),
    )
    runs, reply_payload = pack_runs(
        (run.topic, run.partition, run.first_offset, run.data, run.deliveries)
        for run in result.runs
    )
    fields = {
        "generation": result.generation,
        "assignment": [list(tp) for tp in result.assignment],
        "runs": runs,
    }
    return fields, reply_payload


def _acked_offsets(header: dict[str, Any]) -> list[tuple[str, int, int]]:
    """Return the (topic, partition, offset) triples of an ack or nack request.

    A request lists single offsets in ``"acks"`` and runs of offsets in
    ``"ranges"`` as ``[topic, partition, first, end]`` with ``end``
    excluded. A consumer acking a whole fetch sends one range per partition.
    Raises ``RemoteError`` with code ``"ack_range_too_long"`` when the ranges
    together cover more than ``MAX_ACK_RANGE`` offsets, and ``ProtocolError``
    for an item of the wrong shape.
    """
    acks: list[tuple[str, int, int]] = []
    for item in _field(header, "acks", list, []):
        topic, partition, offset = _ack_item(item, ("topic", "partition", "offset"))
        acks.append((topic, partition, offset))
    covered = 0
    for item in _field(header, "ranges", list, []):
        topic, partition, first, end = _ack_item(item, ("topic", "partition", "first", "end"))
        if end < first:
            raise ProtocolError(f"ack range {item!r} ends before it starts")
        covered += end - first
        if covered > MAX_ACK_RANGE:
            raise RemoteError(
                f"ack ranges cover more than MAX_ACK_RANGE={MAX_ACK_RANGE} offsets "
                f"(reached at {item!r}); split the acknowledgements into several requests",
                code="ack_range_too_long",
            )
        acks.extend((topic, partition, offset) for offset in range(first, end))
    return acks


def _ack_item(item: Any, names: tuple[str, ...]) -> tuple[Any, ...]:
    """Check an ``"acks"`` or ``"ranges"`` item: a topic name, then non-negative ints."""
    if type(item) is not list or len(item) != len(names):
        raise ProtocolError(f"an ack item must be a list [{', '.join(names)}], got {item!r}")
    topic, *numbers = item
    if not isinstance(topic, str):
        raise ProtocolError(f"the topic of ack item {item!r} must be a string")
    for name, number in zip(names[1:], numbers, strict=True):
        if type(number) is not int or number < 0:
            raise ProtocolError(f"the {name} of ack item {item!r} must be a non-negative int")
    return (topic, *numbers)


def _required_int(header: dict[str, Any], name: str) -> int:
    """Return ``header[name]``; raise ``ProtocolError`` unless it is present and an int."""
    if name not in header:
        raise ProtocolError(f"missing field {name!r}")
    return _field(header, name, int, 0)


_T = TypeVar("_T")


def _field(header: dict[str, Any], name: str, kind: type[_T], default: _T) -> _T:
    """Return ``header[name]``, or ``default`` when it is absent or null; check its type.

    ``bool`` is a subclass of ``int`` in Python, so a JSON ``true`` is rejected
    where an int is expected.
    """
    value = header.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"field {name!r} must be {kind.__name__}, got {value!r}")
    return value


def _ack(broker: Broker, header: dict[str, Any], payload: bytes) -> Reply:
    committed = broker.ack(header["group"], _acked_offsets(header))
    return {"committed": [[tp.topic, tp.partition, c] for tp, c in committed.items()]}, b""


def _nack(broker: Broker, header: dict[str, Any], payload: bytes) -> Reply:
    broker.nack(header["group"], _acked_offsets(header))
    return {}, b""


def _committed(broker: Broker, header: dict[str, Any], payload: bytes) -> Reply:
    return {
        "committed": broker.committed(header["group"], header["topic"], header["partition"])
    }, b""


def _metadata(broker: Broker, header: dict[str, Any], payload: bytes) -> Reply:
    offsets = broker.end_offsets()
    return {
        "topics": {name: [list(pair) for pair in pairs] for name, pairs in offsets.items()}
    }, b""


_OPERATIONS = {
    "create_topic": _create_topic,
    "produce": _produce,
    "read": _read,
    "join": _join,
    "leave": _leave,
    "fetch": _fetch,
    "ack": _ack,
    "nack": _nack,
    "committed": _committed,
    "metadata": _metadata,
}


# -- running as a process ----------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run a broker until SIGTERM or SIGINT; print ``port <n>`` first on stdout."""
    parser = argparse.ArgumentParser(description="Run the msgpass teaching broker.")
    parser.add_argument("--data-dir", type=Path, help="directory for segments and offsets")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument("--durability", choices=[d.value for d in Durability], default="fsync")
    parser.add_argument(
        "--ack-timeout-s",
        type=float,
        default=DEFAULT_ACK_TIMEOUT_S,
        help="seconds before an unacknowledged delivery is redelivered",
    )
    parser.add_argument(
        "--max-deliveries",
        type=int,
        default=DEFAULT_MAX_DELIVERIES,
        help="deliveries before a record goes to <topic>.dlq",
    )
    parser.add_argument(
        "--segment-bytes",
        type=int,
        default=DEFAULT_SEGMENT_BYTES,
        help="bytes after which a partition starts a new segment file",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    data_dir = None if args.durability == "memory" else args.data_dir
    if args.durability == "fsync" and data_dir is None:
        parser.error("--data-dir is required with --durability fsync")
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server = BrokerServer(
        data_dir,
        durability=args.durability,
        host=args.host,
        port=args.port,
        ack_timeout_s=args.ack_timeout_s,
        max_deliveries=args.max_deliveries,
        segment_bytes=args.segment_bytes,
    )
    with server:
        print(f"port {server.port}", flush=True)
        while not stop.wait(1.0):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
