"""Write the student edition of the labs, and run the checkers of a learner's notebook.

An exercise cell in a lab looks like this::

    # Exercise frame-decoder: write an incremental decoder for length-prefixed frames
    class MyFrameDecoder:
        def feed(self, data: bytes) -> list[bytes]:
            # BEGIN SOLUTION
            ...the reference solution...
            # END SOLUTION

Its first line names the exercise id and the task, its metadata tags include
``exercise``, and each ``# BEGIN SOLUTION`` / ``# END SOLUTION`` region is a
whole function or method body. The student edition replaces each region by
one line at the indentation of its ``# BEGIN SOLUTION`` marker::

    raise NotImplementedError("Exercise frame-decoder: write .... Write your solution here, ...")

so the cell still compiles, and the checker cell that follows reports the
exercise as not implemented yet. Outputs are cleared as well.

Usage::

    python -m msgpass.exercises.student_edition --labs labs --out student
    python -m msgpass.exercises.student_edition --check student/03-tcp-framing.ipynb

The first form never overwrites a notebook the learner has edited: a student
notebook whose cells differ from the ones the tool would write is skipped and
listed, unless ``--force`` is given. The second form executes a learner's
notebook and prints, per exercise, whether its checker cell passed, with the
checker's whole report for each failure.

The exercise-cell convention (markers, ``find_exercises``,
``strip_solutions``, ``make_student_notebook``) lives in
``solution_markers``, and this module re-exports it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from .solution_markers import (
    BEGIN_MARKER,
    END_MARKER,
    EXERCISE_TAG,
    Exercise,
    MarkerError,
    find_exercises,
    make_student_notebook,
    parse_exercise_header,
    strip_solutions,
)

__all__ = [
    "BEGIN_MARKER",
    "END_MARKER",
    "EXERCISE_TAG",
    "MarkerError",
    "Exercise",
    "ExerciseResult",
    "StudentEdition",
    "parse_exercise_header",
    "find_exercises",
    "strip_solutions",
    "make_student_notebook",
    "write_student_edition",
    "run_checkers",
    "format_result",
    "main",
]

log = logging.getLogger(__name__)

CELL_TIMEOUT_S = 120  # per cell, when --check executes a learner's notebook
MAX_REPORT_LINES = 40  # lines of one failure that --check prints; checker reports are shorter


# nbformat ships without type hints, so its calls are wrapped here.
def _read_notebook(path: Path) -> Any:
    return nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]


def _write_notebook(notebook: Any, path: Path) -> None:
    nbformat.write(notebook, path)  # type: ignore[no-untyped-call]


def _cell_sources(notebook: Any) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


@dataclass(frozen=True)
class StudentEdition:
    """The outcome of ``write_student_edition`` for each notebook of the labs folder.

    ``written``: notebooks that were new, or replaced because of ``force``.
    ``unchanged``: existing notebooks whose cells already match the student
    edition, left as they are (outputs included). ``skipped``: existing
    notebooks whose cells differ, usually because the learner edited them,
    left untouched.
    """

    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    skipped: tuple[Path, ...]


@dataclass(frozen=True)
class ExerciseResult:
    """Whether the checker cell of one exercise passed in a learner's notebook."""

    exercise_id: str
    passed: bool
    message: str


def _matches(path: Path, student: Any) -> bool:
    """Return True if the notebook at ``path`` has the cell types and sources of ``student``."""
    try:
        existing = _read_notebook(path)
    except (OSError, ValueError) as error:  # nbformat raises ValueError subclasses
        log.info("cannot read %s as a notebook (%s); treating it as edited", path, error)
        return False
    return _cell_sources(existing) == _cell_sources(student)


def write_student_edition(labs_dir: Path, out_dir: Path, *, force: bool = False) -> StudentEdition:
    """Write the student edition of every ``*.ipynb`` in ``labs_dir`` to ``out_dir``.

    A notebook missing from ``out_dir`` is written. One that exists with the
    same cells (types and sources) is left as it is. One whose cells differ,
    usually because the learner has worked in it, is skipped so that the
    learner's solutions survive, unless ``force`` is set, which overwrites it.

    Every notebook is converted before anything is written, so a malformed
    lab leaves ``out_dir`` untouched. Raises ``FileNotFoundError`` for a
    missing ``labs_dir``, ``ValueError`` when ``out_dir`` is ``labs_dir``
    itself, and ``MarkerError`` for a malformed exercise cell.
    """
    if not labs_dir.is_dir():
        raise FileNotFoundError(f"labs folder not found: {labs_dir}")
    if out_dir.resolve() == labs_dir.resolve():
        raise ValueError(f"the output folder must differ from the labs folder, got {out_dir}")
    converted = []
    for path in sorted(labs_dir.glob("*.ipynb")):
        notebook = _read_notebook(path)
        converted.append((path.name, make_student_notebook(notebook, path.name)))
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    unchanged: list[Path] = []
    skipped: list[Path] = []
    for filename, student in converted:
        target = out_dir / filename
        if target.exists() and _matches(target, student):
            unchanged.append(target)
        elif target.exists() and not force:
            skipped.append(target)
        else:
            _write_notebook(student, target)
            written.append(target)
    return StudentEdition(tuple(written), tuple(unchanged), tuple(skipped))


def _error_text(outputs: Sequence[Any]) -> str | None:
    for output in outputs:
        if output.get("output_type") == "error":
            if output.get("ename") == "ExerciseFailed":
                return str(output.get("evalue"))  # a checker's report names itself
            return f"{output.get('ename')}: {output.get('evalue')}"
    return None


def run_checkers(notebook_path: Path, timeout_s: int = CELL_TIMEOUT_S) -> list[ExerciseResult]:
    """Execute a learner's notebook and return, per exercise, whether its checker passed.

    The checker of an exercise is the first code cell after the exercise cell.
    Cells run in the notebook's folder with a ``timeout_s`` limit each; errors
    do not stop the run, so every exercise gets a result. A notebook without
    exercise cells returns an empty list without being executed. Raises
    ``nbclient.exceptions.CellTimeoutError`` when a cell runs out of time.
    """
    from nbclient import NotebookClient  # imported here: only --check needs a kernel

    notebook = _read_notebook(notebook_path)
    exercises = find_exercises(notebook, notebook_path.name)
    if not exercises:
        return []
    client = NotebookClient(
        notebook,
        timeout=timeout_s,
        allow_errors=True,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook_path.parent)}},
    )
    client.execute()

    results = []
    for exercise in exercises:
        exercise_error = _error_text(notebook.cells[exercise.cell_index].outputs)
        checker = next(
            (
                cell
                for cell in notebook.cells[exercise.cell_index + 1 :]
                if cell.cell_type == "code"
            ),
            None,
        )
        if exercise_error is not None:
            results.append(ExerciseResult(exercise.exercise_id, False, exercise_error))
        elif checker is None:
            results.append(
                ExerciseResult(exercise.exercise_id, False, "no checker cell after the exercise")
            )
        else:
            checker_error = _error_text(checker.outputs)
            passed = checker_error is None
            results.append(ExerciseResult(exercise.exercise_id, passed, checker_error or "passed"))
    return results


def format_result(result: ExerciseResult) -> str:
    """Return the lines ``--check`` prints for one exercise: the whole report of a failure.

    The first line is ``pass  <id>: passed`` or ``FAIL  <id>: <first line>``.
    Later lines of a failure are indented under it and cut after
    ``MAX_REPORT_LINES`` lines, so a huge assertion message stays readable.
    """
    status = "pass" if result.passed else "FAIL"
    first, *rest = result.message.splitlines() or [""]
    lines = [f"{status}  {result.exercise_id}: {first}"]
    if len(rest) > MAX_REPORT_LINES:
        cut = len(rest) - MAX_REPORT_LINES
        rest = [*rest[:MAX_REPORT_LINES], f"... ({cut} more lines)"]
    lines.extend(f"      {line}" for line in rest)
    return "\n".join(lines)


def _print_edition(edition: StudentEdition) -> None:
    for path in edition.written:
        print(f"wrote {path}")
    for path in edition.unchanged:
        print(f"unchanged {path}: its cells already match the student edition")
    for path in edition.skipped:
        print(f"skipped {path}: its cells differ from the student edition, so it was kept")
    if edition.skipped:
        print(
            f"kept {len(edition.skipped)} notebook(s) whose cells differ from the student "
            f"edition, usually because you edited them. To replace them and lose those "
            f"edits, rerun with --force, or move them away first"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    0 on success (skipped notebooks included, because keeping them is the
    intended behaviour), 1 when an exercise failed its checker, 2 on an error.
    """
    parser = argparse.ArgumentParser(
        prog="python -m msgpass.exercises.student_edition",
        description="Write the student edition of the labs (solutions replaced by stubs, "
        "outputs cleared), or run the exercise checkers of a learner's notebook.",
    )
    parser.add_argument("--labs", type=Path, default=Path("labs"), help="folder of lab notebooks")
    parser.add_argument(
        "--out", type=Path, default=Path("student"), help="folder to write the student edition to"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite student notebooks whose cells differ from the student edition "
        "(the edits in them are lost); without it they are kept and listed",
    )
    parser.add_argument(
        "--check",
        type=Path,
        metavar="NOTEBOOK",
        help="execute this notebook and report whether each exercise's checker passed",
    )
    args = parser.parse_args(argv)

    try:
        if args.check is not None:
            results = run_checkers(args.check)
            if not results:
                print(f"no exercises in {args.check}: no cell starts with '# Exercise <id>:'")
            for result in results:
                print(format_result(result))
            return 0 if all(result.passed for result in results) else 1
        edition = write_student_edition(args.labs, args.out, force=args.force)
    except (OSError, ValueError) as error:  # MarkerError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 2
    _print_edition(edition)
    return 0


if __name__ == "__main__":
    sys.exit(main())
