"""Leaves out partitions where the group has committed nothing, so a group that has never
consumed a partition looks as if it had no lag there."""

# Exercise consumer-lag: compute each partition's lag from watermarks and committed offsets
def lag_per_partition(consumer, topic: str) -> dict[int, int]:
    metadata = consumer.list_topics(topic=topic, timeout=REQUEST_TIMEOUT_S)
    partitions = [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
    lag = {}
    for entry in consumer.committed(partitions, timeout=REQUEST_TIMEOUT_S):
        if entry.offset == OFFSET_INVALID:
            continue
        _, high = consumer.get_watermark_offsets(entry, timeout=REQUEST_TIMEOUT_S, cached=False)
        lag[entry.partition] = high - entry.offset
    return lag
