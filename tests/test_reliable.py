"""Stop-and-wait and selective repeat: exactly-once, in-order delivery under faults."""

from __future__ import annotations

import pytest

from msgpass import models
from msgpass.errors import MissingHandler
from msgpass.explore import explore
from msgpass.node_real import run_nodes
from msgpass.reliable import (
    RELIABLE_MESSAGE_TYPES,
    Ack,
    Data,
    SlidingWindowReceiver,
    SlidingWindowSender,
    StopAndWaitReceiver,
    StopAndWaitSender,
    segment_bytes,
    simulate_transfer,
)
from msgpass.sim import Constant, LinkConfig, Simulation, Uniform
from msgpass.trace_events import Trace

CHAOS = LinkConfig(latency=Uniform(0.005, 0.02), loss=0.2, duplicate=0.1, reorder=0.2)
ITEMS = [f"item {index}" for index in range(12)]


def test_stop_and_wait_lossless_sends_each_item_once() -> None:
    sender = StopAndWaitSender("a", "b", ITEMS, timeout_s=0.1)
    receiver = StopAndWaitReceiver("b")
    result = simulate_transfer(sender, receiver, link=LinkConfig(latency=Constant(0.01)))
    assert result.completed
    assert receiver.delivered == ITEMS
    assert result.data_sent == len(ITEMS)
    assert result.retransmissions == 0
    assert result.duration_s == pytest.approx(len(ITEMS) * 0.02)
    assert result.sim_stats.messages_per_operation == 2.0


@pytest.mark.parametrize("seed", range(20))
def test_stop_and_wait_chaos_delivers_in_order(seed: int) -> None:
    sender = StopAndWaitSender("a", "b", ITEMS, timeout_s=0.1)
    receiver = StopAndWaitReceiver("b")
    result = simulate_transfer(sender, receiver, link=CHAOS, seed=seed)
    assert result.completed
    assert result.in_order


@pytest.mark.parametrize("seed", range(20))
def test_sliding_window_chaos_delivers_in_order(seed: int) -> None:
    sender = SlidingWindowSender("a", "b", ITEMS, window=4, timeout_s=0.1)
    receiver = SlidingWindowReceiver("b", 4)
    result = simulate_transfer(sender, receiver, link=CHAOS, seed=seed)
    assert result.completed
    assert result.in_order
    assert sender.next_seq - sender.base <= 4


def test_sliding_window_keeps_window_bound() -> None:
    sender = SlidingWindowSender("a", "b", ITEMS, window=3, timeout_s=1.0)
    sim = Simulation(seed=1)
    sim.add_node(sender)
    sim.add_node(SlidingWindowReceiver("b", 3))
    sim.run(until_s=0.0)  # only on_start runs
    assert sender.next_seq == 3
    assert sorted(sender.timers) == [0, 1, 2]


def test_sliding_window_ack_covers_lost_acks() -> None:
    sender = SlidingWindowSender("a", "b", ITEMS[:4], window=4, timeout_s=1.0)
    sim = Simulation(seed=1)
    sim.add_node(sender)
    sim.add_node(SlidingWindowReceiver("b", 4))
    sim.run(until_s=0.0)
    sender.on_Ack("b", Ack(3, 4))  # the Acks of 0, 1 and 2 were lost
    assert sender.done
    assert sender.timers == {}


def test_receiver_buffers_and_acknowledges() -> None:
    sim = Simulation(seed=1)
    trace = Trace()
    sim.trace = trace
    sim.add_node(StopAndWaitSender("a", "b", []))
    receiver = sim.add_node(SlidingWindowReceiver("b", 3))
    sim.run()
    for seq in [1, 2, 0, 0, 7]:
        receiver.on_Data("a", Data(seq, f"p{seq}"))
    assert receiver.delivered == ["p0", "p1", "p2"]
    assert receiver.duplicates == 1
    assert receiver.beyond_window == 1
    assert len([e for e in trace.filter("send") if e.source == "b"]) == 4


def test_receiver_rejects_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="window"):
        SlidingWindowReceiver("b", 0)
    with pytest.raises(ValueError, match="drop_probability"):
        StopAndWaitReceiver("b", drop_probability=1.0)
    with pytest.raises(ValueError, match="timeout_s"):
        StopAndWaitSender("a", "b", ITEMS, timeout_s=0)


def test_sliding_window_unknown_timer_raises() -> None:
    sender = SlidingWindowSender("a", "b", ITEMS, window=2)
    with pytest.raises(MissingHandler):
        sender.on_timer("other")


def test_empty_transfer_is_done_at_once() -> None:
    sender = SlidingWindowSender("a", "b", [], window=2)
    result = simulate_transfer(sender, SlidingWindowReceiver("b", 2), link=LinkConfig())
    assert result.completed
    assert result.duration_s == 0.0


def test_sender_survives_receiver_crash() -> None:
    sim = Simulation(seed=2, default_link=LinkConfig(latency=Constant(0.01)))
    sender = sim.add_node(SlidingWindowSender("a", "b", ITEMS, window=3, timeout_s=0.1))
    receiver = sim.add_node(SlidingWindowReceiver("b", 3))
    sim.crash("b", at_s=0.03)
    sim.restart("b", at_s=0.5)
    sim.run(until_s=10.0)
    assert receiver.delivered == ITEMS
    assert sender.done


def test_same_seed_replays_transfer() -> None:
    traces = []
    for _ in range(2):
        trace = Trace()
        simulate_transfer(
            SlidingWindowSender("a", "b", ITEMS, window=4),
            SlidingWindowReceiver("b", 4),
            link=CHAOS,
            seed=9,
            trace=trace,
        )
        traces.append(trace)
    assert traces[0] == traces[1]


@pytest.mark.parametrize("loss", [0.0, 0.1, 0.3])
def test_stop_and_wait_goodput_matches_model(loss: float) -> None:
    latency_s, bandwidth = 0.01, 100_000
    items = ["x" * 1000] * 300
    size = segment_bytes(items) / len(items)
    timeout_s = 1.05 * (2 * latency_s + size / bandwidth)
    result = simulate_transfer(
        StopAndWaitSender("a", "b", items, timeout_s),
        StopAndWaitReceiver("b"),
        link=LinkConfig(latency=Constant(latency_s), bandwidth_bytes_per_s=bandwidth, loss=loss),
        reverse_link=LinkConfig(latency=Constant(latency_s), loss=loss),
        seed=1,
    )
    model = models.stop_and_wait_goodput_bytes_per_s(
        size, 2 * latency_s, bandwidth, loss, timeout_s=timeout_s
    )
    assert result.goodput_bytes_per_s == pytest.approx(model, rel=0.10)


def test_explore_finds_no_violation() -> None:
    items = ["x", "y"]
    for build in (
        lambda: [StopAndWaitSender("a", "b", items), StopAndWaitReceiver("b")],
        lambda: [SlidingWindowSender("a", "b", items, 2), SlidingWindowReceiver("b", 2)],
    ):
        result = explore(
            build,
            invariant=lambda nodes: nodes["b"].delivered == items[: len(nodes["b"].delivered)],
            goal=lambda nodes: nodes["b"].delivered == items,
            max_depth=7,
            allow_drops=1,
        )
        assert result.ok, result.format()


def test_stop_and_wait_on_real_udp_with_injected_loss() -> None:
    items = [f"item {index}" for index in range(10)]
    sender = StopAndWaitSender("a", "b", items, timeout_s=0.05)
    receiver = StopAndWaitReceiver("b", drop_probability=0.3)
    run_nodes(
        [sender, receiver],
        RELIABLE_MESSAGE_TYPES,
        until=lambda: sender.done,
        timeout_s=20.0,
        seed=3,
    )
    assert receiver.delivered == items
    assert receiver.discarded == sender.retransmissions
