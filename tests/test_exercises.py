"""Every exercise in every lab has a checker that can fail.

For each exercise cell found in ``labs/`` this test runs the lab's first code
cell (its imports and constants), then one version of the exercise cell, then
the checker cell that follows it, in a fresh namespace:

- the student-edition stub must be rejected,
- every wrong answer kept in ``tests/wrong_answers/<exercise_id>/`` must be
  rejected,
- the reference solution must be accepted.

"Rejected" means the checker raised ``ExerciseFailed``. Any other exception
escaping the checker is a bug in the checker, because learners should get a
short report, never a raw traceback.

Each file in ``tests/wrong_answers/<exercise_id>/`` (hyphens in the id become
underscores) replaces the whole exercise cell, so it defines the same names the
checker cell uses. Its module docstring names the mistake it makes.

The test also checks how each exercise is presented in the book: a markdown
cell with an ``{exercise}`` directive labelled ``ex-<exercise_id>`` comes
before it, and the exercise cell sits between ``{solution-start}`` and
``{solution-end}`` cells, so the built site shows the solution collapsed.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

from msgpass.exercises import ExerciseFailed
from msgpass.exercises.student_edition import Exercise, find_exercises, strip_solutions
from support import LABS, REPO

WRONG_ANSWERS = REPO / "tests" / "wrong_answers"


@dataclass(frozen=True)
class ExerciseCase:
    """One exercise of one lab, with the cells needed to run its checker."""

    lab: Path
    exercise: Exercise
    setup_source: str
    exercise_source: str
    checker_source: str
    cells: tuple[Any, ...]

    @property
    def wrong_answer_dir(self) -> Path:
        return WRONG_ANSWERS / self.exercise.exercise_id.replace("-", "_")

    def __str__(self) -> str:
        return f"{self.lab.stem}:{self.exercise.exercise_id}"


def _collect() -> list[ExerciseCase]:
    cases = []
    for lab in LABS:
        notebook = nbformat.read(lab, as_version=4)
        code_indexes = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
        for exercise in find_exercises(notebook, lab.name, require_solutions=True):
            later_code = [i for i in code_indexes if i > exercise.cell_index]
            assert later_code, f"{lab.name}: exercise {exercise.exercise_id} has no checker cell"
            cases.append(
                ExerciseCase(
                    lab=lab,
                    exercise=exercise,
                    setup_source=notebook.cells[code_indexes[0]].source,
                    exercise_source=notebook.cells[exercise.cell_index].source,
                    checker_source=notebook.cells[later_code[0]].source,
                    cells=tuple(notebook.cells),
                )
            )
    return cases


CASES = _collect()


def _run(case: ExerciseCase, exercise_source: str, label: str) -> ExerciseFailed | None:
    """Run setup, one version of the exercise, and the checker; return the rejection, if any."""
    namespace: dict[str, Any] = {"__name__": f"exercise_{label}"}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(case.setup_source, f"{case.lab.name} setup cell", "exec"), namespace)
        exec(compile(exercise_source, f"{case} {label}", "exec"), namespace)
        try:
            exec(compile(case.checker_source, f"{case} checker cell", "exec"), namespace)
        except ExerciseFailed as rejection:
            return rejection
    return None


def _wrong_answers(case: ExerciseCase) -> list[Path]:
    return sorted(path for path in case.wrong_answer_dir.glob("*.py") if path.name != "__init__.py")


def test_book_has_exercises() -> None:
    assert CASES, "no exercise cells found in labs/"


def test_exercise_ids_unique() -> None:
    ids = [case.exercise.exercise_id for case in CASES]
    assert len(ids) == len(set(ids)), f"duplicate exercise ids: {sorted(ids)}"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_checker_accepts_reference(case: ExerciseCase) -> None:
    rejection = _run(case, case.exercise_source, "reference")
    assert rejection is None, f"the reference solution of {case} was rejected:\n{rejection}"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_checker_rejects_stub(case: ExerciseCase) -> None:
    stub = strip_solutions(case.exercise_source, case.exercise, case.lab.name)
    assert "NotImplementedError" in stub
    rejection = _run(case, stub, "stub")
    assert rejection is not None, f"the checker of {case} accepted the unsolved stub"
    assert "not implemented yet" in str(rejection)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_wrong_answers_kept(case: ExerciseCase) -> None:
    assert _wrong_answers(case), (
        f"{case}: keep at least one plausible wrong answer in {case.wrong_answer_dir}"
    )


@pytest.mark.parametrize(
    ("case", "wrong_answer"),
    [(case, path) for case in CASES for path in _wrong_answers(case)],
    ids=lambda value: value.stem if isinstance(value, Path) else str(value),
)
def test_checker_rejects_wrong_answer(case: ExerciseCase, wrong_answer: Path) -> None:
    source = wrong_answer.read_text(encoding="utf-8")
    rejection = _run(case, source, wrong_answer.stem)
    assert rejection is not None, f"the checker of {case} accepted {wrong_answer.name}"
    report = str(rejection)
    assert "hint" in report, f"the report for {wrong_answer.name} gives no hint:\n{report}"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_exercise_presented_with_collapsed_solution(case: ExerciseCase) -> None:
    label = f"ex-{case.exercise.exercise_id}"
    before = [cell.source for cell in case.cells[: case.exercise.cell_index]]
    after = [cell.source for cell in case.cells[case.exercise.cell_index + 1 :]]
    assert any("{exercise}" in source and f":label: {label}" in source for source in before), (
        f"{case}: no {{exercise}} directive labelled {label} before the exercise cell"
    )
    assert f"{{solution-start}} {label}" in before[-1], (
        f"{case}: the cell before the exercise must open a {{solution-start}} {label} block"
    )
    assert ":class: dropdown" in before[-1], f"{case}: the solution must be collapsed (dropdown)"
    assert "{solution-end}" in after[0], (
        f"{case}: the cell after the exercise must be {{solution-end}}"
    )
