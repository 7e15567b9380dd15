"""Never resend: the timer handler does nothing, so one lost Data or Ack stalls the transfer."""

from msgpass.node import Node, TimerHandle
from msgpass.reliable import Ack, Data


class MyStopAndWaitSender(Node):
    """Send items one at a time, resending the one in flight until its Ack arrives."""

    def __init__(self, node_id: str, peer: str, items: list[str], timeout_s: float) -> None:
        super().__init__(node_id)
        self.peer = peer
        self.items = list(items)
        self.timeout_s = timeout_s
        self.seq = 0
        self.timer: TimerHandle | None = None

    def send_current(self) -> None:
        if self.seq < len(self.items):
            self.send(self.peer, Data(self.seq, self.items[self.seq]))
            self.timer = self.set_timer(self.timeout_s, "retransmit")

    def on_start(self) -> None:
        self.send_current()

    def on_Ack(self, sender: str, message: Ack) -> None:
        if message.seq != self.seq:
            return
        if self.timer is not None:
            self.cancel_timer(self.timer)
            self.timer = None
        self.seq += 1
        self.send_current()

    def on_timer_retransmit(self) -> None:
        self.timer = None
