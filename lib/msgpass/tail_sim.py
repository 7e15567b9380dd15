"""Replicas with a slow tail, and a harness that runs a client against them (lab 13).

Lab 13 measures tail latency on the simulator. This module contains what its
runs are made of:

- ``Request`` and ``Reply``, the messages between a client and a replica;
- ``SlowTailService``, a service time that is lognormal with an occasional
  stall, and its exact CDF;
- ``ReplicaServer``, a ``Node`` that replies to each request after a service
  time drawn from a ``SlowTailService``;
- ``SingleCopyClient``, the client without hedging that is the baseline;
- ``run_requests``, which runs any client class against replicas and records
  every send, reply and ``complete`` call outside the client, so that a
  checker does not rely on what the client reports about itself;
- ``quantile_from_cdf``, which turns a CDF into a quantile by bisection, for
  choosing a hedge delay.

Left out on purpose: replicas with queues. Each ``ReplicaServer`` serves its
requests in parallel, so a hedge never waits behind the request it hedges
and the hedged-response formula applies exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from .node import Node
from .sim import Constant, LinkConfig, Simulation

__all__ = [
    "LINK_LATENCY_S",
    "Request",
    "Reply",
    "SlowTailService",
    "ReplicaServer",
    "ClientRecord",
    "RunResult",
    "run_requests",
    "SingleCopyClient",
    "quantile_from_cdf",
]

LINK_LATENCY_S = 0.001  # each direction between client and replica, constant


@dataclass(frozen=True)
class Request:
    """A client's request number ``request_id``; a hedge is a second copy of it."""

    request_id: int


@dataclass(frozen=True)
class Reply:
    """A replica's reply to request ``request_id``. ``value`` is ``f"result-{request_id}"``."""

    request_id: int
    value: str


@dataclass(frozen=True)
class SlowTailService:
    """A service time with a slow tail: lognormal, plus a stall with some probability.

    Most requests take about ``median_s``. With probability
    ``stall_probability`` the replica also stalls for ``stall_s`` (a garbage
    collection, a busy disk), which makes the tail that hedging removes.
    """

    median_s: float = 0.010
    sigma: float = 0.3
    stall_probability: float = 0.02
    stall_s: float = 0.100

    def sample(self, rng: random.Random) -> float:
        """Draw one service time in seconds: two draws from ``rng``, always in this order."""
        body = rng.lognormvariate(math.log(self.median_s), self.sigma)
        stalled = rng.random() < self.stall_probability
        return body + self.stall_s if stalled else body

    def cdf(self, time_s: float) -> float:
        """Return P(service time <= ``time_s``)."""
        return (1.0 - self.stall_probability) * self._body_cdf(
            time_s
        ) + self.stall_probability * self._body_cdf(time_s - self.stall_s)

    def _body_cdf(self, time_s: float) -> float:
        if time_s <= 0:
            return 0.0
        return NormalDist().cdf((math.log(time_s) - math.log(self.median_s)) / self.sigma)


class ReplicaServer(Node):
    """A replica that replies to each ``Request`` after a service time drawn from ``service``.

    Requests are served in parallel (one timer each), so the service time
    of one request does not depend on the others. ``received`` counts the
    requests that arrived, hedges included.
    """

    def __init__(self, node_id: str, service: SlowTailService) -> None:
        super().__init__(node_id)
        self.service = service
        self.received = 0
        self._next_token = 0
        self._waiting: dict[str, tuple[str, Reply]] = {}

    def on_Request(self, sender: str, message: Request) -> None:
        self.received += 1
        name = f"reply-{self._next_token}"
        self._next_token += 1
        reply = Reply(request_id=message.request_id, value=f"result-{message.request_id}")
        self._waiting[name] = (sender, reply)
        self.set_timer(self.service.sample(self.random), name)

    def on_timer(self, name: str) -> None:
        sender, reply = self._waiting.pop(name)
        self.send(sender, reply)




@dataclass
class ClientRecord:
    """The sends, replies and completions of one client run, recorded outside the client."""

    sends: list[tuple[float, str, object]] = field(default_factory=list)
    replies: list[tuple[float, str, object]] = field(default_factory=list)
    completions: list[tuple[float, int, object]] = field(default_factory=list)


@dataclass(frozen=True)
class RunResult:
    """The outcome of ``run_requests``: latencies by request id and what the client did."""

    latencies_s: dict[int, float]
    record: ClientRecord
    replica_requests: int
    sim_time_s: float


def _observed(client_class: type[Any], record: ClientRecord) -> type[Any]:
    """Return a subclass of ``client_class`` that logs sends, replies and completions."""

    class Observed(client_class):  # type: ignore[misc]
        def send(self, dest: str, message: object) -> None:
            record.sends.append((self.now(), dest, message))
            super().send(dest, message)

        def on_Reply(self, sender: str, message: Reply) -> None:
            record.replies.append((self.now(), sender, message))
            super().on_Reply(sender, message)

        def complete(self, request_id: int, value: object) -> None:
            record.completions.append((self.now(), request_id, value))
            super().complete(request_id, value)

    Observed.__name__ = client_class.__name__
    Observed.__qualname__ = client_class.__qualname__
    return Observed


def run_requests(
    client_class: type[Any],
    *,
    request_count: int,
    hedge_delay_s: float,
    service: SlowTailService,
    replica_count: int = 2,
    seed: int = 0,
    crashed: tuple[str, ...] = (),
) -> RunResult:
    """Run ``client_class("client", replicas, hedge_delay_s, request_count)`` to completion.

    The replicas are ``ReplicaServer`` nodes ``r0``, ``r1``, ... behind links
    of constant latency ``LINK_LATENCY_S``. Replicas named in ``crashed`` are
    crashed before the first request. A request's latency runs from its first
    send to its ``complete`` call. The run is bounded by simulated time and by
    the simulator's event limit.
    """
    record = ClientRecord()
    sim = Simulation(seed=seed, default_link=LinkConfig(latency=Constant(LINK_LATENCY_S)))
    replicas = [f"r{index}" for index in range(replica_count)]
    servers = [sim.add_node(ReplicaServer(name, service)) for name in replicas]
    for name in crashed:
        sim.crash(name)
    observed = _observed(client_class, record)
    sim.add_node(observed("client", replicas, hedge_delay_s, request_count))
    # A generous bound: every request could take ten times the stall plus the delay.
    bound_s = request_count * 10 * (service.stall_s + service.median_s * 10 + hedge_delay_s + 1)
    sim.run(until_s=bound_s)

    first_send: dict[int, float] = {}
    for time_s, _, message in record.sends:
        request_id = getattr(message, "request_id", None)
        if isinstance(request_id, int):
            first_send.setdefault(request_id, time_s)
    latencies = {
        request_id: time_s - first_send[request_id]
        for time_s, request_id, _ in record.completions
        if request_id in first_send
    }
    return RunResult(
        latencies_s=latencies,
        record=record,
        replica_requests=sum(server.received for server in servers),
        sim_time_s=sim.now,
    )


class SingleCopyClient(Node):
    """A client without hedging, the baseline of the tail check and of lab 13.

    It has the constructor of ``HedgingClient`` and ignores ``hedge_delay_s``.
    Request i goes to replica i modulo the number of replicas, and the next
    request starts when the reply arrives.
    """

    def __init__(
        self, node_id: str, replicas: list[str], hedge_delay_s: float, request_count: int
    ) -> None:
        super().__init__(node_id)
        self.replicas = replicas
        self.request_count = request_count

    def on_start(self) -> None:
        self.send(self.replicas[0], Request(request_id=0))

    def on_Reply(self, sender: str, message: Reply) -> None:
        self.complete(message.request_id, message.value)

    def complete(self, request_id: int, value: object) -> None:
        next_id = request_id + 1
        if next_id < self.request_count:
            self.send(self.replicas[next_id % len(self.replicas)], Request(request_id=next_id))


def quantile_from_cdf(cdf: Callable[[float], float], quantile: float) -> float:
    """Return the smallest t (to 1e-12 s) with ``cdf(t) >= quantile``, by bisection.

    The upper end of the search doubles from 1 ms until the CDF reaches the
    quantile, so any time scale works. Raises ``ValueError`` if it has not
    by 1e9 s.
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(
            f"invalid quantile {quantile!r}: expected a number strictly between 0 and 1"
        )
    low, high = 0.0, 0.001
    while cdf(high) < quantile:
        low, high = high, high * 2.0
        if high > 1e9:
            raise ValueError(f"invalid cdf: it stays below {quantile} up to 1e9 s")
    while high - low > 1e-12 and high - low > 1e-12 * high:
        middle = (low + high) / 2.0
        if cdf(middle) < quantile:
            low = middle
        else:
            high = middle
    return high
