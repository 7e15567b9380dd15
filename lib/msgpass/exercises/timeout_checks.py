"""The checker of exercise ``timeout-wrapper`` in lab 6 (one request, four ways).

The learner writes ``async def with_timeout(awaitable, timeout_s)``: it
returns the awaitable's result, or cancels the work, waits until the work has
finished cancelling, and raises ``MessagingTimeout``. The checker runs every
case on a fresh event loop in a thread of its own (``timed_calls``), because
a notebook's kernel already runs a loop in the main thread, and that loop
cannot be blocked or re-entered from a checker call.

The checker asserts safety (the right value or the same exception, no task
left running) and liveness (the timeout fires within ``TIMEOUT_TOLERANCE_S``).
``styles_checks`` re-exports ``check_with_timeout``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from ..errors import MessagingTimeout, RemoteError
from ..styles.futures import AsyncLookupClient
from ..styles.lookup import Faults, LookupServer
from .checking import Check, CheckFailed, CheckReport, short_repr
from .timed_calls import SETTLE_DEADLINE_S, SHORT_TIMEOUT_S, _track, run_in_fresh_loop

__all__ = [
    "TIMEOUT_EXERCISE_ID",
    "TIMEOUT_TOLERANCE_S",
    "check_with_timeout",
]

TIMEOUT_EXERCISE_ID = "timeout-wrapper"

# A timeout of SHORT_TIMEOUT_S must fire within this many seconds after it is due.
# A loaded two-core machine was measured to fire asyncio timers about 5 ms late;
# the margin is a hundred times that.
TIMEOUT_TOLERANCE_S = 0.5
SLOW_OPERATION_S = 30.0  # long enough that only a timeout or a cancellation ends it


# ---------------------------------------------------------------------------
# timeout-wrapper
# ---------------------------------------------------------------------------


class _Operation:
    """A coroutine the checker wraps, recording whether it was cancelled and finished."""

    def __init__(self, duration_s: float, value: object = None, error: Exception | None = None):
        self.duration_s = duration_s
        self.value = value
        self.error = error
        self.started = asyncio.Event()
        self.task: asyncio.Task[Any] | None = None
        self.cancelled = False
        self.finished = False

    def cancel_requested(self) -> bool:
        """Return True if the task running the operation has a cancellation pending."""
        return self.task is not None and self.task.cancelling() > 0

    def run(self) -> Coroutine[Any, Any, object]:
        """Return the operation's coroutine, tracked so that it is closed if never awaited."""
        return _track(self._run())

    async def _run(self) -> object:
        self.task = asyncio.current_task()
        self.started.set()
        try:
            await asyncio.sleep(self.duration_s)
            if self.error is not None:
                raise self.error
            return self.value
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            self.finished = True


def _other_tasks() -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return {task for task in asyncio.all_tasks() if task is not current}


async def _expect_timeout(with_timeout: Any, operation: _Operation, timeout_s: float) -> float:
    """Await the wrapper, expect ``MessagingTimeout``, and return the elapsed seconds."""
    started = time.monotonic()
    try:
        got = await with_timeout(operation.run(), timeout_s)
    except MessagingTimeout:
        return time.monotonic() - started
    except TimeoutError as error:
        raise CheckFailed(
            expected="MessagingTimeout from msgpass.errors",
            actual=f"{type(error).__name__}: {error}",
            hint="catch the timeout and raise MessagingTimeout(...) from it",
        ) from None
    raise CheckFailed(
        expected=f"MessagingTimeout after {timeout_s} s",
        actual=f"the wrapper returned {short_repr(got)} after {time.monotonic() - started:.2f} s",
    )


def check_fast_operation(with_timeout: Any, rng: Any) -> None:
    value = rng.randint(1, 10**6)

    async def case() -> None:
        started = time.monotonic()
        got = await with_timeout(_Operation(0.0, value=value).run(), 5.0)
        elapsed_s = time.monotonic() - started
        if got != value:
            raise CheckFailed(expected=f"the operation's value {value!r}", actual=short_repr(got))
        if elapsed_s > TIMEOUT_TOLERANCE_S:
            raise CheckFailed(
                expected="a fast operation to return at once, not after the timeout",
                actual=f"it took {elapsed_s:.2f} s with a timeout of 5 s",
            )
        # A task is an awaitable too, and the wrapper must accept it.
        task = asyncio.ensure_future(_Operation(0.0, value=value).run())
        got = await with_timeout(task, 5.0)
        if got != value:
            raise CheckFailed(expected=f"{value!r} from a Task", actual=short_repr(got))

    run_in_fresh_loop(case)


def check_slow_operation(with_timeout: Any, rng: Any) -> None:
    async def case() -> None:
        operation = _Operation(SLOW_OPERATION_S, value="too late")
        elapsed_s = await _expect_timeout(with_timeout, operation, SHORT_TIMEOUT_S)
        if elapsed_s < SHORT_TIMEOUT_S * 0.9 or elapsed_s > SHORT_TIMEOUT_S + TIMEOUT_TOLERANCE_S:
            raise CheckFailed(
                expected=f"MessagingTimeout about {SHORT_TIMEOUT_S} s after the call",
                actual=f"after {elapsed_s:.2f} s",
            )
        if not operation.finished and not operation.cancel_requested():
            raise CheckFailed(
                expected="the slow operation to be cancelled when the timeout fires",
                actual="it was never cancelled and still runs",
                hint="on timeout, cancel the task that runs the operation (task.cancel())",
            )
        if not operation.finished:
            raise CheckFailed(
                expected="the operation to have finished cancelling before MessagingTimeout",
                actual="it was cancelled, but its cleanup had not run yet",
                hint="after task.cancel(), await the task (expect CancelledError) before "
                "raising, so no task is left behind",
            )
        if not operation.cancelled:
            raise CheckFailed(
                expected="the operation to end by cancellation",
                actual="it finished without seeing CancelledError",
            )
        leftover = _other_tasks()
        if leftover:
            raise CheckFailed(
                expected="no task left running after the timeout",
                actual=f"{len(leftover)} tasks: {short_repr(leftover)}",
            )

    run_in_fresh_loop(case)


def check_errors_pass_through(with_timeout: Any, rng: Any) -> None:
    errors: list[Exception] = [
        ValueError("bad input"),
        RemoteError("server replied: not found: user:zed", code="not_found"),
        TimeoutError("the operation's own deadline passed"),
    ]

    async def case() -> None:
        for error in errors:
            try:
                got = await with_timeout(_Operation(0.0, error=error).run(), 5.0)
            except Exception as raised:
                if raised is not error:
                    raise CheckFailed(
                        expected=f"the operation's own {type(error).__name__}: {error}",
                        actual=f"{type(raised).__name__}: {raised}",
                        hint="re-raise the operation's exceptions unchanged; raise "
                        "MessagingTimeout only when your own timeout expired (with "
                        "asyncio.timeout, check expired())",
                    ) from None
                continue
            raise CheckFailed(
                expected=f"{type(error).__name__} from the operation",
                actual=f"the wrapper returned {short_repr(got)}",
            )

    run_in_fresh_loop(case)


def check_cancel_wrapper(with_timeout: Any, rng: Any) -> None:
    async def case() -> None:
        operation = _Operation(SLOW_OPERATION_S)
        wrapper = asyncio.ensure_future(with_timeout(operation.run(), SLOW_OPERATION_S))
        try:
            await asyncio.wait_for(operation.started.wait(), SETTLE_DEADLINE_S)
        except TimeoutError:
            wrapper.cancel()
            raise CheckFailed(
                expected="the wrapper to start the operation",
                actual=f"the operation had not started after {SETTLE_DEADLINE_S} s",
            ) from None
        wrapper.cancel()
        done, _ = await asyncio.wait({wrapper}, timeout=SETTLE_DEADLINE_S)
        if not done:
            raise CheckFailed(
                expected="the cancelled wrapper to finish",
                actual=f"still running {SETTLE_DEADLINE_S} s after cancel()",
            )
        if not wrapper.cancelled():
            outcome = wrapper.exception() or f"returned {short_repr(wrapper.result())}"
            raise CheckFailed(
                expected="the cancelled wrapper to end with CancelledError",
                actual=f"it ended with {short_repr(outcome)}",
                hint="let CancelledError propagate: never turn it into MessagingTimeout or a value",
            )
        if not (operation.cancelled and operation.finished):
            raise CheckFailed(
                expected="cancelling the wrapper to cancel the operation it waits for",
                actual="the operation is still running",
            )
        leftover = _other_tasks()
        if leftover:
            raise CheckFailed(
                expected="no task left running after the cancellation",
                actual=f"{len(leftover)} tasks: {short_repr(leftover)}",
            )

    run_in_fresh_loop(case)


def check_real_held_reply(with_timeout: Any, rng: Any) -> None:
    faults = Faults(hold_keys=frozenset({"user:held"}))
    with LookupServer(faults=faults) as server:

        async def case() -> None:
            client = await AsyncLookupClient.open(port=server.port, timeout_s=SETTLE_DEADLINE_S)
            async with client:
                await _expect_timeout_on_lookup(with_timeout, client)
                server.release_held()
                # The connection must still work: the late reply is skipped by its id.
                value = await with_timeout(_track(client.get("user:alice", timeout_s=None)), 2.0)
                if value != "42":
                    raise CheckFailed(
                        expected="'42' for user:alice after the timed-out request",
                        actual=short_repr(value),
                    )

        run_in_fresh_loop(case)


async def _expect_timeout_on_lookup(with_timeout: Any, client: AsyncLookupClient) -> None:
    started = time.monotonic()
    try:
        got = await with_timeout(_track(client.get("user:held", timeout_s=None)), SHORT_TIMEOUT_S)
    except MessagingTimeout:
        elapsed_s = time.monotonic() - started
        if elapsed_s > SHORT_TIMEOUT_S + TIMEOUT_TOLERANCE_S:
            raise CheckFailed(
                expected=f"MessagingTimeout about {SHORT_TIMEOUT_S} s after the request",
                actual=f"after {elapsed_s:.2f} s",
            ) from None
        return
    raise CheckFailed(
        expected="MessagingTimeout for a reply the server holds back",
        actual=f"the wrapper returned {short_repr(got)}",
    )


def check_with_timeout(with_timeout: Any, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check ``async def with_timeout(awaitable, timeout_s)``.

    Prints one line and returns a ``CheckReport`` when every check passes.
    Raises ``ExerciseFailed`` naming the first failed check, with a hint.
    Each case runs on a new event loop in a helper thread, so the checker
    can be called from a notebook cell.
    """
    check = Check(TIMEOUT_EXERCISE_ID, seed=seed)
    check.add(
        "fast operation",
        check_fast_operation,
        hint="await the operation and return its result; the timeout only limits the wait",
    )
    check.add(
        "slow operation times out",
        check_slow_operation,
        hint="use asyncio.timeout(timeout_s) (or wrap the awaitable in a task and use "
        "asyncio.wait), and on expiry raise MessagingTimeout",
    )
    check.add(
        "errors pass through unchanged",
        check_errors_pass_through,
        hint="let the operation's exceptions propagate as they are",
    )
    check.add(
        "cancelling the wrapper",
        check_cancel_wrapper,
        hint="a cancelled wrapper must cancel the operation it waits for and re-raise "
        "CancelledError; a task created with ensure_future() is not cancelled for you",
    )
    check.add(
        "real lookup server, held reply",
        check_real_held_reply,
        hint="the wrapper must work on any awaitable, including AsyncLookupClient.get()",
    )
    return check.run(with_timeout, quiet=quiet)
