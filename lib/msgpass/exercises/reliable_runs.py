"""Running and exploring one reliable transfer, for the checkers of lab 11.

``reliable_checks`` runs a learner's stop-and-wait sender or sliding-window
receiver against the library's other side. Both checkers judge a transfer the
same way, with these helpers:

- ``_run_transfer`` simulates one transfer to idle and raises ``CheckFailed``
  unless the receiver delivered every item, in order, once each (safety and
  liveness), and the network then went quiet.
- ``_explore_transfer`` runs ``msgpass.explore`` over every delivery order
  of a small transfer with one dropped message.
- ``_show_trace`` returns a failing run as text and draws it when matplotlib
  draws inline.

The names keep their leading underscore: they are helpers of the checkers,
not part of the library that labs import.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from ..errors import EventLimitExceeded
from ..explore import ExplorationResult, explore
from ..node import Node
from ..sim import LinkConfig, Simulation
from ..trace import draw_sequence, render_text
from ..trace_events import Trace
from .checking import CheckFailed, short_repr

__all__ = [
    "CHAOS_TIME_LIMIT_S",
    "MAX_EVENTS",
    "TRACE_LINES",
    "EXPLORE_MAX_STATES",
]

# Simulated seconds. A correct sender with the checkers' timeout and 20% loss
# each way finishes a chaos run in under 3 s on every seed used. The 60 s
# limit leaves room for slow but correct senders and still catches one that stalls.
CHAOS_TIME_LIMIT_S = 60.0
MAX_EVENTS = 50_000  # per simulation: far above what a correct transfer needs
TRACE_LINES = 40  # lines of trace text in a failure report
EXPLORE_MAX_STATES = 5_000


def _items(rng: random.Random, count: int) -> list[str]:
    return [f"item-{index}-{rng.randrange(1000)}" for index in range(count)]


def _show_trace(trace: Trace | None, title: str) -> str:
    """Return the trace as text, and draw it when matplotlib shows figures inline."""
    if trace is None:
        return "(no trace)"
    try:
        import matplotlib
        import matplotlib.pyplot as plt
    except ImportError:  # the text is enough
        return render_text(trace, limit=TRACE_LINES)
    if "inline" in matplotlib.get_backend():
        axes = draw_sequence(trace, title=title)
        figure = axes.get_figure()
        plt.show()
        if figure is not None:
            plt.close(figure)  # type: ignore[arg-type]
    return render_text(trace, limit=TRACE_LINES)


def _run_transfer(
    sender: Node,
    receiver: Any,
    items: list[str],
    link: LinkConfig,
    seed: int,
    hint_prefix: str,
) -> None:
    """Run one transfer to idle and raise ``CheckFailed`` unless it was safe, live and quiet."""
    trace = Trace()
    sim = Simulation(seed=seed, trace=trace, max_events=MAX_EVENTS)
    sim.add_node(sender)
    sim.add_node(receiver)
    sim.set_link(sender.node_id, receiver.node_id, link)
    try:
        stats = sim.run(until_s=CHAOS_TIME_LIMIT_S)
    except EventLimitExceeded:
        raise CheckFailed(
            expected=f"the transfer of {len(items)} items to finish (seed {seed})",
            actual=f"{MAX_EVENTS} events without stopping; trace:\n"
            + _show_trace(trace, f"seed {seed}: no end"),
            hint="something re-arms at once forever: a timer with delay 0, or a message "
            "answered by a message that is answered again",
        ) from None
    delivered = list(receiver.delivered)
    if delivered != items[: len(delivered)] or len(delivered) > len(items):
        raise CheckFailed(
            expected=f"the receiver to deliver a prefix of {short_repr(items)} (seed {seed})",
            actual=f"delivered {short_repr(delivered)}; trace:\n"
            + _show_trace(trace, f"seed {seed}: wrong delivery"),
            hint=f"{hint_prefix}: each Data must carry its own seq and item, and a seq "
            "must be delivered once",
        )
    if delivered != items:
        raise CheckFailed(
            expected=f"all {len(items)} items delivered within {CHAOS_TIME_LIMIT_S:.0f} "
            f"simulated seconds (seed {seed}, link {link})",
            actual=f"{len(delivered)} delivered; trace:\n"
            + _show_trace(trace, f"seed {seed}: stalled"),
            hint=f"{hint_prefix}: a lost Data or Ack must be recovered by the timer, which "
            "must be armed again after every retransmission",
        )
    if stats.stop_reason != "idle":
        raise CheckFailed(
            expected=f"the network to go quiet once every item is acknowledged (seed {seed})",
            actual=f"still busy at {CHAOS_TIME_LIMIT_S:.0f} s after {stats.sent} messages; "
            f"trace:\n" + _show_trace(trace, f"seed {seed}: never quiet"),
            hint=f"{hint_prefix}: cancel the retransmission timer when its Ack arrives, and "
            "arm no timer once every item is acknowledged",
        )


def _explore_transfer(
    build: Callable[[], list[Node]], items: list[str], max_depth: int, hint: str
) -> ExplorationResult:
    """Explore every order of a small transfer; raise ``CheckFailed`` on a violation."""

    def receiver_of(nodes: dict[str, Node]) -> list[str]:
        receiver: Any = nodes["b"]
        return list(receiver.delivered)

    def safe(nodes: dict[str, Node]) -> bool:
        delivered = receiver_of(nodes)
        return delivered == items[: len(delivered)]

    result = explore(
        build,
        invariant=safe,
        goal=lambda nodes: receiver_of(nodes) == items,
        max_depth=max_depth,
        allow_drops=1,
        max_states=EXPLORE_MAX_STATES,
    )
    if not result.ok:
        raise CheckFailed(
            expected=f"every delivery order of {items} with one dropped message to deliver "
            "both items, in order, once each",
            actual=result.format()
            + "\ntrace of that path:\n"
            + _show_trace(result.trace, "shortest failing order"),
            hint=hint,
        )
    return result
