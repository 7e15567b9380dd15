"""Accepts every copy, so a QoS 1 resend or a duplicated packet is accepted twice."""

# SimSubscriber, Publish, Puback and parse_reading come from the lab's first code cell.
# ruff: noqa: F821


# Exercise qos1-dedup: accept each QoS 1 reading once and acknowledge every copy
class DedupSubscriber(SimSubscriber):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)

    def on_Publish(self, sender: str, message: Publish) -> None:
        self.accept(parse_reading(message.payload))
        if message.qos == 1:
            self.send(sender, Puback(message.packet_id))
