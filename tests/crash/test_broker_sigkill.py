"""Kill the broker with SIGKILL mid-traffic, 50 times, and check what survived.

Each round a producer thread sends numbered records in batches and remembers
which (partition, offset, value) the broker acknowledged, and a consumer
thread in group ``crash-group`` acks what it receives and remembers the
committed offsets the broker confirmed. At a seeded random point (after a
random number of acknowledged records) the broker process gets SIGKILL. A
new broker process opens the same data directory, and the test checks:

- every acknowledged record is stored, at its offset, with its value;
- the committed offsets are at least the ones the broker confirmed;
- a consumer of the same group starts exactly at the committed offset: no
  record below it comes back, and none at or above it is skipped.

The restarted broker then serves the next round, so recovery runs on a data
directory that has already been through earlier crashes.

SIGKILL on Linux never leaves half of one ``pwrite`` on disk, and the page
cache survives the death of a process. So after each kill the test also
appends the prefix of a record (a torn write, as a power loss could leave) to
the newest segment of a random partition, and recovery must cut it off.
This test therefore cannot tell whether the broker calls ``fsync``: only a
machine crash would show that.
"""

from __future__ import annotations

import random
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from msgpass.broker import Admin, Consumer, Producer
from msgpass.broker.records import encode_record
from msgpass.errors import MessagingError

pytestmark = pytest.mark.crash

ROUNDS = 50
SEED = 20261204
TOPIC = "crash"
PARTITIONS = 3
GROUP = "crash-group"
BATCH = 20
START_TIMEOUT_S = 15.0
ROUND_TIMEOUT_S = 10.0


def _start_broker(data_dir: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start a broker process and return it with the port it printed."""
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "msgpass.broker.server",
                "--data-dir",
                str(data_dir),
                "--port",
                "0",
                "--durability",
                "fsync",
                "--ack-timeout-s",
                "5",
                "--segment-bytes",
                "65536",
            ],
            stdout=subprocess.PIPE,
            stderr=log_file,
        )
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=START_TIMEOUT_S):
            process.kill()
            process.wait(5)
            pytest.fail(f"broker printed no port within {START_TIMEOUT_S} s; see {log_path}")
    line = process.stdout.readline().decode()
    assert line.startswith("port "), f"unexpected first line {line!r}; see {log_path}"
    return process, int(line.split()[1])


class Traffic:
    """A producer thread and a consumer thread, recording what the broker confirmed."""

    def __init__(self, port: int, round_number: int) -> None:
        self.port = port
        self.round_number = round_number
        self.acked: list[tuple[int, int, bytes]] = []  # (partition, offset, value)
        self.committed: dict[int, int] = {}  # partition -> highest confirmed committed offset
        self.consumed = 0
        self.progress = threading.Condition()
        self.errors: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._produce, daemon=True),
            threading.Thread(target=self._consume, daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _produce(self) -> None:
        sequence = 0
        try:
            with Producer(port=self.port, timeout_s=5) as producer:
                while True:
                    values = [b"%d-%d" % (self.round_number, sequence + i) for i in range(BATCH)]
                    results = producer.send_batch(TOPIC, values)
                    sequence += BATCH
                    with self.progress:
                        for (partition, offset), value in zip(results, values, strict=True):
                            self.acked.append((partition, offset, value))
                        self.progress.notify_all()
        except MessagingError:
            return  # the broker was killed
        except BaseException as error:
            self.errors.append(error)

    def _consume(self) -> None:
        try:
            with Consumer(
                port=self.port, group=GROUP, topics=[TOPIC], timeout_s=5, max_records=50
            ) as consumer:
                while True:
                    batch = consumer.poll(timeout_s=0.2)
                    if not batch:
                        continue
                    committed = consumer.ack(*batch)
                    with self.progress:
                        for tp, offset in committed.items():
                            self.committed[tp.partition] = max(
                                self.committed.get(tp.partition, 0), offset
                            )
                        self.consumed += len(batch)
                        self.progress.notify_all()
        except MessagingError:
            return
        except BaseException as error:
            self.errors.append(error)

    def wait_for(self, acked: int, consumed: int) -> None:
        deadline = time.monotonic() + ROUND_TIMEOUT_S
        with self.progress:
            while len(self.acked) < acked or self.consumed < consumed:
                remaining = deadline - time.monotonic()
                assert remaining > 0, (
                    f"round {self.round_number}: only {len(self.acked)} acked and "
                    f"{self.consumed} consumed after {ROUND_TIMEOUT_S} s; errors {self.errors}"
                )
                self.progress.wait(remaining)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(ROUND_TIMEOUT_S)
            assert not thread.is_alive(), f"{thread.name} still running after the broker died"
        assert not self.errors, self.errors


def _tear_tail(data_dir: Path, rng: random.Random) -> None:
    """Append a partial record to the newest segment of a random partition."""
    partition_dir = data_dir / "topics" / TOPIC / str(rng.randrange(PARTITIONS))
    newest = sorted(partition_dir.glob("*.log"))[-1]
    record = encode_record(10**9, 0, b"torn", b"x" * rng.randrange(1, 200))
    with open(newest, "ab") as segment:
        segment.write(record[: rng.randrange(1, len(record))])


def _read_all(admin: Admin) -> dict[tuple[int, int], bytes]:
    stored: dict[tuple[int, int], bytes] = {}
    for partition, (start, end) in enumerate(admin.offsets()[TOPIC]):
        offset = start
        while offset < end:
            records = admin.read(TOPIC, partition, offset, max_records=1000)
            assert records, f"partition {partition}: nothing readable at offset {offset} < {end}"
            for record in records:
                stored[(partition, record.offset)] = record.value
            offset = records[-1].offset + 1
    return stored


def _check_restart(
    port: int, traffic: Traffic, all_acked: list[tuple[int, int, bytes]], confirmed: dict[int, int]
) -> None:
    with Admin(port=port, timeout_s=5) as admin:
        stored = _read_all(admin)
        lost = [(p, o, v) for p, o, v in all_acked if stored.get((p, o)) != v]
        assert not lost, f"round {traffic.round_number}: acknowledged records lost: {lost[:5]}"
        committed = {p: admin.committed(GROUP, TOPIC, p) or 0 for p in range(PARTITIONS)}
        ends = [end for _, end in admin.offsets()[TOPIC]]
    for partition, offset in confirmed.items():
        assert committed[partition] >= offset, (
            f"round {traffic.round_number}: partition {partition} committed offset went back "
            f"from {offset} to {committed[partition]}"
        )

    with Consumer(
        port=port, group=GROUP, topics=[TOPIC], timeout_s=5, max_records=10_000
    ) as consumer:
        first_seen: dict[int, int] = {}
        deadline = time.monotonic() + ROUND_TIMEOUT_S
        wanted = {p for p in range(PARTITIONS) if ends[p] > committed[p]}
        while set(first_seen) < wanted:
            assert time.monotonic() < deadline, f"no redelivery for partitions {wanted}"
            for delivery in consumer.poll(timeout_s=0.5):
                assert delivery.offset >= committed[delivery.partition], (
                    f"round {traffic.round_number}: offset {delivery.offset} of partition "
                    f"{delivery.partition} delivered again below committed offset "
                    f"{committed[delivery.partition]}"
                )
                first_seen.setdefault(delivery.partition, delivery.offset)
        for partition, offset in first_seen.items():
            assert offset == committed[partition], (
                f"round {traffic.round_number}: partition {partition} resumed at {offset}, "
                f"skipping from committed offset {committed[partition]}"
            )


def test_broker_survives_sigkill(tmp_path: Path):
    rng = random.Random(SEED)
    data_dir = tmp_path / "data"
    log_path = tmp_path / "broker.log"
    all_acked: list[tuple[int, int, bytes]] = []
    confirmed: dict[int, int] = {}
    process, port = _start_broker(data_dir, log_path)
    try:
        with Admin(port=port, timeout_s=5) as admin:
            admin.create_topic(TOPIC, PARTITIONS)
        for round_number in range(ROUNDS):
            traffic = Traffic(port, round_number)
            traffic.start()
            traffic.wait_for(acked=rng.randrange(0, 400), consumed=rng.randrange(0, 100))
            process.send_signal(signal.SIGKILL)
            process.wait(5)
            traffic.join()
            _tear_tail(data_dir, rng)
            all_acked.extend(traffic.acked)
            for partition, offset in traffic.committed.items():
                confirmed[partition] = max(confirmed.get(partition, 0), offset)

            process, port = _start_broker(data_dir, log_path)
            _check_restart(port, traffic, all_acked, confirmed)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(5)
        if process.stdout is not None:
            process.stdout.close()
    assert len(all_acked) > ROUNDS
