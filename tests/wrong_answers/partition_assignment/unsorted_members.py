"""Deals to the members in the order given, so consumers listing the group differently disagree."""

# TopicPartition comes from the lab's first code cell.
# ruff: noqa: F821


# Exercise partition-assignment: deal the partitions to the members round-robin
def assign(members: list[str], partitions: list[TopicPartition]) -> dict[str, list[TopicPartition]]:
    result: dict[str, list[TopicPartition]] = {member: [] for member in members}
    for index, tp in enumerate(sorted(partitions)):
        result[members[index % len(members)]].append(tp)
    return result
