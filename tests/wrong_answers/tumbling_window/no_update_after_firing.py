"""Add a late event within the allowed lateness but never re-emit the fired window."""

from msgpass.windowing import Event, WindowResult


class MyTumblingWindows:
    """A keyed count and sum over tumbling event-time windows with allowed lateness."""

    def __init__(self, size_ms: int, allowed_lateness_ms: int = 0) -> None:
        self.size_ms = size_ms
        self.allowed_lateness_ms = allowed_lateness_ms
        self.watermark_ms = None
        self.late_dropped = 0
        self.state = {}
        self.fired = set()

    def window_start(self, timestamp_ms: int) -> int:
        return timestamp_ms - timestamp_ms % self.size_ms

    def on_event(self, event: Event) -> list[WindowResult]:
        start = self.window_start(event.timestamp_ms)
        last_ms = start + self.size_ms - 1
        cleanup_ms = last_ms + self.allowed_lateness_ms
        if self.watermark_ms is not None and cleanup_ms <= self.watermark_ms:
            self.late_dropped += 1
            return []
        slot = (event.key, start)
        counts = self.state.setdefault(slot, [0, 0])
        counts[0] += 1
        counts[1] += event.value
        return []

    def on_watermark(self, watermark_ms: int) -> list[WindowResult]:
        if self.watermark_ms is not None and watermark_ms <= self.watermark_ms:
            return []
        self.watermark_ms = watermark_ms
        results = []
        for slot in sorted(self.state, key=lambda s: (s[1], s[0])):
            key, start = slot
            if slot not in self.fired and start + self.size_ms - 1 <= watermark_ms:
                self.fired.add(slot)
                count, total = self.state[slot]
                results.append(WindowResult(key, start, start + self.size_ms, count, total))
        for slot in list(self.state):
            if slot[1] + self.size_ms - 1 + self.allowed_lateness_ms <= watermark_ms:
                del self.state[slot]
                self.fired.discard(slot)
        return results
