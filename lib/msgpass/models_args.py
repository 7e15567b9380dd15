"""Argument checks shared by the formula modules of chapter 3.

``models``, ``models_queueing`` and ``models_tail`` validate their arguments
with these checks. Each check returns the value as a float (or an int for
``_count``) or raises ``ValueError`` naming the argument, its value and the
domain the formula accepts. The names keep their leading underscore because
the checks are helpers of those modules, not formulas a lab calls.
"""

from __future__ import annotations

import math

__all__: list[str] = []


def _finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"invalid {name}: {value!r}; expected a finite number")
    return float(value)


def _positive(name: str, value: float) -> float:
    if _finite(name, value) <= 0:
        raise ValueError(f"invalid {name}: {value!r}; expected a number above 0")
    return float(value)


def _non_negative(name: str, value: float) -> float:
    if _finite(name, value) < 0:
        raise ValueError(f"invalid {name}: {value!r}; expected a number of at least 0")
    return float(value)


def _probability(name: str, value: float, *, allow_one: bool = True) -> float:
    upper_ok = value <= 1 if allow_one else value < 1
    if not (_finite(name, value) >= 0 and upper_ok):
        bound = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"invalid {name}: {value!r}; expected a probability in {bound}")
    return float(value)


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"invalid {name}: {value!r}; expected an integer of at least 1")
    return value
