"""Records ids but processes every copy anyway: the check comes after process()."""

# Receiver, Node, Data and Ack come from the lab's first code cell.
# ruff: noqa: F821


# Exercise dedup-receiver: process each message id once and acknowledge every copy
class MyDedupReceiver(Receiver):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.seen: set[tuple[str, int]] = set()

    def on_Data(self, sender: str, message: Data) -> None:
        self.process(sender, message)
        self.seen.add((sender, message.seq))
        self.send(sender, Ack(message.seq))
