"""simulation_explorer: the static figure, the slider UI and slider validation."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib

matplotlib.use("Agg")

import ipywidgets  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from msgpass.widgets import SliderSpec, simulation_explorer  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    yield
    plt.close("all")


class RecordingRun:
    """A stand-in simulation that remembers its arguments and draws one line."""

    def __init__(self, returns: str = "axes") -> None:
        self.calls: list[dict[str, float]] = []
        self.returns = returns

    def __call__(self, **values: float) -> Figure | Axes | None:
        self.calls.append(values)
        figure, ax = plt.subplots()
        ax.plot([0, 1], [0, values.get("loss", 0.0)])
        if self.returns == "figure":
            return figure
        if self.returns == "none":
            return None
        return ax


def test_static_runs_once_with_defaults() -> None:
    run = RecordingRun()
    figure = simulation_explorer(run)
    assert isinstance(figure, Figure)
    assert run.calls == [{"loss": 0.1, "latency_ms": 20.0, "window": 8, "seed": 1}]
    assert isinstance(run.calls[0]["window"], int)
    notes = [text.get_text() for text in figure.texts if text.get_gid() == "static-note"]
    assert len(notes) == 1
    assert "loss=0.1" in notes[0]
    assert "interactive=True" in notes[0]


def test_static_closes_pyplot_figure() -> None:
    figure = simulation_explorer(RecordingRun())
    assert figure.number not in plt.get_fignums()  # type: ignore[attr-defined]


@pytest.mark.parametrize("returns", ["figure", "axes", "none"])
def test_static_accepts_return_kinds(returns: str) -> None:
    assert isinstance(simulation_explorer(RecordingRun(returns)), Figure)


def test_static_omits_none_parameters() -> None:
    run = RecordingRun()
    simulation_explorer(run, window=None, seed=None, loss=(0.0, 0.2, 0.05, 0.05))
    assert run.calls == [{"loss": 0.05, "latency_ms": 20.0}]


def test_static_rejects_bad_return() -> None:
    with pytest.raises(TypeError, match="invalid return value from run: int"):
        simulation_explorer(lambda **values: 3)  # type: ignore[arg-type, return-value]


def test_interactive_builds_sliders() -> None:
    run = RecordingRun()
    ui = simulation_explorer(run, interactive=True)
    assert isinstance(ui, ipywidgets.interactive)
    sliders = {child.description: child for child in ui.kwargs_widgets}
    assert set(sliders) == {"loss", "latency_ms", "window", "seed"}
    assert isinstance(sliders["loss"], ipywidgets.FloatSlider)
    assert isinstance(sliders["window"], ipywidgets.IntSlider)
    assert (sliders["loss"].min, sliders["loss"].max, sliders["loss"].value) == (0.0, 0.5, 0.1)
    assert (sliders["window"].min, sliders["window"].max, sliders["window"].value) == (1, 64, 8)
    # ipywidgets.interactive runs the function once with the initial values.
    assert len(run.calls) == 1


def test_interactive_reruns_on_change() -> None:
    run = RecordingRun()
    ui = simulation_explorer(run, interactive=True)
    sliders = {child.description: child for child in ui.kwargs_widgets}
    sliders["loss"].value = 0.3
    assert len(run.calls) == 2
    assert run.calls[-1]["loss"] == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ((0.5, 0.1, 0.01, 0.2), "minimum must be below maximum"),
        ((0.0, 0.5, 0.0, 0.1), "step must be above 0"),
        ((0.0, 0.5, 0.01, 0.9), "default 0.9 is outside"),
        ((0.0, 2.0, 0.1, 0.5), "must be in \\[0, 1\\]"),
        ((0.0, float("nan"), 0.1, 0.0), "must be finite"),
        ((0.0, 0.5, 0.1), "expected \\(minimum, maximum, step, default\\)"),
    ],
)
def test_invalid_loss_slider(spec: SliderSpec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulation_explorer(RecordingRun(), loss=spec)


def test_window_slider_whole_numbers() -> None:
    with pytest.raises(ValueError, match="window takes whole numbers only"):
        simulation_explorer(RecordingRun(), window=(1, 10, 0.5, 2))
