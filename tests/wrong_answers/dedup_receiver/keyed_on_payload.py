"""Remembers payloads, not ids, so a second message with an equal payload is never processed."""

# Receiver, Node, Data and Ack come from the lab's first code cell.
# ruff: noqa: F821


# Exercise dedup-receiver: process each message id once and acknowledge every copy
class MyDedupReceiver(Receiver):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.seen: set[str] = set()

    def on_Data(self, sender: str, message: Data) -> None:
        if message.payload not in self.seen:
            self.seen.add(message.payload)
            self.process(sender, message)
        self.send(sender, Ack(message.seq))
