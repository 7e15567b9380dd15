"""Commits offset + 2, one past the next message, so a restart skips a message never processed."""

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
        position = TopicPartition(message.topic(), message.partition(), message.offset() + 2)
        consumer.commit(offsets=[position], asynchronous=False)
        processed += 1
    return processed
