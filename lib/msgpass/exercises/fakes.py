"""Fakes that take time and chance out of a checker: fixed randomness, recorded sleeps, timers.

The lab 8 exercises ``retry-backoff-jitter`` and ``with-deadline`` receive
their ``rng``, ``sleep`` and ``call_later`` as arguments, so their checkers
pass these fakes and never wait for a real delay:

- ``FixedRandom`` returns the same fraction from every ``random()`` call;
- ``FlakyOperation`` fails a set number of times, and its ``sleep`` records
  each delay instead of sleeping;
- ``FakeTimers`` is a ``call_later`` that records each ``FakeTimer`` it
  starts, and the checker calls ``fire()`` when the test needs the deadline.

``retry_checks`` re-exports ``FixedRandom``, ``FlakyOperation``,
``FakeTimer`` and ``FakeTimers``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["FixedRandom", "FlakyOperation", "FakeTimer", "FakeTimers"]


class FixedRandom(random.Random):
    """A generator whose ``random()`` always returns ``fraction``, counting the calls.

    ``uniform(a, b)`` is ``a + (b - a) * random()`` in CPython, so a learner
    who calls either gets the same, predictable delay.
    """

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction
        self.calls = 0

    def random(self) -> float:
        self.calls += 1
        return self.fraction


class FlakyOperation:
    """An operation that fails ``failures`` times, then returns ``value``; it logs every event."""

    def __init__(self, failures: int, value: object = "42") -> None:
        self.failures = failures
        self.value = value
        self.events: list[str] = []  # "call" or "sleep", in the order they happened
        self.delays: list[float] = []
        self.errors: list[ConnectionError] = []

    def __call__(self) -> object:
        self.events.append("call")
        if len(self.errors) < self.failures:
            error = ConnectionError(f"attempt {len(self.errors) + 1} failed")
            self.errors.append(error)
            raise error
        return self.value

    def sleep(self, delay_s: float) -> None:
        self.events.append("sleep")
        self.delays.append(delay_s)


class FakeTimer:
    """One timer started by the learner's code; the checker decides when it fires."""

    def __init__(self, delay_s: float, fn: Callable[[], object]) -> None:
        self.delay_s = delay_s
        self.fn = fn
        self.cancelled = False
        self.fired = False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        """Run the timer's function, as a real timer thread would at the deadline."""
        if not self.cancelled:
            self.fired = True
            self.fn()


class FakeTimers:
    """A ``call_later(delay_s, fn)`` that records each timer instead of starting it."""

    def __init__(self) -> None:
        self.timers: list[FakeTimer] = []

    def __call__(self, delay_s: float, fn: Callable[[], object]) -> FakeTimer:
        timer = FakeTimer(delay_s, fn)
        self.timers.append(timer)
        return timer
