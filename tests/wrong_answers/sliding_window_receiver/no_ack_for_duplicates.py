"""Ignore duplicates without acknowledging them, so a lost Ack is resent for ever."""

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
        if seq < self.next_expected or seq in self.buffer:
            return
        self.buffer[seq] = message.payload
        while self.next_expected in self.buffer:
            self.delivered.append(self.buffer.pop(self.next_expected))
            self.next_expected += 1
        self.send(sender, Ack(seq, self.next_expected))
