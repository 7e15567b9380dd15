"""The simulator: determinism, each link feature, partitions, crashes, stats and bounds."""

from __future__ import annotations

import math
import random
from array import array
from dataclasses import dataclass

import pytest

from msgpass.errors import EventLimitExceeded, SimulationError
from msgpass.node import Node
from msgpass.sim import Constant, Exponential, LinkConfig, LogNormal, Simulation, Uniform
from msgpass.sim_links import Latency
from msgpass.sim_stats import (
    _nearest_ranks,
    _select_by_sorting,
    _select_with_numpy,
    latency_quantiles,
)
from msgpass.trace_events import Deliver, Drop, Duplicate, Send, Trace


@dataclass(frozen=True)
class Data:
    seq: int


@dataclass(frozen=True)
class Blob:
    size_bytes: int


class Sink(Node):
    """Records (time, sender, message) for every message it receives."""

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.received: list[tuple[float, str, object]] = []

    def on_Data(self, sender: str, message: Data) -> None:
        self.received.append((self.now(), sender, message))

    def on_Blob(self, sender: str, message: Blob) -> None:
        self.received.append((self.now(), sender, message))


class Burst(Sink):
    """Sends ``count`` Data messages to ``dest`` at start, numbered from 0."""

    def __init__(self, node_id: str, dest: str, count: int) -> None:
        super().__init__(node_id)
        self.dest = dest
        self.count = count

    def on_start(self) -> None:
        for seq in range(self.count):
            self.send(self.dest, Data(seq))


class Gossip(Sink):
    """Forwards every message to a random peer until a hop budget runs out."""

    def __init__(self, node_id: str, peers: list[str], hops: int) -> None:
        super().__init__(node_id)
        self.peers = peers
        self.hops = hops

    def on_start(self) -> None:
        self.send(self.random.choice(self.peers), Data(0))

    def on_Data(self, sender: str, message: Data) -> None:
        super().on_Data(sender, message)
        if message.seq < self.hops:
            self.send(self.random.choice(self.peers), Data(message.seq + 1))


def burst_sim(link: LinkConfig, count: int, *, seed: int = 1) -> tuple[Simulation, Sink]:
    sim = Simulation(seed=seed, default_link=link)
    sim.add_node(Burst("a", "b", count))
    sink = Sink("b")
    sim.add_node(sink)
    return sim, sink


def gossip_trace(seed: int) -> list[object]:
    trace = Trace()
    link = LinkConfig(latency=Exponential(0.01), loss=0.1, duplicate=0.1, reorder=0.2)
    sim = Simulation(seed=seed, default_link=link, trace=trace)
    names = ["a", "b", "c", "d"]
    for name in names:
        sim.add_node(Gossip(name, [peer for peer in names if peer != name], hops=30))
    sim.run(until_s=100.0)
    return trace.events


# -- determinism -------------------------------------------------------------------


def test_same_seed_replays_identical_trace() -> None:
    first = gossip_trace(seed=42)
    second = gossip_trace(seed=42)

    assert len(first) > 50
    assert first == second


def test_different_seed_changes_trace() -> None:
    assert gossip_trace(seed=1) != gossip_trace(seed=2)


def gossip_receipts(latency: Latency, *, traced: bool) -> list[list[tuple[float, str, object]]]:
    """Run a fault-free gossip and return what each node received, in node order."""
    sim = Simulation(seed=5, default_link=LinkConfig(latency=latency))
    if traced:
        sim.trace = Trace()  # a trace turns the send fast path off
    names = ["a", "b", "c", "d"]
    nodes = [sim.add_node(Gossip(name, [p for p in names if p != name], hops=40)) for name in names]
    sim.run()
    return [node.received for node in nodes]


@pytest.mark.parametrize(
    "latency",
    [Constant(0.01), Uniform(0.001, 0.02), Exponential(0.01), LogNormal(0.01, 0.5)],
)
def test_fast_path_matches_general_path(latency: Latency) -> None:
    fast = gossip_receipts(latency, traced=False)
    general = gossip_receipts(latency, traced=True)

    assert sum(len(received) for received in fast) == 4 * 41
    assert fast == general


def test_fast_path_stops_when_link_gets_loss() -> None:
    sim, sink = burst_sim(LinkConfig(latency=Constant(0.1)), count=200)
    sim.run()  # the a -> b link now exists and is on the fast path
    sim.set_link("a", "b", LinkConfig(latency=Constant(0.1), loss=1.0))
    sender = sim.nodes["a"]
    for seq in range(5):
        sender.send("b", Data(seq))
    stats = sim.run()

    assert len(sink.received) == 200
    assert stats.sent == 205
    assert stats.dropped_by_reason == {"loss": 5}


def test_latency_quantiles_numpy_matches_sort() -> None:
    pytest.importorskip("numpy")
    rng = random.Random(3)
    latencies = [rng.expovariate(100.0) for _ in range(50_001)]
    ranks = _nearest_ranks(len(latencies))

    selected = _select_with_numpy(list(latencies), ranks)
    by_sorting = _select_by_sorting(list(latencies), ranks)

    assert selected == by_sorting
    assert by_sorting[3] == max(latencies)


def test_latency_quantiles_array_matches_list() -> None:
    rng = random.Random(5)
    for count in (1, 7, 19_999, 20_000, 50_001):  # both sides of the numpy threshold
        latencies = [rng.expovariate(100.0) for _ in range(count)]
        doubles = array("d", latencies)

        assert latency_quantiles(doubles) == latency_quantiles(list(latencies))
        assert _select_by_sorting(array("d", latencies), _nearest_ranks(count)) == (
            _select_by_sorting(list(latencies), _nearest_ranks(count))
        )
        doubles.append(1.0)  # raises BufferError if a numpy view of the array is still alive


def test_stats_quantiles_of_long_run() -> None:
    sim, sink = burst_sim(LinkConfig(latency=Uniform(0.0, 1.0)), count=30_000)
    stats = sim.run()
    latencies = sorted(time_s for time_s, _, _ in sink.received)  # every send was at time 0

    assert stats.delivered == 30_000
    assert stats.latency_p50_s == latencies[14_999]
    assert stats.latency_p90_s == latencies[26_999]
    assert stats.latency_p99_s == latencies[29_699]
    assert stats.latency_max_s == latencies[-1]


# -- latency and bandwidth ---------------------------------------------------------


def test_constant_latency_exact_delivery_time() -> None:
    sim, sink = burst_sim(LinkConfig(latency=Constant(0.25)), count=3)
    sim.run()

    assert [time_s for time_s, _, _ in sink.received] == [0.25, 0.25, 0.25]
    assert [message for _, _, message in sink.received] == [Data(0), Data(1), Data(2)]


def test_bandwidth_serializes_messages() -> None:
    link = LinkConfig(latency=Constant(0.0), bandwidth_bytes_per_s=1000.0)
    sim = Simulation(seed=1, default_link=link)
    sink = Sink("b")
    sim.add_node(sink)
    sender = sim.add_node(Sink("a"))
    sim.schedule(0.0, sender.send, "b", Blob(size_bytes=1000))
    sim.schedule(0.0, sender.send, "b", Blob(size_bytes=1000))
    sim.run()

    arrivals = [time_s for time_s, _, _ in sink.received]
    assert arrivals == [pytest.approx(1.0), pytest.approx(2.0)]


def test_bandwidth_uses_json_size() -> None:
    # json.dumps({"seq": 7}) is 10 characters, so 10 bytes at 10 B/s take 1 s.
    link = LinkConfig(latency=Constant(0.5), bandwidth_bytes_per_s=10.0)
    sim, sink = burst_sim(link, count=1)
    trace = Trace()
    sim.trace = trace
    sim.run()

    assert sink.received[0][0] == pytest.approx(1.5)
    assert trace.filter(Send)[0].size_bytes == 10


@pytest.mark.parametrize(
    "latency, mean_s",
    [
        (Constant(0.002), 0.002),
        (Uniform(0.001, 0.003), 0.002),
        (Exponential(0.002), 0.002),
        (LogNormal(0.002, 0.5), 0.002 * math.exp(0.125)),
    ],
)
def test_latency_distribution_mean(latency: Latency, mean_s: float) -> None:
    count = 5_000
    trace = Trace()
    sim = Simulation(seed=3, default_link=LinkConfig(latency=latency), trace=trace)
    sender = sim.add_node(Sink("a"))
    sim.add_node(Sink("b"))
    # One send per second, far apart, so the FIFO rule never delays a message.
    for index in range(count):
        sim.schedule(float(index), sender.send, "b", Data(index))
    sim.run()

    delays = [event.time_s - event.sent_at_s for event in trace.filter(Deliver)]
    assert latency.mean() == pytest.approx(mean_s)
    assert len(delays) == count
    assert sum(delays) / count == pytest.approx(mean_s, rel=0.05)
    assert min(delays) >= 0.0


def test_fifo_rule_delays_overtaking_message() -> None:
    sim = Simulation(seed=1)
    sender = sim.add_node(Sink("a"))
    sink = sim.add_node(Sink("b"))
    sim.schedule(0.0, sender.send, "b", Data(0))
    sim.schedule(0.0, sim.set_link, "a", "b", LinkConfig(latency=Constant(0.5)))
    sim.schedule(0.0, sender.send, "b", Data(1))
    sim.schedule(0.1, sim.set_link, "a", "b", LinkConfig(latency=Constant(0.01)))
    sim.schedule(0.1, sender.send, "b", Data(2))
    sim.run()

    # Data(2) would arrive at 0.11 s but waits for Data(1), which arrives at 0.5 s.
    assert [(time_s, message) for time_s, _, message in sink.received] == [
        (0.001, Data(0)),
        (0.5, Data(1)),
        (0.5, Data(2)),
    ]


def test_invalid_link_config_rejected() -> None:
    with pytest.raises(ValueError, match="loss"):
        LinkConfig(loss=1.5)
    with pytest.raises(ValueError, match="high_s"):
        Uniform(0.3, 0.1)
    with pytest.raises(ValueError, match="mean_s"):
        Exponential(0.0)
    with pytest.raises(ValueError, match="bandwidth"):
        LinkConfig(bandwidth_bytes_per_s=0)


@pytest.mark.parametrize("field", ["loss", "duplicate", "reorder"])
@pytest.mark.parametrize("value", [True, False, "0.1", None])
def test_link_probability_type_rejected(field: str, value: object) -> None:
    with pytest.raises(TypeError, match=f"invalid {field}=.*expected a probability"):
        LinkConfig(**{field: value})  # type: ignore[arg-type]


def test_link_bool_numbers_rejected() -> None:
    with pytest.raises(TypeError, match="bandwidth_bytes_per_s=True"):
        LinkConfig(bandwidth_bytes_per_s=True)
    with pytest.raises(TypeError, match="reorder_window_s=True"):
        LinkConfig(reorder_window_s=True)
    with pytest.raises(TypeError, match="delay_s=True"):
        Constant(True)
    assert LinkConfig(loss=1, duplicate=0).loss == 1


# -- loss, duplication, reordering -----------------------------------------------


def test_loss_rate_within_binomial_tolerance() -> None:
    count, loss = 10_000, 0.2
    sim, sink = burst_sim(LinkConfig(loss=loss), count=count, seed=11)
    stats = sim.run()

    # Four standard deviations of a binomial(10000, 0.2): 4 * sqrt(n p (1 - p)) = 160.
    tolerance = 4 * math.sqrt(count * loss * (1 - loss))
    assert abs(stats.dropped_by_reason["loss"] - count * loss) < tolerance
    assert stats.delivered + stats.dropped == count
    assert len(sink.received) == stats.delivered


def test_lost_message_dropped_at_arrival_time() -> None:
    trace = Trace()
    sim = Simulation(seed=1, default_link=LinkConfig(latency=Constant(0.5), loss=1.0), trace=trace)
    sim.add_node(Burst("a", "b", 1))
    sim.add_node(Sink("b"))
    sim.run()

    (drop,) = trace.filter(Drop)
    assert drop.reason == "loss"
    assert drop.time_s == 0.5


def test_duplication_delivers_extra_copies() -> None:
    count = 2_000
    trace = Trace()
    sim = Simulation(seed=5, default_link=LinkConfig(duplicate=0.5), trace=trace)
    sim.add_node(Burst("a", "b", count))
    sink = sim.add_node(Sink("b"))
    stats = sim.run()

    assert 800 < stats.duplicated < 1200
    assert stats.delivered == count + stats.duplicated
    assert len(trace.filter(Duplicate)) == stats.duplicated
    assert len(sink.received) == stats.delivered
    seqs = {message.seq for _, _, message in sink.received}
    assert seqs == set(range(count))


@pytest.mark.parametrize("latency", [Constant(0.01), Exponential(0.01)])
def test_no_reordering_without_reorder(latency: Latency) -> None:
    sim, sink = burst_sim(LinkConfig(latency=latency), count=1_000)
    sim.run()

    seqs = [message.seq for _, _, message in sink.received]
    assert seqs == list(range(1_000))


def test_reordering_happens_with_reorder() -> None:
    sim, sink = burst_sim(LinkConfig(latency=Constant(0.01), reorder=0.3), count=1_000)
    sim.run()

    seqs = [message.seq for _, _, message in sink.received]
    assert sorted(seqs) == list(range(1_000))
    assert seqs != list(range(1_000))


# -- partitions --------------------------------------------------------------------


class Echo(Sink):
    """Replies to every Data with the same Data."""

    def on_Data(self, sender: str, message: Data) -> None:
        super().on_Data(sender, message)
        if sender != "tick":
            self.send(sender, message)


def test_one_way_partition_cuts_one_direction() -> None:
    sim = Simulation(seed=1)
    a = sim.add_node(Sink("a"))
    b = sim.add_node(Sink("b"))
    sim.partition(["a"], ["b"], one_way=True)
    sim.schedule(0.0, a.send, "b", Data(1))
    sim.schedule(0.0, b.send, "a", Data(2))
    stats = sim.run()

    assert a.received == [(0.001, "b", Data(2))]
    assert b.received == []
    assert stats.dropped_by_reason == {"partition": 1}
    assert sim.is_cut("a", "b")
    assert not sim.is_cut("b", "a")


def test_partition_heals_later() -> None:
    sim = Simulation(seed=1)
    a = sim.add_node(Sink("a"))
    b = sim.add_node(Sink("b"))
    sim.partition("a", "b", at_s=1.0)
    sim.heal(at_s=2.0)
    for at_s in (0.5, 1.5, 2.5):
        sim.schedule(at_s, a.send, "b", Data(int(at_s * 10)))
    sim.run()

    assert [message for _, _, message in b.received] == [Data(5), Data(25)]


def test_partition_drops_message_in_flight() -> None:
    sim = Simulation(seed=1, default_link=LinkConfig(latency=Constant(1.0)))
    a = sim.add_node(Sink("a"))
    b = sim.add_node(Sink("b"))
    sim.schedule(0.0, a.send, "b", Data(1))
    sim.partition("a", "b", at_s=0.5)
    stats = sim.run()

    assert b.received == []
    assert stats.dropped_by_reason == {"partition": 1}


def test_partition_unknown_node_rejected() -> None:
    sim = Simulation()
    sim.add_node(Sink("a"))
    with pytest.raises(SimulationError, match="unknown node 'z'"):
        sim.partition(["a"], ["z"])


# -- crashes -----------------------------------------------------------------------


class Ticker(Sink):
    """Arms a repeating timer and counts its ticks; counts starts and crashes too."""

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.ticks = 0
        self.starts = 0
        self.crashes = 0
        self.restarts = 0

    def on_start(self) -> None:
        self.starts += 1
        self.set_timer(1.0, "tick")

    def on_timer_tick(self) -> None:
        self.ticks += 1
        self.set_timer(1.0, "tick")

    def on_crash(self) -> None:
        self.crashes += 1

    def on_restart(self) -> None:
        self.restarts += 1
        super().on_restart()


def test_crash_drops_messages_and_cancels_timers() -> None:
    trace = Trace()
    sim = Simulation(seed=1, trace=trace)
    ticker = sim.add_node(Ticker("t"))
    sender = sim.add_node(Sink("s"))
    sim.crash("t", at_s=2.5)
    sim.schedule(3.0, sender.send, "t", Data(1))
    stats = sim.run(until_s=10.0)

    assert ticker.ticks == 2
    assert ticker.crashes == 1
    assert ticker.received == []
    assert stats.dropped_by_reason == {"crashed": 1}
    assert sim.is_crashed("t")
    assert sim.pending_events() == 0
    assert stats.now_s == 10.0


def test_restart_runs_hook_and_keeps_state() -> None:
    sim = Simulation(seed=1)
    ticker = sim.add_node(Ticker("t"))
    sim.crash("t", at_s=2.5)
    sim.restart("t", at_s=5.0)
    sim.run(until_s=7.5)

    assert ticker.restarts == 1
    assert ticker.starts == 2
    # Ticks at 1 and 2, then after the restart at 6 and 7; the attribute survived.
    assert ticker.ticks == 4


def test_crashed_node_cannot_send() -> None:
    sim = Simulation(seed=1)
    a = sim.add_node(Sink("a"))
    b = sim.add_node(Sink("b"))
    sim.crash("a")
    a.send("b", Data(1))
    stats = sim.run()

    assert b.received == []
    assert stats.dropped_by_reason == {"crashed": 1}


def test_crash_twice_rejected() -> None:
    sim = Simulation()
    sim.add_node(Sink("a"))
    sim.crash("a")
    with pytest.raises(SimulationError, match="already crashed"):
        sim.crash("a")
    sim.restart("a")
    with pytest.raises(SimulationError, match="not crashed"):
        sim.restart("a")


# -- stats and bounds --------------------------------------------------------------


class Counter(Node):
    """Client that sends ``count`` requests at start and counts each reply as an operation."""

    def __init__(self, node_id: str, count: int) -> None:
        super().__init__(node_id)
        self.count = count

    def on_start(self) -> None:
        for seq in range(self.count):
            self.send("server", Data(seq))

    def on_Data(self, sender: str, message: Data) -> None:
        self.count_operation()


def test_stats_counts_and_quantiles() -> None:
    sim = Simulation(seed=1, default_link=LinkConfig(latency=Constant(0.01)))
    sim.add_node(Counter("client", 5))
    sim.add_node(Echo("server"))
    stats = sim.run()

    assert stats.sent == 10
    assert stats.delivered == 10
    assert stats.dropped == 0
    assert stats.operations == 5
    assert stats.messages_per_operation == 2.0
    assert stats.latency_p50_s == pytest.approx(0.01)
    assert stats.latency_p99_s == pytest.approx(0.01)
    assert stats.latency_max_s == pytest.approx(0.01)
    assert stats.stop_reason == "idle"
    assert stats.events == 12  # 2 starts + 10 deliveries


def test_stats_empty_simulation() -> None:
    stats = Simulation().stats()

    assert stats.delivered == 0
    assert stats.latency_p50_s is None
    assert stats.messages_per_operation is None


def test_run_until_predicate_stops_early() -> None:
    sim = Simulation(seed=1)
    ticker = sim.add_node(Ticker("t"))
    stats = sim.run(until=lambda: ticker.ticks >= 3)

    assert stats.stop_reason == "until"
    assert stats.now_s == 3.0
    assert ticker.ticks == 3


def test_max_events_guard_raises() -> None:
    sim = Simulation(seed=1, max_events=100)
    sim.add_node(Ticker("t"))
    with pytest.raises(EventLimitExceeded, match="max_events=100"):
        sim.run()


def test_run_continues_after_until_s() -> None:
    sim = Simulation(seed=1)
    ticker = sim.add_node(Ticker("t"))
    sim.run(until_s=2.5)
    assert ticker.ticks == 2

    sim.run(until_s=4.0)
    assert ticker.ticks == 4
    assert sim.now == 4.0


def test_schedule_in_past_rejected() -> None:
    sim = Simulation()
    sim.add_node(Ticker("t"))
    sim.run(until_s=2.0)
    with pytest.raises(SimulationError, match="already at 2.0"):
        sim.schedule(1.0, print)


def test_duplicate_node_id_rejected() -> None:
    sim = Simulation()
    sim.add_node(Sink("a"))
    with pytest.raises(SimulationError, match="already added"):
        sim.add_node(Sink("a"))


def test_send_to_unknown_node_rejected() -> None:
    sim = Simulation()
    a = sim.add_node(Sink("a"))
    with pytest.raises(SimulationError, match="unknown node 'ghost'"):
        a.send("ghost", Data(1))


def test_handler_error_names_node_and_time() -> None:
    class Broken(Sink):
        def on_Data(self, sender: str, message: Data) -> None:
            raise RuntimeError("boom")

    sim, _ = burst_sim(LinkConfig(latency=Constant(0.5)), count=1)
    sim.add_node(Broken("c"))
    sim.schedule(0.0, sim.nodes["a"].send, "c", Data(9))
    with pytest.raises(RuntimeError, match="boom") as caught:
        sim.run()
    assert any("node 'c'" in note and "0.500000" in note for note in caught.value.__notes__)


def test_repr_shows_state() -> None:
    sim, _ = burst_sim(LinkConfig(), count=1)

    assert "nodes=2" in repr(sim)
    assert "pending_events=2" in repr(sim)


def test_nested_run_rejected() -> None:
    class Reentrant(Sink):
        def on_start(self) -> None:
            sim.run()

    sim = Simulation()
    sim.add_node(Reentrant("r"))
    with pytest.raises(SimulationError, match="already running"):
        sim.run()


def test_node_without_super_init_rejected() -> None:
    class Forgetful(Node):
        def __init__(self) -> None:
            pass

    with pytest.raises(TypeError, match=r"super\(\).__init__\(node_id\)"):
        Simulation().add_node(Forgetful())
