"""The explorer: shortest violating paths, exhaustion of correct protocols, bounds."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from msgpass.errors import MissingHandler
from msgpass.explore import explore
from msgpass.node import Node
from msgpass.sim import Simulation
from msgpass.trace_events import Deliver, Duplicate, Send


@dataclass(frozen=True)
class Increment:
    request_id: int


@dataclass(frozen=True)
class Ack:
    request_id: int


class Client(Node):
    """Sends one Increment per request id at start and records the acks."""

    def __init__(self, node_id: str, requests: int) -> None:
        super().__init__(node_id)
        self.requests = requests
        self.acked: set[int] = set()

    def on_start(self) -> None:
        for request_id in range(self.requests):
            self.send("server", Increment(request_id))

    def on_Ack(self, sender: str, message: Ack) -> None:
        self.acked.add(message.request_id)


class NaiveCounter(Node):
    """Counts every Increment it receives: a duplicate is counted twice."""

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.count = 0

    def on_Increment(self, sender: str, message: Increment) -> None:
        self.count += 1
        self.send(sender, Ack(message.request_id))


class DedupCounter(NaiveCounter):
    """Counts each request id at most once, and acks every copy."""

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.seen: set[int] = set()

    def on_Increment(self, sender: str, message: Increment) -> None:
        if message.request_id not in self.seen:
            self.seen.add(message.request_id)
            self.count += 1
        self.send(sender, Ack(message.request_id))


def at_most_once(nodes: dict[str, Node]) -> bool:
    client = nodes["client"]
    server = nodes["server"]
    assert isinstance(client, Client) and isinstance(server, NaiveCounter)
    return server.count <= client.requests


def all_acked(nodes: dict[str, Node]) -> bool:
    client = nodes["client"]
    assert isinstance(client, Client)
    return client.acked == set(range(client.requests))


def test_naive_counter_shortest_violation() -> None:
    result = explore(
        lambda: [Client("client", 1), NaiveCounter("server")],
        invariant=at_most_once,
        max_depth=10,
        allow_duplicates=1,
    )

    assert not result.ok
    assert result.violation_kind == "invariant"
    assert result.steps is not None
    # Duplicate the request, then deliver both copies: no shorter path exists.
    assert [step.action for step in result.steps] == ["duplicate", "deliver", "deliver"]
    assert all(step.message == Increment(0) for step in result.steps)


def test_violation_trace_records_path() -> None:
    result = explore(
        lambda: [Client("client", 1), NaiveCounter("server")],
        invariant=at_most_once,
        max_depth=10,
        allow_duplicates=1,
    )

    assert result.trace is not None
    assert len(result.trace.filter(Duplicate)) == 1
    assert len(result.trace.filter(Deliver)) == 2
    # One Increment from the client, and one Ack per delivered copy.
    assert [event.message_type for event in result.trace.filter(Send)] == [
        "Increment",
        "Ack",
        "Ack",
    ]
    # The explorer has no clock: times are step numbers, and both copies were sent at step 0.
    assert [event.sent_at_s for event in result.trace.filter(Deliver)] == [0.0, 0.0]
    assert [event.time_s for event in result.trace.filter(Deliver)] == [2.0, 3.0]
    assert "3 steps" in result.format()


def test_dedup_counter_exhausts_without_violation() -> None:
    result = explore(
        lambda: [Client("client", 2), DedupCounter("server")],
        invariant=at_most_once,
        goal=all_acked,
        max_depth=20,
        allow_duplicates=2,
    )

    assert result.ok, result.format()
    assert result.exhausted
    assert result.states_explored > 10
    assert "no violation found" in result.format()


def test_naive_counter_safe_without_duplicates() -> None:
    result = explore(
        lambda: [Client("client", 2), NaiveCounter("server")],
        invariant=at_most_once,
        goal=all_acked,
        max_depth=20,
    )

    assert result.ok
    assert result.exhausted


def test_goal_fails_when_message_dropped() -> None:
    result = explore(
        lambda: [Client("client", 1), DedupCounter("server")],
        invariant=at_most_once,
        goal=all_acked,
        max_depth=10,
        allow_drops=1,
    )

    assert result.violation_kind == "goal"
    assert result.steps is not None
    assert [step.action for step in result.steps] == ["drop"]


class RetryingClient(Client):
    """Re-sends unacknowledged requests when its timer fires, at most twice."""

    def __init__(self, node_id: str, requests: int) -> None:
        super().__init__(node_id, requests)
        self.attempts = 1

    def on_start(self) -> None:
        super().on_start()
        self.set_timer(1.0, "retry")

    def on_timer_retry(self) -> None:
        missing = set(range(self.requests)) - self.acked
        if not missing or self.attempts >= 3:
            return
        self.attempts += 1
        for request_id in sorted(missing):
            self.send("server", Increment(request_id))
        self.set_timer(1.0, "retry")


def test_timers_are_explored_as_choices() -> None:
    # A retry that fires before the Ack arrives duplicates the request on its own.
    result = explore(
        lambda: [RetryingClient("client", 1), NaiveCounter("server")],
        invariant=at_most_once,
        max_depth=10,
    )

    assert result.steps is not None
    actions = [step.action for step in result.steps]
    # Deliver and the timer may come in either order; both paths have 3 steps.
    assert len(actions) == 3
    assert actions.count("timer") == 1
    assert actions.count("deliver") == 2
    assert actions[-1] == "deliver"


def test_retrying_client_survives_drop_with_dedup() -> None:
    result = explore(
        lambda: [RetryingClient("client", 1), DedupCounter("server")],
        invariant=at_most_once,
        goal=all_acked,
        max_depth=30,
        allow_drops=1,
    )

    assert result.ok, result.format()
    assert result.exhausted


def test_depth_bound_reports_not_exhausted() -> None:
    result = explore(
        lambda: [Client("client", 3), DedupCounter("server")],
        invariant=at_most_once,
        max_depth=2,
    )

    assert result.ok
    assert not result.exhausted
    assert result.max_depth_reached == 2


def test_build_may_return_simulation() -> None:
    def build() -> Simulation:
        sim = Simulation(seed=5)
        sim.add_node(Client("client", 1))
        sim.add_node(NaiveCounter("server"))
        return sim

    result = explore(build, invariant=at_most_once, max_depth=5, allow_duplicates=1)

    assert result.steps is not None
    assert len(result.steps) == 3


def test_handler_exception_is_violation() -> None:
    class Fragile(NaiveCounter):
        def on_Increment(self, sender: str, message: Increment) -> None:
            super().on_Increment(sender, message)
            assert self.count < 2, "counted twice"

    result = explore(
        lambda: [Client("client", 1), Fragile("server")],
        invariant=lambda nodes: True,
        max_depth=5,
        allow_duplicates=1,
    )

    assert result.violation_kind == "exception"
    assert result.violation is not None
    assert "counted twice" in result.violation


def test_missing_handler_propagates() -> None:
    with pytest.raises(MissingHandler):
        explore(lambda: [Client("client", 1), Node("server")], invariant=lambda n: True)


def test_invalid_bounds_rejected() -> None:
    with pytest.raises(ValueError, match="max_depth=-1"):
        explore(lambda: [Node("a")], invariant=lambda n: True, max_depth=-1)


def test_state_bound_reports_not_exhausted() -> None:
    result = explore(
        lambda: [Client("client", 3), DedupCounter("server")],
        invariant=at_most_once,
        max_depth=50,
        max_states=5,
    )

    assert result.ok
    assert not result.exhausted
    assert result.states_explored == 5
    assert "NOT exhausted" in result.format()
