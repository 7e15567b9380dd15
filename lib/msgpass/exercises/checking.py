"""The machinery every exercise checker shares.

A checker is a list of named sub-checks run against the learner's candidate (a
class or a function from the exercise cell). Each sub-check either returns
quietly or raises ``CheckFailed`` with what it expected, what happened and a
hint. The ``Check`` runner turns the first failure into a short report::

    exercise frame-decoder: check 'single frame' failed (1 of 9 checks passed before it)
      expected: [b'hello']
      got:      []
      hint:     feed() must return every payload that the new bytes complete

and raises ``ExerciseFailed``, an ``AssertionError``, so that pytest and nbval
mark the checker cell as failed. On success it prints one line and returns a
``CheckReport``.

Exceptions raised by the learner's code are reported the same way, with the
line of the learner's code that raised them instead of a full traceback. An
unexpected exception (a bug such as an ``AttributeError``, not one of the
library's ``MessagingError`` classes) gets a hint to fix that error first,
because the sub-check's own hint is about wrong results, which the check never
got to see. A ``NotImplementedError`` means the learner has not started yet,
and the report states that instead.

Sub-checks assert both safety (nothing wrong came out) and liveness (the work
got done), so an answer that does nothing fails. Any randomness a sub-check
uses comes from a ``random.Random`` seeded by the runner, so a failure can be
replayed.

Left out on purpose: running learner code in a separate process with a hard
time limit. ``timed_calls`` runs learner code on a helper thread with a
deadline, so a checker reports an infinite loop instead of hanging, but
Python cannot stop that thread: it spins until the kernel restarts.
"""

from __future__ import annotations

import os
import random
import sysconfig
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MessagingError

__all__ = [
    "CheckFailed",
    "ExerciseFailed",
    "CheckReport",
    "SubCheck",
    "Check",
    "short_repr",
    "expect_equal",
]

REPR_LIMIT_CHARS = 100  # longer values are cut in reports, so a 1 MiB payload stays one line


class CheckFailed(Exception):
    """One sub-check found the candidate wrong.

    ``expected`` and ``actual`` are short descriptions (use ``short_repr`` for
    values). ``hint`` overrides the sub-check's default hint when the failure
    points to a more specific mistake.
    """

    def __init__(self, expected: str, actual: str, hint: str | None = None) -> None:
        self.expected = expected
        self.actual = actual
        self.hint = hint
        super().__init__(f"expected {expected}, got {actual}")


class ExerciseFailed(AssertionError):
    """The candidate failed a checker; the message is the short report."""


@dataclass(frozen=True)
class CheckReport:
    """The result of a checker run that passed."""

    exercise_id: str
    checks_passed: tuple[str, ...]
    seed: int
    duration_s: float


@dataclass(frozen=True)
class SubCheck:
    """One named check: ``run(candidate, rng)`` raises ``CheckFailed`` on a wrong candidate."""

    name: str
    run: Callable[[Any, random.Random], None]
    hint: str


def short_repr(value: object, limit: int = REPR_LIMIT_CHARS) -> str:
    """Return ``repr(value)`` cut to ``limit`` characters, marking the cut."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}... ({len(text)} characters)"


def expect_equal(actual: object, expected: object, what: str, hint: str | None = None) -> None:
    """Raise ``CheckFailed`` unless ``actual == expected``. ``what`` names the value."""
    if actual != expected:
        raise CheckFailed(
            expected=f"{what} == {short_repr(expected)}",
            actual=short_repr(actual),
            hint=hint,
        )


# Code in these folders is the library's or Python's, never the learner's.
_NOT_LEARNER_DIRS = tuple(
    sorted(
        {str(Path(__file__).resolve().parent.parent)}
        | {
            str(Path(sysconfig.get_paths()[key]).resolve())
            for key in ("stdlib", "platstdlib", "purelib", "platlib")
        }
    )
)

# Hints for the exceptions that learners' bugs raise most often.
_ERROR_HINTS = {
    "AttributeError": "An attribute that your code reads was never set, so check its "
    "spelling and that __init__ sets it.",
    "NameError": "A name is not defined, so check its spelling and run the cell that "
    "imports or defines it.",
    "TypeError": "A call got the wrong number or type of arguments, so compare it with "
    "the contract in the exercise text.",
    "UnboundLocalError": "A local variable is read before it is assigned on this path.",
}


def _is_learner_file(filename: str) -> bool:
    if filename.startswith("<frozen"):
        return False  # Python's own frozen modules, such as importlib
    path = os.path.realpath(filename)
    return not any(path.startswith(folder + os.sep) for folder in _NOT_LEARNER_DIRS)


def _describe_file(filename: str) -> str:
    # IPython compiles each cell to <ipython-input-N-...>, ipykernel 6 and
    # later to a file in a folder named ipykernel_<pid>, with cell line numbers.
    if filename.startswith("<ipython-input") or "ipykernel_" in filename:
        return "your cell"
    return os.path.basename(filename)


def _learner_location(error: BaseException) -> str:
    """Return where ``error`` came from, as ``"in feed(), line 12 of your cell: <code>"``.

    The place is the innermost frame of the learner's code, skipping frames
    of this library and of Python's own folders. When the error was raised
    deeper, in code the learner called, that place is added in brackets.
    When no frame belongs to the learner, the checker's call into the
    learner's code failed, which usually means a wrong signature.
    """
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "somewhere in your code"
    learner = [frame for frame in frames if _is_learner_file(frame.filename)]
    innermost = frames[-1]
    if not learner:
        return (
            f"in the checker's call to your code: {(innermost.line or '').strip()} "
            f"({_describe_file(innermost.filename)}, line {innermost.lineno}); check "
            f"that your names and signatures match the exercise"
        )
    frame = learner[-1]
    where = f"in {frame.name}(), line {frame.lineno} of {_describe_file(frame.filename)}"
    if frame.line:  # empty when the source is not available, as for some exec'd code
        where += f": {frame.line.strip()}"
    if frame is not innermost:
        where += f" (raised inside {_describe_file(innermost.filename)}, line {innermost.lineno})"
    return where


def _unexpected_error_hint(error: BaseException, sub_check_name: str) -> str:
    parts = ["fix this error first."]
    specific = _ERROR_HINTS.get(type(error).__name__)
    if specific is not None:
        parts.append(specific)
    parts.append(
        f"The check '{sub_check_name}' stopped when your code raised it, "
        f"so it has not judged your results yet"
    )
    return " ".join(parts)


class Check:
    """Run an exercise's sub-checks in order and report the first failure.

    ``exercise_id`` is the id from the exercise cell's ``# Exercise <id>:``
    line. Sub-checks are added with ``add`` and run by ``run``::

        check = Check("frame-decoder")
        check.add("single frame", check_single_frame, hint="...")
        report = check.run(MyFrameDecoder)
    """

    def __init__(self, exercise_id: str, seed: int = 0) -> None:
        self.exercise_id = exercise_id
        self.seed = seed
        self.sub_checks: list[SubCheck] = []

    def add(self, name: str, run: Callable[[Any, random.Random], None], hint: str) -> None:
        """Append a sub-check; checks run in the order they were added."""
        self.sub_checks.append(SubCheck(name=name, run=run, hint=hint))

    def run(self, candidate: object, *, quiet: bool = False) -> CheckReport:
        """Run every sub-check against ``candidate``.

        Returns a ``CheckReport`` and prints a one-line summary (unless
        ``quiet``) when all pass. Raises ``ExerciseFailed`` with a short
        report at the first failure, including failures that are exceptions
        raised by the candidate itself.
        """
        started = time.perf_counter()
        passed: list[str] = []
        for sub_check in self.sub_checks:
            # Each sub-check gets its own generator, so adding a check does not
            # change the cases another check generates.
            rng = random.Random(f"{self.seed}:{sub_check.name}")
            message = self._run_one(sub_check, candidate, rng, len(passed))
            if message is not None:
                raise ExerciseFailed(message) from None
            passed.append(sub_check.name)

        report = CheckReport(
            exercise_id=self.exercise_id,
            checks_passed=tuple(passed),
            seed=self.seed,
            duration_s=time.perf_counter() - started,
        )
        if not quiet:
            print(
                f"exercise {self.exercise_id}: all {len(passed)} checks passed "
                f"({', '.join(passed)}) in {report.duration_s:.2f} s"
            )
        return report

    def _run_one(
        self, sub_check: SubCheck, candidate: object, rng: random.Random, passed_count: int
    ) -> str | None:
        """Run one sub-check; return the failure report, or None if it passed."""
        heading = (
            f"exercise {self.exercise_id}: check '{sub_check.name}' failed "
            f"({passed_count} of {len(self.sub_checks)} checks passed before it)"
        )
        try:
            sub_check.run(candidate, rng)
        except CheckFailed as failure:
            return "\n".join(
                [
                    heading,
                    f"  expected: {failure.expected}",
                    f"  got:      {failure.actual}",
                    f"  hint:     {failure.hint or sub_check.hint}",
                ]
            )
        except NotImplementedError as error:
            return (
                f"exercise {self.exercise_id} is not implemented yet: replace the "
                f"NotImplementedError in the exercise cell "
                f"(raised {_learner_location(error)})"
            )
        except MessagingError as error:
            # One of the library's errors, raised on purpose by the learner's code
            # but at the wrong moment: the sub-check's hint is about exactly that.
            return "\n".join(
                [
                    heading,
                    f"  your code raised {type(error).__name__}: {error}",
                    f"  where:    {_learner_location(error)}",
                    f"  hint:     {sub_check.hint}",
                ]
            )
        except Exception as error:  # a bug in the learner's code is a finding, not a crash
            return "\n".join(
                [
                    heading,
                    f"  your code raised an unexpected {type(error).__name__}: {error}",
                    f"  where:    {_learner_location(error)}",
                    f"  hint:     {_unexpected_error_hint(error, sub_check.name)}",
                ]
            )
        return None
