"""Leaves enable.auto.commit at its default (true), so librdkafka commits messages poll() returned
even when their processing failed or never finished."""

# Exercise commit-after-processing: process each message, then commit its offset
def consumer_settings() -> dict[str, object]:
    return {"auto.offset.reset": "earliest"}


def consume_batch(consumer, process, max_messages: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    processed = 0
    while processed < max_messages and time.monotonic() < deadline:
        message = consumer.poll(max(0.0, deadline - time.monotonic()))
        if message is None or message.error() is not None:
            continue
        process(message)
        consumer.commit(message=message, asynchronous=False)
        processed += 1
    return processed
