"""Acknowledges only the first copy, so a sender whose first Ack was lost retries and gives up."""

# Receiver, Node, Data and Ack come from the lab's first code cell.
# ruff: noqa: F821


# Exercise dedup-receiver: process each message id once and acknowledge every copy
class MyDedupReceiver(Receiver):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.seen: set[tuple[str, int]] = set()

    def on_Data(self, sender: str, message: Data) -> None:
        key = (sender, message.seq)
        if key in self.seen:
            return  # a duplicate: ignored, and not acknowledged either
        self.seen.add(key)
        self.process(sender, message)
        self.send(sender, Ack(message.seq))
