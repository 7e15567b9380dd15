"""The checkers of exercises ``retry-backoff-jitter`` and ``with-deadline`` in lab 8.

Both exercises decide *when* to give up on a remote call, and both checkers
take time out of the picture by injecting it: the learner's code receives
the ``sleep`` function, the random generator, or the ``call_later`` timer
function, and the checker supplies fakes that record what was asked of them.
No check waits for a real delay.

``retry-backoff-jitter``: ``retry(op, *, attempts, base_delay_s, max_delay_s,
rng, sleep)`` calls ``op()`` up to ``attempts`` times and returns its first
result. After failed attempt ``k`` (counted from 0) it sleeps a delay drawn
uniformly from ``[0, min(max_delay_s, base_delay_s * 2**k)]``, the "full
jitter" of Brooker's "Exponential Backoff And Jitter" (AWS Architecture Blog,
2015). It never sleeps after the last attempt, and it re-raises the error of
the last attempt. Every call of the learner's ``retry`` goes through
``timed_calls.call_learner``, so an answer that never returns fails within
``CALL_DEADLINE_S`` instead of hanging the cell.

``with-deadline``: ``with_deadline(promise, timeout_s, call_later)`` returns
a new ``Promise`` that settles like ``promise`` if that happens first, and
otherwise rejects with ``MessagingTimeout`` when the timer that
``call_later(timeout_s, fn)`` started fires. The timer is cancelled when the
input settles first, the input itself is never settled by the deadline, and
an outcome that arrives after the deadline is handled rather than logged as
an unhandled rejection.

This module contains the ``retry-backoff-jitter`` checker. The
``with-deadline`` checker lives in ``deadline_checks`` and the fakes in
``fakes``, and this module re-exports them.
"""

from __future__ import annotations

import random
import statistics
from typing import Any, Final

from .checking import Check, CheckFailed, CheckReport, expect_equal, short_repr
from .deadline_checks import check_with_deadline
from .fakes import FakeTimer, FakeTimers, FixedRandom, FlakyOperation
from .timed_calls import call_learner

__all__ = [
    "FakeTimer",
    "FakeTimers",
    "FixedRandom",
    "FlakyOperation",
    "check_retry",
    "check_with_deadline",
]

JITTER_TRIALS: Final = 200  # seeded runs in the jitter distribution check
RELATIVE_TOLERANCE: Final = 1e-9


# ---------------------------------------------------------------------------
# retry-backoff-jitter
# ---------------------------------------------------------------------------


def _bounds(attempts: int, base_delay_s: float, max_delay_s: float) -> list[float]:
    return [min(max_delay_s, base_delay_s * 2**k) for k in range(attempts - 1)]


def _run_retry(
    retry: Any, op: FlakyOperation, attempts: int, base: float, cap: float, rng: random.Random
) -> tuple[object, BaseException | None]:
    try:
        value = call_learner(
            retry,
            op,
            attempts=attempts,
            base_delay_s=base,
            max_delay_s=cap,
            rng=rng,
            sleep=op.sleep,
            what=f"retry(op, attempts={attempts}, base_delay_s={base:g}, max_delay_s={cap:g}, ...)",
            hint="every failed attempt must lead to the next attempt or to re-raising, and "
            "every success must return at once. Sleep only through the sleep argument: "
            "time.sleep would really wait",
        )
    except ConnectionError as error:
        return None, error
    return value, None


def check_first_success(retry: Any, rng: random.Random) -> None:
    op = FlakyOperation(failures=0)
    value, error = _run_retry(retry, op, 5, 0.1, 2.0, random.Random(rng.random()))
    expect_equal(error, None, "the error raised when the first attempt succeeds")
    expect_equal(value, "42", "the value returned")
    expect_equal(op.events, ["call"], "calls and sleeps", hint="return as soon as op() succeeds")


def check_success_after_failures(retry: Any, rng: random.Random) -> None:
    op = FlakyOperation(failures=2, value=rng.randint(1, 1000))
    value, error = _run_retry(retry, op, 5, 0.1, 2.0, random.Random(rng.random()))
    if error is not None:
        raise CheckFailed(
            expected=f"the value {op.value} after 2 failed attempts out of 5",
            actual=f"{type(error).__name__}: {error}",
            hint="catch the error of a failed attempt and try again while attempts remain",
        )
    expect_equal(value, op.value, "the value returned")
    expect_equal(
        op.events,
        ["call", "sleep", "call", "sleep", "call"],
        "the order of calls and sleeps",
        hint="sleep only between a failed attempt and the next one, never before the first",
    )


def check_gives_up(retry: Any, rng: random.Random) -> None:
    for attempts in (1, 2, 5):
        op = FlakyOperation(failures=10)
        value, error = _run_retry(retry, op, attempts, 0.1, 2.0, random.Random(rng.random()))
        if error is None:
            raise CheckFailed(
                expected=f"ConnectionError after {attempts} failed attempt(s)",
                actual=f"retry() returned {short_repr(value)}",
                hint="after the last attempt, re-raise its error with a bare 'raise'",
            )
        expect_equal(op.events.count("call"), attempts, f"calls of op() with attempts={attempts}")
        expect_equal(
            len(op.delays),
            attempts - 1,
            f"sleeps with attempts={attempts}",
            hint="do not sleep after the last attempt: nothing follows it",
        )
        if error is not op.errors[-1]:
            raise CheckFailed(
                expected=f"the last attempt's error {op.errors[-1]!r}",
                actual=f"{error!r}",
                hint="re-raise the error of the last attempt, which is the freshest news "
                "about the remote side",
            )


def check_growth_and_cap(retry: Any, rng: random.Random) -> None:
    base = rng.choice([0.05, 0.1, 0.25])
    cap = base * 20
    attempts = 9
    fixed = FixedRandom(0.999)
    op = FlakyOperation(failures=100)
    _run_retry(retry, op, attempts, base, cap, fixed)
    expected = [0.999 * bound for bound in _bounds(attempts, base, cap)]
    got = op.delays
    same = len(got) == len(expected) and all(
        abs(a - b) <= RELATIVE_TOLERANCE * max(1.0, b) + 1e-6
        for a, b in zip(got, expected, strict=True)
    )
    if not same:
        raise CheckFailed(
            expected=f"with rng.random() always 0.999, delays {[round(d, 4) for d in expected]}",
            actual=f"{[round(d, 4) for d in got]}",
            hint="after failed attempt k (from 0) the upper bound is "
            "min(max_delay_s, base_delay_s * 2**k): cap the bound first, then draw "
            "rng.uniform(0, bound)",
        )


def check_full_jitter_floor(retry: Any, rng: random.Random) -> None:
    fixed = FixedRandom(0.0)
    op = FlakyOperation(failures=100)
    _run_retry(retry, op, 6, 0.1, 2.0, fixed)
    if fixed.calls < len(op.delays):
        raise CheckFailed(
            expected=f"at least one draw from the given rng per sleep ({len(op.delays)})",
            actual=f"{fixed.calls} draw(s)",
            hint="draw the jitter from the rng argument (rng.uniform), not from the random "
            "module, so the checker and your tests can seed it",
        )
    if any(delay != 0.0 for delay in op.delays):
        raise CheckFailed(
            expected="with rng.random() always 0.0, every delay 0.0 (full jitter starts at 0)",
            actual=f"{[round(d, 4) for d in op.delays]}",
            hint="full jitter draws from the whole range [0, bound]; 'equal jitter' "
            "(bound/2 plus up to bound/2) and no jitter keep clients in step",
        )


def check_seeded_jitter(retry: Any, rng: random.Random) -> None:
    attempts, base, cap = 6, 0.1, 1.0
    bounds = _bounds(attempts, base, cap)
    per_retry: list[list[float]] = [[] for _ in bounds]
    for trial in range(JITTER_TRIALS):
        op = FlakyOperation(failures=100)
        _run_retry(retry, op, attempts, base, cap, random.Random(rng.getrandbits(32)))
        expect_equal(len(op.delays), len(bounds), f"sleeps in trial {trial}")
        for k, delay in enumerate(op.delays):
            if not 0.0 <= delay <= bounds[k]:
                raise CheckFailed(
                    expected=f"delay {k} within [0, {bounds[k]:g}]",
                    actual=f"{delay:.6g} (trial {trial})",
                )
            per_retry[k].append(delay)
    for k, delays in enumerate(per_retry):
        mean = statistics.fmean(delays)
        if not 0.3 * bounds[k] <= mean <= 0.7 * bounds[k]:
            raise CheckFailed(
                expected=f"the mean of delay {k} over {JITTER_TRIALS} seeded runs near "
                f"{bounds[k] / 2:g}, half its bound",
                actual=f"{mean:.4g}",
                hint="draw each delay uniformly from [0, bound] with rng.uniform(0, bound)",
            )


def check_retry(retry: Any, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check a learner's ``retry`` for attempt counting and full-jitter exponential backoff.

    Prints a one-line summary and returns a ``CheckReport`` when every check
    passes. Raises ``ExerciseFailed`` naming the first failed check.
    """
    check = Check("retry-backoff-jitter", seed=seed)
    check.add("first success returns", check_first_success, hint="return op()'s first result")
    check.add(
        "success after failures",
        check_success_after_failures,
        hint="loop over the attempts, and return from inside the try block",
    )
    check.add(
        "gives up after attempts",
        check_gives_up,
        hint="make exactly `attempts` calls and re-raise the last error",
    )
    check.add(
        "full jitter starts at zero",
        check_full_jitter_floor,
        hint="draw each delay from [0, bound] with the given rng",
    )
    check.add(
        "exponential growth to the cap",
        check_growth_and_cap,
        hint="the bound doubles after every failure and stops at max_delay_s",
    )
    check.add(
        "seeded delays in bounds",
        check_seeded_jitter,
        hint="draw each delay uniformly from [0, min(max_delay_s, base_delay_s * 2**k)]",
    )
    return check.run(retry, quiet=quiet)
