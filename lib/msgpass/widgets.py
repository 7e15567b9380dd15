"""Sliders that re-run a simulation, with a static figure when no one can move them.

In JupyterLab a reader learns most by moving a slider (loss, latency, window
size, seed) and watching a plot change. A book build or an nbval run has no
one to move it, and a widget there renders as an empty box. So
``simulation_explorer`` has two modes, chosen by a parameter and never guessed
from the environment:

- ``interactive=False`` (the default, which labs use so the book build works):
  run the simulation once with the default values and return a static
  matplotlib figure.
- ``interactive=True``: return an ipywidgets UI whose sliders re-run the
  simulation and redraw the figure on every change. Labs tell the reader to
  pass it in JupyterLab.

The simulation itself is the caller's function, ``run(**values)``, which draws
on a matplotlib figure and returns the ``Figure`` or an ``Axes``. This module
does not depend on what is simulated.

Left out on purpose: caching of earlier runs, and widgets other than sliders.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "SliderSpec",
    "simulation_explorer",
    "DEFAULT_LOSS",
    "DEFAULT_LATENCY_MS",
    "DEFAULT_WINDOW",
    "DEFAULT_SEED",
]

# A slider: (minimum, maximum, step, default value).
SliderSpec = tuple[float, float, float, float]

DEFAULT_LOSS: SliderSpec = (0.0, 0.5, 0.01, 0.1)
DEFAULT_LATENCY_MS: SliderSpec = (1.0, 200.0, 1.0, 20.0)
DEFAULT_WINDOW: SliderSpec = (1, 64, 1, 8)
DEFAULT_SEED: SliderSpec = (0, 100, 1, 1)

# Parameters whose values are whole numbers, so they get integer sliders.
_INTEGER_PARAMETERS = frozenset({"window", "seed"})


def simulation_explorer(
    run: Callable[..., Figure | Axes | None],
    *,
    loss: SliderSpec | None = DEFAULT_LOSS,
    latency_ms: SliderSpec | None = DEFAULT_LATENCY_MS,
    window: SliderSpec | None = DEFAULT_WINDOW,
    seed: SliderSpec | None = DEFAULT_SEED,
    interactive: bool = False,
) -> Any:
    """Explore ``run`` with sliders, or draw it once for the default values.

    Each of ``loss``, ``latency_ms``, ``window`` and ``seed`` is a slider spec
    ``(minimum, maximum, step, default)``, or ``None`` to leave that parameter
    out. ``run`` is called with the remaining parameters as keyword arguments,
    for example ``run(loss=0.1, latency_ms=20.0, window=8, seed=1)``. It draws
    on a new matplotlib figure and returns the ``Figure``, an ``Axes`` of it,
    or ``None`` to mean the current figure.

    With ``interactive=False`` this runs once with the defaults and returns the
    ``Figure``, with a footnote listing the values used. With
    ``interactive=True`` it returns an ``ipywidgets.interactive`` UI, which
    runs ``run`` at once and again after every slider change. Raises
    ``ValueError`` for an invalid slider spec. ::

        simulation_explorer(plot_goodput, window=None)                    # book, nbval
        simulation_explorer(plot_goodput, window=None, interactive=True)  # JupyterLab
    """
    specs = {
        name: _check_spec(name, spec)
        for name, spec in (
            ("loss", loss),
            ("latency_ms", latency_ms),
            ("window", window),
            ("seed", seed),
        )
        if spec is not None
    }
    defaults = {name: _value(name, spec[3]) for name, spec in specs.items()}

    if not interactive:
        figure = _figure_of(run(**defaults))
        used = ", ".join(f"{name}={value}" for name, value in defaults.items())
        figure.text(0.01, 0.005, f"static figure for {used}; pass interactive=True for sliders",
                    fontsize=7, color="0.4", gid="static-note")
        _forget(figure)
        return figure

    import ipywidgets  # type: ignore[import-untyped]
    from IPython.display import display

    sliders = {name: _slider(ipywidgets, name, spec) for name, spec in specs.items()}

    def redraw(**values: float) -> None:
        figure = _figure_of(run(**values))
        _forget(figure)
        display(figure)  # type: ignore[no-untyped-call]

    return ipywidgets.interactive(redraw, **sliders)


def _check_spec(name: str, spec: SliderSpec) -> SliderSpec:
    if len(spec) != 4:
        raise ValueError(
            f"invalid {name} slider {spec!r}: expected (minimum, maximum, step, default)"
        )
    minimum, maximum, step, default = spec
    if not all(math.isfinite(value) for value in spec):
        raise ValueError(f"invalid {name} slider {spec!r}: every value must be finite")
    if not minimum < maximum:
        raise ValueError(f"invalid {name} slider {spec!r}: minimum must be below maximum")
    if not 0 < step <= maximum - minimum:
        raise ValueError(
            f"invalid {name} slider {spec!r}: step must be above 0 and at most maximum - minimum"
        )
    if not minimum <= default <= maximum:
        raise ValueError(
            f"invalid {name} slider {spec!r}: default {default} is outside "
            f"[{minimum}, {maximum}]"
        )
    if name == "loss" and not (minimum >= 0 and maximum <= 1):
        raise ValueError(f"invalid loss slider {spec!r}: a loss probability must be in [0, 1]")
    if name in _INTEGER_PARAMETERS and not all(float(value).is_integer() for value in spec):
        raise ValueError(f"invalid {name} slider {spec!r}: {name} takes whole numbers only")
    return spec


def _value(name: str, value: float) -> float:
    return int(value) if name in _INTEGER_PARAMETERS else float(value)


def _slider(ipywidgets: Any, name: str, spec: SliderSpec) -> Any:
    minimum, maximum, step, default = spec
    if name in _INTEGER_PARAMETERS:
        return ipywidgets.IntSlider(
            min=int(minimum), max=int(maximum), step=int(step), value=int(default),
            description=name, continuous_update=False,
        )
    return ipywidgets.FloatSlider(
        min=minimum, max=maximum, step=step, value=default,
        description=name, continuous_update=False,
    )


def _figure_of(drawn: Figure | Axes | None) -> Figure:
    if isinstance(drawn, Figure):
        return drawn
    if isinstance(drawn, Axes):
        figure = drawn.get_figure(root=True)
        if isinstance(figure, Figure):
            return figure
    if drawn is None:
        import matplotlib.pyplot as plt

        return plt.gcf()
    raise TypeError(
        f"invalid return value from run: {type(drawn).__name__}; "
        f"return the matplotlib Figure, an Axes of it, or None for the current figure"
    )


def _forget(figure: Figure) -> None:
    # Close the figure in pyplot, so the inline backend does not show it a
    # second time at the end of the cell. The Figure object stays drawable.
    import matplotlib.pyplot as plt

    plt.close(figure)
