"""The checker of exercise ``promise-all-fail-fast`` in lab 8.

The learner writes ``promise_all(promises)`` over the library's ``Promise``.
It fulfils with the values in input order, rejects with the first rejection
as soon as it happens (fail-fast), and attaches a handler to every input, so
that later rejections are not logged as unhandled. The checker settles the
inputs in seeded orders from dispatcher threads it starts and closes, and
captures the library's log records while it runs (``promise_support``).

``promise_checks`` re-exports ``check_promise_all``.
"""

from __future__ import annotations

import contextlib
import gc
import random
from collections.abc import Callable
from typing import Any, Final

from ..styles.promise import Dispatcher, Promise
from .checking import CheckFailed, CheckReport, expect_equal, short_repr
from .minipromise import FULFILLED, REJECTED
from .promise_support import WAIT_S, capture_promise_logs, expect_no_unhandled
from .timed_calls import TimedCheck

__all__ = ["check_promise_all"]

SETTLE_ORDER_CASES: Final = 40  # seeded settle orders in the promise_all checks


# ---------------------------------------------------------------------------
# Sub-checks of promise-all-fail-fast
# ---------------------------------------------------------------------------


def _call_all(promise_all: Callable[[list[Promise[Any]]], Any], inputs: list[Promise[Any]]) -> Any:
    result = promise_all(list(inputs))
    if not isinstance(result, Promise):
        raise CheckFailed(
            expected="promise_all() to return a Promise",
            actual=short_repr(result),
            hint="create the result with Promise.with_resolvers() and return the promise",
        )
    return result


def _outcome_within(result: Promise[Any], what: str, hint: str) -> tuple[str, object]:
    try:
        error = result.exception(WAIT_S)
    except TimeoutError:
        raise CheckFailed(
            expected=f"{what} to settle within {WAIT_S} s",
            actual=f"still pending: {short_repr(result)}",
            hint=hint,
        ) from None
    if error is not None:
        return REJECTED, error
    return FULFILLED, result.result(0.0)


def check_all_empty(promise_all: Any, rng: random.Random) -> None:
    result = _call_all(promise_all, [])
    state, outcome = _outcome_within(
        result, "promise_all([])", "with no inputs nothing will ever settle: fulfil with [] at once"
    )
    expect_equal((state, outcome), (FULFILLED, []), "(state, outcome) of promise_all([])")


def check_all_input_order(promise_all: Any, rng: random.Random) -> None:
    dispatcher = Dispatcher("promise-all-check")
    try:
        for _ in range(SETTLE_ORDER_CASES):
            count = rng.randint(1, 6)
            made = [Promise.with_resolvers(dispatcher=dispatcher) for _ in range(count)]
            result = _call_all(promise_all, [promise for promise, _, _ in made])
            order = list(range(count))
            rng.shuffle(order)
            for index in order:
                made[index][1](f"value {index}")
            state, outcome = _outcome_within(
                result,
                "promise_all() after every input fulfilled",
                "count the inputs that "
                "fulfilled and fulfil the result when the count reaches len(promises)",
            )
            expected = [f"value {index}" for index in range(count)]
            if (state, outcome) != (FULFILLED, expected):
                raise CheckFailed(
                    expected=f"fulfilled with {expected}",
                    actual=f"{state} with {short_repr(outcome)} (inputs settled in order {order})",
                    hint="store each value at its input's index, not in the order they arrive",
                )
    finally:
        dispatcher.close(WAIT_S)


def check_all_fail_fast(promise_all: Any, rng: random.Random) -> None:
    dispatcher = Dispatcher("promise-all-check")
    try:
        with capture_promise_logs() as records:
            for case in range(SETTLE_ORDER_CASES):
                _fail_fast_case(promise_all, rng, dispatcher, case)
            dispatcher.close(WAIT_S)
            gc.collect()
            expect_no_unhandled(
                records,
                "attach one then(on_value, on_error) to every input: a separate then() and "
                "catch() leave a rejected chained promise that nobody handles",
            )
    finally:
        with contextlib.suppress(RuntimeError):
            dispatcher.close(WAIT_S)


def _fail_fast_case(
    promise_all: Any, rng: random.Random, dispatcher: Dispatcher, case: int
) -> None:
    count = rng.randint(2, 6)
    made = [Promise.with_resolvers(dispatcher=dispatcher) for _ in range(count)]
    result = _call_all(promise_all, [promise for promise, _, _ in made])
    order = list(range(count))
    rng.shuffle(order)
    first_failure = rng.randrange(count)  # position in the settle order of the first rejection
    errors = {index: ConnectionError(f"input {index} failed") for index in order[first_failure:]}
    for index in order[:first_failure]:
        made[index][1](f"value {index}")
    failing = order[first_failure]
    made[failing][2](errors[failing])
    state, outcome = _outcome_within(
        result,
        f"the result after input {failing} rejected while {count - first_failure - 1} "
        f"input(s) were still pending",
        "reject the result as soon as any input rejects; do not wait for the other inputs",
    )
    if state != REJECTED or outcome is not errors[failing]:
        raise CheckFailed(
            expected=f"rejected with the error of input {failing}: {errors[failing]!r}",
            actual=f"{state} with {short_repr(outcome)}",
            hint="reject the result with the first rejection error itself",
        )
    for index in order[first_failure + 1 :]:
        # The rest settle after the result: the later ones reject too, now and then.
        if rng.random() < 0.5:
            made[index][2](errors[index])
        else:
            made[index][1](f"value {index}")


def check_promise_all(promise_all: Any, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check a learner's ``promise_all(promises)`` for input order and fail-fast rejection.

    Prints a one-line summary and returns a ``CheckReport`` when every check
    passes. Raises ``ExerciseFailed`` naming the first failed check.
    """
    check = TimedCheck("promise-all-fail-fast", seed=seed)
    check.add(
        "no inputs",
        check_all_empty,
        hint="with an empty list, return a promise already fulfilled with []",
    )
    check.add(
        "values in input order",
        check_all_input_order,
        hint="keep a list of len(promises) slots and fill slot i with input i's value",
    )
    check.add(
        "fail-fast, later rejections handled",
        check_all_fail_fast,
        hint="attach a rejection handler to every input at the start, and reject the "
        "result from the first one that runs",
    )
    return check.run(promise_all, quiet=quiet)
