"""Ignores copies of processed messages without an Ack, so a lost Ack is never replaced."""

# Receiver, Node, Data and Ack come from the lab's first code cell.
# ruff: noqa: F821


# Exercise ordered-delivery: process each sender's messages in seq order, without gaps or repeats
class MyOrderedReceiver(Receiver):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.next_seq: dict[str, int] = {}
        self.buffer: dict[str, dict[int, Data]] = {}

    def on_Data(self, sender: str, message: Data) -> None:
        expected = self.next_seq.get(sender, 0)
        if message.seq < expected:
            return  # already processed
        waiting = self.buffer.setdefault(sender, {})
        waiting[message.seq] = message
        while expected in waiting:
            self.process(sender, waiting.pop(expected))
            expected += 1
        self.next_seq[sender] = expected
        self.send(sender, Ack(message.seq))
