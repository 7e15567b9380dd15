"""The frame-decoder checker rejects the stub and wrong answers, and accepts correct ones."""

from __future__ import annotations

import random
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import nbformat
import pytest

from msgpass.errors import FrameTooLarge, IncompleteFrame
from msgpass.exercises import (
    Check,
    CheckFailed,
    ExerciseFailed,
    check_frame_decoder,
    framing_checks,
)
from msgpass.exercises.student_edition import find_exercises, make_student_notebook
from msgpass.framing import FrameDecoder
from support import REPO
from wrong_answers.framing_decoders import WRONG_DECODERS, DoesNothing, LittleEndianHeader

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


def _calls_candidate(candidate: Any, rng: Any) -> None:
    candidate()


def test_error_in_learner_code_names_its_line() -> None:
    def learner_function() -> None:
        raise KeyError("missing")

    check = Check("demo")
    check.add("calls it", _calls_candidate, hint="look at the dictionary lookup")
    with pytest.raises(ExerciseFailed) as caught:
        check.run(learner_function)
    message = str(caught.value)
    assert "check 'calls it' failed" in message
    assert "your code raised an unexpected KeyError: 'missing'" in message
    assert "in learner_function(), line" in message
    assert "of test_exercise_framing.py" in message
    assert "hint:     fix this error first." in message
    assert "look at the dictionary lookup" not in message


class MisspelledBuffer(FrameDecoder):
    """Reads an attribute that __init__ never set."""

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data  # type: ignore[attr-defined]
        return []


def test_attribute_error_gets_fix_first_hint() -> None:
    with pytest.raises(ExerciseFailed) as caught:
        check_frame_decoder(MisspelledBuffer)
    lines = str(caught.value).splitlines()
    assert "check 'single frame' failed" in lines[0]
    assert lines[1] == (
        "  your code raised an unexpected AttributeError: "
        "'MisspelledBuffer' object has no attribute 'buf'"
    )
    assert lines[2].startswith("  where:    in feed(), line ")
    assert lines[2].endswith(": self.buf += data  # type: ignore[attr-defined]")
    assert lines[3].startswith("  hint:     fix this error first.")
    assert "never set" in lines[3]
    assert "The check 'single frame' stopped" in lines[3]
    assert "big-endian" not in str(caught.value)


def test_library_error_keeps_sub_check_hint() -> None:
    with pytest.raises(ExerciseFailed) as caught:
        check_frame_decoder(LittleEndianHeader)
    message = str(caught.value)
    assert "your code raised FrameTooLarge:" in message
    assert "unexpected" not in message
    assert "unsigned big-endian" in message


def test_error_in_notebook_cell_names_cell_line() -> None:
    cell = "def learner_function():\n    value = None\n    return value.missing\n"
    namespace: dict[str, Any] = {}
    # The file name ipykernel 6 gives a cell's code.
    exec(compile(cell, "/tmp/ipykernel_4242/2719048612.py", "exec"), namespace)

    check = Check("demo")
    check.add("calls it", _calls_candidate, hint="unused")
    with pytest.raises(ExerciseFailed) as caught:
        check.run(namespace["learner_function"])
    assert "where:    in learner_function(), line 3 of your cell" in str(caught.value)


def test_error_inside_library_names_learner_line() -> None:
    def learner_function() -> None:
        raise FrameTooLarge(5, 4, side="middle")

    check = Check("demo")
    check.add("calls it", _calls_candidate, hint="unused")
    with pytest.raises(ExerciseFailed) as caught:
        check.run(learner_function)
    message = str(caught.value)
    assert "your code raised an unexpected ValueError: side must be" in message
    assert "in learner_function(), line" in message
    assert "(raised inside errors.py, line" in message


def test_wrong_signature_names_checker_call() -> None:
    class NoLimitArgument:
        def __init__(self) -> None:
            self.buffer = bytearray()

    with pytest.raises(ExerciseFailed) as caught:
        check_frame_decoder(NoLimitArgument)
    message = str(caught.value)
    assert "your code raised an unexpected TypeError" in message
    assert "where:    in the checker's call to your code: return decoder_class(" in message
    assert "signatures match the exercise" in message


def test_check_failed_hint_overrides_default() -> None:
    def failing(candidate: Any, rng: Any) -> None:
        raise CheckFailed(expected="1", actual="2", hint="specific hint")

    check = Check("demo")
    check.add("compares", failing, hint="default hint")
    with pytest.raises(ExerciseFailed, match="specific hint"):
        check.run(object())


# ---------------------------------------------------------------------------
# The large-frame check judges how feed() time grows, not how fast it is
# ---------------------------------------------------------------------------


class FakeClock:
    """A perf_counter that advances only when a decoder says its feed() took time."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def perf_counter(self) -> float:
        return self.now_s


def _timed_decoder(clock: FakeClock, cost_s: Callable[[int], float]) -> type:
    """Return a correct decoder class whose feed() costs ``cost_s(buffered_bytes)`` seconds."""

    class TimedDecoder(FrameDecoder):
        def feed(self, data: bytes) -> list[bytes]:
            clock.now_s += cost_s(self.buffered_bytes)
            return super().feed(data)

    return TimedDecoder


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(framing_checks, "time", SimpleNamespace(perf_counter=fake.perf_counter))
    return fake


def test_large_frame_slow_linear_decoder_passes(clock: FakeClock) -> None:
    # 1 ms per feed: 8 s for the frame, far beyond any fixed budget, but linear.
    decoder_class = _timed_decoder(clock, lambda buffered: 0.001)
    framing_checks.check_large_frame(decoder_class, random.Random(0))
    assert clock.now_s > 8.0


def test_large_frame_quadratic_decoder_fails(clock: FakeClock) -> None:
    # 1 ns per buffered byte: the cost of copying the buffer on every feed.
    decoder_class = _timed_decoder(clock, lambda buffered: buffered * 1e-9)
    with pytest.raises(CheckFailed) as caught:
        framing_checks.check_large_frame(decoder_class, random.Random(0))
    assert "times as long near the end" in caught.value.actual
    assert "quadratic time" in caught.value.actual


def test_large_frame_fast_decoder_passes_despite_ratio(clock: FakeClock) -> None:
    # Growing cost, but every late window stays under the floor that absorbs timer noise.
    decoder_class = _timed_decoder(clock, lambda buffered: buffered * 1e-13)
    framing_checks.check_large_frame(decoder_class, random.Random(0))


def test_byte_at_a_time_decoder_passes() -> None:
    # A state machine that loops over every byte in Python: slow, but linear.
    class ByteAtATime:
        def __init__(self, max_frame_bytes: int) -> None:
            self.max_frame_bytes = max_frame_bytes
            self.header = bytearray()
            self.body: bytearray | None = None
            self.length = 0

        def feed(self, data: bytes) -> list[bytes]:
            frames = []
            for byte in data:
                if self.body is None:
                    self.header.append(byte)
                    if len(self.header) < 4:
                        continue
                    self.length = int.from_bytes(self.header, "big")
                    self.header = bytearray()
                    if self.length > self.max_frame_bytes:
                        raise FrameTooLarge(self.length, self.max_frame_bytes)
                    self.body = bytearray()
                else:
                    self.body.append(byte)
                if len(self.body) == self.length:
                    frames.append(bytes(self.body))
                    self.body = None
            return frames

        def close(self) -> None:
            if self.body is not None:
                raise IncompleteFrame(4 + len(self.body), 4 + self.length)
            if self.header:
                raise IncompleteFrame(len(self.header), None)

    report = check_frame_decoder(ByteAtATime, quiet=True)
    assert "large frame in small pieces" in report.checks_passed
