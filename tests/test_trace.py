"""Drawing and listing traces: structure of the figures, not pixels."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from msgpass import trace_events  # noqa: E402
from msgpass.trace import (  # noqa: E402
    Crash,
    Deliver,
    Drop,
    Duplicate,
    Restart,
    Send,
    TimerFired,
    Trace,
    draw_graph,
    draw_sequence,
    message_counts,
    node_ids,
    render_text,
)


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def sample_trace() -> Trace:
    """Build a trace with one event of every kind, between nodes a, b and c."""
    trace = Trace()
    trace.record(Send(0.000, "a", "b", "Ping", 1, 12))
    trace.record(Duplicate(0.000, "a", "b", "Ping", 1))
    trace.record(Deliver(0.002, "a", "b", "Ping", 1, 0.000))
    trace.record(Deliver(0.003, "a", "b", "Ping", 1, 0.000))
    trace.record(Send(0.003, "b", "a", "Pong", 2, 12))
    trace.record(Drop(0.004, "b", "a", "Pong", 2, "loss"))
    trace.record(Send(0.005, "a", "c", "Ping", 3, 12))
    trace.record(Deliver(0.006, "a", "c", "Ping", 3, 0.005))
    trace.record(TimerFired(0.010, "a", "retry"))
    trace.record(Crash(0.012, "b"))
    trace.record(Restart(0.015, "b"))
    return trace


def gids(artists: object) -> list[str | None]:
    return [artist.get_gid() for artist in artists]  # type: ignore[attr-defined]


def test_reexports_trace_events() -> None:
    assert Trace is trace_events.Trace
    assert Send is trace_events.Send


def test_node_ids_in_first_appearance_order() -> None:
    assert node_ids(sample_trace()) == ["a", "b", "c"]


def test_message_counts_count_sends() -> None:
    assert message_counts(sample_trace()) == {("a", "b"): 1, ("b", "a"): 1, ("a", "c"): 1}


def test_render_text_lines() -> None:
    lines = render_text(sample_trace()).splitlines()
    assert len(lines) == 11
    first = ["0.000", "ms", "send", "a", "->", "b", "Ping", "#1", "(12", "bytes)"]
    assert lines[0].split() == first
    assert "latency 2.000 ms" in lines[2]
    assert "reason: loss" in lines[5]
    assert lines[8].split() == ["10.000", "ms", "timer", "a", "timer", "'retry'"]
    assert lines[9].split() == ["12.000", "ms", "crash", "b"]


def test_render_text_limit() -> None:
    lines = render_text(sample_trace(), limit=3).splitlines()
    assert len(lines) == 4
    assert lines[-1] == "... 8 more events"


def test_render_text_empty_and_invalid() -> None:
    assert render_text(Trace()) == "(empty trace)"
    with pytest.raises(ValueError, match="invalid limit"):
        render_text(Trace(), limit=-1)


def test_sequence_draws_each_kind() -> None:
    ax = draw_sequence(sample_trace())
    patches = gids(ax.patches)
    lines = gids(ax.lines)
    texts = gids(ax.texts)
    assert patches.count("deliver") == 3
    assert patches.count("drop") == 1
    assert lines.count("lifeline") == 3
    assert lines.count("drop-mark") == 1
    assert lines.count("timer") == 1
    assert lines.count("crash") == 1
    assert lines.count("restart") == 1
    assert texts.count("duplicate") == 1


def test_sequence_labels_and_columns() -> None:
    ax = draw_sequence(sample_trace(), title="ping")
    labels = [text.get_text() for text in ax.texts if text.get_gid() == "label"]
    assert labels == ["Ping", "Ping", "Pong", "Ping"]
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["a", "b", "c"]
    assert ax.get_title() == "ping"
    # Time runs downwards: the y axis is inverted.
    bottom, top = ax.get_ylim()
    assert bottom > top


def test_sequence_arrow_endpoints() -> None:
    ax = draw_sequence(sample_trace(), nodes=["a", "b"])
    deliveries = [patch for patch in ax.patches if patch.get_gid() == "deliver"]
    # Only the two copies of a -> b are drawn when c has no column.
    assert len(deliveries) == 2
    drop_mark = next(line for line in ax.lines if line.get_gid() == "drop-mark")
    assert list(drop_mark.get_xdata()) == [0.5]
    assert list(drop_mark.get_ydata()) == pytest.approx([4.0])


def test_sequence_crashed_drop_reaches_dest() -> None:
    trace = Trace()
    trace.record(Send(0.001, "a", "b", "Ping", 1, 12))
    trace.record(Drop(0.003, "a", "b", "Ping", 1, "crashed"))
    ax = draw_sequence(trace)
    drop_mark = next(line for line in ax.lines if line.get_gid() == "drop-mark")
    assert list(drop_mark.get_xdata()) == [1]
    assert list(drop_mark.get_ydata()) == pytest.approx([3.0])


def test_sequence_max_events_cut() -> None:
    ax = draw_sequence(sample_trace(), max_events=3)
    assert gids(ax.patches).count("deliver") == 1
    assert "first 3 of 11 events" in ax.get_title()


def test_sequence_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="empty trace"):
        draw_sequence(Trace())
    with pytest.raises(ValueError, match="invalid max_events"):
        draw_sequence(sample_trace(), max_events=0)


def test_sequence_deterministic() -> None:
    first = draw_sequence(sample_trace())
    second = draw_sequence(sample_trace())
    first_ends = [patch.get_path().vertices.tolist() for patch in first.patches]
    second_ends = [patch.get_path().vertices.tolist() for patch in second.patches]
    assert first_ends == second_ends


def test_graph_edges_and_labels() -> None:
    trace = sample_trace()
    trace.record(Send(0.020, "a", "b", "Ping", 4, 12))
    ax = draw_graph(trace)
    texts = sorted(text.get_text() for text in ax.texts)
    # Three node names and three edge counts.
    assert texts == ["1", "1", "2", "a", "b", "c"]
    assert ax.get_title() == "messages sent between nodes"


def test_graph_layout_fixed() -> None:
    first = draw_graph(sample_trace())
    second = draw_graph(sample_trace())
    first_positions = [text.get_position() for text in first.texts]
    second_positions = [text.get_position() for text in second.texts]
    assert first_positions == second_positions


def test_graph_rejects_empty_trace() -> None:
    with pytest.raises(ValueError, match="empty trace"):
        draw_graph(Trace())
