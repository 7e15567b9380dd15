"""Ignores max_attempts, so an unreachable receiver makes it resend forever and never give up."""

# Receiver, Node, Data and Ack come from the lab's first code cell.
# ruff: noqa: F821


# Exercise at-least-once-sender: resend each message until acknowledged, at most max_attempts times
class MySender(Node):
    """Send every payload, and resend each one until acknowledged, at most max_attempts times."""

    def __init__(
        self, node_id: str, dest: str, payloads: list[str], *, retry_s: float, max_attempts: int
    ) -> None:
        super().__init__(node_id)
        self.dest = dest
        self.payloads = list(payloads)
        self.retry_s = retry_s
        self.max_attempts = max_attempts
        self.acked: set[int] = set()  # seqs the receiver acknowledged
        self.attempts: dict[int, int] = {}  # seq -> how many times it was sent
        self.gave_up: set[int] = set()  # seqs sent max_attempts times without an Ack

    def on_start(self) -> None:
        for seq, payload in enumerate(self.payloads):
            self.attempts[seq] = 1
            self.send(self.dest, Data(seq, payload))
        self.set_timer(self.retry_s, "retry")

    def on_Ack(self, sender: str, message: Ack) -> None:
        self.acked.add(message.seq)

    def on_timer_retry(self) -> None:
        pending = [seq for seq in range(len(self.payloads)) if seq not in self.acked]
        for seq in pending:
            self.attempts[seq] += 1
            self.send(self.dest, Data(seq, self.payloads[seq]))
        if pending:
            self.set_timer(self.retry_s, "retry")
