"""The checkers of exercises ``promise-then`` and ``promise-all-fail-fast`` in lab 8.

``promise-then``: the learner subclasses ``MiniPromise``, a promise cut down
to its three states and a list of reactions, and writes ``then``. The
contract is the one ``msgpass.styles.promise.Promise.then`` follows:

- ``then`` returns a new promise at once and never runs a handler itself.
  Handlers run through the promise's scheduler after settlement.
- The matching handler's return value fulfils the new promise. A handler that
  returns a ``MiniPromise`` makes the new promise adopt its outcome, and a
  handler that raises rejects the new promise with that exception.
- A missing handler passes the outcome through unchanged.

``promise-all-fail-fast``: the learner writes ``promise_all(promises)`` over
the library's ``Promise``. It fulfils with the values in input order, rejects
with the first rejection as soon as it happens (fail-fast), and attaches a
handler to every input, so that later rejections are not logged as unhandled.

Each checker starts its own ``Dispatcher`` threads and closes them, and
captures the log records of ``msgpass.styles`` while it runs, so that
unhandled rejections count as findings instead of lines on stderr.

This module contains the ``promise-then`` checker. ``MiniPromise`` lives in
``minipromise``, the ``promise-all-fail-fast`` checker in
``promise_all_checks`` and the log capture in ``promise_support``. This
module re-exports them, so lab 8 imports them from here.
"""

from __future__ import annotations

import collections
import random
import threading
from collections.abc import Callable
from typing import Any, Final

from ..styles.promise import Dispatcher
from .checking import CheckFailed, CheckReport, expect_equal, short_repr
from .minipromise import FULFILLED, PENDING, REJECTED, MiniPromise, Scheduler
from .promise_all_checks import check_promise_all
from .promise_support import WAIT_S, capture_promise_logs, expect_no_unhandled
from .timed_calls import TimedCheck

__all__ = [
    "FULFILLED",
    "PENDING",
    "REJECTED",
    "ManualScheduler",
    "MiniPromise",
    "Scheduler",
    "capture_promise_logs",
    "expect_no_unhandled",
    "check_promise_all",
    "check_promise_then",
]

THREAD_CASES: Final = 120  # seeded then()/fulfill() races in the threaded check


class ManualScheduler:
    """A scheduler that only queues reactions; the check runs them with ``run_all``.

    A reaction that raises is recorded in ``errors``, as a real dispatcher
    would log it, and the rest still run.
    """

    def __init__(self) -> None:
        self.queue: collections.deque[Callable[[], object]] = collections.deque()
        self.errors: list[BaseException] = []

    def __call__(self, reaction: Callable[[], object]) -> None:
        self.queue.append(reaction)

    def run_all(self, limit: int = 10_000) -> None:
        for _ in range(limit):
            if not self.queue:
                return
            reaction = self.queue.popleft()
            try:
                reaction()
            except Exception as error:  # a finding, reported by the check that looks
                self.errors.append(error)
        raise CheckFailed(
            expected="the queued reactions to finish",
            actual=f"more than {limit} reactions queued one after another",
            hint="a reaction must not queue itself again forever",
        )


def _child_of(promise: MiniPromise, child: object, what: str) -> MiniPromise:
    if not isinstance(child, MiniPromise) or child is promise:
        raise CheckFailed(
            expected=f"{what} to return a new promise of the same class",
            actual=short_repr(child),
            hint="create the chained promise with type(self)(self.scheduler) and return it",
        )
    return child


def _expect_settled(
    child: MiniPromise, scheduler: ManualScheduler, state: str, outcome: object, what: str
) -> None:
    if child.state == PENDING and scheduler.errors:
        error = scheduler.errors[0]
        raise CheckFailed(
            expected=f"{what} to be {state}",
            actual=f"still pending, and a reaction raised {type(error).__name__}: {error}",
            hint="catch the handler's exception inside the reaction and reject the "
            "chained promise with it",
        )
    actual = child.value if child.state == FULFILLED else child.error
    if child.state != state or actual is not outcome and actual != outcome:
        raise CheckFailed(
            expected=f"{what} {state} with {short_repr(outcome)}",
            actual=short_repr(child),
        )


# ---------------------------------------------------------------------------
# Sub-checks of promise-then
# ---------------------------------------------------------------------------


def check_not_inside_then(promise_class: Any, rng: random.Random) -> None:
    scheduler = ManualScheduler()
    calls: list[object] = []
    settled = promise_class(scheduler)
    settled.fulfill(1)
    child = _child_of(settled, settled.then(calls.append), "then()")
    if calls:
        raise CheckFailed(
            expected="then() on a fulfilled promise to queue the handler, not call it",
            actual=f"the handler ran inside then() with {short_repr(calls[0])}",
            hint="never call a handler directly: wrap it in a reaction and pass it to "
            "self.add_reaction(), which hands it to the scheduler",
        )
    expect_equal(child.state, PENDING, "the chained promise's state before the scheduler ran")
    scheduler.run_all()
    expect_equal(calls, [1], "handler calls after the scheduler ran")

    pending = promise_class(scheduler)
    pending.then(calls.append)
    scheduler.run_all()
    expect_equal(calls, [1], "handler calls while the promise is still pending")
    pending.fulfill(2)
    scheduler.run_all()
    expect_equal(calls, [1, 2], "handler calls after fulfil()")


def check_value_chain(promise_class: Any, rng: random.Random) -> None:
    scheduler = ManualScheduler()
    start = rng.randint(1, 100)
    head = promise_class(scheduler)
    last = head.then(lambda value: value + 1).then(lambda value: value * 2)
    head.fulfill(start)
    scheduler.run_all()
    _expect_settled(last, scheduler, FULFILLED, (start + 1) * 2, "then(+1).then(*2)")


def check_rejection_handler(promise_class: Any, rng: random.Random) -> None:
    scheduler = ManualScheduler()
    error = ValueError("step 1 failed")
    fulfilled_calls: list[object] = []
    head = promise_class(scheduler)
    child = head.then(fulfilled_calls.append, lambda caught: ("recovered", caught))
    head.reject(error)
    scheduler.run_all()
    expect_equal(fulfilled_calls, [], "on_fulfilled calls after a rejection")
    _expect_settled(child, scheduler, FULFILLED, ("recovered", error), "then(f, on_rejected)")


def check_raising_handler(promise_class: Any, rng: random.Random) -> None:
    scheduler = ManualScheduler()
    error = KeyError("balance:42")

    def failing(_value: object) -> object:
        raise error

    head = promise_class(scheduler)
    child = head.then(failing)
    head.fulfill("42")
    scheduler.run_all()
    _expect_settled(child, scheduler, REJECTED, error, "then(<handler that raises>)")


def check_pass_through(promise_class: Any, rng: random.Random) -> None:
    hint = (
        "when the matching handler is None, settle the chained promise with this "
        "promise's own value or error"
    )
    scheduler = ManualScheduler()
    fulfilled = promise_class(scheduler)
    value_child = fulfilled.then(None, lambda caught: "should not run")
    fulfilled.fulfill("42")

    error = ConnectionError("reset")
    rejected = promise_class(scheduler)
    error_calls: list[object] = []
    error_child = rejected.then(error_calls.append)
    rejected.reject(error)
    scheduler.run_all()
    try:
        _expect_settled(value_child, scheduler, FULFILLED, "42", "then(None, g) on a fulfilled")
        _expect_settled(error_child, scheduler, REJECTED, error, "then(f) on a rejected promise")
    except CheckFailed as failure:
        raise CheckFailed(failure.expected, failure.actual, failure.hint or hint) from None
    expect_equal(error_calls, [], "on_fulfilled calls after a rejection")


def check_adoption(promise_class: Any, rng: random.Random) -> None:
    hint = (
        "when the handler returns a MiniPromise, settle the chained promise only when "
        "that promise settles, with its outcome (add a reaction to it, or call its then())"
    )
    for state in (FULFILLED, REJECTED):
        scheduler = ManualScheduler()
        inner = promise_class(scheduler)
        head = promise_class(scheduler)
        child = head.then(lambda _value, inner=inner: inner)
        head.fulfill("42")
        scheduler.run_all()
        if child.state != PENDING:
            raise CheckFailed(
                expected="the chained promise to stay pending while the returned promise is",
                actual=short_repr(child),
                hint=hint,
            )
        outcome: object = "100" if state == FULFILLED else LookupError("balance:42")
        if state == FULFILLED:
            inner.fulfill(outcome)
        else:
            inner.reject(outcome)
        scheduler.run_all()
        try:
            _expect_settled(child, scheduler, state, outcome, "the adopting promise")
        except CheckFailed as failure:
            raise CheckFailed(failure.expected, failure.actual, failure.hint or hint) from None


def check_threads(promise_class: Any, rng: random.Random) -> None:
    dispatcher = Dispatcher("promise-then-check")
    try:
        with capture_promise_logs():
            _run_thread_cases(promise_class, rng, dispatcher)
    finally:
        dispatcher.close(WAIT_S)


def _run_thread_cases(promise_class: Any, rng: random.Random, dispatcher: Dispatcher) -> None:
    ran_elsewhere: list[str] = []
    children = [
        _start_thread_case(promise_class, rng, dispatcher, case, ran_elsewhere)
        for case in range(THREAD_CASES)
    ]
    for case, (child, done) in enumerate(children):
        if not done.wait(WAIT_S):
            raise CheckFailed(
                expected=f"every chained promise settled within {WAIT_S} s",
                actual=f"case {case} still pending: {short_repr(child)}",
                hint="the reaction must settle the chained promise whether then() ran before "
                "or after fulfil(), and a returned promise must be adopted",
            )
        if child.state != FULFILLED or child.value != case * 2:
            raise CheckFailed(
                expected=f"case {case} fulfilled with {case * 2}",
                actual=short_repr(child),
            )
    if ran_elsewhere:
        raise CheckFailed(
            expected="every handler to run on the scheduler's thread",
            actual=f"{len(ran_elsewhere)} handler(s) ran on {ran_elsewhere[0]!r}",
            hint="pass each handler to the scheduler through add_reaction(); calling it from "
            "then() runs it on whichever thread called then()",
        )


def _start_thread_case(
    promise_class: Any,
    rng: random.Random,
    dispatcher: Dispatcher,
    case: int,
    ran_elsewhere: list[str],
) -> tuple[MiniPromise, threading.Event]:
    """Race then() on one thread against fulfil(case) on another; return the chained promise."""
    head = promise_class(dispatcher.call_soon)
    adopt = rng.random() < 0.3
    gate = threading.Barrier(2, timeout=WAIT_S)
    chained: list[MiniPromise] = []

    def handler(value: int) -> object:
        if not dispatcher.in_dispatcher_thread():
            ran_elsewhere.append(threading.current_thread().name)
        if adopt:
            inner = promise_class(dispatcher.call_soon)
            dispatcher.call_soon(inner.fulfill, value * 2)
            return inner
        return value * 2

    def attach() -> None:
        gate.wait()
        chained.append(head.then(handler))

    def settle() -> None:
        gate.wait()
        head.fulfill(case)

    threads = [
        threading.Thread(target=attach, name="promise-then-check-then"),
        threading.Thread(target=settle, name="promise-then-check-fulfil"),
    ]
    rng.shuffle(threads)  # which thread starts first is the seeded part
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    if not chained:
        raise CheckFailed(
            expected="then() to return while another thread settles the promise",
            actual=f"then() did not return within {WAIT_S} s (case {case})",
            hint="do not wait or hold a lock inside then(): register a reaction and return",
        )
    done = threading.Event()
    chained[0].add_reaction(done.set)
    return chained[0], done


def check_promise_then(promise_class: Any, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check a learner's ``MiniPromise`` subclass whose ``then`` is the exercise.

    Prints a one-line summary and returns a ``CheckReport`` when every check
    passes. Raises ``ExerciseFailed`` naming the first failed check.
    """
    check = TimedCheck("promise-then", seed=seed)
    check.add(
        "handlers never run inside then",
        check_not_inside_then,
        hint="wrap the handler call in a reaction and register it with self.add_reaction()",
    )
    check.add(
        "values flow down a chain",
        check_value_chain,
        hint="fulfil the chained promise with the handler's return value",
    )
    check.add(
        "on_rejected handles a rejection",
        check_rejection_handler,
        hint="on a rejected promise call on_rejected(self.error); its return value fulfils "
        "the chained promise",
    )
    check.add(
        "a raising handler rejects the chain",
        check_raising_handler,
        hint="call the handler inside try/except Exception and reject the chained promise "
        "with the exception it raised",
    )
    check.add(
        "missing handler passes through",
        check_pass_through,
        hint="when the matching handler is None, copy this promise's outcome to the "
        "chained promise",
    )
    check.add(
        "returned promise is adopted",
        check_adoption,
        hint="if the handler returns a MiniPromise, settle the chained promise like it, "
        "once it settles",
    )
    check.add(
        "then and fulfil race on threads",
        check_threads,
        hint="then() may run before, during or after fulfil() on another thread: rely on "
        "add_reaction(), which handles both orders under its lock",
    )
    return check.run(promise_class, quiet=quiet)
