"""Skips every offset below the highest one seen, so a late first delivery is never counted."""

# Counter and words come from the lab's first code cell.
# ruff: noqa: F821


# Exercise partitioned-aggregation: count each partition's records once, then merge the counts
class PartitionCounter:
    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.next_offset = 0

    def apply(self, offset: int, value: bytes) -> None:
        if offset < self.next_offset:
            return
        self.next_offset = offset + 1
        self.counts.update(words(value))


def merge_counts(counters: list[PartitionCounter]) -> Counter:
    total: Counter = Counter()
    for counter in counters:
        total.update(counter.counts)
    return total
