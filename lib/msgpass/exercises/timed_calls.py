"""Running a learner's function or coroutine with a deadline, for checkers.

A checker must never hang on a learner's mistake, and a notebook cell already
runs the kernel's event loop in its thread. So the checkers of lab 6 call
learner code through these helpers:

- ``call_with_deadline`` calls a function on a daemon thread and returns
  ``STILL_RUNNING`` if it has not finished in time, or re-raises what it raised.
- ``run_in_fresh_loop`` runs a coroutine on a new event loop in a thread of
  its own, so nothing the learner's code leaves on a loop reaches the next case.
- ``_track`` remembers coroutines handed to learner code, so that the ones it
  never awaited are closed without a "never awaited" warning.

Left out on purpose: killing a call that never returns. Python cannot stop a
thread, so the daemon thread runs on until the interpreter exits.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .checking import CheckFailed

__all__ = [
    "STILL_RUNNING",
    "SETTLE_DEADLINE_S",
    "CASE_DEADLINE_S",
    "SHORT_TIMEOUT_S",
    "call_with_deadline",
    "run_in_fresh_loop",
]

SETTLE_DEADLINE_S = 2.0  # how long the checker waits for a future or a client to settle
CASE_DEADLINE_S = 10.0  # upper bound on one sub-check that runs on its own event loop
# The timeout, in seconds, of the timeout-wrapper cases and of the clients the
# checkers start against a real server.
SHORT_TIMEOUT_S = 0.2


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
