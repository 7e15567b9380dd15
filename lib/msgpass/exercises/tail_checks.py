"""The checker of exercise ``hedged-request`` in lab 13 (tail latency).

The learner completes ``HedgingClient``, a ``Node`` that issues requests one
after another to ``ReplicaServer`` nodes. It sends each request to one
replica and, if no reply came within ``hedge_delay_s``, one copy to a
different replica, and it completes the request with the first reply. The
checker runs it on seeded simulations and checks safety (right value, each
request completed once, with its first reply), liveness (every request
completes, even with a replica crashed), the load bound (a hedge only at the
delay, at most one per request, and only for requests still waiting) and the
tail: p99 at most half of the p99 without hedging and within 10% of
``models.hedged_percentile_s``.

The checker observes the learner's client through ``tail_sim.run_requests``,
which records every ``send``, every ``Reply`` delivered and every call of
``complete``, so it does not rely on what the client reports about itself.

Lab 13 imports everything from this module: the replicas and the harness
from ``msgpass.tail_sim`` and the ``fanout-percentile`` checker from
``fanout_checks`` are re-exported here.
"""

from __future__ import annotations

import math
import random
from typing import Any

from .. import models
from ..tail_sim import (
    LINK_LATENCY_S,
    ClientRecord,
    ReplicaServer,
    Reply,
    Request,
    RunResult,
    SingleCopyClient,
    SlowTailService,
    quantile_from_cdf,
    run_requests,
)
from .checking import CheckFailed, CheckReport, short_repr
from .fanout_checks import FANOUT_EXERCISE_ID, check_fanout_percentile
from .timed_calls import TimedCheck

__all__ = [
    "FANOUT_EXERCISE_ID",
    "HEDGE_EXERCISE_ID",
    "Request",
    "Reply",
    "SlowTailService",
    "ReplicaServer",
    "ClientRecord",
    "RunResult",
    "run_requests",
    "SingleCopyClient",
    "quantile_from_cdf",
    "check_fanout_percentile",
    "check_hedged_request",
]

HEDGE_EXERCISE_ID = "hedged-request"

# The simulated network of the checks is tail_sim's: LINK_LATENCY_S each way.
TAIL_REQUESTS = 3000
HEDGE_QUANTILE = 0.95  # the tail check hedges at the per-replica p95
MAX_P99_RATIO = 0.5  # hedged p99 / unhedged p99 must not exceed this
MAX_FORMULA_ERROR = 0.10  # relative distance of the hedged p99 from the formula
# The tail check accepts a hedged fraction up to 1 - F(d) plus this many binomial
# standard deviations, so a client that hedges more often than the delay implies fails.
HEDGE_FRACTION_Z = 4.0
TIME_EPSILON_S = 1e-9


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


def _nearest_rank(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]


def check_hedged_request(client_class: Any, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check a learner's ``HedgingClient`` class on seeded simulations of two replicas.

    Prints a one-line summary and returns a ``CheckReport`` when every check
    passes. Raises ``ExerciseFailed`` naming the first failed check, what was
    expected, what happened and a hint.
    """
    check = TimedCheck(HEDGE_EXERCISE_ID, seed=seed)
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
