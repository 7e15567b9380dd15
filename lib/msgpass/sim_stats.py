"""Statistics of a simulation: counters, and quantiles of delivery latency.

``Simulation.stats()`` and ``Simulation.run()`` return a ``SimStats``: how many
messages were sent, delivered, dropped (by reason) and duplicated, how many
timers fired, messages per counted operation, and the p50, p90, p99 and max
latency of the delivered messages.

Latency quantiles are nearest-rank quantiles: the p-quantile of n values is
the value at rank ``ceil(p * n)`` in ascending order, so it is always one of
the measured latencies and never an interpolation between two of them.

The simulator keeps every latency in an ``array.array`` of doubles and
computes the quantiles only when asked, so a delivery costs one
``array.append``. Computing them needs order statistics. A full sort of n
values costs O(n log n): 30 to 40 ms for 200,000 latencies on the 2-core VM
that ``benchmarks/RESULTS.md`` describes. So for long sequences
``latency_quantiles`` uses numpy's selection (``numpy.partition``, O(n)) when
numpy is installed. numpy reads the simulator's array in place, and the
selection then took about 4 ms for 200,000 latencies on the same VM, against
14 ms for a list that numpy had to convert first. Both ways return the same
values.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field

__all__ = ["SimStats", "latency_quantiles"]

# From this many latencies on, quantiles are selected with numpy if it is
# installed. Below it, converting the list to an array costs more than sorting.
NUMPY_SELECTION_MIN_VALUES = 20_000

# The quantiles that SimStats reports, besides the max.
QUANTILES = (0.50, 0.90, 0.99)


@dataclass(frozen=True)
class SimStats:
    """Counters of a simulation so far, as returned by ``Simulation.stats()`` and ``run()``.

    Latency figures are seconds from send to delivery, over delivered
    messages, as nearest-rank quantiles. They are ``None`` until something is
    delivered. ``messages_per_operation`` is messages sent divided by the
    operations that nodes counted with ``count_operation``, and ``None`` if
    no operation was counted.
    """

    now_s: float
    events: int
    sent: int
    delivered: int
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    duplicated: int = 0
    timers_fired: int = 0
    operations: int = 0
    messages_per_operation: float | None = None
    latency_p50_s: float | None = None
    latency_p90_s: float | None = None
    latency_p99_s: float | None = None
    latency_max_s: float | None = None
    stop_reason: str = "not run"

    @property
    def dropped(self) -> int:
        """The number of messages dropped, for any reason."""
        return sum(self.dropped_by_reason.values())


def latency_quantiles(
    latencies: list[float] | array[float],
) -> tuple[float | None, float | None, float | None, float | None]:
    """Return the nearest-rank p50, p90, p99 and max of ``latencies``, all ``None`` if empty.

    It may sort ``latencies`` in place, because their order carries no
    meaning: a later call then sorts little more than the values appended
    since. It accepts a list, or an ``array.array`` like the simulator's.
    """
    if not latencies:
        return None, None, None, None
    ranks = _nearest_ranks(len(latencies))
    if len(latencies) >= NUMPY_SELECTION_MIN_VALUES:
        selected = _select_with_numpy(latencies, ranks)
        if selected is not None:
            return selected
    return _select_by_sorting(latencies, ranks)


def _nearest_ranks(count: int) -> tuple[int, int, int, int]:
    """Return the 1-based ranks of p50, p90, p99 and max among ``count`` values."""
    p50, p90, p99 = (max(1, math.ceil(quantile * count)) for quantile in QUANTILES)
    return p50, p90, p99, count


def _select_by_sorting(
    latencies: list[float] | array[float], ranks: tuple[int, int, int, int]
) -> tuple[float, float, float, float]:
    if isinstance(latencies, list):
        latencies.sort()
    else:
        latencies[:] = array(latencies.typecode, sorted(latencies))
    p50, p90, p99, top = (latencies[rank - 1] for rank in ranks)
    return p50, p90, p99, top


def _select_with_numpy(
    latencies: list[float] | array[float], ranks: tuple[int, int, int, int]
) -> tuple[float, float, float, float] | None:
    """Select the values at ``ranks`` with ``numpy.partition``; ``None`` without numpy.

    Imported here, not at the top, so the simulator runs without numpy and
    pays the import only for long runs.
    """
    try:
        import numpy
    except ImportError:
        return None
    if isinstance(latencies, array) and latencies.typecode == "d":
        # A view, so nothing is converted. It is released on return, which
        # matters because an array.array cannot grow while a view of it exists.
        values = numpy.frombuffer(latencies, dtype=float)
    else:
        values = numpy.fromiter(latencies, dtype=float, count=len(latencies))
    # After partition, each position in kth contains the value a full sort puts there.
    selected = numpy.partition(values, [rank - 1 for rank in ranks])
    p50, p90, p99, top = (float(selected[rank - 1]) for rank in ranks)
    return p50, p90, p99, top
