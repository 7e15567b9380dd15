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
the last attempt.

``with-deadline``: ``with_deadline(promise, timeout_s, call_later)`` returns
a new ``Promise`` that settles like ``promise`` if that happens first, and
otherwise rejects with ``MessagingTimeout`` when the timer that
``call_later(timeout_s, fn)`` started fires. The timer is cancelled when the
input settles first, the input itself is never settled by the deadline, and
an outcome that arrives after the deadline is handled rather than logged as
an unhandled rejection.
"""

from __future__ import annotations

import contextlib
import gc
import random
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from ..errors import MessagingTimeout
from ..styles.promise import PENDING, Dispatcher, Promise
from .checking import Check, CheckFailed, CheckReport, expect_equal, short_repr
from .promise_checks import capture_promise_logs, expect_no_unhandled

__all__ = ["check_retry", "check_with_deadline"]

WAIT_S: Final = 2.0  # how long a check waits for a promise that should settle
JITTER_TRIALS: Final = 200  # seeded runs in the jitter distribution check
RACE_CASES: Final = 40  # seeded timer-against-outcome races in the deadline checker
RELATIVE_TOLERANCE: Final = 1e-9


# ---------------------------------------------------------------------------
# retry-backoff-jitter
# ---------------------------------------------------------------------------


class FixedRandom(random.Random):
    """A generator whose ``random()`` always returns ``fraction``, counting the calls.

    ``uniform(a, b)`` is ``a + (b - a) * random()`` in CPython, so a learner
    who calls either gets the same, predictable delay.
    """

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction
        self.calls = 0

    def random(self) -> float:
        self.calls += 1
        return self.fraction


class FlakyOperation:
    """An operation that fails ``failures`` times, then returns ``value``; it logs every event."""

    def __init__(self, failures: int, value: object = "42") -> None:
        self.failures = failures
        self.value = value
        self.events: list[str] = []  # "call" or "sleep", in the order they happened
        self.delays: list[float] = []
        self.errors: list[ConnectionError] = []

    def __call__(self) -> object:
        self.events.append("call")
        if len(self.errors) < self.failures:
            error = ConnectionError(f"attempt {len(self.errors) + 1} failed")
            self.errors.append(error)
            raise error
        return self.value

    def sleep(self, delay_s: float) -> None:
        self.events.append("sleep")
        self.delays.append(delay_s)


def _bounds(attempts: int, base_delay_s: float, max_delay_s: float) -> list[float]:
    return [min(max_delay_s, base_delay_s * 2**k) for k in range(attempts - 1)]


def _run_retry(
    retry: Any, op: FlakyOperation, attempts: int, base: float, cap: float, rng: random.Random
) -> tuple[object, BaseException | None]:
    try:
        value = retry(
            op, attempts=attempts, base_delay_s=base, max_delay_s=cap, rng=rng, sleep=op.sleep
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


# ---------------------------------------------------------------------------
# with-deadline
# ---------------------------------------------------------------------------


class FakeTimer:
    """One timer started by the learner's code; the checker decides when it fires."""

    def __init__(self, delay_s: float, fn: Callable[[], object]) -> None:
        self.delay_s = delay_s
        self.fn = fn
        self.cancelled = False
        self.fired = False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        """Run the timer's function, as a real timer thread would at the deadline."""
        if not self.cancelled:
            self.fired = True
            self.fn()


class FakeTimers:
    """A ``call_later(delay_s, fn)`` that records each timer instead of starting it."""

    def __init__(self) -> None:
        self.timers: list[FakeTimer] = []

    def __call__(self, delay_s: float, fn: Callable[[], object]) -> FakeTimer:
        timer = FakeTimer(delay_s, fn)
        self.timers.append(timer)
        return timer


def _start(
    with_deadline: Any, dispatcher: Dispatcher, timeout_s: float
) -> tuple[Promise[Any], Callable[[Any], None], Callable[[BaseException], None], Any, FakeTimer]:
    source, resolve, reject = Promise.with_resolvers(dispatcher=dispatcher)
    timers = FakeTimers()
    result = with_deadline(source, timeout_s, timers)
    if not isinstance(result, Promise) or result is source:
        raise CheckFailed(
            expected="with_deadline() to return a new Promise",
            actual=short_repr(result),
            hint="create the result with Promise.with_resolvers() and return it",
        )
    if len(timers.timers) != 1:
        raise CheckFailed(
            expected="with_deadline() to start exactly one timer with call_later",
            actual=f"{len(timers.timers)} timer(s)",
            hint="call call_later(timeout_s, on_deadline) once, before returning",
        )
    return source, resolve, reject, result, timers.timers[0]


def _settled_outcome(result: Promise[Any], what: str) -> tuple[str, object]:
    try:
        error = result.exception(WAIT_S)
    except TimeoutError:
        raise CheckFailed(
            expected=f"{what} within {WAIT_S} s",
            actual=f"the result is still pending: {short_repr(result)}",
            hint="attach then(on_value, on_error) to the input and settle the result from it",
        ) from None
    return ("rejected", error) if error is not None else ("fulfilled", result.result(0.0))


def _wait_cancelled(timer: FakeTimer) -> bool:
    deadline = time.monotonic() + WAIT_S
    while not timer.cancelled:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)  # polling a flag the dispatcher thread sets, with a deadline
    return True


def _with_dispatcher(
    body: Callable[[Any, random.Random, Dispatcher], None],
) -> Callable[[Any, random.Random], None]:
    """Run ``body`` with a private dispatcher and captured promise logs, then look for errors."""

    def run(with_deadline: Any, rng: random.Random) -> None:
        dispatcher = Dispatcher("with-deadline-check")
        try:
            with capture_promise_logs() as records:
                body(with_deadline, rng, dispatcher)
                dispatcher.close(WAIT_S)
                gc.collect()
                expect_no_unhandled(
                    records,
                    "settle the result through the resolve/reject functions of "
                    "Promise.with_resolvers(), which ignore a second settlement, and do not "
                    "let a handler raise",
                )
        finally:
            with contextlib.suppress(RuntimeError):
                dispatcher.close(WAIT_S)

    return run


def _deadline_timer(with_deadline: Any, rng: random.Random, dispatcher: Dispatcher) -> None:
    timeout_s = round(rng.uniform(0.05, 5.0), 3)
    source, resolve, _, result, timer = _start(with_deadline, dispatcher, timeout_s)
    expect_equal(timer.delay_s, timeout_s, "the delay given to call_later, in seconds")
    expect_equal(result.state, PENDING, "the result's state before anything happened")
    resolve("ok")  # lets the learner's handlers run before the dispatcher closes


def _fast_outcome(with_deadline: Any, rng: random.Random, dispatcher: Dispatcher) -> None:
    for fulfil in (True, False):
        _, resolve, reject, result, timer = _start(with_deadline, dispatcher, 1.0)
        error = ConnectionError("reset")
        value = rng.randint(1, 1000)
        if fulfil:
            resolve(value)
        else:
            reject(error)
        expected = ("fulfilled", value) if fulfil else ("rejected", error)
        outcome = _settled_outcome(result, "the result to settle like the input")
        if outcome[0] != expected[0] or outcome[1] is not expected[1] and outcome != expected:
            raise CheckFailed(expected=f"{expected}", actual=short_repr(outcome))
        if not _wait_cancelled(timer):
            raise CheckFailed(
                expected="the timer cancelled once the input settled first",
                actual="the timer is still armed",
                hint="call timer.cancel() in both handlers: an armed timer holds the "
                "callback and its promise until it fires",
            )


def _deadline_passes(with_deadline: Any, rng: random.Random, dispatcher: Dispatcher) -> None:
    for late in ("fulfil", "reject", "never"):
        source, resolve, reject, result, timer = _start(with_deadline, dispatcher, 0.5)
        timer.fire()
        outcome = _settled_outcome(result, "the result to reject when the timer fires")
        if outcome[0] != "rejected" or not isinstance(outcome[1], MessagingTimeout):
            raise CheckFailed(
                expected="the result rejected with MessagingTimeout",
                actual=short_repr(outcome),
                hint="reject with msgpass.errors.MessagingTimeout, so callers that catch "
                "MessagingError (or TimeoutError) see it",
            )
        if source.state != PENDING:
            raise CheckFailed(
                expected="the input promise left alone at the deadline",
                actual=short_repr(source),
                hint="the deadline settles only the result: the input belongs to its producer",
            )
        if late == "fulfil":
            resolve("late value")
        elif late == "reject":
            reject(ConnectionError("late failure"))
        expect_equal(result.exception(0.0), outcome[1], f"the result after a late {late}")


def _timer_races_outcome(with_deadline: Any, rng: random.Random, dispatcher: Dispatcher) -> None:
    timer_errors: list[BaseException] = []
    for case in range(RACE_CASES):
        _, resolve, _, result, timer = _start(with_deadline, dispatcher, 0.5)
        gate = threading.Barrier(2, timeout=WAIT_S)

        def fire(gate: threading.Barrier = gate, timer: FakeTimer = timer) -> None:
            gate.wait()
            try:
                timer.fire()
            except Exception as error:  # reported below as a finding
                timer_errors.append(error)

        def settle(gate: threading.Barrier = gate, resolve: Any = resolve) -> None:
            gate.wait()
            resolve("value")

        threads = [threading.Thread(target=fire), threading.Thread(target=settle)]
        rng.shuffle(threads)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_S)
        outcome = _settled_outcome(result, f"the result to settle (race case {case})")
        if outcome[0] == "fulfilled" and outcome[1] != "value":
            raise CheckFailed(expected="fulfilled with 'value'", actual=short_repr(outcome))
    if timer_errors:
        error = timer_errors[0]
        raise CheckFailed(
            expected="the timer function to return quietly when the input won the race",
            actual=f"it raised {type(error).__name__}: {error}",
            hint="a timer can fire after cancel() if it was already running: settle the "
            "result with the reject function from with_resolvers(), which ignores a "
            "second settlement",
        )


def check_with_deadline(with_deadline: Any, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check a learner's ``with_deadline(promise, timeout_s, call_later)``.

    Prints a one-line summary and returns a ``CheckReport`` when every check
    passes. Raises ``ExerciseFailed`` naming the first failed check.
    """
    check = Check("with-deadline", seed=seed)
    check.add(
        "one timer of timeout_s seconds",
        _with_dispatcher(_deadline_timer),
        hint="start one timer with call_later(timeout_s, on_deadline); timeout_s is in seconds",
    )
    check.add(
        "fast outcome passes through",
        _with_dispatcher(_fast_outcome),
        hint="settle the result like the input, and cancel the timer",
    )
    check.add(
        "deadline rejects the result",
        _with_dispatcher(_deadline_passes),
        hint="when the timer fires, reject the result with MessagingTimeout",
    )
    check.add(
        "timer races the outcome",
        _with_dispatcher(_timer_races_outcome),
        hint="both the timer and the input may try to settle the result: let the first win",
    )
    return check.run(with_deadline, quiet=quiet)
