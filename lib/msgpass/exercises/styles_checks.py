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

This module contains the ``wrap-callback-as-future`` checker. The
``timeout-wrapper`` checker lives in ``timeout_checks``, and the deadline
helpers live in ``timed_calls``. Both are re-exported here, so code that
imports them from this module keeps working.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

from ..errors import MessagingTimeout, RemoteError
from ..styles.callbacks import CallbackClient
from ..styles.lookup import Faults, LookupServer
from .checking import CheckFailed, CheckReport, short_repr
from .timed_calls import (
    SETTLE_DEADLINE_S,
    SHORT_TIMEOUT_S,
    STILL_RUNNING,
    TimedCheck,
    call_with_deadline,
    run_in_fresh_loop,
)
from .timeout_checks import TIMEOUT_EXERCISE_ID, TIMEOUT_TOLERANCE_S, check_with_timeout

__all__ = [
    "CALLBACK_EXERCISE_ID",
    "TIMEOUT_EXERCISE_ID",
    "TIMEOUT_TOLERANCE_S",
    "STILL_RUNNING",
    "call_with_deadline",
    "check_callback_future",
    "check_with_timeout",
    "run_in_fresh_loop",
]

CALLBACK_EXERCISE_ID = "wrap-callback-as-future"

RETURN_DEADLINE_S = 1.0  # a wrapper that has not returned by then is waiting for the reply


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
    """Call the wrapper while the API keeps its reply back, and return the wrapper's future."""
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
    check = TimedCheck(CALLBACK_EXERCISE_ID, seed=seed)
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
