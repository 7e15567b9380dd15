"""Merges with dict.update, so a word found in several partitions keeps only the last count."""

# Counter and words come from the lab's first code cell.
# ruff: noqa: F821


# Exercise partitioned-aggregation: count each partition's records once, then merge the counts
class PartitionCounter:
    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.applied: set[int] = set()

    def apply(self, offset: int, value: bytes) -> None:
        if offset in self.applied:
            return
        self.applied.add(offset)
        self.counts.update(words(value))


def merge_counts(counters: list[PartitionCounter]) -> Counter:
    total: dict[str, int] = {}
    for counter in counters:
        total.update(counter.counts)
    return Counter(total)
