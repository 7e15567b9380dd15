"""Remembers seq alone, so message 0 of a second sender looks like a duplicate of the first's."""

# Receiver, Node, Data and Ack come from the lab's first code cell.
# ruff: noqa: F821


# Exercise dedup-receiver: process each message id once and acknowledge every copy
class MyDedupReceiver(Receiver):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.seen: set[int] = set()

    def on_Data(self, sender: str, message: Data) -> None:
        if message.seq not in self.seen:
            self.seen.add(message.seq)
            self.process(sender, message)
        self.send(sender, Ack(message.seq))
