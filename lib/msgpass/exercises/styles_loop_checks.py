"""The checkers of the two exercises in lab 7 (an event loop from scratch).

``once-emitter``. The learner completes ``once(event, fn)`` of a minimal
event emitter class whose ``on``, ``off`` and ``emit`` are given. ``off``
recognises a wrapper by its ``listener`` attribute, as Node.js does. The
checker asserts that the listener runs exactly once, with the emitted
arguments and in its registration order. ``off(event, fn)`` with the
original function must remove it. It must still run once when a listener
emits the same event again (a re-entrant emit) or raises.

``selectors-echo-handler``. The learner writes ``on_readable`` and
``on_writable`` of a connection class for a non-blocking echo server. The
checker runs the server loop itself (accept, ``select``, dispatch to the
connection registered as ``key.data``) on 127.0.0.1 and port 0 in a helper
thread, then drives it with real clients: several at once, a large payload to
a reader with a small ``SO_RCVBUF`` (which forces partial writes on the
server), and an idle client. Every byte must come back in order, the server
must close each connection after the client's end of stream, and an idle
connection must not make the loop spin.

This module contains the ``once-emitter`` checker. The
``selectors-echo-handler`` checker and its server loop live in
``echo_checks``, and this module re-exports them.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any

from .checking import CheckReport, expect_equal
from .echo_checks import ECHO_EXERCISE_ID, EchoHarness, check_echo_handlers
from .timed_calls import TimedCheck

__all__ = [
    "ECHO_EXERCISE_ID",
    "ONCE_EXERCISE_ID",
    "EchoHarness",
    "check_echo_handlers",
    "check_once_emitter",
]

ONCE_EXERCISE_ID = "once-emitter"


# ---------------------------------------------------------------------------
# once-emitter
# ---------------------------------------------------------------------------


class _Recorder:
    """A listener that records the arguments of every call."""

    def __init__(self, name: str, calls: list[tuple[str, tuple[Any, ...]]]) -> None:
        self.name = name
        self.calls = calls

    def __call__(self, *args: Any) -> None:
        self.calls.append((self.name, args))

    def __repr__(self) -> str:
        return f"<listener {self.name}>"


def _names(calls: list[tuple[str, tuple[Any, ...]]]) -> list[str]:
    return [name for name, _ in calls]


def check_runs_once(emitter_class: Any, rng: random.Random) -> None:
    emitter = emitter_class()
    calls: list[tuple[str, tuple[Any, ...]]] = []
    emitter.once("ping", _Recorder("fn", calls))
    first = emitter.emit("ping")
    second = emitter.emit("ping")
    expect_equal(len(calls), 1, "the number of calls after two emits")
    expect_equal(first, True, "the first emit()'s return value (a listener ran)")
    expect_equal(
        second,
        False,
        "the second emit()'s return value (no listener left)",
        hint="the once listener must remove its own registration when it fires",
    )


def check_arguments(emitter_class: Any, rng: random.Random) -> None:
    emitter = emitter_class()
    calls: list[tuple[str, tuple[Any, ...]]] = []
    args = (rng.randint(1, 1000), "two", {"three": 3})
    emitter.once("data", _Recorder("fn", calls))
    emitter.emit("data", *args)
    expect_equal(calls, [("fn", args)], "the calls recorded")


def check_order(emitter_class: Any, rng: random.Random) -> None:
    emitter = emitter_class()
    calls: list[tuple[str, tuple[Any, ...]]] = []
    emitter.on("tick", _Recorder("a", calls))
    emitter.once("tick", _Recorder("b", calls))
    emitter.on("tick", _Recorder("c", calls))
    emitter.emit("tick")
    emitter.emit("tick")
    expect_equal(
        _names(calls),
        ["a", "b", "c", "a", "c"],
        "the listeners called by two emits of on(a), once(b), on(c)",
        hint="register the wrapper with self.on(), so it keeps its place among the others",
    )


def check_off_with_original(emitter_class: Any, rng: random.Random) -> None:
    emitter = emitter_class()
    calls: list[tuple[str, tuple[Any, ...]]] = []
    fn = _Recorder("fn", calls)
    emitter.once("ping", fn)
    removed = emitter.off("ping", fn)
    emitter.emit("ping")
    expect_equal(
        removed,
        True,
        "off('ping', fn) after once('ping', fn)",
        hint="set wrapper.listener = fn, so off() can find the wrapper by the original function",
    )
    expect_equal(calls, [], "the calls after off()")


def check_reentrant_emit(emitter_class: Any, rng: random.Random) -> None:
    emitter = emitter_class()
    calls: list[tuple[str, tuple[Any, ...]]] = []

    def emits_again(*args: Any) -> None:
        calls.append(("fn", args))
        if len(calls) < 5:  # a wrong answer would recurse; stop it after a few levels
            emitter.emit("ping", "again")

    emitter.once("ping", emits_again)
    emitter.emit("ping", "first")
    expect_equal(
        calls,
        [("fn", ("first",))],
        "the calls of a once listener that emits its own event",
        hint="remove the registration before calling fn, so an emit inside fn does not find it",
    )


def check_reentrant_two_listeners(emitter_class: Any, rng: random.Random) -> None:
    emitter = emitter_class()
    calls: list[tuple[str, tuple[Any, ...]]] = []

    def first(*args: Any) -> None:
        calls.append(("first", args))
        emitter.emit("ping", "inner")

    emitter.once("ping", first)
    emitter.once("ping", _Recorder("second", calls))
    emitter.emit("ping", "outer")
    # A snapshot-based emit runs "second" inside the inner emit. An emit that claims
    # once listeners when it takes its snapshot runs it in the outer emit instead.
    # Both are right, as long as each once listener runs exactly once.
    expect_equal(
        sorted(_names(calls)),
        ["first", "second"],
        "the listeners run when the first of two once listeners emits the event again",
        hint="emit() calls a snapshot of the listeners, so an outer emit may still call "
        "a wrapper that already ran: keep a 'fired' flag in the wrapper and return if set",
    )


def check_removed_when_raising(emitter_class: Any, rng: random.Random) -> None:
    emitter = emitter_class()
    calls: list[tuple[str, tuple[Any, ...]]] = []

    def fails(*args: Any) -> None:
        calls.append(("fails", args))
        raise ValueError("listener failed")

    emitter.once("ping", fails)
    with contextlib.suppress(ValueError):  # the given emit() lets the exception propagate
        emitter.emit("ping")
    emitter.emit("ping")
    expect_equal(
        len(calls),
        1,
        "the calls of a once listener that raised, after two emits",
        hint="remove the registration before calling fn, so it is gone even if fn raises",
    )


def check_once_emitter(emitter_class: Any, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check the ``once`` method of a learner's minimal event emitter class.

    Prints one line and returns a ``CheckReport`` when every check passes.
    Raises ``ExerciseFailed`` naming the first failed check, with a hint.
    """
    check = TimedCheck(ONCE_EXERCISE_ID, seed=seed)
    check.add(
        "runs exactly once",
        check_runs_once,
        hint="register a wrapper with self.on(); the wrapper removes itself with "
        "self.off() and then calls fn",
    )
    check.add("arguments passed", check_arguments, hint="call fn(*args) with the emitted args")
    check.add("order among listeners", check_order, hint="register the wrapper with self.on()")
    check.add(
        "off with the original function",
        check_off_with_original,
        hint="set wrapper.listener = fn before registering the wrapper",
    )
    check.add(
        "re-entrant emit",
        check_reentrant_emit,
        hint="remove the registration before calling fn",
    )
    check.add(
        "re-entrant emit, two once listeners",
        check_reentrant_two_listeners,
        hint="keep a 'fired' flag in the wrapper and return at once if it is set",
    )
    check.add(
        "removed when the listener raises",
        check_removed_when_raising,
        hint="remove the registration before calling fn",
    )
    return check.run(emitter_class, quiet=quiet)
