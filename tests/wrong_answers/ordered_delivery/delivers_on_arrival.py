"""Processes each new message on arrival, so reordered messages are processed out of order."""

# Receiver, Node, Data and Ack come from the lab's first code cell.
# ruff: noqa: F821


# Exercise ordered-delivery: process each sender's messages in seq order, without gaps or repeats
class MyOrderedReceiver(Receiver):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.seen: set[tuple[str, int]] = set()

    def on_Data(self, sender: str, message: Data) -> None:
        if (sender, message.seq) not in self.seen:
            self.seen.add((sender, message.seq))
            self.process(sender, message)
        self.send(sender, Ack(message.seq))
