"""Keeps the next expected seq and the buffer on the class, so every receiver shares them."""

# Receiver, Node, Data and Ack come from the lab's first code cell.
# ruff: noqa: F821


# Exercise ordered-delivery: process each sender's messages in seq order, without gaps or repeats
class MyOrderedReceiver(Receiver):
    next_seq: dict[str, int] = {}  # one dict for the class, not one per receiver
    buffer: dict[str, dict[int, Data]] = {}

    def on_Data(self, sender: str, message: Data) -> None:
        expected = self.next_seq.get(sender, 0)
        waiting = self.buffer.setdefault(sender, {})
        if message.seq >= expected:
            waiting[message.seq] = message
        while expected in waiting:
            self.process(sender, waiting.pop(expected))
            expected += 1
        self.next_seq[sender] = expected
        self.send(sender, Ack(message.seq))
