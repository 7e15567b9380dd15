"""RealRuntime: the same Node classes over loopback UDP, with a clean stop."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass

import psutil
import pytest

from msgpass.errors import MessagingError, MessagingTimeout, MissingHandler, ProtocolError
from msgpass.node import Node, TimerHandle
from msgpass.node_real import RealRuntime, decode_message, encode_message, run_nodes
from msgpass.sim import Simulation
from msgpass.trace_events import Deliver, Send, TimerFired, Trace
from msgpass.udp import UdpEndpoint

ROUNDS = 20
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Ping:
    seq: int


@dataclass(frozen=True)
class Pong:
    seq: int


@dataclass(frozen=True)
class Unregistered:
    value: int


class Pinger(Node):
    """Send Ping 1..ROUNDS one at a time, resending after a timeout until the Pong comes."""

    def __init__(self, node_id: str, peer: str) -> None:
        super().__init__(node_id)
        self.peer = peer
        self.next_seq = 1
        self.acked: list[int] = []
        self.done = False
        self._retry: TimerHandle | None = None

    def state(self) -> dict[str, object]:
        return {"next_seq": self.next_seq, "acked": self.acked, "done": self.done}

    def on_start(self) -> None:
        self._send_current()

    def on_Pong(self, sender: str, message: Pong) -> None:
        if message.seq != self.next_seq:
            return
        assert self._retry is not None
        self.cancel_timer(self._retry)
        self.acked.append(message.seq)
        self.count_operation()
        self.next_seq += 1
        if self.next_seq > ROUNDS:
            self.done = True
        else:
            self._send_current()

    def on_timer_retry(self) -> None:
        self._send_current()

    def _send_current(self) -> None:
        self.send(self.peer, Ping(seq=self.next_seq))
        self._retry = self.set_timer(2.0, "retry")


class Ponger(Node):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.seen: list[int] = []

    def state(self) -> dict[str, object]:
        return {"seen": sorted(set(self.seen))}

    def on_Ping(self, sender: str, message: Ping) -> None:
        self.seen.append(message.seq)
        self.send(sender, Pong(seq=message.seq))


class TimerNode(Node):
    """Arm timers "late" and "early"; "early" cancels "late" and arms "last"."""

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.fired: list[str] = []
        self._late: TimerHandle | None = None

    def on_start(self) -> None:
        self._late = self.set_timer(0.05, "late")
        self.set_timer(0.01, "early")

    def on_timer(self, name: str) -> None:
        self.fired.append(name)
        if name == "early":
            assert self._late is not None
            self.cancel_timer(self._late)
            self.set_timer(0.08, "last")


class Sink(Node):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.received: list[int] = []

    def on_Ping(self, sender: str, message: Ping) -> None:
        self.received.append(message.seq)


class BadSender(Node):
    def on_start(self) -> None:
        self.send("sink", Unregistered(value=1))


def real_threads() -> list[str]:
    names = [thread.name for thread in threading.enumerate()]
    return [name for name in names if name.startswith("msgpass-real")]


def udp_socket_count() -> int:
    return len(psutil.Process().net_connections(kind="udp"))


def test_same_nodes_same_state_on_sim_and_real() -> None:
    sim = Simulation(seed=3)
    sim_pinger = sim.add_node(Pinger("a", "b"))
    sim_ponger = sim.add_node(Ponger("b"))
    assert isinstance(sim_pinger, Pinger)
    sim.run(until=lambda: sim_pinger.done)

    real_pinger, real_ponger = Pinger("a", "b"), Ponger("b")
    stats = run_nodes(
        [real_pinger, real_ponger],
        [Ping, Pong],
        until=lambda: real_pinger.done,
        timeout_s=TIMEOUT_S,
    )

    assert real_pinger.state() == sim_pinger.state()
    assert real_ponger.state() == sim_ponger.state()
    assert real_pinger.acked == list(range(1, ROUNDS + 1))
    assert real_pinger.operations == sim_pinger.operations == ROUNDS
    assert stats["sent"] >= 2 * ROUNDS
    assert stats["handler_errors"] == 0


def test_clean_stop_leaves_nothing() -> None:
    sockets_before = udp_socket_count()
    pinger = Pinger("a", "b")
    run_nodes([pinger, Ponger("b")], [Ping, Pong], until=lambda: pinger.done, timeout_s=TIMEOUT_S)
    assert real_threads() == []
    assert udp_socket_count() == sockets_before


def test_trace_records_sends_and_deliveries() -> None:
    trace = Trace()
    pinger = Pinger("a", "b")
    run_nodes(
        [pinger, Ponger("b")], [Ping, Pong], until=lambda: pinger.done,
        timeout_s=TIMEOUT_S, trace=trace,
    )
    sends = trace.filter(Send)
    deliveries = trace.filter(Deliver)
    assert len(sends) >= 2 * ROUNDS
    assert len(deliveries) >= 2 * ROUNDS - 1
    sent_ids = {send.message_id: send for send in sends}
    for delivery in deliveries:
        send = sent_ids[delivery.message_id]
        assert (delivery.source, delivery.dest) == (send.source, send.dest)
        assert delivery.sent_at_s == send.time_s
        assert delivery.time_s >= delivery.sent_at_s
    assert sends[0].message_type == "Ping"
    assert sends[0].size_bytes > 0


def test_timer_cancel_on_real_runtime() -> None:
    node = TimerNode("t")
    trace = Trace()
    run_nodes([node], [], until=lambda: "last" in node.fired, timeout_s=TIMEOUT_S, trace=trace)
    assert node.fired == ["early", "last"]
    assert [event.name for event in trace.filter(TimerFired)] == ["early", "last"]


def test_unknown_type_logged_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink("sink")
    caplog.set_level(logging.WARNING, logger="msgpass.node_real")
    with RealRuntime([sink], [Ping]) as runtime, UdpEndpoint() as outsider:
        runtime.start()
        bogus = {"type": "Bogus", "fields": {}, "source": "x", "message_id": 1, "sent_at_s": 0.0}
        outsider.send_to(json.dumps(bogus).encode(), runtime.address_of("sink"))
        outsider.send_to(b"not json", runtime.address_of("sink"))
        runtime.wait_until(lambda: runtime.stats()["dropped_invalid"] == 2, TIMEOUT_S)

        valid = encode_message(Ping(seq=5), source="x", message_id=2, sent_at_s=0.0)
        outsider.send_to(valid, runtime.address_of("sink"))
        runtime.wait_until(lambda: sink.received == [5], TIMEOUT_S)
    assert "unknown message type 'Bogus' from 'x'" in caplog.text
    assert "not UTF-8 JSON" in caplog.text
    assert runtime.stats()["handler_errors"] == 0


def test_missing_handler_raised_by_run_nodes() -> None:
    sockets_before = udp_socket_count()
    with pytest.raises(MissingHandler, match=r"on_Ping\(self, sender, message\)"):
        run_nodes([Pinger("a", "b"), Node("b")], [Ping, Pong], duration_s=TIMEOUT_S)
    assert real_threads() == []
    assert udp_socket_count() == sockets_before


def test_unregistered_message_type_rejected() -> None:
    with pytest.raises(ValueError, match="cannot send Unregistered"):
        run_nodes([BadSender("bad"), Sink("sink")], [Ping], duration_s=TIMEOUT_S)


def test_wait_until_timeout() -> None:
    sink = Sink("sink")
    with RealRuntime([sink], [Ping]) as runtime:
        runtime.start()
        with pytest.raises(MessagingTimeout, match="condition not reached within 0.05 s"):
            runtime.wait_until(lambda: bool(sink.received), 0.05)


def test_run_for_returns_after_duration() -> None:
    stats = run_nodes([Sink("sink")], [Ping], duration_s=0.05)
    assert stats["sent"] == 0
    assert stats["delivered"] == 0


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="exactly one of duration_s and until"):
        run_nodes([Sink("sink")], [Ping])
    with pytest.raises(ValueError, match="appears twice"):
        RealRuntime([Sink("s"), Sink("s")], [Ping])
    with pytest.raises(ValueError, match="expected a dataclass class"):
        RealRuntime([Sink("s")], [int])


def test_registry_rejects_name_clash() -> None:
    @dataclass(frozen=True)
    class Ping:  # noqa: F811 - the clash is the point of the test
        other: int

    with pytest.raises(ValueError, match="two classes are named 'Ping'"):
        RealRuntime([Sink("s")], [globals()["Ping"], Ping])


def test_start_twice_rejected() -> None:
    with RealRuntime([Sink("s")], [Ping]) as runtime:
        runtime.start()
        with pytest.raises(MessagingError, match="already running"):
            runtime.start()


def test_envelope_round_trip() -> None:
    data = encode_message(Ping(seq=7), source="a", message_id=3, sent_at_s=0.5)
    assert json.loads(data) == {
        "type": "Ping", "fields": {"seq": 7}, "source": "a", "message_id": 3, "sent_at_s": 0.5,
    }
    assert decode_message(data, {"Ping": Ping}) == (Ping(seq=7), "a", 3, 0.5)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"[1, 2]", "expected a JSON object"),
        (b'{"type": "Ping"}', "expected keys"),
        (b'{"type": "Ping", "fields": {"x": 1}, "source": "a", "message_id": 1, '
         b'"sent_at_s": 0}', "invalid fields for message type 'Ping'"),
        (b"\xff", "not UTF-8 JSON"),
    ],
)
def test_decode_rejects_invalid(data: bytes, expected: str) -> None:
    with pytest.raises(ProtocolError, match=expected):
        decode_message(data, {"Ping": Ping})


def test_encode_rejects_non_dataclass() -> None:
    with pytest.raises(TypeError, match="expected a dataclass instance"):
        encode_message({"seq": 1}, source="a", message_id=1, sent_at_s=0.0)
