"""Running a learner's function or coroutine with a deadline, for checkers.

A checker must never hang on a learner's mistake, and a notebook cell already
runs the kernel's event loop in its thread. So checkers call learner code
through these helpers:

- ``call_with_deadline`` calls a function on a daemon thread and returns
  ``STILL_RUNNING`` if it has not finished in time, or re-raises what it raised.
- ``call_learner`` does the same for one call of the learner's function, and
  turns ``STILL_RUNNING`` into a ``CheckFailed`` that says the code did not
  return (an infinite loop?).
- ``TimedCheck`` is a ``Check`` that runs each sub-check through
  ``call_with_deadline``, for checkers whose learner code runs deep inside a
  simulation or a server, where no single call can be wrapped.
- ``run_in_fresh_loop`` runs a coroutine on a new event loop in a thread of
  its own, so nothing the learner's code leaves on a loop reaches the next case.
- ``_track`` remembers coroutines handed to learner code, so that the ones it
  never awaited are closed without a "never awaited" warning.

Left out on purpose: killing a call that never returns. Python cannot stop a
thread, so the daemon thread runs on until the interpreter exits. A learner's
``while True: pass`` therefore keeps one core busy and takes its share of the
GIL from the kernel until the kernel restarts, and the failure report says so.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .checking import Check, CheckFailed

__all__ = [
    "STILL_RUNNING",
    "SETTLE_DEADLINE_S",
    "CASE_DEADLINE_S",
    "SHORT_TIMEOUT_S",
    "CALL_DEADLINE_S",
    "SUB_CHECK_DEADLINE_S",
    "TimedCheck",
    "call_learner",
    "call_with_deadline",
    "run_in_fresh_loop",
]

SETTLE_DEADLINE_S = 2.0  # how long the checker waits for a future or a client to settle
CASE_DEADLINE_S = 10.0  # upper bound on one sub-check that runs on its own event loop
# The timeout, in seconds, of the timeout-wrapper cases and of the clients the
# checkers start against a real server.
SHORT_TIMEOUT_S = 0.2
# How long one call of learner code that does no I/O and sleeps only through
# injected fakes may take. Correct solutions return within milliseconds, so 2 s
# leaves room for a loaded machine and still reports a loop quickly.
CALL_DEADLINE_S = 2.0
# How long one whole sub-check of a ``TimedCheck`` may take. The slowest
# reference solution (lab 15's commit-after-processing) passed all of its
# sub-checks in under 10 s on a 2-core machine, and 30 s stays well inside the
# notebook's 120 s cell timeout.
SUB_CHECK_DEADLINE_S = 30.0

# The hint of every "did not return" report. The checker cannot stop the call,
# so the learner has to restart the kernel to get rid of it.
_LOOP_HINT = (
    "look for a loop whose condition never changes, or a wait without a timeout. "
    "Python cannot stop the running call, so restart the kernel after fixing it, "
    "because until then a loop keeps a CPU core busy"
)


class _StillRunning:
    """The marker ``call_with_deadline`` returns when the call did not finish in time."""


STILL_RUNNING = _StillRunning()


def call_with_deadline(fn: Callable[..., Any], *args: Any, timeout_s: float) -> Any:
    """Call ``fn(*args)`` on a helper thread and return its result within ``timeout_s``.

    Re-raises in the caller whatever ``fn`` raised, with its traceback, so the
    runner can point at the learner's line. Returns ``STILL_RUNNING`` when the
    call has not finished in time. The helper thread is a daemon, so a call
    that never returns does not keep the interpreter alive.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args)
        except BaseException as error:  # handed to the caller below, never lost
            outcome["error"] = error

    thread = threading.Thread(target=target, name="checker-call", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        return STILL_RUNNING
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _did_not_return(what: str, timeout_s: float, hint: str | None) -> CheckFailed:
    return CheckFailed(
        expected=f"{what} to return within {timeout_s:g} s",
        actual=f"your code did not return within {timeout_s:g} s (an infinite loop?)",
        hint=f"{hint}. Also {_LOOP_HINT}" if hint else _LOOP_HINT,
    )


def call_learner(
    fn: Callable[..., Any],
    *args: Any,
    timeout_s: float | None = None,
    what: str | None = None,
    hint: str | None = None,
    **kwargs: Any,
) -> Any:
    """Call the learner's ``fn(*args, **kwargs)`` and return its result within ``timeout_s``.

    Re-raises what ``fn`` raised. Raises ``CheckFailed`` saying "your code did
    not return within N s (an infinite loop?)" when the call is still running
    at the deadline. ``timeout_s`` defaults to ``CALL_DEADLINE_S``, read at
    call time so that tests can shorten it. ``what`` names the call in the report (the default is
    ``fn``'s name with empty brackets), and ``hint``, when given, comes
    before the general advice about loops.

        value = call_learner(retry, op, attempts=3, what="retry(op, attempts=3, ...)")
    """
    deadline_s = CALL_DEADLINE_S if timeout_s is None else timeout_s
    outcome = call_with_deadline(functools.partial(fn, *args, **kwargs), timeout_s=deadline_s)
    if outcome is STILL_RUNNING:
        name = what or f"{getattr(fn, '__name__', 'your function')}()"
        raise _did_not_return(name, deadline_s, hint)
    return outcome


class TimedCheck(Check):
    """A ``Check`` whose every sub-check must finish within ``deadline_s`` seconds.

    Each sub-check runs on a daemon thread through ``call_with_deadline``, so a
    learner's infinite loop anywhere inside it, for example in a message
    handler that a simulation calls, ends in a short report instead of a
    hung cell. What the sub-check raises reaches the runner unchanged.
    """

    def __init__(
        self, exercise_id: str, seed: int = 0, deadline_s: float = SUB_CHECK_DEADLINE_S
    ) -> None:
        super().__init__(exercise_id, seed=seed)
        self.deadline_s = deadline_s

    def add(self, name: str, run: Callable[[Any, random.Random], None], hint: str) -> None:
        """Append a sub-check that fails when it has not finished within ``deadline_s``."""
        deadline_s = self.deadline_s

        def run_with_deadline(candidate: Any, rng: random.Random) -> None:
            outcome = call_with_deadline(run, candidate, rng, timeout_s=deadline_s)
            if outcome is STILL_RUNNING:
                raise _did_not_return(f"the check '{name}'", deadline_s, None)

        super().add(name, run_with_deadline, hint)


def run_in_fresh_loop(
    make_coroutine: Callable[[], Awaitable[None]], timeout_s: float = CASE_DEADLINE_S
) -> None:
    """Run ``make_coroutine()`` on a new event loop in a helper thread, within ``timeout_s``.

    Works both from plain Python and from a notebook cell, whose thread
    already runs the kernel's loop. Re-raises what the coroutine raised and
    raises ``CheckFailed`` when it has not finished in time.
    """

    async def main() -> None:
        await make_coroutine()

    def target() -> None:
        # A new loop per case: nothing the learner's code leaves on it reaches the next case.
        try:
            asyncio.run(main())
        finally:
            _close_unstarted()

    if call_with_deadline(target, timeout_s=timeout_s) is STILL_RUNNING:
        raise CheckFailed(
            expected=f"the case to finish within {timeout_s} s",
            actual="it was still running; something awaited forever",
        )


_tracked: list[Coroutine[Any, Any, Any]] = []


def _track(coroutine: Coroutine[Any, Any, Any]) -> Coroutine[Any, Any, Any]:
    """Remember a coroutine handed to learner code, to close it if it was never awaited."""
    _tracked.append(coroutine)
    return coroutine


def _close_unstarted() -> None:
    # Closing a never-started coroutine avoids Python's "was never awaited" warning,
    # which would otherwise appear later, far from the learner's code.
    for coroutine in _tracked:
        if inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED:
            coroutine.close()
    _tracked.clear()
