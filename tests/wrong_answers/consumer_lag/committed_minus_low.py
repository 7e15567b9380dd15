"""Subtracts the low watermark from the committed offset (records consumed so far) instead of
the committed offset from the high watermark (records still to consume)."""

# Exercise consumer-lag: compute each partition's lag from watermarks and committed offsets
def lag_per_partition(consumer, topic: str) -> dict[int, int]:
    metadata = consumer.list_topics(topic=topic, timeout=REQUEST_TIMEOUT_S)
    partitions = [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
    lag = {}
    for entry in consumer.committed(partitions, timeout=REQUEST_TIMEOUT_S):
        low, _ = consumer.get_watermark_offsets(entry, timeout=REQUEST_TIMEOUT_S, cached=False)
        lag[entry.partition] = 0 if entry.offset == OFFSET_INVALID else entry.offset - low
    return lag
