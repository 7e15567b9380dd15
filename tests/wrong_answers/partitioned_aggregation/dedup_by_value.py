"""Treats records with the same text as duplicates, so repeated lines are counted once."""

# Counter and words come from the lab's first code cell.
# ruff: noqa: F821


# Exercise partitioned-aggregation: count each partition's records once, then merge the counts
class PartitionCounter:
    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.seen_values: set[bytes] = set()

    def apply(self, offset: int, value: bytes) -> None:
        if value in self.seen_values:
            return
        self.seen_values.add(value)
        self.counts.update(words(value))


def merge_counts(counters: list[PartitionCounter]) -> Counter:
    total: Counter = Counter()
    for counter in counters:
        total.update(counter.counts)
    return total
