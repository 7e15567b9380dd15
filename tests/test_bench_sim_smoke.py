"""Run the simulator benchmark's smallest configuration to check that every model delivers.

This checks correctness only: each simulator must make exactly the requested
number of deliveries, which the run functions assert. No rate is asserted,
because benchmark numbers belong in benchmarks/RESULTS.md, not in tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_sim  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def test_bench_sim_every_simulator_delivers() -> None:
    results = bench_sim.measure(bench_sim.SMOKE_DELIVERIES, repeat=1)

    assert set(results) == set(bench_sim.SIMULATORS)
    for runs in results.values():
        assert len(runs) == 1
        assert runs[0].deliveries == bench_sim.SMOKE_DELIVERIES
        assert runs[0].wall_s > 0


def test_bench_sim_models_match() -> None:
    ours = bench_sim.run_msgpass(bench_sim.SMOKE_DELIVERIES, seed=1)
    simpy = bench_sim.run_simpy(bench_sim.SMOKE_DELIVERIES, seed=1)

    # Same model and mean latency: the simulated durations should be close.
    assert ours.simulated_s == pytest.approx(simpy.simulated_s, rel=0.5)


def test_bench_sim_report_names_target() -> None:
    results = bench_sim.measure(bench_sim.SMOKE_DELIVERIES, repeat=1)
    report = bench_sim.format_report(results, bench_sim.SMOKE_DELIVERIES)

    for name in bench_sim.SIMULATORS:
        assert name in report
    assert "target 5x SimPy" in report
