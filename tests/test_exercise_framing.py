"""The frame-decoder checker rejects the stub and wrong answers, and accepts correct ones."""

from __future__ import annotations

from typing import Any

import nbformat
import pytest

from conftest import REPO
from msgpass.exercises import Check, CheckFailed, ExerciseFailed, check_frame_decoder
from msgpass.exercises.student_edition import find_exercises, make_student_notebook
from msgpass.framing import FrameDecoder
from wrong_answers.framing_decoders import WRONG_DECODERS, DoesNothing

LAB = REPO / "labs" / "03-tcp-framing.ipynb"


def _exercise_class(notebook: Any, name: str) -> type:
    """Exec the lab's first code cell (its imports) and its exercise cell; return the class."""
    (exercise,) = find_exercises(notebook, name)
    assert exercise.exercise_id == "frame-decoder"
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    namespace: dict[str, Any] = {}
    exec(compile(code_cells[0].source, f"{name} imports", "exec"), namespace)
    exec(compile(notebook.cells[exercise.cell_index].source, f"{name} exercise", "exec"), namespace)
    decoder_class = namespace["MyFrameDecoder"]
    assert isinstance(decoder_class, type)
    return decoder_class


@pytest.fixture(scope="module")
def lab() -> Any:
    return nbformat.read(LAB, as_version=4)


def test_reference_solution_passes(lab: Any, capsys: pytest.CaptureFixture[str]) -> None:
    report = check_frame_decoder(_exercise_class(lab, LAB.name))
    assert report.exercise_id == "frame-decoder"
    assert len(report.checks_passed) == 8
    assert "all 8 checks passed" in capsys.readouterr().out


def test_library_decoder_passes() -> None:
    report = check_frame_decoder(FrameDecoder, quiet=True)
    assert "random splits" in report.checks_passed


def test_student_stub_fails_as_not_implemented(lab: Any) -> None:
    stub_class = _exercise_class(make_student_notebook(lab, LAB.name), LAB.name)
    with pytest.raises(ExerciseFailed) as caught:
        check_frame_decoder(stub_class)
    message = str(caught.value)
    assert "exercise frame-decoder is not implemented yet" in message
    assert "replace the NotImplementedError in the exercise cell" in message


@pytest.mark.parametrize(
    ("decoder_class", "failed_check"),
    WRONG_DECODERS,
    ids=[decoder_class.__name__ for decoder_class, _ in WRONG_DECODERS],
)
def test_wrong_decoder_fails(decoder_class: type, failed_check: str) -> None:
    with pytest.raises(ExerciseFailed) as caught:
        check_frame_decoder(decoder_class)
    message = str(caught.value)
    assert f"check '{failed_check}' failed" in message
    assert "\n  hint:" in message
    assert "Traceback" not in message


def test_failure_is_assertion_without_chained_cause() -> None:
    wrong_class = WRONG_DECODERS[0][0]
    with pytest.raises(AssertionError) as caught:
        check_frame_decoder(wrong_class)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_failure_shows_expected_and_got() -> None:
    with pytest.raises(ExerciseFailed) as caught:
        check_frame_decoder(DoesNothing)
    lines = str(caught.value).splitlines()
    assert lines[1] == "  expected: feed(<one whole frame>) == [b'hello']"
    assert lines[2] == "  got:      []"


def test_checker_messages_repeat_with_same_seed() -> None:
    wrong_class = WRONG_DECODERS[1][0]
    messages = []
    for _ in range(2):
        with pytest.raises(ExerciseFailed) as caught:
            check_frame_decoder(wrong_class, seed=7)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]


def test_feed_returning_none_is_reported() -> None:
    class ReturnsNone(FrameDecoder):
        def feed(self, data: bytes) -> Any:
            super().feed(data)
            return None

    with pytest.raises(ExerciseFailed) as caught:
        check_frame_decoder(ReturnsNone)
    assert "feed() to return a list of payloads" in str(caught.value)


def test_feed_returning_bytearray_payloads_is_reported() -> None:
    class ReturnsBytearrays(FrameDecoder):
        def feed(self, data: bytes) -> Any:
            return [bytearray(payload) for payload in super().feed(data)]

    with pytest.raises(ExerciseFailed) as caught:
        check_frame_decoder(ReturnsBytearrays)
    assert "convert each payload with bytes(...)" in str(caught.value)


def test_error_in_learner_code_names_its_line() -> None:
    def broken(candidate: Any, rng: Any) -> None:
        candidate()

    def learner_function() -> None:
        raise KeyError("missing")

    check = Check("demo")
    check.add("calls it", broken, hint="look at the dictionary lookup")
    with pytest.raises(ExerciseFailed) as caught:
        check.run(learner_function)
    message = str(caught.value)
    assert "your code raised KeyError: 'missing'" in message
    assert "in learner_function(), line" in message
    assert "hint:     look at the dictionary lookup" in message


def test_check_failed_hint_overrides_default() -> None:
    def failing(candidate: Any, rng: Any) -> None:
        raise CheckFailed(expected="1", actual="2", hint="specific hint")

    check = Check("demo")
    check.add("compares", failing, hint="default hint")
    with pytest.raises(ExerciseFailed, match="specific hint"):
        check.run(object())
