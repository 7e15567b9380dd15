"""The student-edition tool: stubs, cleared outputs, malformed markers, and running checkers."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from msgpass.exercises.student_edition import (
    BEGIN_MARKER,
    END_MARKER,
    MAX_REPORT_LINES,
    Exercise,
    ExerciseResult,
    MarkerError,
    format_result,
    main,
    make_student_notebook,
    run_checkers,
    strip_solutions,
    write_student_edition,
)
from support import REPO

LABS_DIR = REPO / "labs"
EXERCISE = Exercise("add-one", "return n plus one", cell_index=0)
STUB = (
    'raise NotImplementedError("Exercise add-one: return n plus one. '
    'Write your solution here, then run the checker cell below.")'
)

METHOD_CELL = f"""\
# Exercise add-one: return n plus one.
class Adder:
    def add_one(self, n: int) -> int:
        {BEGIN_MARKER}
        result = n + 1
        return result
        {END_MARKER}

    def name(self) -> str:
        return "adder"
"""


def _exercise_notebook(source: str, tags: list[str] | None = None) -> Any:
    exercise = new_code_cell(source, metadata={"tags": tags or ["exercise"]})
    exercise.outputs = [new_output("stream", name="stdout", text="old output\n")]
    exercise.execution_count = 3
    return new_notebook(
        cells=[new_markdown_cell("# A lab"), exercise, new_code_cell("print('check')")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )


def _is_magic(source: str) -> bool:
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    return first.startswith(("%", "!"))


# ---------------------------------------------------------------------------
# strip_solutions
# ---------------------------------------------------------------------------


def test_stub_replaces_region_at_marker_indentation() -> None:
    stripped = strip_solutions(METHOD_CELL, EXERCISE, "cell")
    lines = stripped.splitlines()
    assert lines[3] == " " * 8 + STUB
    assert "result = n + 1" not in stripped
    assert BEGIN_MARKER not in stripped
    assert END_MARKER not in stripped
    assert lines[-1] == '        return "adder"'


def test_stubbed_cell_compiles_and_raises() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(strip_solutions(METHOD_CELL, EXERCISE, "cell"), "cell", "exec"), namespace)
    assert namespace["Adder"]().name() == "adder"
    with pytest.raises(NotImplementedError, match="Exercise add-one: return n plus one"):
        namespace["Adder"]().add_one(1)


def test_stub_escapes_quotes_in_task() -> None:
    exercise = Exercise("quote", 'print "hi" and a \\ backslash', cell_index=0)
    source = f"def f():\n    {BEGIN_MARKER}\n    pass\n    {END_MARKER}\n"
    namespace: dict[str, Any] = {}
    exec(compile(strip_solutions(source, exercise, "cell"), "cell", "exec"), namespace)
    with pytest.raises(NotImplementedError, match=r'print "hi" and a \\ backslash'):
        namespace["f"]()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            f"def f():\n    {BEGIN_MARKER}\n    {BEGIN_MARKER}\n    {END_MARKER}\n",
            "inside the region",
        ),
        (f"def f():\n    pass\n    {END_MARKER}\n", "without a"),
        (f"def f():\n    {BEGIN_MARKER}\n    pass\n", "is never closed"),
        (f"def f():\n    {BEGIN_MARKER}\n    pass\n{END_MARKER}\n", "indented differently"),
    ],
    ids=["nested begin", "end without begin", "unclosed begin", "end indentation"],
)
def test_unbalanced_markers_rejected(source: str, message: str) -> None:
    with pytest.raises(MarkerError, match=message):
        strip_solutions(source, EXERCISE, "lab.ipynb, cell 4")


def test_marker_error_names_cell_and_line() -> None:
    with pytest.raises(MarkerError, match=r"lab\.ipynb, cell 4, line 3"):
        strip_solutions(f"def f():\n    pass\n    {END_MARKER}\n", EXERCISE, "lab.ipynb, cell 4")


# ---------------------------------------------------------------------------
# make_student_notebook
# ---------------------------------------------------------------------------


def test_student_notebook_clears_outputs_and_stubs() -> None:
    lab = _exercise_notebook(METHOD_CELL)
    student = make_student_notebook(lab, "lab.ipynb")
    exercise_cell = student.cells[1]
    assert exercise_cell.outputs == []
    assert exercise_cell.execution_count is None
    assert STUB in exercise_cell.source
    assert lab.cells[1].outputs != [], "the original notebook must stay unchanged"
    assert BEGIN_MARKER in lab.cells[1].source


def test_markers_without_header_rejected() -> None:
    source = METHOD_CELL.split("\n", 1)[1]
    with pytest.raises(MarkerError, match="must start with '# Exercise <id>"):
        make_student_notebook(_exercise_notebook(source, tags=["other"]), "lab.ipynb")


def test_tagged_cell_without_header_rejected() -> None:
    with pytest.raises(MarkerError, match="must start with '# Exercise <id>"):
        make_student_notebook(_exercise_notebook("x = 1\n"), "lab.ipynb")


def test_tagged_cell_without_markers_rejected() -> None:
    with pytest.raises(MarkerError, match="has no '# BEGIN SOLUTION'"):
        make_student_notebook(_exercise_notebook("# Exercise a: do it\nx = 1\n"), "lab.ipynb")


def test_invalid_header_rejected() -> None:
    source = METHOD_CELL.replace("# Exercise add-one:", "# Exercise add one:")
    with pytest.raises(MarkerError, match="invalid exercise header"):
        make_student_notebook(_exercise_notebook(source), "lab.ipynb")


def test_duplicate_exercise_ids_rejected() -> None:
    lab = _exercise_notebook(METHOD_CELL)
    lab.cells.append(new_code_cell(METHOD_CELL, metadata={"tags": ["exercise"]}))
    with pytest.raises(MarkerError, match="used twice"):
        make_student_notebook(lab, "lab.ipynb")


# ---------------------------------------------------------------------------
# write_student_edition and the command line, on the real labs
# ---------------------------------------------------------------------------


def test_real_labs_student_edition(tmp_path: Path) -> None:
    written = write_student_edition(LABS_DIR, tmp_path / "student").written
    assert {path.name for path in written} == {path.name for path in LABS_DIR.glob("*.ipynb")}
    for path in written:
        notebook = nbformat.read(path, as_version=4)
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            assert cell.outputs == [], f"{path.name} cell {index} kept outputs"
            assert BEGIN_MARKER not in cell.source, f"{path.name} cell {index} kept a solution"
            if not _is_magic(cell.source):
                # Notebook cells may use top-level await, as the IPython kernel allows.
                where = f"{path.name} cell {index}"
                compile(cell.source, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_lab3_student_edition_has_frame_decoder_stub(tmp_path: Path) -> None:
    write_student_edition(LABS_DIR, tmp_path)
    notebook = nbformat.read(tmp_path / "03-tcp-framing.ipynb", as_version=4)
    sources = "\n".join(cell.source for cell in notebook.cells)
    assert sources.count('raise NotImplementedError("Exercise frame-decoder:') == 3
    assert "del self.buffer" not in sources


def test_malformed_lab_leaves_output_folder_untouched(tmp_path: Path) -> None:
    labs = tmp_path / "labs"
    labs.mkdir()
    nbformat.write(_exercise_notebook(METHOD_CELL), labs / "01-good.ipynb")
    nbformat.write(_exercise_notebook("x = 1\n"), labs / "02-bad.ipynb")
    with pytest.raises(MarkerError):
        write_student_edition(labs, tmp_path / "student")
    assert not (tmp_path / "student").exists()


def test_missing_labs_folder_rejected(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="labs folder not found"):
        write_student_edition(tmp_path / "nowhere", tmp_path / "student")


def test_output_folder_same_as_labs_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must differ from the labs folder"):
        write_student_edition(tmp_path, tmp_path)


def test_main_writes_edition(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--labs", str(LABS_DIR), "--out", str(tmp_path / "student")])
    assert status == 0
    assert "wrote " in capsys.readouterr().out
    assert (tmp_path / "student" / "03-tcp-framing.ipynb").is_file()


# ---------------------------------------------------------------------------
# Running the tool again keeps the learner's work
# ---------------------------------------------------------------------------


def _two_labs(tmp_path: Path) -> Path:
    labs = tmp_path / "labs"
    labs.mkdir()
    nbformat.write(_exercise_notebook(METHOD_CELL), labs / "01-one.ipynb")
    nbformat.write(_exercise_notebook(METHOD_CELL), labs / "02-two.ipynb")
    return labs


def _solve(path: Path) -> str:
    """Replace the stub in a student notebook by a learner's answer; return the new source."""
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[1].source = notebook.cells[1].source.replace(STUB, "return n + 1")
    nbformat.write(notebook, path)
    return str(notebook.cells[1].source)


def test_rerun_keeps_edited_notebook(tmp_path: Path) -> None:
    labs, out = _two_labs(tmp_path), tmp_path / "student"
    write_student_edition(labs, out)
    answer = _solve(out / "01-one.ipynb")
    edited_bytes = (out / "01-one.ipynb").read_bytes()

    edition = write_student_edition(labs, out)

    assert edition.skipped == (out / "01-one.ipynb",)
    assert edition.unchanged == (out / "02-two.ipynb",)
    assert edition.written == ()
    assert (out / "01-one.ipynb").read_bytes() == edited_bytes
    assert "return n + 1" in answer


def test_rerun_writes_new_notebooks(tmp_path: Path) -> None:
    labs, out = _two_labs(tmp_path), tmp_path / "student"
    write_student_edition(labs, out)
    _solve(out / "01-one.ipynb")
    (out / "02-two.ipynb").unlink()

    edition = write_student_edition(labs, out)

    assert edition.written == (out / "02-two.ipynb",)
    assert edition.skipped == (out / "01-one.ipynb",)


def test_rerun_leaves_run_notebook_alone(tmp_path: Path) -> None:
    labs, out = _two_labs(tmp_path), tmp_path / "student"
    write_student_edition(labs, out)
    # A learner ran the notebook: outputs appeared, the cells did not change.
    notebook = nbformat.read(out / "01-one.ipynb", as_version=4)
    notebook.cells[2].outputs = [new_output("stream", name="stdout", text="check\n")]
    nbformat.write(notebook, out / "01-one.ipynb")
    run_bytes = (out / "01-one.ipynb").read_bytes()

    edition = write_student_edition(labs, out)

    assert (out / "01-one.ipynb") in edition.unchanged
    assert (out / "01-one.ipynb").read_bytes() == run_bytes


def test_force_overwrites_edited_notebook(tmp_path: Path) -> None:
    labs, out = _two_labs(tmp_path), tmp_path / "student"
    write_student_edition(labs, out)
    _solve(out / "01-one.ipynb")

    edition = write_student_edition(labs, out, force=True)

    assert edition.written == (out / "01-one.ipynb",)
    assert edition.skipped == ()
    restored = nbformat.read(out / "01-one.ipynb", as_version=4)
    assert STUB in restored.cells[1].source


def test_unreadable_notebook_is_kept(tmp_path: Path) -> None:
    labs, out = _two_labs(tmp_path), tmp_path / "student"
    out.mkdir()
    (out / "01-one.ipynb").write_text("not a notebook", encoding="utf-8")

    edition = write_student_edition(labs, out)

    assert edition.skipped == (out / "01-one.ipynb",)
    assert (out / "01-one.ipynb").read_text(encoding="utf-8") == "not a notebook"


def test_main_lists_skipped_and_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labs, out = _two_labs(tmp_path), tmp_path / "student"
    assert main(["--labs", str(labs), "--out", str(out)]) == 0
    _solve(out / "01-one.ipynb")
    capsys.readouterr()

    status = main(["--labs", str(labs), "--out", str(out)])

    output = capsys.readouterr().out
    assert status == 0
    assert f"skipped {out / '01-one.ipynb'}: its cells differ" in output
    assert f"unchanged {out / '02-two.ipynb'}" in output
    assert "rerun with --force" in output
    assert "return n + 1" in (out / "01-one.ipynb").read_text(encoding="utf-8")

    assert main(["--labs", str(labs), "--out", str(out), "--force"]) == 0
    assert f"wrote {out / '01-one.ipynb'}" in capsys.readouterr().out
    assert "return n + 1" not in (out / "01-one.ipynb").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------
# What --check prints
# ---------------------------------------------------------------------------

REPORT = """\
exercise add-one: check 'adds' failed (0 of 2 checks passed before it)
  expected: add_one(1) == 2
  got:      3
  hint:     add one, not two"""


def test_format_result_prints_whole_report() -> None:
    text = format_result(ExerciseResult("add-one", False, REPORT))
    lines = text.splitlines()
    assert (
        lines[0]
        == "FAIL  add-one: exercise add-one: check 'adds' failed (0 of 2 checks passed before it)"
    )
    assert lines[1] == "        expected: add_one(1) == 2"
    assert lines[2] == "        got:      3"
    assert lines[3] == "        hint:     add one, not two"


def test_format_result_pass_is_one_line() -> None:
    assert format_result(ExerciseResult("add-one", True, "passed")) == "pass  add-one: passed"


def test_format_result_cuts_long_message() -> None:
    message = "\n".join(f"line {number}" for number in range(MAX_REPORT_LINES + 11))
    lines = format_result(ExerciseResult("add-one", False, message)).splitlines()
    assert len(lines) == MAX_REPORT_LINES + 2
    assert lines[-1] == "      ... (10 more lines)"


def test_check_without_exercises_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plain.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), path)

    assert run_checkers(path) == []
    assert main(["--check", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"no exercises in {path}")


def test_main_reports_unknown_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--labs", str(tmp_path / "nowhere"), "--out", str(tmp_path / "student")])
    assert status == 2
    assert "error: labs folder not found" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# run_checkers: executes notebooks in a kernel
# ---------------------------------------------------------------------------

CHECKER_CELL = """\
got = Adder().add_one(1)
assert got == 2, f"add_one(1) returned {got}, expected 2"
"""


def test_run_checkers_reports_pass_and_fail(tmp_path: Path) -> None:
    lab = _exercise_notebook(METHOD_CELL)
    lab.cells[2] = new_code_cell(CHECKER_CELL)
    wrong = METHOD_CELL.replace("# Exercise add-one:", "# Exercise add-two:").replace(
        "Adder", "Adder2"
    )
    lab.cells.append(
        new_code_cell(wrong.replace("n + 1", "n + 2"), metadata={"tags": ["exercise"]})
    )
    lab.cells.append(new_code_cell(CHECKER_CELL.replace("Adder", "Adder2")))
    path = tmp_path / "learner.ipynb"
    nbformat.write(lab, path)

    results = run_checkers(path, timeout_s=60)
    assert [(r.exercise_id, r.passed) for r in results] == [("add-one", True), ("add-two", False)]
    assert "AssertionError: add_one(1) returned 3, expected 2" in results[1].message


@pytest.mark.slow
def test_run_checkers_on_student_lab3(tmp_path: Path) -> None:
    write_student_edition(LABS_DIR, tmp_path)
    results = run_checkers(tmp_path / "03-tcp-framing.ipynb")
    assert [(r.exercise_id, r.passed) for r in results] == [("frame-decoder", False)]
    assert "exercise frame-decoder is not implemented yet" in results[0].message


LEARNER_BUG_CELL = """\
# Exercise frame-decoder: write a decoder
from msgpass.exercises import check_frame_decoder
class MyFrameDecoder:
    def __init__(self, max_frame_bytes):
        self.buffer = bytearray()
    def feed(self, data):
        self.bufer += data
        return []
    def close(self):
        pass
"""


def test_main_check_prints_whole_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    learner = new_notebook(
        cells=[
            new_code_cell(LEARNER_BUG_CELL, metadata={"tags": ["exercise"]}),
            new_code_cell("check_frame_decoder(MyFrameDecoder)"),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    path = tmp_path / "learner.ipynb"
    nbformat.write(learner, path)

    status = main(["--check", str(path)])

    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert lines[0] == (
        "FAIL  frame-decoder: exercise frame-decoder: check 'single frame' failed "
        "(0 of 8 checks passed before it)"
    )
    assert lines[1] == (
        "        your code raised an unexpected AttributeError: "
        "'MyFrameDecoder' object has no attribute 'bufer'"
    )
    assert lines[2] == "        where:    in feed(), line 7 of your cell: self.bufer += data"
    assert lines[3].startswith("        hint:     fix this error first.")
