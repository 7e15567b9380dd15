"""Measure msgpass.tcp against raw sockets, a naive framing loop and pyzmq, on loopback.

Two questions, answered in the same run so the ratios compare like with like:

1. 1 MiB messages: what does ``FramedConnection`` cost compared with a raw
   socket that ``sendall``s 1 MiB and ``recv_into``s a preallocated buffer?
   Reported in MB/s (10**6 bytes per second) and as the ratio library / raw.
   One extra row sends with header and payload joined into one bytes object,
   which shows what ``sendmsg`` saves.
2. 100-byte messages: messages per second of the library, of a naive loop
   (one ``sendall(header + payload)`` per message, a receiver that ``recv``s
   64 KiB chunks and splits them), and of pyzmq PUSH/PULL. Reported as ratios
   against the naive loop.

The sender runs in this process and the receiver in a child process, so each
side has its own interpreter and its own core. With two threads in one
process the sender and receiver take turns on the GIL, which hides the cost
of per-message Python code on small messages. ``--threads`` runs the receiver
in a thread instead, which the smoke test uses because it starts faster.

Timing: the sender starts the clock once connected, sends every message, and
stops it when the receiver reports through a pipe that it has received all
of them. Each repetition runs every case once, in turn, and the table shows
the median of the repetitions.

Run: ``.venv/bin/python benchmarks/bench_tcp.py [--quick] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import socket
import statistics
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import zmq

from msgpass import tcp
from msgpass.tcp import FramedConnection

HEADER = struct.Struct("!I")
LARGE_BYTES = 1024 * 1024
SMALL_BYTES = 100
TIMEOUT_S = 60.0  # for every blocking call; a run that takes longer has failed
CHUNK_BYTES = 64 * 1024  # recv size of the naive receiver


@dataclass(frozen=True)
class Config:
    """Message counts for one run."""

    large_messages: int
    small_messages: int
    repeat: int


FULL = Config(large_messages=2000, small_messages=200_000, repeat=5)
QUICK = Config(large_messages=300, small_messages=30_000, repeat=3)
SMOKE = Config(large_messages=3, small_messages=200, repeat=1)


@dataclass(frozen=True)
class Result:
    """The receiver's report after one case: messages and payload bytes received."""

    messages: int
    payload_bytes: int


def set_timeouts(sock: socket.socket) -> None:
    """Give the raw and naive sockets a timeout that costs them no extra system call.

    ``settimeout`` makes CPython poll before every send and recv, which would
    slow the baselines down and flatter the library. On Linux the kernel
    enforces SO_RCVTIMEO and SO_SNDTIMEO on a blocking socket for free. The
    library's sockets are switched to non-blocking mode by FramedConnection.
    """
    if sys.platform != "linux":
        sock.settimeout(TIMEOUT_S)
        return
    sock.settimeout(None)
    timeval = struct.pack("ll", int(TIMEOUT_S), 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


# -- receivers: run in the child process (or thread), report through a pipe --


def receive_raw_large(sock: socket.socket, count: int, size: int) -> Result:
    buffer = bytearray(size)
    view = memoryview(buffer)
    total = 0
    for _ in range(count):
        got = 0
        while got < size:
            n = sock.recv_into(view[got:])
            if n == 0:
                raise ConnectionError("sender closed early")
            got += n
        total += got
    return Result(count, total)


def receive_framed(sock: socket.socket, count: int, size: int) -> Result:
    conn = FramedConnection(sock, timeout_s=TIMEOUT_S)
    total = 0
    for _ in range(count):
        total += len(conn.recv())
    return Result(count, total)


def receive_naive(sock: socket.socket, count: int, size: int) -> Result:
    buffered = b""
    received = 0
    total = 0
    while received < count:
        chunk = sock.recv(CHUNK_BYTES)
        if not chunk:
            raise ConnectionError("sender closed early")
        buffered += chunk
        position = 0
        while len(buffered) - position >= HEADER.size:
            (length,) = HEADER.unpack_from(buffered, position)
            end = position + HEADER.size + length
            if end > len(buffered):
                break
            payload = buffered[position + HEADER.size : end]
            total += len(payload)
            received += 1
            position = end
        buffered = buffered[position:]
    return Result(received, total)


def tcp_receiver(
    receive: Callable[[socket.socket, int, int], Result], count: int, size: int, pipe: Connection
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT_S)
        pipe.send(listener.getsockname()[1])
        sock, _ = listener.accept()
    with sock:
        set_timeouts(sock)
        pipe.send(receive(sock, count, size))


def zmq_receiver(count: int, size: int, pipe: Connection) -> None:
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.linger = 0
    pull.rcvtimeo = int(TIMEOUT_S * 1000)
    try:
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        pipe.send(port)
        total = 0
        for _ in range(count):
            total += len(pull.recv())
        pipe.send(Result(count, total))
    finally:
        pull.close()
        context.term()


# -- senders: run in this process, between connect and the receiver's report --


def send_raw(sock: socket.socket, payload: bytes, count: int) -> None:
    for _ in range(count):
        sock.sendall(payload)


def send_framed(sock: socket.socket, payload: bytes, count: int) -> None:
    conn = FramedConnection(sock, timeout_s=TIMEOUT_S)
    for _ in range(count):
        conn.send(payload)


def send_framed_joined(sock: socket.socket, payload: bytes, count: int) -> None:
    # Raising the copy limit makes send() join header and payload for every size.
    saved = tcp.COPY_LIMIT_BYTES
    tcp.COPY_LIMIT_BYTES = 2**32
    try:
        send_framed(sock, payload, count)
    finally:
        tcp.COPY_LIMIT_BYTES = saved


def send_naive(sock: socket.socket, payload: bytes, count: int) -> None:
    for _ in range(count):
        sock.sendall(HEADER.pack(len(payload)) + payload)


@dataclass(frozen=True)
class Case:
    """One sender/receiver pair; ``receive`` is None for pyzmq."""

    name: str
    send: Callable[[Any, bytes, int], None] | None
    receive: Callable[[socket.socket, int, int], Result] | None
    size: int


LARGE_CASES = [
    Case("raw socket", send_raw, receive_raw_large, LARGE_BYTES),
    Case("msgpass FramedConnection", send_framed, receive_framed, LARGE_BYTES),
    Case("msgpass, header+payload joined", send_framed_joined, receive_framed, LARGE_BYTES),
]
SMALL_CASES = [
    Case("naive sendall + split", send_naive, receive_naive, SMALL_BYTES),
    Case("msgpass FramedConnection", send_framed, receive_framed, SMALL_BYTES),
    Case("pyzmq PUSH/PULL", None, None, SMALL_BYTES),
]


def run_case(case: Case, count: int, *, use_process: bool) -> float:
    """Run one case and return its elapsed seconds, after checking what arrived."""
    parent_end, child_end = multiprocessing.Pipe()
    if case.receive is None:
        target: Callable[..., None] = zmq_receiver
        args: tuple[Any, ...] = (count, case.size, child_end)
    else:
        target = tcp_receiver
        args = (case.receive, count, case.size, child_end)
    if use_process:
        worker: Any = multiprocessing.get_context("fork").Process(target=target, args=args)
    else:
        worker = threading.Thread(target=target, args=args)
    worker.start()
    try:
        if not parent_end.poll(TIMEOUT_S):
            raise TimeoutError(f"{case.name}: timed out waiting for the receiver's port")
        port = parent_end.recv()
        payload = bytes(case.size)
        if case.send is None:
            elapsed = send_zmq(port, payload, count, parent_end)
        else:
            elapsed = send_tcp(case.send, port, payload, count, parent_end)
        result: Result = parent_end.recv()
    finally:
        worker.join(TIMEOUT_S)
        parent_end.close()
        child_end.close()
    if result != Result(count, count * case.size):
        raise AssertionError(f"{case.name}: expected {count} messages, receiver got {result}")
    return elapsed


def send_tcp(
    send: Callable[[Any, bytes, int], None],
    port: int,
    payload: bytes,
    count: int,
    pipe: Connection,
) -> float:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        set_timeouts(sock)
        start = time.perf_counter()
        send(sock, payload, count)
        if not pipe.poll(TIMEOUT_S):
            raise TimeoutError("timed out waiting for the receiver's report")
        return time.perf_counter() - start


def send_zmq(port: int, payload: bytes, count: int, pipe: Connection) -> float:
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.linger = 0
    push.sndtimeo = int(TIMEOUT_S * 1000)
    try:
        push.connect(f"tcp://127.0.0.1:{port}")
        start = time.perf_counter()
        for _ in range(count):
            push.send(payload)
        if not pipe.poll(TIMEOUT_S):
            raise TimeoutError("timed out waiting for the receiver's report")
        return time.perf_counter() - start
    finally:
        push.close()
        context.term()


def measure(config: Config, *, use_process: bool) -> dict[str, dict[str, list[float]]]:
    """Run every case ``config.repeat`` times and return every rate, per table and case."""
    large: dict[str, list[float]] = {case.name: [] for case in LARGE_CASES}
    small: dict[str, list[float]] = {case.name: [] for case in SMALL_CASES}
    for _ in range(config.repeat):
        for case in LARGE_CASES:
            elapsed = run_case(case, config.large_messages, use_process=use_process)
            large[case.name].append(config.large_messages * case.size / elapsed / 1e6)
        for case in SMALL_CASES:
            elapsed = run_case(case, config.small_messages, use_process=use_process)
            small[case.name].append(config.small_messages / elapsed)
    return {"large_mb_per_s": large, "small_messages_per_s": small}


def format_report(results: dict[str, dict[str, list[float]]], config: Config, mode: str) -> str:
    """Return the two tables: median rate, its ratio to the baseline, and the range."""
    large = {name: statistics.median(rates) for name, rates in results["large_mb_per_s"].items()}
    small = {
        name: statistics.median(rates) for name, rates in results["small_messages_per_s"].items()
    }
    raw = large["raw socket"]
    naive = small["naive sendall + split"]
    lines = [
        f"Python {platform.python_version()}, {multiprocessing.cpu_count()} CPUs, "
        f"receiver in a {mode}, median of {config.repeat} repetitions",
        "",
        f"1 MiB messages, {config.large_messages} per repetition",
        f"{'sender/receiver':34} {'MB/s':>10} {'vs raw':>8}   range of repetitions",
    ]
    for name, rate in large.items():
        low, high = min(results["large_mb_per_s"][name]), max(results["large_mb_per_s"][name])
        lines.append(f"{name:34} {rate:10.0f} {rate / raw:7.2f}x   {low:.0f} to {high:.0f}")
    lines += [
        "",
        f"100-byte messages, {config.small_messages} per repetition",
        f"{'sender/receiver':34} {'msg/s':>10} {'vs naive':>8}   range of repetitions",
    ]
    for name, rate in small.items():
        rates = results["small_messages_per_s"][name]
        low, high = min(rates), max(rates)
        lines.append(f"{name:34} {rate:10.0f} {rate / naive:7.2f}x   {low:.0f} to {high:.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="send fewer messages, for a run of a few seconds"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="repetitions per case (default 5, or 3 quick)"
    )
    parser.add_argument(
        "--threads", action="store_true", help="run the receiver in a thread, not a process"
    )
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    if args.repeat is not None:
        if args.repeat < 1:
            parser.error(f"--repeat must be 1 or more, got {args.repeat}")
        config = Config(config.large_messages, config.small_messages, args.repeat)
    use_process = not args.threads and sys.platform == "linux"
    results = measure(config, use_process=use_process)
    print(format_report(results, config, "process" if use_process else "thread"))


if __name__ == "__main__":
    main()
