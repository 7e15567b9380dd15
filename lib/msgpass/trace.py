"""Seeing a run: sequence diagrams, a who-talks-to-whom graph and a text listing.

A ``Trace`` (from ``msgpass.trace_events``, re-exported here) is a list of what
happened in a run: sends, deliveries, drops, duplicates, timers, crashes and
restarts. This module turns it into three views:

- ``draw_sequence`` draws a sequence diagram in the style of Lamport's
  space-time diagrams: one vertical line per node, time running downwards,
  and an arrow from the sender at the send time to the receiver at the
  delivery time. A slanted arrow is a slow message, and two arrows that cross
  are messages delivered out of order.
- ``draw_graph`` draws the nodes as a directed graph with networkx, each edge
  as wide as the number of messages sent along it.
- ``render_text`` lists the events one per line, with times in milliseconds.
  Tests and exercise checkers put it in their failure messages.

The drawings only read the events, so a trace from the simulator, from the
explorer or from a real runtime draws the same way. On a real runtime the
times are wall-clock and the threads record events concurrently, so the
listing follows the order of recording.

Left out on purpose: vector clocks and happened-before analysis, and
interactive zooming. A long trace is cut at ``max_events``.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from .trace_events import (
    DROP_CRASHED,
    Crash,
    Deliver,
    Drop,
    Duplicate,
    Restart,
    Send,
    TimerFired,
    Trace,
    TraceEvent,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "Send",
    "Deliver",
    "Drop",
    "Duplicate",
    "TimerFired",
    "Crash",
    "Restart",
    "TraceEvent",
    "Trace",
    "draw_sequence",
    "draw_graph",
    "render_text",
    "message_counts",
    "node_ids",
]

# Colours of the sequence diagram, one per event kind.
_DELIVER_COLOUR = "tab:blue"
_DROP_COLOUR = "tab:red"
_TIMER_COLOUR = "tab:green"
_CRASH_COLOUR = "black"

# The fixed seed of the graph layout, so a graph is drawn the same way each time.
_GRAPH_LAYOUT_SEED = 7


def node_ids(trace: Trace) -> list[str]:
    """List the node ids that appear in ``trace``, in order of first appearance."""
    seen: dict[str, None] = {}
    for event in trace:
        if isinstance(event, (TimerFired, Crash, Restart)):
            seen.setdefault(event.node_id)
        else:
            seen.setdefault(event.source)
            seen.setdefault(event.dest)
    return list(seen)


def message_counts(trace: Trace) -> dict[tuple[str, str], int]:
    """Count the messages sent from each node to each other node.

    Keys are ``(source, dest)`` pairs and values count ``Send`` events, so a
    message counts once whether it was delivered, dropped or duplicated.
    """
    counts: Counter[tuple[str, str]] = Counter(
        (event.source, event.dest) for event in trace if isinstance(event, Send)
    )
    return dict(counts)


def render_text(trace: Trace, limit: int = 50) -> str:
    """Render the first ``limit`` events of ``trace``, one line each, times in ms.

    A line shows the time, the event kind and what it concerns::

          12.000 ms  deliver    a -> b  Ping #3  (latency 2.000 ms)

    When the trace is longer, a last line gives the number of events left out.
    """
    if limit < 0:
        raise ValueError(f"invalid limit: {limit}; expected 0 or more events")
    events = trace.events
    lines = [_describe(event) for event in events[:limit]]
    if len(events) > limit:
        lines.append(f"... {len(events) - limit} more events")
    if not lines:
        return "(empty trace)"
    return "\n".join(lines)


def _describe(event: TraceEvent) -> str:
    head = f"{event.time_s * 1000:12.3f} ms  {event.kind:<10} "
    if isinstance(event, Send):
        detail = f"({event.size_bytes} bytes)"
    elif isinstance(event, Deliver):
        detail = f"(latency {(event.time_s - event.sent_at_s) * 1000:.3f} ms)"
    elif isinstance(event, Drop):
        detail = f"(reason: {event.reason})"
    elif isinstance(event, Duplicate):
        detail = "(extra copy)"
    elif isinstance(event, TimerFired):
        return f"{head}{event.node_id}  timer {event.name!r}"
    else:
        return f"{head}{event.node_id}"
    route = f"{event.source} -> {event.dest}"
    return f"{head}{route}  {event.message_type} #{event.message_id}  {detail}"


def draw_sequence(
    trace: Trace,
    *,
    nodes: list[str] | None = None,
    ax: Axes | None = None,
    max_events: int = 200,
    title: str | None = None,
) -> Axes:
    """Draw ``trace`` as a sequence diagram and return the matplotlib ``Axes``.

    ``nodes`` chooses the columns and their order, left to right; the default
    is the order in which nodes first appear in the trace. Events that concern
    other nodes are skipped. Only the first ``max_events`` events are drawn,
    and the title states the cut when the trace is longer.

    What is drawn, each artist tagged with a ``gid`` that tests can count:

    - ``deliver``: an arrow from (source, send time) to (dest, delivery time),
      labelled with the message type (the label's gid is ``label``);
    - ``drop``: an arrow from (source, send time) that stops halfway to the
      destination, at the drop time, and ends in an x (gid ``drop-mark``),
      labelled like a delivery. A message dropped because the destination had
      crashed reaches the destination's line before its x;
    - ``duplicate``: a ``2x`` mark at the sender when the network copied a message;
    - ``timer``: a small circle on the node's line, and ``crash`` / ``restart``:
      a large x and a triangle.

    Time runs downwards in milliseconds.
    """
    if max_events < 1:
        raise ValueError(f"invalid max_events: {max_events}; expected at least 1")
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 5))

    all_events = trace.events
    events = all_events[:max_events]
    columns = list(nodes) if nodes is not None else node_ids(trace)
    if not columns:
        raise ValueError("cannot draw an empty trace: it names no nodes; run something first")
    x_of = {node: index for index, node in enumerate(columns)}
    sent_at = {event.message_id: event.time_s for event in events if isinstance(event, Send)}
    times_ms = [0.0] + [event.time_s * 1000 for event in events]
    bottom_ms = max(times_ms) * 1.05 or 1.0

    for x in x_of.values():
        ax.plot([x, x], [0, bottom_ms], color="0.6", linewidth=1, zorder=1, gid="lifeline")

    for event in events:
        _draw_event(ax, event, x_of, sent_at)

    ax.set_xlim(-0.5, len(columns) - 0.5)
    ax.set_ylim(bottom_ms, 0)
    ax.set_xticks(range(len(columns)), columns)
    ax.xaxis.tick_top()
    ax.set_ylabel("time (ms)")
    for side in ("right", "bottom"):
        ax.spines[side].set_visible(False)
    heading = title if title is not None else "sequence diagram"
    if len(all_events) > max_events:
        heading += f" (first {max_events} of {len(all_events)} events)"
    ax.set_title(heading, pad=20)
    return ax


def _draw_event(
    ax: Axes, event: TraceEvent, x_of: dict[str, int], sent_at: dict[int, float]
) -> None:
    if isinstance(event, (TimerFired, Crash, Restart)):
        if event.node_id not in x_of:
            return
        x, y = x_of[event.node_id], event.time_s * 1000
        if isinstance(event, TimerFired):
            ax.plot([x], [y], marker="o", markersize=5, markerfacecolor="white",
                    color=_TIMER_COLOUR, zorder=3, gid="timer")
            ax.text(x + 0.04, y, event.name, fontsize=7, color=_TIMER_COLOUR,
                    va="center", gid="timer-label")
        elif isinstance(event, Crash):
            ax.plot([x], [y], marker="X", markersize=11, color=_CRASH_COLOUR, zorder=4, gid="crash")
        else:
            ax.plot([x], [y], marker="^", markersize=9, color=_TIMER_COLOUR, zorder=4,
                    gid="restart")
        return
    if event.source not in x_of or event.dest not in x_of:
        return
    x_source, x_dest = x_of[event.source], x_of[event.dest]
    if isinstance(event, Deliver):
        start: tuple[float, float] = (x_source, event.sent_at_s * 1000)
        end: tuple[float, float] = (x_dest, event.time_s * 1000)
        _arrow(ax, start, end, _DELIVER_COLOUR, "deliver")
        _label(ax, start, end, event.message_type, _DELIVER_COLOUR)
    elif isinstance(event, Drop):
        # A drop recorded without its Send (a cut trace) starts at the drop time.
        start = (x_source, sent_at.get(event.message_id, event.time_s) * 1000)
        # A message lost because its destination was down did reach the
        # destination, so its arrow goes all the way; a lost one stops halfway.
        x_end = x_dest if event.reason == DROP_CRASHED else (x_source + x_dest) / 2
        end = (x_end, event.time_s * 1000)
        _arrow(ax, start, end, _DROP_COLOUR, "drop")
        _label(ax, start, end, event.message_type, _DROP_COLOUR)
        ax.plot([end[0]], [end[1]], marker="x", markersize=9, markeredgewidth=2,
                color=_DROP_COLOUR, zorder=4, gid="drop-mark")
    elif isinstance(event, Duplicate):
        ax.text(x_source, event.time_s * 1000, "2x", fontsize=7, color=_DROP_COLOUR,
                ha="right", va="bottom", gid="duplicate")


def _label(
    ax: Axes, start: tuple[float, float], end: tuple[float, float], text: str, colour: str
) -> None:
    middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    ax.text(*middle, text, fontsize=7, color=colour, ha="center", va="center",
            bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none"},
            zorder=5, gid="label")


def _arrow(
    ax: Axes, start: tuple[float, float], end: tuple[float, float], colour: str, gid: str
) -> None:
    from matplotlib.patches import FancyArrowPatch

    patch = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10, color=colour,
                            linewidth=1.2, zorder=2, shrinkA=0, shrinkB=0)
    patch.set_gid(gid)
    ax.add_patch(patch)


def draw_graph(trace: Trace, *, ax: Axes | None = None) -> Axes:
    """Draw who sent messages to whom as a directed graph and return the ``Axes``.

    Each node of the trace is a vertex. Each ``(source, dest)`` pair that
    exchanged messages is an edge labelled with its message count, and its
    width grows with the count. The layout uses a fixed seed, so the same
    trace is drawn the same way every time.
    """
    import networkx as nx  # type: ignore[import-untyped]

    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5, 4))

    counts = message_counts(trace)
    graph = nx.DiGraph()
    graph.add_nodes_from(node_ids(trace))
    for (source, dest), count in counts.items():
        graph.add_edge(source, dest, count=count)
    if graph.number_of_nodes() == 0:
        raise ValueError("cannot draw an empty trace: it names no nodes; run something first")

    positions = nx.spring_layout(graph, seed=_GRAPH_LAYOUT_SEED)
    largest = max(counts.values(), default=1)
    widths = [1.0 + 4.0 * graph.edges[edge]["count"] / largest for edge in graph.edges]
    curved = "arc3,rad=0.15"
    nx.draw_networkx_nodes(graph, positions, ax=ax, node_color="lightsteelblue", node_size=900)
    nx.draw_networkx_labels(graph, positions, ax=ax, font_size=9)
    nx.draw_networkx_edges(graph, positions, ax=ax, width=widths, arrows=True,
                           arrowsize=15, node_size=900, connectionstyle=curved)
    labels = {edge: str(graph.edges[edge]["count"]) for edge in graph.edges}
    nx.draw_networkx_edge_labels(graph, positions, edge_labels=labels, ax=ax, font_size=8,
                                 connectionstyle=curved)
    ax.set_title("messages sent between nodes")
    ax.set_axis_off()
    return ax
