"""Deduplicates by (client, packet id), but a device reuses a packet id once it is acknowledged."""

# SimSubscriber, Publish, Puback and parse_reading come from the lab's first code cell.
# ruff: noqa: F821


# Exercise qos1-dedup: accept each QoS 1 reading once and acknowledge every copy
class DedupSubscriber(SimSubscriber):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.seen: set[tuple[str, int]] = set()

    def on_Publish(self, sender: str, message: Publish) -> None:
        packet = (sender, message.packet_id)
        if packet not in self.seen:
            self.seen.add(packet)
            self.accept(parse_reading(message.payload))
        if message.qos == 1:
            self.send(sender, Puback(message.packet_id))
