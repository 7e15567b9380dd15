"""Run the broker benchmark's smallest configuration to check that every system delivers.

This checks correctness only: every case must get each record back exactly
once, which the benchmark's runners verify. No rate is asserted, because
benchmark numbers belong in benchmarks/RESULTS.md, not in tests. Redis and
RabbitMQ cases are skipped when their server programs are missing, unless
the environment variable ``CI`` is ``true``, where a missing program fails.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from msgpass.services import require_service

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_broker  # noqa: E402

pytestmark = pytest.mark.timeout(120)

TEACHING_CASES = {"msgpass broker, memory", "msgpass broker, fsync per batch"}
REDIS_CASES = {bench_broker.REDIS_MEMORY, bench_broker.REDIS_DURABLE}
RABBITMQ_CASES = {"RabbitMQ, transient, no confirms", "RabbitMQ, persistent, confirms"}


def test_teaching_broker_delivers_every_record() -> None:
    with ExitStack() as stack:
        cases = bench_broker.build_cases(stack, with_redis=False, with_rabbitmq=False)
        assert {case.name for case in cases} == TEACHING_CASES
        for case in cases:
            timing = case.runner(0, bench_broker.SMOKE)
            assert timing.records == bench_broker.SMOKE.records
            assert timing.produce_s > 0
            assert timing.consume_s > 0


def test_redis_streams_deliver_every_record() -> None:
    if not require_service("redis"):
        pytest.skip("redis-server is not installed")
    with ExitStack() as stack:
        cases = [
            case
            for case in bench_broker.build_cases(stack, with_rabbitmq=False)
            if case.name in REDIS_CASES
        ]
        assert {case.name for case in cases} == REDIS_CASES
        for case in cases:
            assert case.runner(0, bench_broker.SMOKE).records == bench_broker.SMOKE.records


def test_rabbitmq_delivers_every_record() -> None:
    if not require_service("rabbitmq"):
        pytest.skip("rabbitmq-server is not installed")
    with ExitStack() as stack:
        cases = [
            case
            for case in bench_broker.build_cases(stack, with_redis=False)
            if case.name in RABBITMQ_CASES
        ]
        assert {case.name for case in cases} == RABBITMQ_CASES
        by_name = {case.name: case for case in cases}
        transient = by_name["RabbitMQ, transient, no confirms"].runner(0, bench_broker.SMOKE)
        persistent = by_name["RabbitMQ, persistent, confirms"].runner(0, bench_broker.SMOKE)
        assert transient.records == bench_broker.SMOKE.records
        assert persistent.records == bench_broker.SMOKE.confirm_records


def test_lost_record_is_reported() -> None:
    values = bench_broker.make_values(5)

    with pytest.raises(AssertionError, match="expected 5 records exactly once"):
        bench_broker.check_delivered("short", values[:4], 5)


def test_duplicated_record_is_reported() -> None:
    values = bench_broker.make_values(5)

    with pytest.raises(AssertionError, match="1 duplicated"):
        bench_broker.check_delivered("twice", values[:4] + values[:1], 5)


def test_report_lists_every_case() -> None:
    timing = bench_broker.Timing(records=10, produce_s=0.5, consume_s=1.0)
    names = sorted(TEACHING_CASES | REDIS_CASES | RABBITMQ_CASES)
    results = {name: [timing] for name in names}

    report = bench_broker.format_report(results, bench_broker.SMOKE)

    for name in names:
        assert name in report
    assert "1.00x" in report
    assert "met" in report
