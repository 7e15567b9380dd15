"""Edge cases of the lab 6 and lab 7 checkers beyond what test_exercises.py covers.

test_exercises.py proves that each checker rejects the stub and the kept
wrong answers and accepts the reference. These tests pin down what a
learner reads: which check failed, the hint, no traceback, and that the
checkers leave no thread or socket behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import pytest

from msgpass.errors import MessagingTimeout
from msgpass.exercises import (
    ExerciseFailed,
    check_callback_future,
    check_echo_handlers,
    check_once_emitter,
    check_with_timeout,
)
from msgpass.exercises.checking import CheckFailed
from msgpass.exercises.styles_checks import STILL_RUNNING, call_with_deadline, run_in_fresh_loop
from msgpass.styles.events import EventEmitter


def _reference_get_as_future(get: Any, key: str) -> concurrent.futures.Future[Any]:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def on_success(value: Any) -> None:
        if future.set_running_or_notify_cancel():
            future.set_result(value)

    def on_error(error: BaseException) -> None:
        if future.set_running_or_notify_cancel():
            future.set_exception(error)

    get(key, on_success, on_error)
    return future


async def _reference_with_timeout(awaitable: Any, timeout_s: float) -> Any:
    timeout = asyncio.timeout(timeout_s)
    try:
        async with timeout:
            return await awaitable
    except TimeoutError as error:
        if not timeout.expired():
            raise
        raise MessagingTimeout(f"no result within {timeout_s} s") from error


class _LibraryEmitter(EventEmitter):
    """The library's EventEmitter, whose once() and off() meet the exercise's contract."""


def _failure(checker: Any, candidate: Any) -> str:
    with pytest.raises(ExerciseFailed) as caught:
        checker(candidate, quiet=True)
    return str(caught.value)


def test_callback_checker_accepts_reference() -> None:
    report = check_callback_future(_reference_get_as_future, quiet=True)
    assert report.exercise_id == "wrap-callback-as-future"
    assert len(report.checks_passed) == 5


def test_timeout_checker_accepts_reference() -> None:
    report = check_with_timeout(_reference_with_timeout, quiet=True)
    assert "cancelling the wrapper" in report.checks_passed


def test_once_checker_accepts_library_emitter() -> None:
    report = check_once_emitter(_LibraryEmitter, quiet=True)
    assert "re-entrant emit, two once listeners" in report.checks_passed


def test_callback_checker_names_check_and_hint() -> None:
    def returns_done_future(get: Any, key: str) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_result("42")
        return future

    message = _failure(check_callback_future, returns_done_future)
    assert "check 'returns a pending future at once' failed" in message
    assert "\n  hint:" in message
    assert "Traceback" not in message


def test_callback_checker_reports_non_future() -> None:
    message = _failure(check_callback_future, lambda get, key: None)
    assert "expected: a concurrent.futures.Future" in message
    assert "got:      NoneType" in message


def test_learner_exception_shows_line() -> None:
    def raises(get: Any, key: str) -> None:
        raise KeyError(key)

    message = _failure(check_callback_future, raises)
    assert "KeyError" in message
    assert "in raises()" in message


def test_stub_reported_as_not_implemented() -> None:
    async def stub(awaitable: Any, timeout_s: float) -> Any:
        raise NotImplementedError("Exercise timeout-wrapper")

    message = _failure(check_with_timeout, stub)
    assert "exercise timeout-wrapper is not implemented yet" in message


def test_timeout_checker_rejects_plain_timeout_error() -> None:
    async def wait_for(awaitable: Any, timeout_s: float) -> Any:
        return await asyncio.wait_for(awaitable, timeout_s)

    message = _failure(check_with_timeout, wait_for)
    assert "check 'slow operation times out' failed" in message
    assert "MessagingTimeout" in message


def test_echo_checker_handler_error_points_to_line() -> None:
    class Broken:
        def __init__(self, selector: Any, sock: Any) -> None:
            import selectors

            self.sock = sock
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, self)

        def on_readable(self) -> None:
            raise ZeroDivisionError("bug in on_readable")

        def on_writable(self) -> None:
            pass

    message = _failure(check_echo_handlers, Broken)
    assert "check 'one client' failed" in message
    assert "ZeroDivisionError" in message
    assert "in on_readable()" in message


def test_call_with_deadline_outcomes() -> None:
    assert call_with_deadline(lambda: 7, timeout_s=1.0) == 7
    with pytest.raises(ValueError, match="boom"):
        call_with_deadline(lambda: (_ for _ in ()).throw(ValueError("boom")), timeout_s=1.0)
    release = threading.Event()
    assert call_with_deadline(release.wait, 5.0, timeout_s=0.05) is STILL_RUNNING
    release.set()


def test_run_in_fresh_loop_reports_hang() -> None:
    release = threading.Event()

    async def hangs() -> None:
        await asyncio.to_thread(release.wait, 5.0)

    with pytest.raises(CheckFailed, match="still running"):
        run_in_fresh_loop(hangs, timeout_s=0.1)
    release.set()


def test_checkers_leave_no_threads() -> None:
    before = {thread.ident for thread in threading.enumerate()}
    check_with_timeout(_reference_with_timeout, quiet=True)
    check_callback_future(_reference_get_as_future, quiet=True)
    left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    # Helper threads of the checkers end soon after the checks, so join them briefly.
    for thread in left:
        thread.join(5.0)
    assert not [t.name for t in left if t.is_alive()]
