"""Sorts the members but deals the partitions in the order given, so input order changes it."""

# TopicPartition comes from the lab's first code cell.
# ruff: noqa: F821


# Exercise partition-assignment: deal the partitions to the members round-robin
def assign(members: list[str], partitions: list[TopicPartition]) -> dict[str, list[TopicPartition]]:
    ordered = sorted(members)
    result: dict[str, list[TopicPartition]] = {member: [] for member in ordered}
    for index, tp in enumerate(partitions):
        result[ordered[index % len(ordered)]].append(tp)
    return result
