"""Run the TCP benchmark's smallest configuration to check that every case delivers.

This checks correctness only: each case must deliver every message, which
``run_case`` verifies against the receiver's count. No rate is asserted,
because benchmark numbers belong in benchmarks/RESULTS.md, not in tests.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_tcp  # noqa: E402

pytestmark = pytest.mark.timeout(30)


def test_bench_smoke_every_case_delivers() -> None:
    results = bench_tcp.measure(bench_tcp.SMOKE, use_process=False)

    large = results["large_mb_per_s"]
    small = results["small_messages_per_s"]
    assert set(large) == {case.name for case in bench_tcp.LARGE_CASES}
    assert set(small) == {case.name for case in bench_tcp.SMALL_CASES}
    assert all(len(rates) == 1 and rates[0] > 0 for rates in large.values())
    assert all(len(rates) == 1 and rates[0] > 0 for rates in small.values())


def test_bench_smoke_report_lists_cases() -> None:
    results = bench_tcp.measure(bench_tcp.SMOKE, use_process=False)
    report = bench_tcp.format_report(results, bench_tcp.SMOKE, "thread")

    for case in bench_tcp.LARGE_CASES + bench_tcp.SMALL_CASES:
        assert case.name in report


def test_bench_smoke_detects_lost_messages() -> None:
    def receive_all_but_one(sock: socket.socket, count: int, size: int) -> bench_tcp.Result:
        result = bench_tcp.receive_naive(sock, count, size)
        return bench_tcp.Result(result.messages - 1, result.payload_bytes - size)

    short_receiver = bench_tcp.Case(
        "drops the last message", bench_tcp.send_naive, receive_all_but_one, bench_tcp.SMALL_BYTES
    )
    with pytest.raises(AssertionError, match="expected 5 messages"):
        bench_tcp.run_case(short_receiver, 5, use_process=False)
