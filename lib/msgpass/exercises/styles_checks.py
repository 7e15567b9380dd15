"""The checkers of the two exercises in lab 6 (one request, four ways).

``wrap-callback-as-future``. The learner writes ``get_as_future(get, key)``:
it calls a callback-style ``get(key, on_success, on_error)`` once and returns
a ``concurrent.futures.Future`` that the callbacks settle. The checker drives
a scripted API whose replies it releases by hand, so it can tell a wrapper
that returns at once from one that waits for the reply, deliver a reply from
another thread, cancel the future before the reply, and then run the wrapper
against a real ``CallbackClient`` and ``LookupServer`` on loopback.

``timeout-wrapper``. The learner writes ``async def with_timeout(awaitable,
timeout_s)``: it returns the awaitable's result, or cancels the work, waits
until the work has finished cancelling, and raises ``MessagingTimeout``. The
checker runs every case on a fresh event loop in a thread of its own, because
a notebook's kernel already runs a loop in the main thread, and that loop
cannot be blocked or re-entered from a checker call.

Both checkers assert safety (the right value or the same exception, nothing
raised on the callback's thread, no task left running) and liveness (the
future settles, the timeout fires within ``TIMEOUT_TOLERANCE_S``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ..errors import MessagingTimeout, RemoteError
from ..styles.callbacks import CallbackClient
from ..styles.futures import AsyncLookupClient
from ..styles.lookup import Faults, LookupServer
from .checking import Check, CheckFailed, CheckReport, short_repr

__all__ = [
    "CALLBACK_EXERCISE_ID",
    "TIMEOUT_EXERCISE_ID",
    "TIMEOUT_TOLERANCE_S",
    "call_with_deadline",
    "check_callback_future",
    "check_with_timeout",
    "run_in_fresh_loop",
]

CALLBACK_EXERCISE_ID = "wrap-callback-as-future"
TIMEOUT_EXERCISE_ID = "timeout-wrapper"

RETURN_DEADLINE_S = 1.0  # a wrapper that has not returned by then is waiting for the reply
SETTLE_DEADLINE_S = 2.0  # how long the checker waits for a future or a client to settle
CASE_DEADLINE_S = 10.0  # upper bound on one sub-check that runs on its own event loop
# A timeout of SHORT_TIMEOUT_S must fire within this many seconds after it is due.
# A loaded two-core machine was measured to fire asyncio timers about 5 ms late;
# the margin is a hundred times that.
TIMEOUT_TOLERANCE_S = 0.5
SHORT_TIMEOUT_S = 0.2
SLOW_OPERATION_S = 30.0  # long enough that only a timeout or a cancellation ends it


# ---------------------------------------------------------------------------
# Running learner code with a deadline
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# wrap-callback-as-future
# ---------------------------------------------------------------------------


class ScriptedCallbackApi:
    """A callback-style ``get`` whose replies the checker sends by hand.

    ``get`` records the request and returns at once, like
    ``CallbackClient.get``. ``reply`` calls the request's callback, on the
    calling thread or on a new one. An exception that a callback raises is
    stored in ``callback_errors`` and the API goes on, as a real I/O thread
    logs it and goes on.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, Callable[[str], object], Callable[[Exception], object]]] = []
        self.callback_errors: list[BaseException] = []
        self._lock = threading.Lock()

    def get(
        self, key: str, on_success: Callable[[str], object], on_error: Callable[[Exception], object]
    ) -> int:
        with self._lock:
            self.requests.append((key, on_success, on_error))
            return len(self.requests)

    def reply(
        self,
        index: int,
        value: str | None = None,
        error: Exception | None = None,
        *,
        from_new_thread: bool = False,
    ) -> None:
        """Call the success callback with ``value``, or the error callback with ``error``."""
        _, on_success, on_error = self.requests[index]

        def deliver() -> None:
            try:
                if error is None:
                    on_success(value)  # type: ignore[arg-type]
                else:
                    on_error(error)
            except BaseException as raised:  # the checker reports it, as a client would log it
                self.callback_errors.append(raised)

        if not from_new_thread:
            deliver()
            return
        thread = threading.Thread(target=deliver, name="checker-io-thread", daemon=True)
        thread.start()
        thread.join(SETTLE_DEADLINE_S)


def _start_wrapper(get_as_future: Any, api: ScriptedCallbackApi, key: str) -> Any:
    """Call the wrapper while the API holds its reply, and return the future it returns."""
    future = call_with_deadline(get_as_future, api.get, key, timeout_s=RETURN_DEADLINE_S)
    if future is STILL_RUNNING:
        # Send the reply the wrapper is waiting for, so its thread can finish.
        if api.requests:
            api.reply(0, value="late")
        raise CheckFailed(
            expected=f"get_as_future() to return within {RETURN_DEADLINE_S} s, before the reply",
            actual="it was still waiting for the reply",
            hint="create the Future, pass callbacks that settle it, and return it at once; "
            "never wait for the reply inside get_as_future()",
        )
    if not isinstance(future, concurrent.futures.Future):
        raise CheckFailed(
            expected="a concurrent.futures.Future",
            actual=f"{type(future).__name__} {short_repr(future)}",
        )
    keys = [request[0] for request in api.requests]
    if keys != [key]:
        raise CheckFailed(
            expected=f"exactly one call get({key!r}, on_success, on_error)",
            actual=f"requests for {keys}",
            hint="call get() once per get_as_future() call, with the key you were given",
        )
    return future


def _check_callback_errors(api: ScriptedCallbackApi) -> None:
    if api.callback_errors:
        error = api.callback_errors[0]
        raise CheckFailed(
            expected="the callbacks to return quietly",
            actual=f"a callback raised {type(error).__name__}: {error}",
        )


def _result_of(future: concurrent.futures.Future[Any], what: str) -> Any:
    try:
        return future.result(timeout=SETTLE_DEADLINE_S)
    except concurrent.futures.TimeoutError:
        raise CheckFailed(
            expected=f"the future to settle after {what}",
            actual=f"still pending after {SETTLE_DEADLINE_S} s: {future!r}",
        ) from None


def check_returns_pending_future(get_as_future: Any, rng: Any) -> None:
    api = ScriptedCallbackApi()
    future = _start_wrapper(get_as_future, api, "user:alice")
    if future.done():
        raise CheckFailed(
            expected="a pending future: the reply has not arrived yet",
            actual=repr(future),
            hint="settle the future only inside the callbacks",
        )
    api.reply(0, value="42")
    _check_callback_errors(api)
    value = _result_of(future, "on_success('42')")
    if value != "42":
        raise CheckFailed(expected="future.result() == '42'", actual=short_repr(value))


def check_reply_from_other_thread(get_as_future: Any, rng: Any) -> None:
    api = ScriptedCallbackApi()
    value = str(rng.randint(1, 10**6))
    future = _start_wrapper(get_as_future, api, "balance:42")
    done_calls: list[concurrent.futures.Future[Any]] = []
    future.add_done_callback(done_calls.append)
    api.reply(0, value=value, from_new_thread=True)
    _check_callback_errors(api)
    got = _result_of(future, "a reply delivered on another thread")
    if got != value:
        raise CheckFailed(expected=f"future.result() == {value!r}", actual=short_repr(got))
    if len(done_calls) != 1:
        raise CheckFailed(
            expected="the future's done callbacks to run exactly once",
            actual=f"they ran {len(done_calls)} times",
        )


def check_error_reply(get_as_future: Any, rng: Any) -> None:
    api = ScriptedCallbackApi()
    future = _start_wrapper(get_as_future, api, "user:zed")
    error = RemoteError("server replied: not found: user:zed", code="not_found")
    api.reply(0, error=error)
    _check_callback_errors(api)
    try:
        got = future.result(timeout=SETTLE_DEADLINE_S)
    except concurrent.futures.TimeoutError:
        raise CheckFailed(
            expected="on_error(RemoteError) to fail the future",
            actual=f"still pending after {SETTLE_DEADLINE_S} s",
        ) from None
    except RemoteError as raised:
        if raised is not error:
            raise CheckFailed(
                expected="the very RemoteError given to on_error",
                actual=f"another RemoteError: {raised}",
                hint="call future.set_exception(error) with the error object itself",
            ) from None
        return
    raise CheckFailed(
        expected="future.result() to raise the RemoteError given to on_error",
        actual=f"it returned {short_repr(got)}",
    )


def check_cancel_before_reply(get_as_future: Any, rng: Any) -> None:
    api = ScriptedCallbackApi()
    future = _start_wrapper(get_as_future, api, "user:alice")
    cancelled = future.cancel()
    api.reply(0, value="42", from_new_thread=True)
    if api.callback_errors:
        error = api.callback_errors[0]
        raise CheckFailed(
            expected="a reply after cancel() to be dropped quietly",
            actual=f"the success callback raised {type(error).__name__}: {error}",
        )
    if cancelled and not future.cancelled():
        raise CheckFailed(expected="the cancelled future to stay cancelled", actual=repr(future))
    if not cancelled:
        # The wrapper marked the future running, so the reply must settle it.
        _result_of(future, "the reply (cancel() returned False)")


def check_real_lookup_server(get_as_future: Any, rng: Any) -> None:
    faults = Faults(drop_keys=frozenset({"user:dropped"}))
    with (
        LookupServer(faults=faults) as server,
        CallbackClient(server.port, timeout_s=SHORT_TIMEOUT_S * 2) as client,
    ):
        account = get_as_future(client.get, "user:alice")
        missing = get_as_future(client.get, "user:zed")
        dropped = get_as_future(client.get, "user:dropped")
        for future in (account, missing, dropped):
            concurrent.futures.wait([future], timeout=SETTLE_DEADLINE_S)
        pending = [f for f in (account, missing, dropped) if not f.done()]
        if pending:
            raise CheckFailed(
                expected="every future to settle (value, not found, timeout)",
                actual=f"{len(pending)} of 3 still pending after {SETTLE_DEADLINE_S} s",
            )
        if account.exception() is not None or account.result() != "42":
            raise CheckFailed(
                expected="get_as_future(client.get, 'user:alice').result() == '42'",
                actual=repr(account),
            )
        error = missing.exception()
        if not (isinstance(error, RemoteError) and error.code == "not_found"):
            raise CheckFailed(
                expected="the missing user to fail with RemoteError code 'not_found'",
                actual=repr(missing),
            )
        if not isinstance(dropped.exception(), MessagingTimeout):
            raise CheckFailed(
                expected="the dropped reply to fail with MessagingTimeout",
                actual=repr(dropped),
            )
        callback_errors = client.stats()["callback_errors"]
        if callback_errors:
            raise CheckFailed(
                expected="no callback to raise on the client's I/O thread",
                actual=f"{callback_errors} callbacks raised (see the log)",
            )


def check_callback_future(get_as_future: Any, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check ``get_as_future(get, key)``, which wraps a callback API as a concurrent future.

    Prints one line and returns a ``CheckReport`` when every check passes.
    Raises ``ExerciseFailed`` naming the first failed check, with a hint.
    """
    check = Check(CALLBACK_EXERCISE_ID, seed=seed)
    check.add(
        "returns a pending future at once",
        check_returns_pending_future,
        hint="create a concurrent.futures.Future, call get(key, on_success, on_error) with "
        "callbacks that settle it, and return the future",
    )
    check.add(
        "reply on another thread",
        check_reply_from_other_thread,
        hint="on_success must call future.set_result(value); a Future is thread-safe, so "
        "the callback may run on any thread",
    )
    check.add(
        "error reply",
        check_error_reply,
        hint="on_error must call future.set_exception(error), never set_result(error)",
    )
    check.add(
        "cancelled before the reply",
        check_cancel_before_reply,
        hint="a caller may cancel the future before the reply; in the callbacks, settle it "
        "only if future.set_running_or_notify_cancel() returns True",
    )
    check.add(
        "real lookup server",
        check_real_lookup_server,
        hint="pass the callbacks to get() exactly as get(key, on_success, on_error)",
    )
    return check.run(get_as_future, quiet=quiet)


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
