"""BoundedExecutor and run_all: bounds, released slots, and no lost failures."""

from __future__ import annotations

import concurrent.futures as cf
import threading

import pytest

from msgpass.errors import MessagingTimeout
from msgpass.executors import BoundedExecutor, cpu_work, io_work, run_all

TIMEOUT_S = 10.0


def test_bounded_executor_runs_all() -> None:
    with BoundedExecutor(cf.ThreadPoolExecutor(max_workers=2), max_in_flight=3) as pool:
        futures = [pool.submit(pow, n, 2, timeout_s=TIMEOUT_S) for n in range(20)]
        assert [f.result(timeout=TIMEOUT_S) for f in futures] == [n * n for n in range(20)]
    assert pool.stats()["submitted"] == 20
    assert pool.peak_in_flight <= 3


def test_bounded_executor_times_out_when_full() -> None:
    gate = threading.Event()
    with BoundedExecutor(cf.ThreadPoolExecutor(max_workers=1), max_in_flight=2) as pool:
        try:
            pool.submit(gate.wait, TIMEOUT_S, timeout_s=TIMEOUT_S)
            pool.submit(gate.wait, TIMEOUT_S, timeout_s=TIMEOUT_S)
            with pytest.raises(MessagingTimeout):
                pool.submit(gate.wait, TIMEOUT_S, timeout_s=0.05)
            assert pool.rejected == 1
        finally:
            gate.set()


def test_bounded_executor_failed_tasks_release() -> None:
    def fail() -> None:
        raise ValueError("on purpose")

    with BoundedExecutor(cf.ThreadPoolExecutor(max_workers=1), max_in_flight=1) as pool:
        futures = [pool.submit(fail, timeout_s=TIMEOUT_S) for _ in range(5)]
        assert all(isinstance(f.exception(timeout=TIMEOUT_S), ValueError) for f in futures)


def test_bounded_executor_rejected_submit_releases() -> None:
    inner = cf.ThreadPoolExecutor(max_workers=1)
    inner.shutdown()
    pool = BoundedExecutor(inner, max_in_flight=1)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            pool.submit(pow, 2, 2, timeout_s=0.05)


def test_bounded_executor_rejects_zero_slots() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BoundedExecutor(cf.ThreadPoolExecutor(max_workers=1), max_in_flight=0)


def test_run_all_collects_every_failure() -> None:
    def check(value: int) -> int:
        if value % 3 == 0:
            raise ValueError(f"bad {value}")
        return value

    with cf.ThreadPoolExecutor(max_workers=3) as executor:
        outcome = run_all(executor, check, {f"t{n}": n for n in range(9)}, timeout_s=TIMEOUT_S)
    assert outcome.results == {"t1": 1, "t2": 2, "t4": 4, "t5": 5, "t7": 7, "t8": 8}
    assert outcome.failed_ids == ("t0", "t3", "t6")
    assert outcome.failures is not None
    notes = sorted(error.__notes__[0] for error in outcome.failures.exceptions)
    assert notes == ["task 't0'", "task 't3'", "task 't6'"]
    with pytest.raises(ExceptionGroup):
        outcome.raise_failures()


def test_run_all_without_failures() -> None:
    with cf.ThreadPoolExecutor(max_workers=2) as executor:
        outcome = run_all(executor, cpu_work, {"a": 10, "b": 4}, timeout_s=TIMEOUT_S)
    assert outcome.results == {"a": 285, "b": 14}
    assert outcome.failures is None
    outcome.raise_failures()


def test_run_all_timeout_cancels_queued() -> None:
    gate = threading.Event()
    with cf.ThreadPoolExecutor(max_workers=1) as executor:
        try:
            with pytest.raises(MessagingTimeout, match="cancelled"):
                run_all(executor, gate.wait, {n: TIMEOUT_S for n in range(3)}, timeout_s=0.05)
        finally:
            gate.set()


def test_io_work_returns_delay() -> None:
    assert io_work(0.0) == 0.0
