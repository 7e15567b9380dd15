"""Run the styles benchmark's smallest configuration to check that every case works.

This checks correctness only: every case checks each balance and chain
result it gets. No rate is asserted, because benchmark numbers belong in
benchmarks/RESULTS.md, not in tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_styles  # noqa: E402

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, list[float]]]:
    return bench_styles.measure(bench_styles.SMOKE)


def test_smoke_runs_every_network_case(results: dict[str, dict[str, list[float]]]) -> None:
    network = results["network_ops_per_s"]

    assert set(network) == set(bench_styles.NETWORK_CASES)
    for rates in network.values():
        assert len(rates) == 1
        assert rates[0] > 0


def test_smoke_runs_every_dispatch_case(results: dict[str, dict[str, list[float]]]) -> None:
    dispatch = results["dispatch_steps_per_s"]

    assert set(dispatch) == set(bench_styles.DISPATCH_CASES)
    for rates in dispatch.values():
        assert len(rates) == 1
        assert rates[0] > 0


def test_smoke_report_lists_cases(results: dict[str, dict[str, list[float]]]) -> None:
    report = bench_styles.format_report(results, bench_styles.SMOKE)

    for name in [*bench_styles.NETWORK_CASES, *bench_styles.DISPATCH_CASES]:
        assert name in report
    assert "target at most 2x" in report


def test_wrong_balance_is_detected() -> None:
    with pytest.raises(AssertionError, match="expected balance"):
        bench_styles.check_balance("99")
