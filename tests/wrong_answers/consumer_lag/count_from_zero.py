"""Counts the lag of a partition without a committed offset from offset 0 instead of the low
watermark, so it counts records that retention has already deleted."""

# Exercise consumer-lag: compute each partition's lag from watermarks and committed offsets
def lag_per_partition(consumer, topic: str) -> dict[int, int]:
    metadata = consumer.list_topics(topic=topic, timeout=REQUEST_TIMEOUT_S)
    partitions = [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
    lag = {}
    for entry in consumer.committed(partitions, timeout=REQUEST_TIMEOUT_S):
        _, high = consumer.get_watermark_offsets(entry, timeout=REQUEST_TIMEOUT_S, cached=False)
        lag[entry.partition] = high - max(entry.offset, 0)
    return lag
