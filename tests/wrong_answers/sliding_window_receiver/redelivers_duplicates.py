"""Buffer every arrival, even one already delivered, so a duplicate is delivered twice."""

from msgpass.node import Node
from msgpass.reliable import Ack, Data


class MySlidingWindowReceiver(Node):
    """Deliver items in order, exactly once, buffering early arrivals within the window."""

    def __init__(self, node_id: str, window: int) -> None:
        super().__init__(node_id)
        self.window = window
        self.next_expected = 0
        self.buffer: dict[int, str] = {}
        self.delivered: list[str] = []

    def on_Data(self, sender: str, message: Data) -> None:
        seq = message.seq
        if seq >= self.next_expected + self.window:
            return
        self.buffer[seq] = message.payload
        while self.buffer:
            lowest = min(self.buffer)
            if lowest > self.next_expected:
                break
            self.delivered.append(self.buffer.pop(lowest))
            self.next_expected = max(self.next_expected, lowest + 1)
        self.send(sender, Ack(seq, self.next_expected))
