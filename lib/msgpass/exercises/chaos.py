"""Chaos runs and exhaustive exploration, for checkers of ``Node`` exercises.

A checker of a protocol exercise runs the learner's node two ways besides its
hand-made scenarios:

- ``run_chaos`` simulates fresh nodes once per seed (50 seeds by default) on a
  network that loses, duplicates and reorders messages and may crash nodes.
  The faults end at a known time (``ChaosFaults.heal_at_s``), so that
  liveness can be asserted: after the faults, a correct protocol finishes.
- ``explore_small`` runs ``msgpass.explore`` over every delivery order, drop
  and timer firing of a small scenario and reports the shortest violation.

Both take any node classes. A ``Verdict`` looks at the nodes by id and
returns ``None`` when all is well, or one sentence saying what went wrong.
A failure raises ``CheckFailed`` with the failing run as text, and
``show_trace`` draws the same run as a sequence diagram when matplotlib
draws inline in a notebook.

Left out: shrinking a failing chaos run to a smaller one. The explorer's
shortest violation plays that part for small scenarios.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import EventLimitExceeded
from ..explore import ExplorationResult, explore
from ..node import Node
from ..sim import LinkConfig, SimStats, Simulation, Uniform
from ..sim_links import Latency
from ..trace import Trace, draw_sequence, render_text
from .checking import CheckFailed

__all__ = [
    "ChaosFaults",
    "ChaosSummary",
    "Verdict",
    "CHAOS_SEEDS",
    "CHAOS_UNTIL_S",
    "CHAOS_MAX_EVENTS",
    "TRACE_LINES",
    "run_chaos",
    "explore_small",
    "show_trace",
    "trace_report",
    "indent",
]

log = logging.getLogger(__name__)

# A verdict looks at the nodes by id and returns None, or what went wrong.
Verdict = Callable[[dict[str, Node]], str | None]

CHAOS_SEEDS = range(50)
CHAOS_UNTIL_S = 30.0  # simulated seconds, far beyond the 1 s of faults and 0.5 s of crash
CHAOS_MAX_EVENTS = 50_000  # per run; a correct run here takes a few hundred events
TRACE_LINES = 60  # events listed in a failure report


@dataclass(frozen=True)
class ChaosFaults:
    """The faults of a chaos run: a faulty network until ``heal_at_s``, then a clean one.

    Every link has the given latency, loss, duplication and reordering until
    ``heal_at_s`` simulated seconds, and only the latency afterwards (``None``
    keeps the faults forever). ``crashes`` lists (node id, crash at s, restart
    at s) triples. Finite faults are what make liveness checkable: after they
    end, a correct protocol must finish.
    """

    latency: Latency = Uniform(0.001, 0.010)
    loss: float = 0.2
    duplicate: float = 0.2
    reorder: float = 0.3
    heal_at_s: float | None = 1.0
    crashes: tuple[tuple[str, float, float], ...] = ()

    def faulty_link(self) -> LinkConfig:
        """Return the link configuration in force until ``heal_at_s``."""
        return LinkConfig(
            latency=self.latency, loss=self.loss, duplicate=self.duplicate, reorder=self.reorder
        )


@dataclass(frozen=True)
class ChaosSummary:
    """Totals over the runs of ``run_chaos``, all of which passed the verdict."""

    runs: int
    sent: int
    delivered: int
    dropped: int
    duplicated: int


def show_trace(trace: Trace, title: str) -> None:
    """Draw ``trace`` as a sequence diagram in a notebook; elsewhere, do nothing.

    Drawing is best effort: a missing display or any plotting error is
    logged, so that the text report still reaches the learner.
    """
    try:
        import matplotlib
        import matplotlib.pyplot as plt

        if "inline" not in matplotlib.get_backend():
            return  # not in a notebook: the text trace in the report is all there is
        from IPython.display import display

        figure, ax = plt.subplots(figsize=(7, 5))
        draw_sequence(trace, ax=ax, title=title, max_events=120)
        display(figure)  # type: ignore[no-untyped-call]
        plt.close(figure)
    except Exception as error:  # the report matters more than the drawing
        log.warning("could not draw the failing trace: %r", error)


def trace_report(trace: Trace | None) -> str:
    """Return the first ``TRACE_LINES`` events of ``trace`` as text, for a failure report."""
    if trace is None or len(trace) == 0:
        return "(no trace recorded)"
    return render_text(trace, limit=TRACE_LINES)


def run_chaos(
    build: Callable[[], list[Node]],
    *,
    verdict: Verdict,
    expected: str,
    seeds: Iterable[int] = CHAOS_SEEDS,
    faults: ChaosFaults = ChaosFaults(),
    until_s: float = CHAOS_UNTIL_S,
    max_events: int = CHAOS_MAX_EVENTS,
    require_idle: bool = True,
) -> ChaosSummary:
    """Simulate fresh nodes from ``build`` once per seed, with ``faults``, and judge each run.

    Each run lasts until the network is idle or ``until_s`` simulated seconds
    have passed, then ``verdict(nodes)`` judges it. Raises ``CheckFailed`` at
    the first failing seed, with ``expected`` (the property checked), the
    verdict's complaint and the run's trace as text, after drawing the
    trace with ``show_trace``. A run that exceeds ``max_events`` fails too,
    and so does one that still has events pending at ``until_s`` when
    ``require_idle`` is true.
    """
    totals = Counter[str]()
    runs = 0
    for seed in seeds:
        trace = Trace()
        sim = Simulation(seed=seed, default_link=faults.faulty_link(), trace=trace,
                         max_events=max_events)
        nodes = [sim.add_node(node) for node in build()]
        if faults.heal_at_s is not None:
            sim.schedule(faults.heal_at_s, _heal_links, sim, LinkConfig(latency=faults.latency))
        for node_id, crash_at_s, restart_at_s in faults.crashes:
            sim.crash(node_id, at_s=crash_at_s)
            sim.restart(node_id, at_s=restart_at_s)
        problem: str | None
        try:
            stats = sim.run(until_s=until_s)
        except EventLimitExceeded:
            problem = (
                f"the run was still busy after {max_events} events at simulated time "
                f"{sim.now:.3f} s: some node keeps sending or setting timers"
            )
        else:
            problem = verdict({node.node_id: node for node in nodes})
            if problem is None and require_idle and sim.pending_events():
                problem = (
                    f"{sim.pending_events()} event(s) were still pending at {until_s} s: "
                    f"some node keeps setting timers after its work is done"
                )
        if problem is not None:
            show_trace(trace, f"failing chaos run, seed {seed}")
            raise CheckFailed(
                expected=expected,
                actual=f"in the chaos run with seed {seed}, {problem}\n"
                f"  the run ({faults}):\n{indent(trace_report(trace))}",
            )
        runs += 1
        _add_stats(totals, stats)
    return ChaosSummary(runs, totals["sent"], totals["delivered"], totals["dropped"],
                        totals["duplicated"])


def explore_small(
    build: Callable[[], list[Node]],
    *,
    safety: Verdict,
    liveness: Verdict,
    expected: str,
    max_depth: int = 30,
    allow_drops: int = 1,
    allow_duplicates: int = 1,
    max_states: int = 20_000,
) -> ExplorationResult:
    """Explore every delivery order of a small scenario and fail on its shortest violation.

    ``safety`` must hold after every step, and ``liveness`` in every final
    state (no message in flight, no timer armed). Raises ``CheckFailed`` with
    the shortest violating path as text (after drawing it with
    ``show_trace``), or when the exploration could not finish within
    ``max_depth`` steps and ``max_states`` states, which happens when a node
    keeps re-arming timers or sending forever.
    """
    result = explore(
        build,
        invariant=lambda nodes: safety(nodes) is None,
        goal=lambda nodes: liveness(nodes) is None,
        max_depth=max_depth,
        allow_drops=allow_drops,
        allow_duplicates=allow_duplicates,
        max_states=max_states,
    )
    budget = f"up to {allow_drops} drop(s) and {allow_duplicates} duplicate(s)"
    if result.violation is not None:
        if result.violation_kind == "exception" and "NotImplementedError" in result.violation:
            raise NotImplementedError(result.violation)
        nodes = result.final_nodes or {}
        complaint = safety(nodes) if result.violation_kind == "invariant" else liveness(nodes)
        show_trace(result.trace or Trace(), "shortest failing path (times are step numbers)")
        raise CheckFailed(
            expected=f"{expected}, in every order of deliveries and timers with {budget}",
            actual=f"{complaint or result.violation}\n{indent(result.format())}\n"
            f"  as a trace (times are step numbers):\n{indent(trace_report(result.trace))}",
        )
    if not result.exhausted:
        raise CheckFailed(
            expected=f"the system to become idle within {max_depth} steps in every order",
            actual=f"{result.format()}",
            hint="stop sending and stop re-arming timers once every message is acknowledged "
            "or has used all its attempts",
        )
    return result


def _heal_links(sim: Simulation, clean: LinkConfig) -> None:
    for source in sim.nodes:
        for dest in sim.nodes:
            if source != dest:
                sim.set_link(source, dest, clean, both_ways=False)


def _add_stats(totals: Counter[str], stats: SimStats) -> None:
    totals["sent"] += stats.sent
    totals["delivered"] += stats.delivered
    totals["dropped"] += stats.dropped
    totals["duplicated"] += stats.duplicated


def indent(text: str) -> str:
    """Indent every line of ``text`` by four spaces, to nest it in a failure report."""
    return "\n".join("    " + line for line in text.splitlines())
