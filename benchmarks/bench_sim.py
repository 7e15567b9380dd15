"""Measure msgpass.sim against SimPy 4.1 on the same message-passing model.

The model: 100 nodes. At the start each node sends one token to a peer chosen
at random. Whenever a node receives a token it forwards the same token object
to another random peer, until the run has sent ``deliveries`` messages in
total. Every
link has an exponential latency with a mean of 1 ms and is FIFO (a message
never arrives before one sent earlier on the same link). There are no faults,
so every message sent is delivered and the run ends idle after exactly
``deliveries`` deliveries.

The SimPy reference follows the way SimPy's documentation models a network
link with latency: the "Event Latency" example (``docs/examples/latency.rst``
in SimPy's repository), whose ``Cable.put`` starts a process per message.
One process per node waits on a ``simpy.Store`` inbox, and one short
process per message in transit waits for the latency and then puts the
message into the inbox. Every version draws peers from a per-node
``random.Random`` with ``randrange`` and latencies from one shared
generator with ``expovariate``, and enforces the same FIFO rule with the
last arrival time per link. The msgpass version does more per message
than the SimPy ones: it records each latency for the quantiles of
``SimStats``, checks for crashes and partitions, and computes the
quantiles at the end of the run.

A second SimPy row measures a leaner SimPy model that has no process per
message: the sender creates a ``Timeout`` event for the latency whose
callback puts the message into the inbox. It ran 1.4x to 1.5x as fast as
the documented model in the runs recorded in ``benchmarks/RESULTS.md``.
The target is stated against the documented model, and the report prints
the ratio to the lean model too.

Each repetition runs every simulator once, in turn, in this process. The
table shows the median deliveries per second of wall-clock time and its ratio
to SimPy's median. The verdict uses the median of the per-repetition ratios
msgpass / SimPy, which is steadier on a machine whose load changes during the
run. Target: msgpass at least 5x SimPy.

The last row runs nothing but a heap of pending arrivals: pop one, draw a
latency, push the next. Any heapq-based pure-Python simulator does at least
this much per delivery, so its ratio to SimPy bounds what the first row can reach.

Run: ``.venv/bin/python benchmarks/bench_sim.py [--quick] [--repeat N] [--deliveries N]``.
"""

from __future__ import annotations

import argparse
import functools
import heapq
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import simpy

from msgpass.node import Node
from msgpass.sim import Exponential, LinkConfig, Simulation

NODE_COUNT = 100
MEAN_LATENCY_S = 0.001
TARGET_RATIO = 5.0
FULL_DELIVERIES = 200_000
QUICK_DELIVERIES = 20_000
SMOKE_DELIVERIES = 500


@dataclass(frozen=True)
class Token:
    """The message that travels from node to node; ``hops`` is unused by the model."""

    hops: int


@dataclass(frozen=True)
class RunResult:
    """The outcome of one simulator run: deliveries, wall-clock time and simulated time."""

    deliveries: int
    wall_s: float
    simulated_s: float

    @property
    def deliveries_per_s(self) -> float:
        return self.deliveries / self.wall_s


# -- msgpass.sim ---------------------------------------------------------------


class Budget:
    """The number of sends left in the run, shared by every node."""

    def __init__(self, sends: int) -> None:
        self.remaining = sends


class Forwarder(Node):
    """A node that sends a token at start and forwards every token it receives."""

    def __init__(self, node_id: str, peers: list[str], budget: Budget) -> None:
        super().__init__(node_id)
        self.peers = peers
        self.budget = budget
        self.received = 0

    def forward(self, token: Token) -> None:
        budget = self.budget
        if budget.remaining <= 0:
            return
        budget.remaining -= 1
        peer = self.peers[self.random.randrange(NODE_COUNT)]
        if peer == self.node_id:
            peer = self.peers[0] if self.node_id != self.peers[0] else self.peers[1]
        self.send(peer, token)

    def on_start(self) -> None:
        self.forward(Token(0))

    def on_Token(self, sender: str, message: Token) -> None:
        self.received += 1
        self.forward(message)


def run_msgpass(deliveries: int, seed: int) -> RunResult:
    """Run the model on ``msgpass.sim`` and check that every message was delivered."""
    link = LinkConfig(latency=Exponential(MEAN_LATENCY_S))
    sim = Simulation(seed=seed, default_link=link, max_events=deliveries + 10 * NODE_COUNT)
    peers = [f"n{index}" for index in range(NODE_COUNT)]
    budget = Budget(deliveries)
    for node_id in peers:
        sim.add_node(Forwarder(node_id, peers, budget))

    started = time.perf_counter()
    stats = sim.run()
    wall_s = time.perf_counter() - started

    received = sum(node.received for node in sim.nodes.values())  # type: ignore[attr-defined]
    assert stats.delivered == deliveries, f"expected {deliveries} deliveries, got {stats.delivered}"
    assert received == deliveries, f"expected {deliveries} handler calls, got {received}"
    return RunResult(stats.delivered, wall_s, stats.now_s)


# -- SimPy ---------------------------------------------------------------------


def run_simpy(deliveries: int, seed: int) -> RunResult:
    """Run the same model on SimPy, with a Store inbox per node and a process per message."""
    env = simpy.Environment()
    rng = random.Random(seed)
    node_rngs = [random.Random(f"{seed}/{index}") for index in range(NODE_COUNT)]
    inboxes = [simpy.Store(env) for _ in range(NODE_COUNT)]
    last_arrival_s: dict[tuple[int, int], float] = {}
    remaining = [deliveries]
    received = [0]
    rate = 1.0 / MEAN_LATENCY_S

    def transit(source: int, dest: int, message: Token) -> Generator[Any, Any, None]:
        arrives_s = env.now + rng.expovariate(rate)
        previous_s = last_arrival_s.get((source, dest), 0.0)
        if arrives_s < previous_s:
            arrives_s = previous_s
        last_arrival_s[(source, dest)] = arrives_s
        yield env.timeout(arrives_s - env.now)
        yield inboxes[dest].put((source, message))

    def forward(source: int, token: Token) -> None:
        if remaining[0] <= 0:
            return
        remaining[0] -= 1
        peer = node_rngs[source].randrange(NODE_COUNT)
        if peer == source:
            peer = 0 if source != 0 else 1
        env.process(transit(source, peer, token))

    def node(index: int) -> Generator[Any, Any, None]:
        forward(index, Token(0))
        inbox = inboxes[index]
        while True:
            _source, message = yield inbox.get()
            received[0] += 1
            forward(index, message)

    for index in range(NODE_COUNT):
        env.process(node(index))

    started = time.perf_counter()
    env.run()
    wall_s = time.perf_counter() - started

    assert received[0] == deliveries, f"expected {deliveries} deliveries, got {received[0]}"
    return RunResult(received[0], wall_s, float(env.now))


def run_simpy_callbacks(deliveries: int, seed: int) -> RunResult:
    """Run the same model on SimPy with a ``Timeout`` callback per message instead of a process."""
    env = simpy.Environment()
    rng = random.Random(seed)
    node_rngs = [random.Random(f"{seed}/{index}") for index in range(NODE_COUNT)]
    inboxes = [simpy.Store(env) for _ in range(NODE_COUNT)]
    last_arrival_s: dict[tuple[int, int], float] = {}
    remaining = [deliveries]
    received = [0]
    rate = 1.0 / MEAN_LATENCY_S

    def forward(source: int, token: Token) -> None:
        if remaining[0] <= 0:
            return
        remaining[0] -= 1
        peer = node_rngs[source].randrange(NODE_COUNT)
        if peer == source:
            peer = 0 if source != 0 else 1
        arrives_s = env.now + rng.expovariate(rate)
        previous_s = last_arrival_s.get((source, peer), 0.0)
        if arrives_s < previous_s:
            arrives_s = previous_s
        last_arrival_s[(source, peer)] = arrives_s
        arrival = env.timeout(arrives_s - env.now, value=(source, token))
        arrival.callbacks.append(functools.partial(deliver, inboxes[peer]))

    def deliver(inbox: simpy.Store, arrival: simpy.Event) -> None:
        inbox.put(arrival.value)

    def node(index: int) -> Generator[Any, Any, None]:
        forward(index, Token(0))
        inbox = inboxes[index]
        while True:
            _source, message = yield inbox.get()
            received[0] += 1
            forward(index, message)

    for index in range(NODE_COUNT):
        env.process(node(index))

    started = time.perf_counter()
    env.run()
    wall_s = time.perf_counter() - started

    assert received[0] == deliveries, f"expected {deliveries} deliveries, got {received[0]}"
    return RunResult(received[0], wall_s, float(env.now))


# -- the floor -------------------------------------------------------------------


def run_floor(deliveries: int, seed: int) -> RunResult:
    """Run only the event queue: pop an arrival, draw a latency, push the next one.

    No nodes, no handlers, no peer choice and no FIFO rule.
    """
    rng = random.Random(seed)
    draw_latency = functools.partial(rng.expovariate, 1.0 / MEAN_LATENCY_S)
    token = Token(0)
    queue = [(draw_latency(), seq, token, 0.0) for seq in range(NODE_COUNT)]
    heapq.heapify(queue)
    seq = NODE_COUNT
    latencies: list[float] = []
    now = 0.0

    started = time.perf_counter()
    while queue:
        now, _, message, sent_at_s = heapq.heappop(queue)
        latencies.append(now - sent_at_s)
        if seq < deliveries:
            seq += 1
            heapq.heappush(queue, (now + draw_latency(), seq, message, now))
    wall_s = time.perf_counter() - started

    assert len(latencies) == deliveries, f"expected {deliveries}, got {len(latencies)}"
    return RunResult(len(latencies), wall_s, now)


# -- measuring and reporting -------------------------------------------------------

OURS = "msgpass.sim"
REFERENCE = "SimPy 4.1 (Store + process per message)"
LEAN_SIMPY = "SimPy 4.1 (Store + Timeout callback)"
SIMULATORS: dict[str, Callable[[int, int], RunResult]] = {
    OURS: run_msgpass,
    REFERENCE: run_simpy,
    LEAN_SIMPY: run_simpy_callbacks,
    "floor: bare heapq loop, no nodes": run_floor,
}


def measure(deliveries: int, repeat: int) -> dict[str, list[RunResult]]:
    """Run every simulator ``repeat`` times, interleaved, with seeds 1..repeat."""
    results: dict[str, list[RunResult]] = {name: [] for name in SIMULATORS}
    for seed in range(1, repeat + 1):
        for name, run in SIMULATORS.items():
            results[name].append(run(deliveries, seed))
    return results


def median_rate(runs: list[RunResult]) -> float:
    return statistics.median(run.deliveries_per_s for run in runs)


def paired_ratio(results: dict[str, list[RunResult]], reference: str = REFERENCE) -> float:
    """Return the median over repetitions of msgpass's rate divided by ``reference``'s.

    The runs of one repetition follow each other within seconds, so a change
    in machine load tends to slow both rates of a pair alike.
    """
    pairs = zip(results[OURS], results[reference], strict=True)
    return statistics.median(
        ours.deliveries_per_s / simpy.deliveries_per_s for ours, simpy in pairs
    )


def format_report(results: dict[str, list[RunResult]], deliveries: int) -> str:
    """Return the table of median deliveries per second and the ratio to SimPy."""
    reference = median_rate(results[REFERENCE])
    repeat = len(next(iter(results.values())))
    lines = [
        f"Python {platform.python_version()}, simpy {simpy.__version__}, "
        f"{NODE_COUNT} nodes, {deliveries} deliveries per run, median of {repeat} runs",
        "",
        f"{'simulator':<42}{'deliveries/s':>14}{'vs SimPy':>10}   range of runs",
    ]
    for name, runs in results.items():
        rates = [run.deliveries_per_s for run in runs]
        rate = statistics.median(rates)
        lines.append(
            f"{name:<42}{rate:>14.0f}{rate / reference:>9.2f}x   "
            f"{min(rates):.0f} to {max(rates):.0f}"
        )
    ratio = paired_ratio(results)
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    lines.append("")
    lines.append(
        f"target {TARGET_RATIO:.0f}x SimPy: {verdict} "
        f"(median of per-repetition ratios {ratio:.2f}x)"
    )
    lines.append(
        f"against {LEAN_SIMPY}: median of per-repetition ratios "
        f"{paired_ratio(results, LEAN_SIMPY):.2f}x"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"run {QUICK_DELIVERIES} deliveries per run instead of {FULL_DELIVERIES}",
    )
    parser.add_argument(
        "--deliveries", type=int, default=None, help="deliveries per run (overrides --quick)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per simulator (default 5)")
    args = parser.parse_args(argv)
    deliveries = args.deliveries or (QUICK_DELIVERIES if args.quick else FULL_DELIVERIES)
    if deliveries < 1 or args.repeat < 1:
        parser.error("--deliveries and --repeat must be at least 1")
    print(format_report(measure(deliveries, args.repeat), deliveries))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
