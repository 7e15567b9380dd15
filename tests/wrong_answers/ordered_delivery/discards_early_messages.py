"""Acknowledges but throws away a message that arrives before its turn, so it is never processed."""

# Receiver, Node, Data and Ack come from the lab's first code cell.
# ruff: noqa: F821


# Exercise ordered-delivery: process each sender's messages in seq order, without gaps or repeats
class MyOrderedReceiver(Receiver):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.next_seq: dict[str, int] = {}

    def on_Data(self, sender: str, message: Data) -> None:
        expected = self.next_seq.get(sender, 0)
        if message.seq == expected:
            self.process(sender, message)
            self.next_seq[sender] = expected + 1
        self.send(sender, Ack(message.seq))
