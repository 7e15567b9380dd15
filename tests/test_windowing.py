"""Tests for msgpass.windowing: window assignment, watermarks, lateness and sources."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from msgpass.broker import Admin, BrokerServer, Consumer, Producer
from msgpass.windowing import (
    END_OF_STREAM_MS,
    BoundedOutOfOrderness,
    Event,
    TumblingWindows,
    WindowResult,
    aggregate,
    event_to_json,
    events_from_deliveries,
    read_events,
    window_start,
    write_events,
)


def brute_force(events: list[Event], size_ms: int) -> set[WindowResult]:
    """Count and sum per key and window with no watermark at all."""
    sums: dict[tuple[str, int], list[int]] = {}
    for event in events:
        slot = sums.setdefault((event.key, window_start(event.timestamp_ms, size_ms)), [0, 0])
        slot[0] += 1
        slot[1] += event.value
    return {WindowResult(k, s, s + size_ms, c, t) for (k, s), (c, t) in sums.items()}


def test_window_start_alignment() -> None:
    assert window_start(0, 1000) == 0
    assert window_start(999, 1000) == 0
    assert window_start(1000, 1000) == 1000
    assert window_start(2500, 1000) == 2000
    assert window_start(-1, 1000) == -1000


def test_watermark_trails_max_timestamp() -> None:
    generator = BoundedOutOfOrderness(200)
    assert generator.current_watermark() is None
    assert generator.on_event(1000) == 799
    assert generator.on_event(900) == 799  # an older event does not move it back
    assert generator.on_event(1500) == 1299


def test_window_fires_at_last_millisecond() -> None:
    windows = TumblingWindows(1000)
    assert windows.on_event(Event("a", 5, 100)) == []
    assert windows.on_watermark(998) == []
    assert windows.on_watermark(999) == [WindowResult("a", 0, 1000, 1, 5)]
    assert windows.on_watermark(5000) == []


def test_watermark_never_goes_back() -> None:
    windows = TumblingWindows(1000)
    windows.on_watermark(500)
    windows.on_watermark(100)
    assert windows.watermark_ms == 500


def test_late_event_beyond_lateness_dropped() -> None:
    windows = TumblingWindows(1000, allowed_lateness_ms=0)
    windows.on_event(Event("a", 1, 100))
    windows.on_watermark(999)
    assert windows.on_event(Event("a", 1, 200)) == []
    assert windows.late_dropped == 1
    assert windows.stats()["open_windows"] == 0


def test_late_event_within_lateness_updates() -> None:
    windows = TumblingWindows(1000, allowed_lateness_ms=500)
    windows.on_event(Event("a", 1, 100))
    assert windows.on_watermark(1200) == [WindowResult("a", 0, 1000, 1, 1)]
    assert windows.on_event(Event("a", 4, 200)) == [WindowResult("a", 0, 1000, 2, 5)]
    assert windows.on_event(Event("b", 3, 300)) == [WindowResult("b", 0, 1000, 1, 3)]
    windows.on_watermark(1499)
    assert windows.on_event(Event("a", 1, 300)) == []
    assert windows.late_dropped == 1


def test_results_ordered_by_window_then_key() -> None:
    windows = TumblingWindows(10)
    for event in [Event("b", 1, 15), Event("a", 1, 15), Event("c", 1, 5)]:
        windows.on_event(event)
    results = windows.on_watermark(END_OF_STREAM_MS)
    assert [(r.window_start_ms, r.key) for r in results] == [(0, "c"), (10, "a"), (10, "b")]


def test_invalid_sizes_rejected() -> None:
    with pytest.raises(ValueError):
        TumblingWindows(0)
    with pytest.raises(ValueError):
        TumblingWindows(10, allowed_lateness_ms=-1)
    with pytest.raises(ValueError):
        BoundedOutOfOrderness(-1)


@pytest.mark.parametrize("seed", range(20))
def test_bounded_disorder_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    bound_ms = 300
    events = [
        Event(f"k{rng.randrange(4)}", rng.randrange(100), 50 * i + rng.randrange(bound_ms))
        for i in range(200)
    ]
    run = aggregate(events, 1000, out_of_orderness_ms=bound_ms)
    assert run.late_dropped == 0
    assert run.events == 200
    assert len(run.results) == len(set(run.results))  # each window emitted once
    assert set(run.results) == brute_force(events, 1000)


def test_aggregate_counts_late_events() -> None:
    events = [Event("a", 1, 100), Event("a", 1, 2500), Event("a", 1, 150), Event("a", 1, 2600)]
    run = aggregate(events, 1000, out_of_orderness_ms=100)
    assert run.late_dropped == 1
    assert run.results == (
        WindowResult("a", 0, 1000, 1, 1),
        WindowResult("a", 2000, 3000, 2, 2),
    )


def test_files_round_trip(tmp_path: Path) -> None:
    events = [Event(f"k{i % 3}", i, 10 * i) for i in range(10)]
    paths = write_events(events, tmp_path, files=3)
    names = [path.name for path in paths]
    assert names == ["part-0000.jsonl", "part-0001.jsonl", "part-0002.jsonl"]
    assert read_events(tmp_path) == events


def test_read_events_reports_bad_line(tmp_path: Path) -> None:
    (tmp_path / "part-0000.jsonl").write_text('{"key": "a", "value": 1}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 1"):
        read_events(tmp_path)


def test_events_from_broker() -> None:
    events = [Event("a", 1, 100), Event("b", 2, 200)]
    with BrokerServer(None, durability="memory") as server:
        with Admin(port=server.port) as admin:
            admin.create_topic("readings", partitions=1)
        with Producer(port=server.port) as producer:
            for event in events:
                body = json.dumps(event_to_json(event)).encode()
                producer.send("readings", body, key=event.key.encode())
        with Consumer(port=server.port, group="windows", topics=["readings"]) as consumer:
            deliveries = []
            for _ in range(20):
                deliveries.extend(consumer.poll(timeout_s=1.0))
                if len(deliveries) >= len(events):
                    break
            consumer.ack(*deliveries)
    assert events_from_deliveries(deliveries) == events
