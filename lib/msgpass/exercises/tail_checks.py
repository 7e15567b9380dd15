"""The checkers of lab 13 (tail latency), and the replica servers they run.

Exercise ``fanout-percentile``: the learner writes
``fanout_percentile_from_cdf(per_server_cdf, fanout, quantile)``, which returns
the ``quantile`` of the slowest of ``fanout`` independent replies, each
distributed by the CDF ``per_server_cdf`` (a function from seconds to a
probability). The slowest reply is below t with probability F(t)^N, so the
function must return the t where F(t) reaches quantile^(1/N). The checker compares it
with an exact reference and with a Monte-Carlo estimate, and tries the edge
cases the exercise names.

Exercise ``hedged-request``: the learner completes ``HedgingClient``, a
``Node`` that issues requests one after another to ``ReplicaServer`` nodes.
It sends each request to one replica and, if no reply came within
``hedge_delay_s``, one copy to a different replica, and it completes the
request with the first reply. The checker runs it on seeded simulations and
checks safety (right value, each request completed once, with its first
reply), liveness (every request completes, even with a replica crashed), the
load bound (a hedge only at the delay, at most one per request, and only for
requests still waiting) and the tail: p99 at most half of the p99 without
hedging and within 10% of ``models.hedged_percentile_s``.

The checker observes the learner's client through a subclass that records
every ``send``, every ``Reply`` delivered and every call of ``complete``, so it
does not rely on what the client reports about itself.

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

import numpy as np

from .. import models
from ..node import Node
from ..sim import Constant, LinkConfig, Simulation
from .checking import Check, CheckFailed, CheckReport, short_repr

__all__ = [
    "FANOUT_EXERCISE_ID",
    "HEDGE_EXERCISE_ID",
    "Request",
    "Reply",
    "SlowTailService",
    "ReplicaServer",
    "run_requests",
    "SingleCopyClient",
    "quantile_from_cdf",
    "check_fanout_percentile",
    "check_hedged_request",
]

FANOUT_EXERCISE_ID = "fanout-percentile"
HEDGE_EXERCISE_ID = "hedged-request"

# fanout-percentile: the candidate must match the exact quantile to this
# relative error, which a bisection reaches in about 30 halvings.
EXACT_RELATIVE_TOLERANCE = 1e-4
MONTE_CARLO_TRIALS = 20_000
# The Monte-Carlo check accepts any value between the order statistics at
# ranks n*q -/+ Z * sqrt(n*q*(1-q)): a distribution-free confidence interval
# for the true quantile at about 99.9% confidence.
MONTE_CARLO_Z = 3.3

# hedged-request: the simulated network of the checks.
LINK_LATENCY_S = 0.001  # each direction between client and replica, constant
TAIL_REQUESTS = 3000
HEDGE_QUANTILE = 0.95  # the tail check hedges at the per-replica p95
MAX_P99_RATIO = 0.5  # hedged p99 / unhedged p99 must not exceed this
MAX_FORMULA_ERROR = 0.10  # relative distance of the hedged p99 from the formula
# The tail check accepts a hedged fraction up to 1 - F(d) plus this many binomial
# standard deviations, so a client that hedges more often than the delay implies fails.
HEDGE_FRACTION_Z = 4.0
TIME_EPSILON_S = 1e-9


# ---------------------------------------------------------------------------
# Messages, the replicas' service time, and the replica server
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Running a client against replicas, with everything it does recorded
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Sub-checks of hedged-request
# ---------------------------------------------------------------------------


def _check_run(result: RunResult, request_count: int, hedge_delay_s: float) -> int:
    """Check safety, liveness and the hedging rules of one run; return the hedges sent."""
    record = result.record
    completions: dict[int, list[tuple[float, object]]] = {}
    for time_s, request_id, value in record.completions:
        completions.setdefault(request_id, []).append((time_s, value))

    for request_id, calls in sorted(completions.items()):
        if len(calls) > 1:
            raise CheckFailed(
                expected=f"complete({request_id}, ...) to be called once",
                actual=f"{len(calls)} calls, at {[round(t, 6) for t, _ in calls]} s",
                hint="remember which requests got a reply and ignore every later reply "
                "to them: the hedge's reply usually arrives after the first one",
            )
        expected_value = f"result-{request_id}"
        if calls[0][1] != expected_value:
            raise CheckFailed(
                expected=f"complete({request_id}, {expected_value!r})",
                actual=f"complete({request_id}, {short_repr(calls[0][1])})",
                hint="complete a request with the value of a Reply whose request_id is that "
                "request's: a late reply to an earlier request carries another value",
            )

    missing = [i for i in range(request_count) if i not in completions]
    if missing:
        raise CheckFailed(
            expected=f"all {request_count} requests completed",
            actual=f"{request_count - len(missing)} completed; request {missing[0]} never "
            f"completed (simulation stopped at {result.sim_time_s:.3f} s)",
            hint="call self.complete(request_id, value) on the first reply, and send the "
            "hedge to a different replica, so a request survives one replica that never replies",
        )

    first_reply: dict[int, float] = {}
    for time_s, _, message in record.replies:
        first_reply.setdefault(getattr(message, "request_id", -1), time_s)
    for request_id, calls in completions.items():
        if abs(calls[0][0] - first_reply.get(request_id, math.inf)) > TIME_EPSILON_S:
            raise CheckFailed(
                expected=f"request {request_id} completed when its first reply arrived, "
                f"at {first_reply.get(request_id, math.inf):.6f} s",
                actual=f"completed at {calls[0][0]:.6f} s",
                hint="complete a request in on_Reply, with the first reply that arrives",
            )

    copies: dict[int, list[tuple[float, str]]] = {}
    for time_s, dest, message in record.sends:
        if not isinstance(message, Request):
            raise CheckFailed(
                expected="the client to send only Request messages",
                actual=f"it sent {short_repr(message)} to {dest!r}",
            )
        copies.setdefault(message.request_id, []).append((time_s, dest))

    hedges = 0
    for request_id, sent in sorted(copies.items()):
        start_s, primary = sent[0]
        if len(sent) > 2:
            raise CheckFailed(
                expected=f"at most 2 copies of request {request_id} (the request and one hedge)",
                actual=f"{len(sent)} copies, to {[dest for _, dest in sent]}",
                hint="send one hedge per request, from the hedge timer only",
            )
        replied_s = first_reply.get(request_id, math.inf)
        if len(sent) == 1:
            if replied_s > start_s + hedge_delay_s + TIME_EPSILON_S:
                raise CheckFailed(
                    expected=f"a hedge for request {request_id} at "
                    f"{start_s + hedge_delay_s:.6f} s, because no reply had arrived by then",
                    actual="no hedge was sent",
                    hint="arm a timer of hedge_delay_s when the request is sent, and send "
                    "the hedge when it fires if the request still has no reply",
                )
            continue
        hedges += 1
        hedge_s, hedge_dest = sent[1]
        if abs(hedge_s - (start_s + hedge_delay_s)) > TIME_EPSILON_S:
            raise CheckFailed(
                expected=f"the hedge of request {request_id} sent at the hedge delay, "
                f"{start_s + hedge_delay_s:.6f} s",
                actual=f"sent at {hedge_s:.6f} s",
                hint="send the hedge from a timer of hedge_delay_s armed when the first "
                "copy goes out, not together with the first copy",
            )
        if replied_s <= hedge_s:
            raise CheckFailed(
                expected=f"no hedge for request {request_id}, whose reply arrived at "
                f"{replied_s:.6f} s",
                actual=f"a hedge sent at {hedge_s:.6f} s",
                hint="when the timer fires for a request that already has a reply, do "
                "nothing (or cancel the timer when the reply arrives)",
            )
        if hedge_dest == primary:
            raise CheckFailed(
                expected=f"the hedge of request {request_id} sent to a replica other "
                f"than {primary!r}",
                actual=f"sent to {hedge_dest!r} again",
                hint="send the hedge to a different replica: the slow one is slow for both copies",
            )
    return hedges


def check_no_hedge_when_fast(client_class: Any, rng: random.Random) -> None:
    service = SlowTailService(median_s=0.002, sigma=0.1, stall_probability=0.0)
    result = run_requests(
        client_class,
        request_count=20,
        hedge_delay_s=0.050,
        service=service,
        seed=rng.randrange(1000),
    )
    hedges = _check_run(result, 20, 0.050)
    if hedges:
        raise CheckFailed(
            expected="no hedge when every reply arrives within 10 ms and the delay is 50 ms",
            actual=f"{hedges} hedges",
        )


def check_hedge_when_slow(client_class: Any, rng: random.Random) -> None:
    service = SlowTailService(median_s=0.100, sigma=0.05, stall_probability=0.0)
    result = run_requests(
        client_class,
        request_count=20,
        hedge_delay_s=0.020,
        service=service,
        seed=rng.randrange(1000),
    )
    hedges = _check_run(result, 20, 0.020)
    if hedges != 20:
        raise CheckFailed(
            expected="20 hedges: every reply takes about 100 ms and the delay is 20 ms",
            actual=f"{hedges} hedges",
        )


def check_crashed_replica(client_class: Any, rng: random.Random) -> None:
    service = SlowTailService(median_s=0.005, sigma=0.2, stall_probability=0.0)
    for crashed in ("r0", "r1"):
        result = run_requests(
            client_class,
            request_count=20,
            hedge_delay_s=0.030,
            service=service,
            seed=rng.randrange(1000),
            crashed=(crashed,),
        )
        _check_run(result, 20, 0.030)


def check_tail_improves(client_class: Any, rng: random.Random) -> None:
    service = SlowTailService()
    seed = rng.randrange(1000)

    def response_cdf(time_s: float) -> float:
        return service.cdf(time_s - 2 * LINK_LATENCY_S)

    hedge_delay_s = quantile_from_cdf(response_cdf, HEDGE_QUANTILE)
    baseline = run_requests(
        SingleCopyClient,
        request_count=TAIL_REQUESTS,
        hedge_delay_s=hedge_delay_s,
        service=service,
        seed=seed,
    )
    hedged = run_requests(
        client_class,
        request_count=TAIL_REQUESTS,
        hedge_delay_s=hedge_delay_s,
        service=service,
        seed=seed,
    )
    hedges = _check_run(hedged, TAIL_REQUESTS, hedge_delay_s)

    hedge_probability = 1.0 - response_cdf(hedge_delay_s)
    allowed = hedge_probability + HEDGE_FRACTION_Z * math.sqrt(
        hedge_probability * (1 - hedge_probability) / TAIL_REQUESTS
    )
    if hedges / TAIL_REQUESTS > allowed:
        raise CheckFailed(
            expected=f"at most {allowed:.1%} of requests hedged (the chance that no reply "
            f"came within the delay is {hedge_probability:.1%})",
            actual=f"{hedges / TAIL_REQUESTS:.1%} hedged",
            hint="hedge only requests that still have no reply when their own timer fires",
        )

    baseline_p99 = _nearest_rank(list(baseline.latencies_s.values()), 0.99)
    hedged_p99 = _nearest_rank(list(hedged.latencies_s.values()), 0.99)
    if hedged_p99 > MAX_P99_RATIO * baseline_p99:
        raise CheckFailed(
            expected=f"p99 with hedging at most {MAX_P99_RATIO:g} x the p99 without "
            f"({baseline_p99 * 1000:.1f} ms)",
            actual=f"p99 with hedging {hedged_p99 * 1000:.1f} ms",
            hint="send the hedge to another replica at the delay and complete the request "
            "with whichever reply comes first",
        )
    predicted = models.hedged_percentile_s(response_cdf, 0.99, hedge_delay_s)
    if abs(hedged_p99 - predicted) > MAX_FORMULA_ERROR * predicted:
        raise CheckFailed(
            expected=f"p99 with hedging within {MAX_FORMULA_ERROR:.0%} of the formula's "
            f"{predicted * 1000:.1f} ms",
            actual=f"{hedged_p99 * 1000:.1f} ms",
            hint="send the hedge exactly at hedge_delay_s after the first copy",
        )


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


def _nearest_rank(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]


def check_hedged_request(client_class: Any, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check a learner's ``HedgingClient`` class on seeded simulations of two replicas.

    Prints a one-line summary and returns a ``CheckReport`` when every check
    passes. Raises ``ExerciseFailed`` naming the first failed check, what was
    expected, what happened and a hint.
    """
    check = Check(HEDGE_EXERCISE_ID, seed=seed)
    check.add(
        "fast replies, no hedge",
        check_no_hedge_when_fast,
        hint="send the hedge only when the timer fires for a request that still has no reply",
    )
    check.add(
        "slow replies, one hedge each",
        check_hedge_when_slow,
        hint="arm a timer of hedge_delay_s per request and send one copy to another "
        "replica when it fires",
    )
    check.add(
        "one replica crashed",
        check_crashed_replica,
        hint="the hedge must go to a different replica, so a request to a crashed "
        "replica still completes",
    )
    check.add(
        "tail under slow replicas",
        check_tail_improves,
        hint="hedge at the delay, to another replica, and keep the first reply",
    )
    return check.run(client_class, quiet=quiet)


# ---------------------------------------------------------------------------
# Sub-checks of fanout-percentile
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Case:
    """A per-server latency distribution: its CDF, its exact quantile and a sampler."""

    name: str
    cdf: Callable[[float], float]
    quantile: Callable[[float], float]
    sample: Callable[[np.random.Generator, int], np.ndarray]


def _cases() -> list[_Case]:
    mean_s = 0.005
    exponential = _Case(
        "exponential, mean 5 ms",
        lambda t: 1.0 - math.exp(-t / mean_s) if t > 0 else 0.0,
        lambda q: -mean_s * math.log(1.0 - q),
        lambda gen, n: gen.exponential(mean_s, n),
    )
    median_s, sigma = 2.0, 1.0
    normal = NormalDist()
    lognormal = _Case(
        "lognormal, median 2 s, sigma 1",
        lambda t: normal.cdf((math.log(t) - math.log(median_s)) / sigma) if t > 0 else 0.0,
        lambda q: median_s * math.exp(sigma * normal.inv_cdf(q)),
        lambda gen, n: gen.lognormal(math.log(median_s), sigma, n),
    )
    return [exponential, lognormal]


def _call(candidate: Any, cdf: Callable[[float], float], fanout: int, quantile: float) -> float:
    result = candidate(cdf, fanout, quantile)
    is_number = isinstance(result, (int, float)) and not isinstance(result, bool)
    if not is_number or not math.isfinite(result):
        raise CheckFailed(
            expected=f"a finite number of seconds from fanout_percentile_from_cdf(cdf, {fanout}, "
            f"{quantile})",
            actual=short_repr(result),
            hint="return the time t, in seconds, at which cdf(t) ** fanout reaches quantile",
        )
    return float(result)


def check_exact_values(candidate: Any, rng: random.Random) -> None:
    for case in _cases():
        for fanout, quantile in ((1, 0.5), (1, 0.99), (10, 0.5), (10, 0.99), (100, 0.99)):
            expected = models.fanout_percentile_s(case.quantile, fanout, quantile)
            got = _call(candidate, case.cdf, fanout, quantile)
            if abs(got - expected) > EXACT_RELATIVE_TOLERANCE * expected:
                raise CheckFailed(
                    expected=f"p{quantile * 100:g} of the slowest of {fanout} replies "
                    f"({case.name}) = {expected:.6g} s (to {EXACT_RELATIVE_TOLERANCE:g} relative)",
                    actual=f"{got:.6g} s",
                )


def check_monte_carlo(candidate: Any, rng: random.Random) -> None:
    generator = np.random.default_rng(rng.randrange(2**32))
    for case in _cases():
        for fanout, quantile in ((10, 0.99), (50, 0.5)):
            slowest = np.sort(
                case.sample(generator, MONTE_CARLO_TRIALS * fanout)
                .reshape(MONTE_CARLO_TRIALS, fanout)
                .max(axis=1)
            )
            spread = MONTE_CARLO_Z * math.sqrt(MONTE_CARLO_TRIALS * quantile * (1 - quantile))
            low_rank = math.floor(MONTE_CARLO_TRIALS * quantile - spread)
            high_rank = math.ceil(MONTE_CARLO_TRIALS * quantile + spread)
            low = slowest[max(0, low_rank - 1)]
            high = slowest[min(MONTE_CARLO_TRIALS - 1, high_rank - 1)]
            got = _call(candidate, case.cdf, fanout, quantile)
            if not low <= got <= high:
                raise CheckFailed(
                    expected=f"p{quantile * 100:g} of the slowest of {fanout} replies "
                    f"({case.name}) in [{low:.6g}, {high:.6g}] s, the 99.9% interval of "
                    f"{MONTE_CARLO_TRIALS} simulated requests",
                    actual=f"{got:.6g} s",
                )


def check_step_cdf(candidate: Any, rng: random.Random) -> None:
    constant_s = 0.25

    def step(t: float) -> float:
        return 1.0 if t >= constant_s else 0.0

    got = _call(candidate, step, 20, 0.9)
    if abs(got - constant_s) > EXACT_RELATIVE_TOLERANCE * constant_s:
        raise CheckFailed(
            expected=f"{constant_s} s: every server takes exactly {constant_s} s, so every "
            f"percentile of the slowest is {constant_s} s",
            actual=f"{got:.6g} s",
            hint="search for the smallest t with cdf(t) >= quantile ** (1 / fanout); a CDF "
            "may jump, so do not solve by interpolation or by derivatives",
        )


def check_invalid_arguments(candidate: Any, rng: random.Random) -> None:
    case = _cases()[0]
    for fanout, quantile in ((0, 0.5), (-3, 0.5), (10, 0.0), (10, 1.0), (10, 1.5), (10, -0.1)):
        try:
            got = candidate(case.cdf, fanout, quantile)
        except ValueError:
            continue
        raise CheckFailed(
            expected=f"ValueError from fanout_percentile_from_cdf(cdf, {fanout}, {quantile})",
            actual=f"it returned {short_repr(got)}",
            hint="raise ValueError when fanout < 1 or quantile is not strictly between 0 and 1",
        )


def check_fanout_percentile(candidate: Any, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check a learner's ``fanout_percentile_from_cdf(per_server_cdf, fanout, quantile)``.

    Prints a one-line summary and returns a ``CheckReport`` when every check
    passes. Raises ``ExerciseFailed`` naming the first failed check, what was
    expected, what happened and a hint.
    """
    check = Check(FANOUT_EXERCISE_ID, seed=seed)
    check.add(
        "exact quantiles",
        check_exact_values,
        hint="the slowest of N replies is below t with probability cdf(t) ** N, so find "
        "the t where cdf(t) reaches quantile ** (1 / N); grow the upper end of the search "
        "until cdf reaches that level, because the scale is not known in advance",
    )
    check.add(
        "Monte-Carlo reference",
        check_monte_carlo,
        hint="the slowest of N replies is below t with probability cdf(t) ** N",
    )
    check.add(
        "constant service time",
        check_step_cdf,
        hint="search for the smallest t with cdf(t) >= quantile ** (1 / fanout)",
    )
    check.add(
        "invalid arguments",
        check_invalid_arguments,
        hint="raise ValueError when fanout < 1 or quantile is not strictly between 0 and 1",
    )
    return check.run(candidate, quiet=quiet)
