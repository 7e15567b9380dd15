"""The node API on the simulator: dispatch, timers, seeds, logging and errors."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import pytest

from msgpass.errors import MissingHandler, SimulationError
from msgpass.node import Node, NodeRandom, TimerHandle, message_size_bytes, message_type_name
from msgpass.sim import Constant, LinkConfig, Simulation


@dataclass(frozen=True)
class Ping:
    seq: int


@dataclass(frozen=True)
class Pong:
    seq: int


class Pinger(Node):
    """The example from the node module's docstring, with a retry timer."""

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.pongs: list[int] = []
        self.retries = 0
        self.retry: TimerHandle | None = None

    def on_start(self) -> None:
        self.send("b", Ping(seq=1))
        self.retry = self.set_timer(0.5, "retry")

    def on_Pong(self, sender: str, message: Pong) -> None:
        self.pongs.append(message.seq)
        if self.retry is not None:
            self.cancel_timer(self.retry)

    def on_timer_retry(self) -> None:
        self.retries += 1


class Ponger(Node):
    def on_Ping(self, sender: str, message: Ping) -> None:
        self.send(sender, Pong(seq=message.seq))


def test_ping_pong_dispatch_and_cancel() -> None:
    sim = Simulation(default_link=LinkConfig(latency=Constant(0.1)))
    pinger = sim.add_node(Pinger("a"))
    sim.add_node(Ponger("b"))
    stats = sim.run()

    assert pinger.pongs == [1]
    assert pinger.retries == 0
    assert stats.timers_fired == 0
    assert stats.now_s == pytest.approx(0.2)


def test_timer_fires_when_reply_lost() -> None:
    sim = Simulation(default_link=LinkConfig(loss=1.0))
    pinger = sim.add_node(Pinger("a"))
    sim.add_node(Ponger("b"))
    sim.run()

    assert pinger.retries == 1
    assert pinger.pongs == []


def test_generic_on_timer_receives_name() -> None:
    class Generic(Node):
        def __init__(self, node_id: str) -> None:
            super().__init__(node_id)
            self.fired: list[str] = []

        def on_start(self) -> None:
            self.set_timer(2.0, "second")
            self.set_timer(1.0, "first")

        def on_timer(self, name: str) -> None:
            self.fired.append(name)

    sim = Simulation()
    node = sim.add_node(Generic("g"))
    sim.run()

    assert node.fired == ["first", "second"]


def test_missing_message_handler_message() -> None:
    sim = Simulation()
    sim.add_node(Pinger("a"))
    sim.add_node(Node("b"))
    with pytest.raises(MissingHandler) as caught:
        sim.run()

    text = str(caught.value)
    assert "'b'" in text
    assert "Ping" in text
    assert "on_Ping(self, sender, message)" in text


def test_missing_timer_handler_message() -> None:
    class Forgetful(Node):
        def on_start(self) -> None:
            self.set_timer(1.0, "heartbeat")

    sim = Simulation()
    sim.add_node(Forgetful("f"))
    with pytest.raises(MissingHandler, match=r"on_timer_heartbeat\(self\) or on_timer"):
        sim.run()


def test_unattached_node_send_explains() -> None:
    with pytest.raises(SimulationError, match="not attached"):
        Node("lonely").send("b", Ping(1))


def test_node_random_replays_per_seed() -> None:
    def draws(seed: int) -> list[float]:
        sim = Simulation(seed=seed)
        node = sim.add_node(Node("n"))
        return [node.random.random() for _ in range(3)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)


def test_node_random_independent_of_add_order() -> None:
    first = Simulation(seed=3)
    first.add_node(Node("x"))
    y_first = first.add_node(Node("y"))
    second = Simulation(seed=3)
    y_second = second.add_node(Node("y"))

    assert y_first.random.random() == y_second.random.random()


def test_deep_copied_node_continues_random_sequence() -> None:
    sim = Simulation(seed=4)
    node = sim.add_node(Node("n"))
    node.random.random()
    node.random.gauss(0.0, 1.0)  # leaves a cached second value in gauss_next
    copied = copy.deepcopy(node)

    assert type(copied.random) is NodeRandom
    assert copied.random is not node.random
    assert copied.random.getstate() == node.random.getstate()
    assert [copied.random.gauss(0.0, 1.0) for _ in range(3)] == [
        node.random.gauss(0.0, 1.0) for _ in range(3)
    ]
    assert [copied.random.random() for _ in range(5)] == [node.random.random() for _ in range(5)]


def test_node_random_copy_keeps_shared_references() -> None:
    node = Node("n")
    node.backup = node.random  # type: ignore[attr-defined]
    copied = copy.deepcopy(node)

    assert copied.backup is copied.random  # type: ignore[attr-defined]


def test_log_prefixes_time_and_node(caplog: pytest.LogCaptureFixture) -> None:
    class Talker(Node):
        def on_start(self) -> None:
            self.set_timer(1.5, "speak")

        def on_timer_speak(self) -> None:
            self.log.info("hello %s", "world")

    sim = Simulation()
    sim.add_node(Talker("t1"))
    with caplog.at_level(logging.INFO, logger="msgpass.node"):
        sim.run()

    assert "[t=1.500000 t1] hello world" in caplog.messages


def test_state_excludes_runtime_attributes() -> None:
    sim = Simulation()
    pinger = sim.add_node(Pinger("a"))

    assert set(pinger.state()) == {"pongs", "retries", "retry"}
    assert repr(pinger).startswith("Pinger('a', pongs=[]")


def test_invalid_node_id_rejected() -> None:
    with pytest.raises(ValueError, match="node id"):
        Node("")


def test_message_size_bytes_rules() -> None:
    @dataclass(frozen=True)
    class Declared:
        size_bytes: int

    @dataclass(frozen=True)
    class Opaque:
        payload: object

    assert message_size_bytes(Ping(7)) == len('{"seq": 7}')
    assert message_size_bytes(Declared(1_000_000)) == 1_000_000
    assert message_size_bytes({"a": 1}) == len('{"a": 1}')
    with pytest.raises(TypeError, match="not JSON-serializable"):
        message_size_bytes(Opaque(object()))


def test_message_type_name_is_class_name() -> None:
    assert message_type_name(Ping(1)) == "Ping"


def test_operations_count() -> None:
    node = Node("n")
    node.count_operation()
    node.count_operation(2)

    assert node.operations == 3
