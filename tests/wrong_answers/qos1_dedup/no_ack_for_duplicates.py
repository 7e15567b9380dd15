"""Acknowledges only the first copy, so a device whose PUBACK was lost resends until it gives up."""

# SimSubscriber, Publish, Puback and parse_reading come from the lab's first code cell.
# ruff: noqa: F821


# Exercise qos1-dedup: accept each QoS 1 reading once and acknowledge every copy
class DedupSubscriber(SimSubscriber):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.seen: set[tuple[str, int]] = set()

    def on_Publish(self, sender: str, message: Publish) -> None:
        reading = parse_reading(message.payload)
        reading_id = (reading["device"], reading["seq"])
        if reading_id in self.seen:
            return
        self.seen.add(reading_id)
        self.accept(reading)
        if message.qos == 1:
            self.send(sender, Puback(message.packet_id))
