"""The tail-latency formulas of chapter 3: fan-out requests and hedged requests.

A request that fans out to N servers waits for the slowest reply, so its tail
is the servers' far tail (``fanout_*``). A hedged request sends a second copy
to another replica after a delay and takes the first reply (``hedged_*``).
Both assume that servers are independent. Source: J. Dean and L. A. Barroso,
"The Tail at Scale", Communications of the ACM, 2013.

``msgpass.models`` re-exports every function here, so labs call them as
``models.fanout_...`` and ``models.hedged_...``.

Left out on purpose: correlated slowness (a shared switch, a shared disk),
which makes the real tail worse than these formulas, and tied requests that
cancel the losing copy.
"""

from __future__ import annotations

from collections.abc import Callable

from .models_args import _count, _non_negative, _positive, _probability

__all__ = [
    "fanout_slow_probability",
    "fanout_all_below_probability",
    "fanout_percentile_s",
    "hedged_cdf",
    "hedged_percentile_s",
]


def fanout_slow_probability(slow_probability: float, fanout: int) -> float:
    """Compute 1 - (1 - p)^N, the chance that at least one of N servers is slow.

    Assumes the servers are slow independently of each other. Source: J. Dean
    and L. A. Barroso, "The Tail at Scale", Communications of the ACM, 2013.
    """
    slow = _probability("slow_probability", slow_probability)
    return 1.0 - (1.0 - slow) ** _count("fanout", fanout)


def fanout_all_below_probability(per_server_cdf: float, fanout: int) -> float:
    """Compute F(t)^N, the chance that all N independent replies arrive by t.

    ``per_server_cdf`` is F(t), the chance that one server replies by t.
    """
    return _probability("per_server_cdf", per_server_cdf) ** _count("fanout", fanout)


def fanout_percentile_s(
    per_server_quantile_s: Callable[[float], float], fanout: int, quantile: float
) -> float:
    """Compute the q-quantile of the slowest of N independent replies.

    The slowest reply is below t with probability F(t)^N, so its q-quantile is
    the per-server quantile at q^(1/N). ``per_server_quantile_s`` is the
    inverse CDF of one server's latency. For N = 100 and q = 0.99 it is called
    at about 0.9999: the request's p99 is a server's p99.99.
    """
    q = _probability("quantile", quantile, allow_one=False)
    return per_server_quantile_s(q ** (1.0 / _count("fanout", fanout)))


def hedged_cdf(
    per_server_cdf: Callable[[float], float], time_s: float, hedge_delay_s: float = 0.0
) -> float:
    """Compute P(a hedged request has a reply by t).

    The first copy goes out at 0 and the second at ``hedge_delay_s`` to
    another replica, and the first reply wins, so the response time is
    min(X1, d + X2) with X1 and X2 independent and distributed by
    ``per_server_cdf``. Its CDF is 1 - (1 - F(t)) (1 - F(t - d)) for t >= d
    and F(t) before. With d = 0 this is the minimum of two independent draws.
    The hedge is sent only if no reply came by d, which the formula already
    reflects. The fraction of requests that send it is 1 - F(d).
    """
    t = _non_negative("time_s", time_s)
    delay = _non_negative("hedge_delay_s", hedge_delay_s)
    first = per_server_cdf(t)
    if t < delay:
        return first
    return 1.0 - (1.0 - first) * (1.0 - per_server_cdf(t - delay))


def hedged_percentile_s(
    per_server_cdf: Callable[[float], float],
    quantile: float,
    hedge_delay_s: float = 0.0,
    *,
    tolerance_s: float = 1e-9,
) -> float:
    """Find the q-quantile of a hedged request's response time by bisection.

    ``per_server_cdf`` must be a non-decreasing CDF that reaches ``quantile``
    at some finite time. Raises ``ValueError`` when it does not within 1e12 s.
    The result is within ``tolerance_s`` of the quantile, or as close as
    200 halvings of the bracket get.
    """
    q = _probability("quantile", quantile, allow_one=False)
    _positive("tolerance_s", tolerance_s)
    low, high = 0.0, max(hedge_delay_s, 1e-6)
    while hedged_cdf(per_server_cdf, high, hedge_delay_s) < q:
        low, high = high, high * 2.0
        if high > 1e12:
            raise ValueError(
                f"invalid per_server_cdf: it stays below {q} up to 1e12 s; "
                f"pass the CDF of a distribution with a finite quantile"
            )
    # At most 200 halvings: floats near a large quantile cannot resolve a tiny tolerance.
    for _ in range(200):
        if high - low <= tolerance_s:
            break
        middle = (low + high) / 2.0
        if hedged_cdf(per_server_cdf, middle, hedge_delay_s) < q:
            low = middle
        else:
            high = middle
    return high
