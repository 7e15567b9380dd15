"""Starts dealing again at the first member for each topic, so the first members get too many."""

# TopicPartition comes from the lab's first code cell.
# ruff: noqa: F821


# Exercise partition-assignment: deal the partitions to the members round-robin
def assign(members: list[str], partitions: list[TopicPartition]) -> dict[str, list[TopicPartition]]:
    ordered = sorted(members)
    result: dict[str, list[TopicPartition]] = {member: [] for member in ordered}
    for topic in sorted({tp.topic for tp in partitions}):
        numbers = sorted(tp.partition for tp in partitions if tp.topic == topic)
        for index, number in enumerate(numbers):
            result[ordered[index % len(ordered)]].append(TopicPartition(topic, number))
    return result
