"""Commits the offset of the processed message instead of offset + 1, so after a restart the
last processed message of each partition is delivered and processed again."""

# Exercise commit-after-processing: process each message, then commit its offset
def consumer_settings() -> dict[str, object]:
    return {"enable.auto.commit": False, "auto.offset.reset": "earliest"}


def consume_batch(consumer, process, max_messages: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    processed = 0
    while processed < max_messages and time.monotonic() < deadline:
        message = consumer.poll(max(0.0, deadline - time.monotonic()))
        if message is None or message.error() is not None:
            continue
        process(message)
        position = TopicPartition(message.topic(), message.partition(), message.offset())
        consumer.commit(offsets=[position], asynchronous=False)
        processed += 1
    return processed
