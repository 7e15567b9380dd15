"""The checker of exercise ``fanout-percentile`` in lab 13.

The learner writes ``fanout_percentile_from_cdf(per_server_cdf, fanout,
quantile)``, which returns the ``quantile`` of the slowest of ``fanout``
independent replies, each distributed by the CDF ``per_server_cdf`` (a
function from seconds to a probability). The slowest reply is below t with
probability F(t)^N, so the function must return the t where F(t) reaches
quantile^(1/N). The checker compares it with an exact reference
(``models.fanout_percentile_s``) and with a Monte-Carlo estimate, and tries
the edge cases the exercise names: a CDF that jumps, and invalid arguments.

``tail_checks`` re-exports ``check_fanout_percentile``, so lab 13 imports
both of its checkers from there.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from .. import models
from .checking import CheckFailed, CheckReport, short_repr
from .timed_calls import TimedCheck

__all__ = [
    "FANOUT_EXERCISE_ID",
    "check_fanout_percentile",
]

FANOUT_EXERCISE_ID = "fanout-percentile"

# The candidate must match the exact quantile to this relative error, which
# a bisection reaches in about 30 halvings.
EXACT_RELATIVE_TOLERANCE = 1e-4
MONTE_CARLO_TRIALS = 20_000
# The Monte-Carlo check accepts any value between the order statistics at
# ranks n*q -/+ Z * sqrt(n*q*(1-q)): a distribution-free confidence interval
# for the true quantile at about 99.9% confidence.
MONTE_CARLO_Z = 3.3


@dataclass(frozen=True)
class _Case:
    """A per-server latency distribution: its CDF, its exact quantile and a sampler."""

    name: str
    cdf: Callable[[float], float]
    quantile: Callable[[float], float]
    sample: Callable[[np.random.Generator, int], np.ndarray]


def _cases() -> list[_Case]:
    mean_s = 0.005
    exponential = _Case(
        "exponential, mean 5 ms",
        lambda t: 1.0 - math.exp(-t / mean_s) if t > 0 else 0.0,
        lambda q: -mean_s * math.log(1.0 - q),
        lambda gen, n: gen.exponential(mean_s, n),
    )
    median_s, sigma = 2.0, 1.0
    normal = NormalDist()
    lognormal = _Case(
        "lognormal, median 2 s, sigma 1",
        lambda t: normal.cdf((math.log(t) - math.log(median_s)) / sigma) if t > 0 else 0.0,
        lambda q: median_s * math.exp(sigma * normal.inv_cdf(q)),
        lambda gen, n: gen.lognormal(math.log(median_s), sigma, n),
    )
    return [exponential, lognormal]


def _call(candidate: Any, cdf: Callable[[float], float], fanout: int, quantile: float) -> float:
    result = candidate(cdf, fanout, quantile)
    is_number = isinstance(result, (int, float)) and not isinstance(result, bool)
    if not is_number or not math.isfinite(result):
        raise CheckFailed(
            expected=f"a finite number of seconds from fanout_percentile_from_cdf(cdf, {fanout}, "
            f"{quantile})",
            actual=short_repr(result),
            hint="return the time t, in seconds, at which cdf(t) ** fanout reaches quantile",
        )
    return float(result)


def check_exact_values(candidate: Any, rng: random.Random) -> None:
    for case in _cases():
        for fanout, quantile in ((1, 0.5), (1, 0.99), (10, 0.5), (10, 0.99), (100, 0.99)):
            expected = models.fanout_percentile_s(case.quantile, fanout, quantile)
            got = _call(candidate, case.cdf, fanout, quantile)
            if abs(got - expected) > EXACT_RELATIVE_TOLERANCE * expected:
                raise CheckFailed(
                    expected=f"p{quantile * 100:g} of the slowest of {fanout} replies "
                    f"({case.name}) = {expected:.6g} s (to {EXACT_RELATIVE_TOLERANCE:g} relative)",
                    actual=f"{got:.6g} s",
                )


def check_monte_carlo(candidate: Any, rng: random.Random) -> None:
    generator = np.random.default_rng(rng.randrange(2**32))
    for case in _cases():
        for fanout, quantile in ((10, 0.99), (50, 0.5)):
            slowest = np.sort(
                case.sample(generator, MONTE_CARLO_TRIALS * fanout)
                .reshape(MONTE_CARLO_TRIALS, fanout)
                .max(axis=1)
            )
            spread = MONTE_CARLO_Z * math.sqrt(MONTE_CARLO_TRIALS * quantile * (1 - quantile))
            low_rank = math.floor(MONTE_CARLO_TRIALS * quantile - spread)
            high_rank = math.ceil(MONTE_CARLO_TRIALS * quantile + spread)
            low = slowest[max(0, low_rank - 1)]
            high = slowest[min(MONTE_CARLO_TRIALS - 1, high_rank - 1)]
            got = _call(candidate, case.cdf, fanout, quantile)
            if not low <= got <= high:
                raise CheckFailed(
                    expected=f"p{quantile * 100:g} of the slowest of {fanout} replies "
                    f"({case.name}) in [{low:.6g}, {high:.6g}] s, the 99.9% interval of "
                    f"{MONTE_CARLO_TRIALS} simulated requests",
                    actual=f"{got:.6g} s",
                )


def check_step_cdf(candidate: Any, rng: random.Random) -> None:
    constant_s = 0.25

    def step(t: float) -> float:
        return 1.0 if t >= constant_s else 0.0

    got = _call(candidate, step, 20, 0.9)
    if abs(got - constant_s) > EXACT_RELATIVE_TOLERANCE * constant_s:
        raise CheckFailed(
            expected=f"{constant_s} s: every server takes exactly {constant_s} s, so every "
            f"percentile of the slowest is {constant_s} s",
            actual=f"{got:.6g} s",
            hint="search for the smallest t with cdf(t) >= quantile ** (1 / fanout); a CDF "
            "may jump, so do not solve by interpolation or by derivatives",
        )


def check_invalid_arguments(candidate: Any, rng: random.Random) -> None:
    case = _cases()[0]
    for fanout, quantile in ((0, 0.5), (-3, 0.5), (10, 0.0), (10, 1.0), (10, 1.5), (10, -0.1)):
        try:
            got = candidate(case.cdf, fanout, quantile)
        except ValueError:
            continue
        raise CheckFailed(
            expected=f"ValueError from fanout_percentile_from_cdf(cdf, {fanout}, {quantile})",
            actual=f"it returned {short_repr(got)}",
            hint="raise ValueError when fanout < 1 or quantile is not strictly between 0 and 1",
        )


def check_fanout_percentile(candidate: Any, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check a learner's ``fanout_percentile_from_cdf(per_server_cdf, fanout, quantile)``.

    Prints a one-line summary and returns a ``CheckReport`` when every check
    passes. Raises ``ExerciseFailed`` naming the first failed check, what was
    expected, what happened and a hint.
    """
    check = TimedCheck(FANOUT_EXERCISE_ID, seed=seed)
    check.add(
        "exact quantiles",
        check_exact_values,
        hint="the slowest of N replies is below t with probability cdf(t) ** N, so find "
        "the t where cdf(t) reaches quantile ** (1 / N); grow the upper end of the search "
        "until cdf reaches that level, because the scale is not known in advance",
    )
    check.add(
        "Monte-Carlo reference",
        check_monte_carlo,
        hint="the slowest of N replies is below t with probability cdf(t) ** N",
    )
    check.add(
        "constant service time",
        check_step_cdf,
        hint="search for the smallest t with cdf(t) >= quantile ** (1 / fanout)",
    )
    check.add(
        "invalid arguments",
        check_invalid_arguments,
        hint="raise ValueError when fanout < 1 or quantile is not strictly between 0 and 1",
    )
    return check.run(candidate, quiet=quiet)
