"""Checker for the tumbling-window exercise of the PyFlink lab (lab 22, chapter 4).

The learner writes a class, constructed as ``cls(size_ms, allowed_lateness_ms)``,
with the interface of ``msgpass.windowing.TumblingWindows``:

- ``window_start(timestamp_ms)`` returns the start of the epoch-aligned window;
- ``on_event(event)`` adds an ``Event`` to its window's count and sum. It
  drops the event and adds one to ``late_dropped`` when the watermark has
  passed the window's last millisecond plus the allowed lateness. It returns
  ``[updated result]`` when the window has already fired, otherwise ``[]``;
- ``on_watermark(watermark_ms)`` returns a ``WindowResult`` for every window
  whose last millisecond (``end - 1``) the watermark has reached and that has
  not fired yet.

The sub-checks feed the candidate and the library's ``TumblingWindows``
side by side with seeded out-of-order streams, late events and watermarks
that sometimes stand still. They assert:

- safety: no window is emitted before the watermark reaches its end, each
  call returns the same results as the reference (in any order within one
  call), and every event beyond the allowed lateness is dropped and counted;
- liveness: after the final watermark every window with events has been
  emitted, with the right count and sum.
"""

from __future__ import annotations

import random
from typing import Any

from ..windowing import END_OF_STREAM_MS, Event, TumblingWindows, WindowResult
from .checking import CheckFailed, CheckReport, short_repr
from .timed_calls import TimedCheck

__all__ = ["check_tumbling_window"]

EXERCISE_ID = "tumbling-window"
SIZE_MS = 1000
STREAM_EVENTS = 300
KEYS = ("door", "fan", "lamp")


def _sorted(results: list[WindowResult]) -> list[WindowResult]:
    return sorted(results, key=lambda r: (r.window_start_ms, r.key, r.count, r.total))


def _as_results(value: Any, call: str) -> list[WindowResult]:
    if not isinstance(value, list):
        raise CheckFailed(
            expected=f"{call} to return a list of WindowResult",
            actual=short_repr(value),
            hint="return [] when nothing fires, never None",
        )
    return value


def _stream(rng: random.Random, disorder_ms: int, late_share: float) -> list[Event]:
    """Return a seeded stream, out of order by up to ``disorder_ms``, with some stragglers."""
    events = []
    for i in range(STREAM_EVENTS):
        timestamp = 40 * i + rng.randrange(disorder_ms + 1)
        if rng.random() < late_share:
            timestamp = max(0, timestamp - rng.randrange(3 * SIZE_MS))  # a straggler
        events.append(Event(rng.choice(KEYS), rng.randrange(1, 50), timestamp))
    return events


def _replay(cls: Any, rng: random.Random, *, lateness_ms: int, late_share: float) -> None:
    """Feed the candidate and the reference the same steps; compare after each one."""
    candidate = cls(SIZE_MS, lateness_ms)
    reference = TumblingWindows(SIZE_MS, lateness_ms)
    events = _stream(rng, disorder_ms=300, late_share=late_share)
    watermark = -1
    max_seen = -1
    emitted: set[tuple[str, int]] = set()
    reference_emitted: list[WindowResult] = []

    def compare(got: Any, expected: list[WindowResult], call: str) -> None:
        results = _as_results(got, call)
        for result in results:
            if watermark < result.window_end_ms - 1:
                raise CheckFailed(
                    expected=f"no result for window ending at {result.window_end_ms} "
                    f"while the watermark is {watermark}",
                    actual=f"{call} returned {short_repr(result)}",
                    hint="a window may fire only when the watermark reaches "
                    "window_end_ms - 1, its last millisecond",
                )
            emitted.add((result.key, result.window_start_ms))
        reference_emitted.extend(expected)
        if _sorted(results) != _sorted(expected):
            raise CheckFailed(
                expected=f"{call} to return {short_repr(_sorted(expected), 300)}",
                actual=short_repr(_sorted(results), 300),
            )

    for event in events:
        compare(candidate.on_event(event), reference.on_event(event), f"on_event({event})")
        max_seen = max(max_seen, event.timestamp_ms)
        # Now and then the watermark repeats or steps back, which must be ignored.
        stand_still = rng.random() < 0.3
        step_back_ms = rng.choice([0, 1, SIZE_MS, 2 * SIZE_MS])
        proposed = watermark - step_back_ms if stand_still else max_seen - 300 - 1
        call = f"on_watermark({proposed})"
        expected = reference.on_watermark(proposed)
        watermark = max(watermark, proposed)
        compare(candidate.on_watermark(proposed), expected, call)
        if candidate.late_dropped != reference.late_dropped:
            raise CheckFailed(
                expected=f"late_dropped == {reference.late_dropped} after {event}",
                actual=f"late_dropped == {candidate.late_dropped}",
                hint="drop and count an event when the watermark is at or beyond "
                "window_end_ms - 1 + allowed_lateness_ms, and keep it otherwise",
            )

    expected = reference.on_watermark(END_OF_STREAM_MS)
    watermark = END_OF_STREAM_MS
    compare(candidate.on_watermark(END_OF_STREAM_MS), expected, "on_watermark(END_OF_STREAM_MS)")
    # Every window that received an on-time event must have fired by now.
    on_time = {(r.key, r.window_start_ms) for r in reference_emitted}
    missing = on_time - emitted
    if missing:
        raise CheckFailed(
            expected="every window with on-time events emitted after the final watermark",
            actual=f"never emitted: {short_repr(sorted(missing))}",
            hint="on_watermark must fire every window whose end - 1 the watermark reached",
        )


def _check_assignment(cls: Any, rng: random.Random) -> None:
    windows = cls(SIZE_MS, 0)
    for timestamp, start in [(0, 0), (999, 0), (1000, 1000), (2500, 2000), (-1, -1000)]:
        got = windows.window_start(timestamp)
        if got != start:
            raise CheckFailed(expected=f"window_start({timestamp}) == {start}", actual=repr(got))


def _check_fires_on_watermark(cls: Any, rng: random.Random) -> None:
    windows = cls(SIZE_MS, 0)
    event = Event("door", 7, 1500)
    got = _as_results(windows.on_event(event), f"on_event({event})")
    if got:
        raise CheckFailed(expected="on_event to return [] before any watermark", actual=repr(got))
    got = _as_results(windows.on_watermark(1998), "on_watermark(1998)")
    if got:
        raise CheckFailed(
            expected="no result while the watermark (1998) is before 1999",
            actual=repr(got),
            hint="the window [1000, 2000) is complete only when the watermark reaches 1999",
        )
    got = _as_results(windows.on_watermark(1999), "on_watermark(1999)")
    want = [WindowResult("door", 1000, 2000, 1, 7)]
    if got != want:
        raise CheckFailed(expected=f"on_watermark(1999) == {want}", actual=repr(got))
    got = _as_results(windows.on_watermark(5000), "on_watermark(5000)")
    if got:
        raise CheckFailed(
            expected="a window to fire only once",
            actual=f"on_watermark(5000) returned {got}",
            hint="remember which windows have fired",
        )


def _check_in_order(cls: Any, rng: random.Random) -> None:
    _replay(cls, rng, lateness_ms=0, late_share=0.0)


def _check_late_no_lateness(cls: Any, rng: random.Random) -> None:
    _replay(cls, rng, lateness_ms=0, late_share=0.1)


def _check_late_with_lateness(cls: Any, rng: random.Random) -> None:
    _replay(cls, rng, lateness_ms=1500, late_share=0.15)


def check_tumbling_window(cls: type, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check a learner's tumbling-window class against ``msgpass.windowing.TumblingWindows``.

    Raises ``ExerciseFailed`` with a short report at the first wrong result.
    """
    check = TimedCheck(EXERCISE_ID, seed=seed)
    check.add(
        "window assignment",
        _check_assignment,
        hint="a window starts at timestamp_ms - timestamp_ms % size_ms",
    )
    check.add(
        "fires on watermark",
        _check_fires_on_watermark,
        hint="on_watermark fires each window whose end - 1 the watermark has reached",
    )
    check.add(
        "out of order, no late events",
        _check_in_order,
        hint="keep a count and sum per (key, window start), and fire them from on_watermark",
    )
    check.add(
        "late events dropped",
        _check_late_no_lateness,
        hint="an event whose window end - 1 + allowed lateness is at or before the "
        "watermark is dropped and counted in late_dropped",
    )
    check.add(
        "allowed lateness updates",
        _check_late_with_lateness,
        hint="a late event within the allowed lateness updates its window, and if the "
        "window has fired, on_event returns the updated result at once",
    )
    return check.run(cls, quiet=quiet)
