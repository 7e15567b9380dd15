"""The checker of exercise ``with-deadline`` in lab 8.

``with_deadline(promise, timeout_s, call_later)`` returns a new ``Promise``
that settles like ``promise`` if that happens first, and otherwise rejects
with ``MessagingTimeout`` when the timer that ``call_later(timeout_s, fn)``
started fires. The timer is cancelled when the input settles first, the input
itself is never settled by the deadline, and an outcome that arrives after
the deadline is handled rather than logged as an unhandled rejection.

The checker passes ``fakes.FakeTimers`` as ``call_later`` and fires the
timer itself, so no check waits for a real delay. Calls of ``with_deadline``
and of the timer function it passed go through ``timed_calls.call_learner``,
so an answer that never returns fails within ``CALL_DEADLINE_S``.
``retry_checks`` re-exports ``check_with_deadline``.
"""

from __future__ import annotations

import contextlib
import gc
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from ..errors import MessagingTimeout
from ..styles.promise import PENDING, Dispatcher, Promise
from .checking import Check, CheckFailed, CheckReport, expect_equal, short_repr
from .fakes import FakeTimer, FakeTimers
from .promise_support import WAIT_S, capture_promise_logs, expect_no_unhandled
from .timed_calls import call_learner

__all__ = ["check_with_deadline"]

RACE_CASES: Final = 40  # seeded timer-against-outcome races in the deadline checker


# ---------------------------------------------------------------------------
# with-deadline
# ---------------------------------------------------------------------------


def _start(
    with_deadline: Any, dispatcher: Dispatcher, timeout_s: float
) -> tuple[Promise[Any], Callable[[Any], None], Callable[[BaseException], None], Any, FakeTimer]:
    source, resolve, reject = Promise.with_resolvers(dispatcher=dispatcher)
    timers = FakeTimers()
    result = call_learner(
        with_deadline,
        source,
        timeout_s,
        timers,
        what="with_deadline(promise, timeout_s, call_later)",
        hint="with_deadline() must return the new promise at once and never wait for the "
        "input to settle inside it",
    )
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
        call_learner(
            timer.fire,
            what="the function you passed to call_later, when the timer fires",
            hint="the timer function should only reject the result, never wait",
        )
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
