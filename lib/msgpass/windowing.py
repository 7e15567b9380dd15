"""Tumbling event-time windows with watermarks, the way stream processors count.

A stream processor such as Apache Flink groups events by the time they
*happened* (event time), not by the time they arrive. Events arrive out of
order, so the processor needs to know when a window is complete. A
**watermark** is that statement: "no event older than W is expected any more".
This module implements the aggregation that lab 22 also runs on PyFlink:

- ``window_start`` assigns an event to its tumbling window
  ``[start, start + size_ms)``, aligned to the epoch as in Flink.
- ``BoundedOutOfOrderness`` generates watermarks as Flink's strategy of the
  same name does: the maximum timestamp seen so far, minus the bound, minus 1 ms.
- ``TumblingWindows`` keeps one count and one sum per key and window. It emits
  a window's result when the watermark reaches the window's last millisecond.
  An event that arrives after that, but within ``allowed_lateness_ms``,
  updates the window and emits the updated result again. An event later
  than that is dropped and counted in ``late_dropped``.
- ``aggregate`` drives a whole stream through both, and ``read_events``,
  ``write_events`` and ``events_from_deliveries`` feed it from JSON-lines
  files or from the teaching broker.

Left out on purpose: sliding and session windows, triggers other than the
event-time one, parallel operators whose watermark is the minimum over their
inputs, and checkpointed state. Flink adds all of these.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "END_OF_STREAM_MS",
    "Event",
    "WindowResult",
    "AggregationRun",
    "window_start",
    "BoundedOutOfOrderness",
    "TumblingWindows",
    "aggregate",
    "read_events",
    "write_events",
    "events_from_deliveries",
    "event_from_json",
    "event_to_json",
]

# The watermark at the end of a finite stream: every window is complete.
# Flink uses Long.MAX_VALUE for the same purpose.
END_OF_STREAM_MS = 2**63 - 1


@dataclass(frozen=True)
class Event:
    """One message of the stream: a key, an integer value and its event time."""

    key: str
    value: int
    timestamp_ms: int


@dataclass(frozen=True)
class WindowResult:
    """The count and sum of one key's events in one window ``[start, end)``."""

    key: str
    window_start_ms: int
    window_end_ms: int
    count: int
    total: int

    def to_json(self) -> dict[str, Any]:
        """Return the result as the JSON object the PyFlink job writes."""
        return {
            "key": self.key,
            "window_start_ms": self.window_start_ms,
            "window_end_ms": self.window_end_ms,
            "count": self.count,
            "total": self.total,
        }


@dataclass(frozen=True)
class AggregationRun:
    """Everything ``aggregate`` emitted, in emission order, and what it dropped."""

    results: tuple[WindowResult, ...]
    late_dropped: int
    events: int


def window_start(timestamp_ms: int, size_ms: int) -> int:
    """Return the start of the tumbling window of ``size_ms`` that contains ``timestamp_ms``.

    Windows are aligned to the epoch, so with ``size_ms=1000`` the event at
    2500 ms belongs to ``[2000, 3000)``. Negative timestamps work too, because
    ``%`` in Python rounds towards minus infinity.
    """
    return timestamp_ms - timestamp_ms % size_ms


class BoundedOutOfOrderness:
    """A watermark generator for streams whose events are at most ``bound_ms`` out of order.

    The watermark trails the maximum timestamp seen by ``bound_ms + 1``, as
    in Flink's ``WatermarkStrategy.for_bounded_out_of_orderness``: an event
    that is ``bound_ms`` older than the newest one is still on time.
    """

    def __init__(self, bound_ms: int) -> None:
        if bound_ms < 0:
            raise ValueError(f"bound_ms must be >= 0, got {bound_ms}")
        self.bound_ms = bound_ms
        self.max_timestamp_ms: int | None = None

    def on_event(self, timestamp_ms: int) -> int | None:
        """Record an event's timestamp; return the current watermark (None before any event)."""
        if self.max_timestamp_ms is None or timestamp_ms > self.max_timestamp_ms:
            self.max_timestamp_ms = timestamp_ms
        return self.current_watermark()

    def current_watermark(self) -> int | None:
        """Return the watermark, or None while no event has been seen."""
        if self.max_timestamp_ms is None:
            return None
        return self.max_timestamp_ms - self.bound_ms - 1

    def __repr__(self) -> str:
        return (
            f"BoundedOutOfOrderness(bound_ms={self.bound_ms}, "
            f"max_timestamp_ms={self.max_timestamp_ms})"
        )


class TumblingWindows:
    """A keyed count and sum over tumbling event-time windows.

    Feed events with ``on_event`` and watermarks with ``on_watermark``; both
    return the results they make final or update. A window ``[start, end)``
    fires once the watermark reaches ``end - 1``, its last millisecond. Its
    state is kept until the watermark passes ``end - 1 + allowed_lateness_ms``.
    Until then a late event updates it and re-emits it. After that a late
    event is dropped and counted in ``late_dropped``. This is the behaviour of
    Flink's default event-time trigger with ``allowed_lateness``.
    """

    def __init__(self, size_ms: int, allowed_lateness_ms: int = 0) -> None:
        if size_ms <= 0:
            raise ValueError(f"size_ms must be > 0, got {size_ms}")
        if allowed_lateness_ms < 0:
            raise ValueError(f"allowed_lateness_ms must be >= 0, got {allowed_lateness_ms}")
        self.size_ms = size_ms
        self.allowed_lateness_ms = allowed_lateness_ms
        self.watermark_ms: int | None = None
        self.late_dropped = 0
        self.emitted = 0
        # (key, window start) -> [count, total]; fired windows stay until cleanup.
        self._state: dict[tuple[str, int], list[int]] = {}
        self._fired: set[tuple[str, int]] = set()

    def window_start(self, timestamp_ms: int) -> int:
        """Return the start of the window that contains ``timestamp_ms``."""
        return window_start(timestamp_ms, self.size_ms)

    def on_event(self, event: Event) -> list[WindowResult]:
        """Add ``event`` to its window; return the updated result if that window already fired."""
        start = self.window_start(event.timestamp_ms)
        last_ms = start + self.size_ms - 1
        cleanup_ms = last_ms + self.allowed_lateness_ms
        if self.watermark_ms is not None and cleanup_ms <= self.watermark_ms:
            self.late_dropped += 1
            return []

        slot = (event.key, start)
        counts = self._state.setdefault(slot, [0, 0])
        counts[0] += 1
        counts[1] += event.value
        # A window whose last millisecond the watermark already passed fires at
        # once, whether this is its first event or an update to a fired result.
        if self.watermark_ms is not None and last_ms <= self.watermark_ms:
            self._fired.add(slot)
            return [self._result(slot)]
        return []

    def on_watermark(self, watermark_ms: int) -> list[WindowResult]:
        """Advance the watermark; return the results of every window it completes.

        A watermark that does not advance is ignored, since watermarks never go
        back. Results come out ordered by window end, then key.
        """
        if self.watermark_ms is not None and watermark_ms <= self.watermark_ms:
            return []
        self.watermark_ms = watermark_ms

        ready = [
            slot
            for slot in self._state
            if slot not in self._fired and slot[1] + self.size_ms - 1 <= watermark_ms
        ]
        ready.sort(key=lambda slot: (slot[1], slot[0]))
        results = []
        for slot in ready:
            self._fired.add(slot)
            results.append(self._result(slot))

        expired = [
            slot
            for slot in self._state
            if slot[1] + self.size_ms - 1 + self.allowed_lateness_ms <= watermark_ms
        ]
        for slot in expired:
            del self._state[slot]
            self._fired.discard(slot)
        return results

    def _result(self, slot: tuple[str, int]) -> WindowResult:
        key, start = slot
        count, total = self._state[slot]
        self.emitted += 1
        return WindowResult(key, start, start + self.size_ms, count, total)

    def stats(self) -> dict[str, int | None]:
        """Return counters for display: watermark, open windows, emitted results, late drops."""
        return {
            "watermark_ms": self.watermark_ms,
            "open_windows": len(self._state),
            "emitted": self.emitted,
            "late_dropped": self.late_dropped,
        }

    def __repr__(self) -> str:
        return (
            f"TumblingWindows(size_ms={self.size_ms}, "
            f"allowed_lateness_ms={self.allowed_lateness_ms}, "
            f"watermark_ms={self.watermark_ms}, open_windows={len(self._state)}, "
            f"late_dropped={self.late_dropped})"
        )


def aggregate(
    events: Iterable[Event],
    size_ms: int,
    *,
    out_of_orderness_ms: int = 0,
    allowed_lateness_ms: int = 0,
) -> AggregationRun:
    """Count and sum ``events`` per key in tumbling windows, in arrival order.

    The watermark advances after every event, from ``BoundedOutOfOrderness``,
    and jumps to ``END_OF_STREAM_MS`` at the end, so every window fires.

    NOTE: Flink emits bounded-out-of-orderness watermarks periodically (every
    200 ms of processing time by default), not after every event. Which events
    count as late in Flink therefore depends on timing. Both agree exactly when
    no event is more than ``out_of_orderness_ms`` out of order.
    """
    windows = TumblingWindows(size_ms, allowed_lateness_ms)
    generator = BoundedOutOfOrderness(out_of_orderness_ms)
    results: list[WindowResult] = []
    count = 0
    for event in events:
        count += 1
        results.extend(windows.on_event(event))
        watermark = generator.on_event(event.timestamp_ms)
        if watermark is not None:
            results.extend(windows.on_watermark(watermark))
    results.extend(windows.on_watermark(END_OF_STREAM_MS))
    return AggregationRun(tuple(results), windows.late_dropped, count)


def event_from_json(line: str) -> Event:
    """Parse one JSON line ``{"key": ..., "value": ..., "timestamp_ms": ...}`` into an ``Event``."""
    record = json.loads(line)
    return Event(str(record["key"]), int(record["value"]), int(record["timestamp_ms"]))


def event_to_json(event: Event) -> dict[str, Any]:
    """Return ``event`` as the JSON object of one line of an event file."""
    return {"key": event.key, "value": event.value, "timestamp_ms": event.timestamp_ms}


def read_events(directory: str | Path) -> list[Event]:
    """Read every ``*.jsonl`` file in ``directory``, in file-name order, line by line.

    Blank lines are skipped. A line that is not a valid event raises
    ``ValueError`` naming the file and line.
    """
    events = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        with path.open(encoding="utf-8") as file:
            for number, line in enumerate(file, start=1):
                if not line.strip():
                    continue
                try:
                    events.append(event_from_json(line))
                except (ValueError, KeyError, TypeError) as error:
                    raise ValueError(f"{path}, line {number}: invalid event: {error}") from error
    return events


def write_events(events: Iterable[Event], directory: str | Path, *, files: int = 1) -> list[Path]:
    """Write ``events`` as JSON lines to ``files`` files ``part-0000.jsonl``, ... in ``directory``.

    The events are split into consecutive chunks, so reading the files back in
    name order gives the same sequence. Returns the paths written.
    """
    if files < 1:
        raise ValueError(f"files must be >= 1, got {files}")
    all_events = list(events)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    chunk = max(1, -(-len(all_events) // files))  # ceiling division
    paths = []
    for index in range(files):
        path = folder / f"part-{index:04d}.jsonl"
        with path.open("w", encoding="utf-8") as file:
            for event in all_events[index * chunk : (index + 1) * chunk]:
                file.write(json.dumps(event_to_json(event)) + "\n")
        paths.append(path)
    return paths


def events_from_deliveries(deliveries: Iterable[Any]) -> list[Event]:
    """Turn teaching-broker deliveries whose values are JSON events into ``Event`` objects.

    Each delivery's ``value`` contains the same JSON object as a line of the
    files. The event time is the one inside the JSON, not the broker's
    ``timestamp_ms``, which is the time the broker appended the record.
    """
    return [event_from_json(delivery.value.decode("utf-8")) for delivery in deliveries]
