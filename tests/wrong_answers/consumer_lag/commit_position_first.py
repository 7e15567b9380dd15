"""Commits before measuring, to "refresh" the offsets, which moves the group's committed offsets
and so changes the lag it is meant to measure."""

# Exercise consumer-lag: compute each partition's lag from watermarks and committed offsets
def lag_per_partition(consumer, topic: str) -> dict[int, int]:
    metadata = consumer.list_topics(topic=topic, timeout=REQUEST_TIMEOUT_S)
    partitions = [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
    highs = {}
    for tp in partitions:
        _, high = consumer.get_watermark_offsets(tp, timeout=REQUEST_TIMEOUT_S, cached=False)
        highs[tp.partition] = high
    consumer.commit(
        offsets=[TopicPartition(topic, p, high) for p, high in highs.items()], asynchronous=False
    )
    return {entry.partition: highs[entry.partition] - entry.offset
            for entry in consumer.committed(partitions, timeout=REQUEST_TIMEOUT_S)}
