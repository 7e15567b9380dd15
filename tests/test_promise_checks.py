"""Edge cases of the lab 8 checkers that the wrong-answer files do not cover.

``tests/test_exercises.py`` already proves, through the lab, that each checker
rejects the stub and every file in ``tests/wrong_answers/`` and accepts the
reference. These tests call the checkers directly with small candidates, to
pin down the cases in between: ``MiniPromise`` itself, the library's own
implementations as candidates, and candidates that raise or return the wrong type.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from msgpass.errors import InvalidStateError, MessagingTimeout
from msgpass.exercises import (
    ExerciseFailed,
    check_promise_all,
    check_promise_then,
    check_retry,
    check_with_deadline,
    timed_calls,
)
from msgpass.exercises.promise_checks import FULFILLED, PENDING, ManualScheduler, MiniPromise
from msgpass.exercises.retry_checks import FakeTimers, FixedRandom
from msgpass.exercises.timed_calls import TimedCheck, call_learner
from msgpass.styles.promise import Promise


def test_mini_promise_settles_once() -> None:
    scheduler = ManualScheduler()
    promise = MiniPromise(scheduler)
    promise.fulfill(1)
    with pytest.raises(InvalidStateError):
        promise.reject(ValueError("late"))
    assert promise.state == FULFILLED
    assert promise.value == 1


def test_mini_promise_queues_reactions() -> None:
    scheduler = ManualScheduler()
    promise = MiniPromise(scheduler)
    calls: list[str] = []
    promise.add_reaction(lambda: calls.append("early"))
    assert promise.state == PENDING
    assert calls == []
    promise.fulfill(1)
    promise.add_reaction(lambda: calls.append("late"))
    assert calls == [], "reactions must wait for the scheduler"
    scheduler.run_all()
    assert calls == ["early", "late"]


def test_mini_promise_rejects_non_exception() -> None:
    with pytest.raises(TypeError):
        MiniPromise(ManualScheduler()).reject("not an exception")  # type: ignore[arg-type]


def test_mini_promise_then_is_the_exercise() -> None:
    with pytest.raises(NotImplementedError):
        MiniPromise(ManualScheduler()).then()


def test_then_checker_reports_wrong_return_type() -> None:
    class ReturnsNone(MiniPromise):
        def then(self, on_fulfilled: Any = None, on_rejected: Any = None) -> Any:
            return None

    with pytest.raises(ExerciseFailed) as failure:
        check_promise_then(ReturnsNone, quiet=True)
    assert "new promise" in str(failure.value)
    assert "hint" in str(failure.value)


def test_all_checker_accepts_library_all() -> None:
    report = check_promise_all(Promise.all, quiet=True)
    assert len(report.checks_passed) == 3


def test_all_checker_reports_non_promise() -> None:
    with pytest.raises(ExerciseFailed) as failure:
        check_promise_all(lambda promises: [], quiet=True)
    assert "return a Promise" in str(failure.value)


def test_all_checker_reports_learner_exception() -> None:
    def broken(promises: list[Promise[Any]]) -> Promise[Any]:
        raise KeyError("oops")

    with pytest.raises(ExerciseFailed) as failure:
        check_promise_all(broken, quiet=True)
    assert "KeyError" in str(failure.value)


def test_all_checker_same_result_for_same_seed() -> None:
    first = check_promise_all(Promise.all, seed=3, quiet=True)
    second = check_promise_all(Promise.all, seed=3, quiet=True)
    assert first.checks_passed == second.checks_passed


def test_fixed_random_drives_uniform() -> None:
    rng = FixedRandom(0.5)
    assert rng.uniform(0.0, 4.0) == 2.0
    assert rng.calls == 1


def test_retry_checker_rejects_no_retry() -> None:
    def no_retry(op: Any, **_options: Any) -> Any:
        return op()

    with pytest.raises(ExerciseFailed) as failure:
        check_retry(no_retry, quiet=True)
    assert "success after failures" in str(failure.value)


def test_retry_checker_rejects_real_sleep() -> None:
    """A candidate that ignores the injected sleep records no sleeps, so it fails."""

    def ignores_sleep(
        op: Any,
        *,
        attempts: int,
        base_delay_s: float,
        max_delay_s: float,
        rng: random.Random,
        sleep: Any,
    ) -> Any:
        for attempt in range(attempts):
            try:
                return op()
            except Exception:
                if attempt == attempts - 1:
                    raise
            threading.Event().wait(0.0)  # replaces time.sleep here, without waiting

    with pytest.raises(ExerciseFailed) as failure:
        check_retry(ignores_sleep, quiet=True)
    assert "sleep" in str(failure.value)


def test_retry_checker_reports_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    """A retry that never returns fails at the deadline, with the loop named in the report."""
    monkeypatch.setattr(timed_calls, "CALL_DEADLINE_S", 0.1)
    release = threading.Event()

    def waits_forever(op: Any, **_options: Any) -> Any:
        release.wait(10.0)  # stands in for an infinite loop, released below

    try:
        with pytest.raises(ExerciseFailed) as failure:
            check_retry(waits_forever, quiet=True)
    finally:
        release.set()
    report = str(failure.value)
    assert "first success returns" in report
    assert "did not return within 0.1 s (an infinite loop?)" in report
    assert "hint:" in report


def test_deadline_checker_reports_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timed_calls, "CALL_DEADLINE_S", 0.1)
    release = threading.Event()

    def waits_for_input(promise: Promise[Any], timeout_s: float, call_later: Any) -> Any:
        release.wait(10.0)

    try:
        with pytest.raises(ExerciseFailed) as failure:
            check_with_deadline(waits_for_input, quiet=True)
    finally:
        release.set()
    assert "did not return within 0.1 s" in str(failure.value)


def test_call_learner_passes_results_and_errors() -> None:
    assert call_learner(lambda a, *, b: a + b, 2, b=3, timeout_s=1.0) == 5
    with pytest.raises(ValueError, match="boom"):
        call_learner(lambda: int("boom"), timeout_s=1.0)


def test_timed_check_reports_slow_sub_check() -> None:
    release = threading.Event()
    check = TimedCheck("timed-demo", deadline_s=0.1)
    check.add("quick", lambda candidate, rng: None, hint="unused")
    check.add("stuck", lambda candidate, rng: release.wait(10.0), hint="unused")
    try:
        with pytest.raises(ExerciseFailed) as failure:
            check.run(object(), quiet=True)
    finally:
        release.set()
    report = str(failure.value)
    assert "check 'stuck' failed (1 of 2 checks passed before it)" in report
    assert "the check 'stuck' to return within 0.1 s" in report
    assert "an infinite loop?" in report


def test_fake_timer_does_not_fire_after_cancel() -> None:
    timers = FakeTimers()
    fired: list[bool] = []
    timer = timers(1.0, lambda: fired.append(True))
    timer.cancel()
    timer.fire()
    assert fired == []
    assert timers.timers == [timer]


def test_deadline_checker_rejects_two_timers() -> None:
    def two_timers(promise: Promise[Any], timeout_s: float, call_later: Any) -> Promise[Any]:
        call_later(timeout_s, lambda: None)
        call_later(timeout_s, lambda: None)
        return promise.then(lambda value: value)

    with pytest.raises(ExerciseFailed) as failure:
        check_with_deadline(two_timers, quiet=True)
    assert "exactly one timer" in str(failure.value)


def test_deadline_checker_rejects_returning_the_input() -> None:
    def returns_input(promise: Promise[Any], timeout_s: float, call_later: Any) -> Promise[Any]:
        call_later(timeout_s, lambda: None)
        return promise

    with pytest.raises(ExerciseFailed) as failure:
        check_with_deadline(returns_input, quiet=True)
    assert "new Promise" in str(failure.value)


def test_deadline_checker_accepts_race_based_answer() -> None:
    """A different correct design: race the input against a timeout promise."""

    def with_race(promise: Promise[Any], timeout_s: float, call_later: Any) -> Promise[Any]:
        deadline, _, reject = Promise.with_resolvers()
        timer = call_later(timeout_s, lambda: reject(MessagingTimeout("deadline")))
        promise.add_done_callback(lambda _settled: timer.cancel())
        return Promise.race([promise, deadline])

    report = check_with_deadline(with_race, quiet=True)
    assert len(report.checks_passed) == 4
