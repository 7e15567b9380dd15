"""Subtracts the committed offset even when it is OFFSET_INVALID (-1001), so a partition the
group never committed reports a lag about 1001 too large."""

# Exercise consumer-lag: compute each partition's lag from watermarks and committed offsets
def lag_per_partition(consumer, topic: str) -> dict[int, int]:
    metadata = consumer.list_topics(topic=topic, timeout=REQUEST_TIMEOUT_S)
    partitions = [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
    lag = {}
    for entry in consumer.committed(partitions, timeout=REQUEST_TIMEOUT_S):
        _, high = consumer.get_watermark_offsets(entry, timeout=REQUEST_TIMEOUT_S, cached=False)
        lag[entry.partition] = high - entry.offset
    return lag
