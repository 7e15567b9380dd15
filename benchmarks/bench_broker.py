"""Measure the teaching broker against Redis Streams and RabbitMQ, on loopback.

Every system moves the same records in the same run: 100-byte values,
produced in batches and then consumed in batches with acknowledgements.
Rates are records per second, and each durable row is compared with the
Redis row of the same durability class:

- in memory: the teaching broker with ``durability="memory"``; Redis Streams
  with no persistence at all (``--save ''``, ``--appendonly no``, the
  configuration of ``msgpass.services.RedisServer``); RabbitMQ with a
  non-durable queue, transient messages and no publisher confirms.
- durable: the teaching broker with ``durability="fsync"`` (one fsync per
  produce batch, before the reply); Redis with ``appendonly yes`` and
  ``appendfsync always`` ("fsync after every write to the append only log",
  in the comments of Debian's redis.conf for Redis 7.0); RabbitMQ with a
  durable queue, persistent messages and publisher confirms.

Redis does not fsync in its default configuration (``appendonly no``; with
AOF on, the default ``appendfsync everysec`` fsyncs once a second), so the
in-memory Redis row is the fast, non-durable baseline of the target (the
teaching broker at 1.0x Redis Streams or faster, in both modes), and the
durable rows show what an fsync costs each system.

The batch size ``--batch`` (default 1000) is used wherever the API allows:

- teaching broker: ``Producer.send_batch`` of ``batch`` records; a
  ``Consumer`` with ``max_records=batch`` and one ``ack`` request per poll.
- Redis (redis-py, RESP2, no hiredis): ``XADD`` in pipelines of ``batch``;
  ``XREADGROUP COUNT batch``, pipelined with the ``XACK`` of the previous
  batch.
- RabbitMQ (pika ``BlockingConnection``): publishing has no batch call. Without
  confirms pika writes each ``basic_publish`` to the socket, and the clock
  stops when the queue reports all records. With confirms,
  ``BlockingChannel`` waits for the confirm of each message before the next,
  so that row publishes with a batch size of 1. Consuming uses
  ``basic_qos(prefetch_count=batch)`` and one ``basic_ack(multiple=True)``
  per ``batch`` messages.

Every server runs in its own process (the teaching broker as ``python -m
msgpass.broker.server``) and the clients run one after another in this
process, so on two cores the client and the server each have one. Each
repetition uses a new topic, stream or queue, runs every case in turn, and
checks that every record came back exactly once. The table shows the median
of the repetitions.

A server program that is not installed is skipped with one message, unless
the environment variable ``CI`` is ``true`` (see ``msgpass.services``).

Run: ``.venv/bin/python benchmarks/bench_broker.py [--quick] [--repeat N] [--batch N]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from msgpass.broker import Admin, Consumer, Producer
from msgpass.services import RedisServer, require_service

VALUE_BYTES = 100
TIMEOUT_S = 60.0  # for every blocking call and wait; a run that takes longer has failed
START_TIMEOUT_S = 20.0  # for a broker process to print its port
POLL_TIMEOUT_S = 5.0  # one consumer poll; an empty poll before the end is a failure


@dataclass(frozen=True)
class Config:
    """Record counts and repetitions for one run."""

    records: int
    batch: int
    repeat: int
    confirm_records: int  # records for RabbitMQ with confirms, which is far slower per record


FULL = Config(records=100_000, batch=1000, repeat=5, confirm_records=10_000)
QUICK = Config(records=20_000, batch=1000, repeat=3, confirm_records=2_000)
SMOKE = Config(records=300, batch=100, repeat=1, confirm_records=50)


@dataclass(frozen=True)
class Timing:
    """Seconds to produce and to consume ``records`` records."""

    records: int
    produce_s: float
    consume_s: float

    @property
    def produce_per_s(self) -> float:
        return self.records / self.produce_s

    @property
    def consume_per_s(self) -> float:
        return self.records / self.consume_s


# A case runs one repetition: (repetition number, config) -> timing.
Runner = Callable[[int, Config], Timing]


@dataclass(frozen=True)
class Case:
    """One row of the table: a system in one durability mode."""

    name: str
    durable: bool
    runner: Runner


def make_values(count: int) -> list[bytes]:
    """Return ``count`` distinct 100-byte values, each starting with its index."""
    return [b"%010d" % i + b"." * (VALUE_BYTES - 10) for i in range(count)]


def check_delivered(name: str, values: list[bytes], count: int) -> None:
    """Raise AssertionError unless ``values`` contains each of ``count`` records exactly once."""
    indices = sorted(int(value[:10]) for value in values)
    if indices != list(range(count)):
        missing = count - len(set(indices))
        raise AssertionError(
            f"{name}: expected {count} records exactly once, got {len(values)} "
            f"({missing} missing, {len(values) - len(set(indices))} duplicated)"
        )


def batches(items: list[bytes], size: int) -> Iterator[list[bytes]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- the teaching broker -------------------------------------------------------


@contextmanager
def broker_process(durability: str, data_dir: Path | None) -> Iterator[int]:
    """Run ``python -m msgpass.broker.server`` in a child process and yield its port."""
    command = [sys.executable, "-m", "msgpass.broker.server", "--durability", durability]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    try:
        yield _read_port(process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=TIMEOUT_S)
        assert process.stdout is not None
        process.stdout.close()


def _read_port(process: subprocess.Popen[bytes]) -> int:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(START_TIMEOUT_S):
            raise TimeoutError(f"the broker did not print its port within {START_TIMEOUT_S} s")
    line = process.stdout.readline().decode()
    if not line.startswith("port "):
        raise RuntimeError(f"the broker printed {line!r} instead of 'port <number>'")
    return int(line.split()[1])


def run_teaching_broker(port: int, prefix: str, repetition: int, config: Config) -> Timing:
    """Produce and consume ``config.records`` records through the teaching broker."""
    topic = f"{prefix}-{repetition}"
    values = make_values(config.records)
    with Admin(port=port, timeout_s=TIMEOUT_S) as admin:
        admin.create_topic(topic, partitions=1)

    with Producer(port=port, timeout_s=TIMEOUT_S) as producer:
        start = time.perf_counter()
        for batch in batches(values, config.batch):
            producer.send_batch(topic, batch)
        produce_s = time.perf_counter() - start

    received: list[bytes] = []
    with Consumer(
        port=port,
        group=f"{topic}-group",
        topics=[topic],
        max_records=config.batch,
        timeout_s=TIMEOUT_S,
    ) as consumer:
        start = time.perf_counter()
        while len(received) < config.records:
            deliveries = consumer.poll(timeout_s=POLL_TIMEOUT_S)
            if not deliveries:
                break
            received.extend(delivery.value for delivery in deliveries)
            consumer.ack(*deliveries)
        consume_s = time.perf_counter() - start

    check_delivered(topic, received, config.records)
    return Timing(config.records, produce_s, consume_s)


# -- Redis Streams -------------------------------------------------------------


def redis_client(server: RedisServer) -> Any:
    import redis

    return redis.Redis(
        host=server.host, port=server.port, socket_timeout=TIMEOUT_S, decode_responses=False
    )


def enable_aof_always(client: Any) -> None:
    """Turn on the append-only file with an fsync before every reply, and wait until it is on."""
    client.config_set("appendonly", "yes")
    client.config_set("appendfsync", "always")
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        info = client.info("persistence")
        if info["aof_enabled"] == 1 and info["aof_rewrite_in_progress"] == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"Redis did not finish enabling the AOF within {TIMEOUT_S} s")
        time.sleep(0.01)  # polling a server-side state change with a deadline


def run_redis(client: Any, prefix: str, repetition: int, config: Config) -> Timing:
    """Produce with pipelined XADD, consume with XREADGROUP and pipelined XACK."""
    stream = f"{prefix}-{repetition}".encode()
    group = b"bench"
    values = make_values(config.records)
    client.delete(stream)
    client.xgroup_create(stream, group, id="0", mkstream=True)

    start = time.perf_counter()
    for batch in batches(values, config.batch):
        pipe = client.pipeline(transaction=False)
        for value in batch:
            pipe.xadd(stream, {b"v": value})
        pipe.execute()
    produce_s = time.perf_counter() - start

    received: list[bytes] = []
    pending_ids: list[bytes] = []
    start = time.perf_counter()
    while True:
        pipe = client.pipeline(transaction=False)
        if pending_ids:
            pipe.xack(stream, group, *pending_ids)
        if len(received) < config.records:
            pipe.xreadgroup(group, b"c1", {stream: b">"}, count=config.batch)
        replies = pipe.execute()
        pending_ids = []
        if len(received) >= config.records:
            break
        read_reply = replies[-1]
        if not read_reply:
            break
        for _name, entries in read_reply:
            for entry_id, fields in entries:
                pending_ids.append(entry_id)
                received.append(fields[b"v"])
    consume_s = time.perf_counter() - start

    pending = client.xpending(stream, group)["pending"]
    client.delete(stream)
    check_delivered(stream.decode(), received, config.records)
    if pending != 0:
        raise AssertionError(f"{stream.decode()}: {pending} records left unacknowledged")
    return Timing(config.records, produce_s, consume_s)


# -- RabbitMQ ------------------------------------------------------------------


def rabbitmq_connection(server: Any) -> Any:
    import pika

    parameters = pika.ConnectionParameters(
        server.host,
        server.port,
        socket_timeout=TIMEOUT_S,
        blocked_connection_timeout=TIMEOUT_S,
        heartbeat=0,
    )
    return pika.BlockingConnection(parameters)


def run_rabbitmq(
    connection: Any, prefix: str, repetition: int, config: Config, *, durable: bool
) -> Timing:
    """Publish (with confirms and persistence when ``durable``) and consume with multiple acks."""
    import pika

    queue = f"{prefix}-{repetition}"
    count = config.confirm_records if durable else config.records
    values = make_values(count)
    properties = pika.BasicProperties(delivery_mode=2 if durable else 1)
    channel = connection.channel()
    try:
        channel.queue_declare(queue, durable=durable)
        if durable:
            channel.confirm_delivery()

        start = time.perf_counter()
        for value in values:
            channel.basic_publish("", queue, value, properties)
        wait_for_queue_length(channel, queue, count)
        produce_s = time.perf_counter() - start

        received: list[bytes] = []
        channel.basic_qos(prefetch_count=config.batch)
        start = time.perf_counter()
        last_tag = 0
        for method, _properties, body in channel.consume(queue, inactivity_timeout=POLL_TIMEOUT_S):
            if method is None:
                break
            received.append(body)
            last_tag = method.delivery_tag
            if len(received) % config.batch == 0 or len(received) == count:
                channel.basic_ack(last_tag, multiple=True)
            if len(received) == count:
                break
        channel.cancel()
        left = channel.queue_declare(queue, passive=True).method.message_count
        consume_s = time.perf_counter() - start
        channel.queue_delete(queue)
    finally:
        channel.close()
    check_delivered(queue, received, count)
    if left != 0:
        raise AssertionError(f"{queue}: {left} records left in the queue")
    return Timing(count, produce_s, consume_s)


def wait_for_queue_length(channel: Any, queue: str, count: int) -> None:
    """Ask the queue for its length until it contains ``count`` messages, within a deadline."""
    deadline = time.monotonic() + TIMEOUT_S
    while channel.queue_declare(queue, passive=True).method.message_count < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"queue {queue} did not reach {count} messages in {TIMEOUT_S} s")


# -- running every case --------------------------------------------------------


def build_cases(
    stack: ExitStack, *, with_redis: bool = True, with_rabbitmq: bool = True
) -> list[Case]:
    """Start every server that is installed and return the cases to run against them.

    The servers stop when ``stack`` closes.
    """
    data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-broker-")))
    memory_port = stack.enter_context(broker_process("memory", None))
    fsync_port = stack.enter_context(broker_process("fsync", data_dir))
    cases = [
        Case(
            "msgpass broker, memory",
            False,
            lambda r, c: run_teaching_broker(memory_port, "memory", r, c),
        ),
        Case(
            "msgpass broker, fsync per batch",
            True,
            lambda r, c: run_teaching_broker(fsync_port, "fsync", r, c),
        ),
    ]

    if with_redis and require_service("redis"):
        plain = stack.enter_context(RedisServer())
        plain_client = redis_client(plain)
        stack.callback(plain_client.close)
        always = stack.enter_context(RedisServer())
        always_client = redis_client(always)
        stack.callback(always_client.close)
        enable_aof_always(always_client)
        cases += [
            Case(REDIS_MEMORY, False, lambda r, c: run_redis(plain_client, "plain", r, c)),
            Case(REDIS_DURABLE, True, lambda r, c: run_redis(always_client, "always", r, c)),
        ]

    if with_rabbitmq and require_service("rabbitmq"):
        from msgpass.services_rabbitmq import RabbitMQServer

        rabbit = stack.enter_context(RabbitMQServer())
        connection = rabbitmq_connection(rabbit)
        stack.callback(connection.close)
        cases += [
            Case(
                "RabbitMQ, transient, no confirms",
                False,
                lambda r, c: run_rabbitmq(connection, "transient", r, c, durable=False),
            ),
            Case(
                "RabbitMQ, persistent, confirms",
                True,
                lambda r, c: run_rabbitmq(connection, "persistent", r, c, durable=True),
            ),
        ]
    return cases


REDIS_MEMORY = "Redis Streams, no persistence"
REDIS_DURABLE = "Redis Streams, AOF fsync always"


def measure(config: Config, *, with_rabbitmq: bool = True) -> dict[str, list[Timing]]:
    """Run every available case ``config.repeat`` times; return the timings by case name."""
    results: dict[str, list[Timing]] = {}
    with ExitStack() as stack:
        cases = build_cases(stack, with_rabbitmq=with_rabbitmq)
        for repetition in range(config.repeat):
            for case in cases:
                results.setdefault(case.name, []).append(case.runner(repetition, config))
    return results


def format_report(results: dict[str, list[Timing]], config: Config) -> str:
    """Return the table of median rates with ratios against Redis of the same durability."""
    lines = [
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{VALUE_BYTES}-byte records, batch {config.batch}, "
        f"median of {config.repeat} repetitions",
        f"{config.records} records per repetition "
        f"({config.confirm_records} for RabbitMQ with confirms)",
        "",
        f"{'system':36} {'produce/s':>10} {'vs Redis':>9} {'consume/s':>10} {'vs Redis':>9}",
    ]
    for durable, title, reference in (
        (False, "in memory, against " + REDIS_MEMORY, REDIS_MEMORY),
        (True, "durable, against " + REDIS_DURABLE, REDIS_DURABLE),
    ):
        lines.append(f"-- {title}")
        base = medians(results.get(reference, []))
        for name, timings in results.items():
            if (name in DURABLE_NAMES) != durable:
                continue
            produce, consume = medians(timings)
            lines.append(
                f"{name:36} {produce:>10.0f} {ratio(produce, base[0]):>9} "
                f"{consume:>10.0f} {ratio(consume, base[1]):>9}"
            )
    lines += ["", *target_lines(results)]
    return "\n".join(lines)


DURABLE_NAMES = {
    "msgpass broker, fsync per batch",
    REDIS_DURABLE,
    "RabbitMQ, persistent, confirms",
}


def medians(timings: list[Timing]) -> tuple[float, float]:
    if not timings:
        return (0.0, 0.0)
    return (
        statistics.median(t.produce_per_s for t in timings),
        statistics.median(t.consume_per_s for t in timings),
    )


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base > 0 else "-"


def target_lines(results: dict[str, list[Timing]]) -> list[str]:
    """Say, per broker mode, whether it reached 1.0x Redis Streams without persistence."""
    if REDIS_MEMORY not in results:
        return ["target: not checked, Redis is not installed"]
    base = medians(results[REDIS_MEMORY])
    lines = []
    for name in ("msgpass broker, memory", "msgpass broker, fsync per batch"):
        produce, consume = medians(results[name])
        met = produce >= base[0] and consume >= base[1]
        lines.append(
            f"target (1.0x {REDIS_MEMORY}): {name}: produce {ratio(produce, base[0])}, "
            f"consume {ratio(consume, base[1])}: {'met' if met else 'not met'}"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="move fewer records, for a run of under a minute"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="repetitions per case (default 5, or 3 quick)"
    )
    parser.add_argument(
        "--batch", type=int, default=None, help="records per batch for every system (default 1000)"
    )
    parser.add_argument(
        "--no-rabbitmq", action="store_true", help="skip RabbitMQ, which takes about 6 s to start"
    )
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    if args.repeat is not None:
        if args.repeat < 1:
            parser.error(f"--repeat must be 1 or more, got {args.repeat}")
        config = replace(config, repeat=args.repeat)
    if args.batch is not None:
        if args.batch < 1:
            parser.error(f"--batch must be 1 or more, got {args.batch}")
        config = replace(config, batch=args.batch)
    results = measure(config, with_rabbitmq=not args.no_rabbitmq)
    print(format_report(results, config))


if __name__ == "__main__":
    main()
