"""The exercise-cell convention of the labs: find exercises, and strip their solutions.

An exercise cell in a lab looks like this::

    # Exercise frame-decoder: write an incremental decoder for length-prefixed frames
    class MyFrameDecoder:
        def feed(self, data: bytes) -> list[bytes]:
            # BEGIN SOLUTION
            ...the reference solution...
            # END SOLUTION

Its first line names the exercise id and the task, its metadata tags include
``exercise``, and each ``# BEGIN SOLUTION`` / ``# END SOLUTION`` region is a
whole function or method body. ``strip_solutions`` replaces each region by
one line at the indentation of its ``# BEGIN SOLUTION`` marker::

    raise NotImplementedError("Exercise frame-decoder: write .... Write your solution here, ...")

so the cell still compiles, and the checker cell that follows reports the
exercise as not implemented yet. ``make_student_notebook`` does that for
every exercise cell of a notebook and clears the outputs. A cell that breaks
the convention raises ``MarkerError``, whose message names the cell and line.

``student_edition`` writes whole folders of notebooks with these functions
and re-exports them.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BEGIN_MARKER",
    "END_MARKER",
    "EXERCISE_TAG",
    "MarkerError",
    "Exercise",
    "parse_exercise_header",
    "find_exercises",
    "strip_solutions",
    "make_student_notebook",
]

BEGIN_MARKER = "# BEGIN SOLUTION"
END_MARKER = "# END SOLUTION"
EXERCISE_TAG = "exercise"
_HEADER = re.compile(r"^# Exercise (?P<id>[A-Za-z0-9][A-Za-z0-9_-]*): (?P<task>\S.*)$")


class MarkerError(ValueError):
    """An exercise cell breaks the exercise convention; the message names the cell and line."""


@dataclass(frozen=True)
class Exercise:
    """One exercise cell: its id, its task and its position in the notebook."""

    exercise_id: str
    task: str
    cell_index: int


def _copy_notebook(notebook: Any) -> Any:
    return copy.deepcopy(notebook)


def parse_exercise_header(source: str, where: str) -> Exercise | None:
    """Return the exercise declared by the first line of ``source``, or None.

    ``where`` names the cell in error messages. The ``cell_index`` of the
    result is -1; ``find_exercises`` fills it in.
    """
    first_line = source.split("\n", 1)[0].rstrip()
    match = _HEADER.match(first_line)
    if match is None:
        if first_line.startswith("# Exercise"):
            raise MarkerError(
                f"{where}: invalid exercise header {first_line!r}; "
                f"expected '# Exercise <id>: <one-line task>'"
            )
        return None
    return Exercise(match["id"], match["task"].rstrip(" ."), cell_index=-1)


def _is_exercise_cell(cell: Any) -> bool:
    tags = cell.get("metadata", {}).get("tags", [])
    text = cell["source"]
    return EXERCISE_TAG in tags or BEGIN_MARKER in text or END_MARKER in text


def find_exercises(notebook: Any, name: str, require_solutions: bool = False) -> list[Exercise]:
    """Return the exercise cells of ``notebook`` in order, after checking the convention.

    Raises ``MarkerError`` for an exercise cell without a valid
    ``# Exercise <id>:`` first line or with a duplicate id, and, when
    ``require_solutions`` is set, for one without a solution region. A
    learner's edition has no solution markers left, so that check is off by
    default. ``name`` is the notebook's name for messages.
    """
    found: list[Exercise] = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or not _is_exercise_cell(cell):
            continue
        where = f"{name}, cell {index}"
        exercise = parse_exercise_header(cell.source, where)
        if exercise is None:
            raise MarkerError(
                f"{where}: an exercise cell (tagged '{EXERCISE_TAG}' or holding solution "
                f"markers) must start with '# Exercise <id>: <one-line task>'"
            )
        if require_solutions and BEGIN_MARKER not in cell.source:
            raise MarkerError(f"{where}: exercise {exercise.exercise_id} has no {BEGIN_MARKER!r}")
        if any(known.exercise_id == exercise.exercise_id for known in found):
            raise MarkerError(f"{where}: exercise id {exercise.exercise_id!r} is used twice")
        found.append(Exercise(exercise.exercise_id, exercise.task, index))
    return found


def _stub_line(indent: str, exercise: Exercise) -> str:
    message = (
        f"Exercise {exercise.exercise_id}: {exercise.task}. "
        f"Write your solution here, then run the checker cell below."
    )
    # A JSON string literal is also a valid Python string literal.
    return f"{indent}raise NotImplementedError({json.dumps(message, ensure_ascii=False)})"


def strip_solutions(source: str, exercise: Exercise, where: str) -> str:
    """Return ``source`` with every solution region replaced by a stub line.

    Raises ``MarkerError`` when markers are unbalanced (a second BEGIN before
    an END, an END without a BEGIN, a BEGIN never closed) or when an END is
    not at its BEGIN's indentation.
    """
    output: list[str] = []
    open_indent: str | None = None
    open_line = 0
    for number, line in enumerate(source.split("\n"), start=1):
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        if stripped == BEGIN_MARKER:
            if open_indent is not None:
                raise MarkerError(
                    f"{where}, line {number}: {BEGIN_MARKER!r} inside the region opened "
                    f"on line {open_line}; close it with {END_MARKER!r} first"
                )
            open_indent, open_line = indent, number
            output.append(_stub_line(indent, exercise))
        elif stripped == END_MARKER:
            if open_indent is None:
                raise MarkerError(
                    f"{where}, line {number}: {END_MARKER!r} without a {BEGIN_MARKER!r}"
                )
            if indent != open_indent:
                raise MarkerError(
                    f"{where}, line {number}: {END_MARKER!r} is indented differently from "
                    f"the {BEGIN_MARKER!r} on line {open_line}"
                )
            open_indent = None
        elif open_indent is None:
            output.append(line)
    if open_indent is not None:
        raise MarkerError(f"{where}, line {open_line}: {BEGIN_MARKER!r} is never closed")
    return "\n".join(output)


def make_student_notebook(notebook: Any, name: str) -> Any:
    """Return a copy of ``notebook`` with solutions stubbed out and outputs cleared."""
    student = _copy_notebook(notebook)
    exercises = {
        exercise.cell_index: exercise
        for exercise in find_exercises(student, name, require_solutions=True)
    }
    for index, cell in enumerate(student.cells):
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)
        if index in exercises:
            cell.source = strip_solutions(cell.source, exercises[index], f"{name}, cell {index}")
    return student
