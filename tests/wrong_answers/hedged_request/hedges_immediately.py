"""Sends both copies at once instead of at the hedge delay, doubling the load."""

from msgpass.exercises.tail_checks import Request
from msgpass.node import Node


# Exercise hedged-request: hedge a slow request to a second replica and keep the first reply
class HedgingClient(Node):
    """Send requests 0, 1, 2, ... one after another, hedging each one that is slow to reply."""

    def __init__(self, node_id, replicas, hedge_delay_s, request_count):
        super().__init__(node_id)
        self.replicas = list(replicas)  # node ids of the replicas, at least two
        self.hedge_delay_s = hedge_delay_s
        self.request_count = request_count
        self.results = {}  # request_id -> value, filled by complete()
        self.replied = set()  # ids of the requests that got their first reply
        self.hedge_timers = {}  # request_id -> TimerHandle of its hedge timer

    def on_start(self):
        self.start_request(0)

    def complete(self, request_id, value):
        """Record the result of `request_id` and start the next request. Call it once each."""
        self.results[request_id] = value
        self.count_operation()
        if request_id + 1 < self.request_count:
            self.start_request(request_id + 1)

    def start_request(self, request_id):
        """Send `request_id` to one replica and arm its hedge timer."""
        primary = self.replicas[request_id % len(self.replicas)]
        self.send(primary, Request(request_id=request_id))
        backup = self.replicas[(request_id + 1) % len(self.replicas)]
        self.send(backup, Request(request_id=request_id))
        self.hedge_timers[request_id] = self.set_timer(self.hedge_delay_s, f"hedge-{request_id}")

    def on_timer(self, name):
        """Send the hedge of the request named in `name`, to a different replica."""
        request_id = int(name.removeprefix("hedge-"))
        self.hedge_timers.pop(request_id, None)
        if request_id in self.replied:
            return  # a reply came before the delay, so no hedge

    def on_Reply(self, sender, message):
        """Complete the request with its first reply and ignore any later one."""
        if message.request_id in self.replied:
            return  # the slower copy's reply: the request is already complete
        self.replied.add(message.request_id)
        timer = self.hedge_timers.pop(message.request_id, None)
        if timer is not None:
            self.cancel_timer(timer)
        self.complete(message.request_id, message.value)
