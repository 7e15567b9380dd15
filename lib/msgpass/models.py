"""The latency, throughput and queueing formulas of chapter 3, as plain functions.

Each function computes one textbook formula, states its assumptions and its
source in its docstring, and rejects arguments outside the formula's domain
with a ``ValueError`` that names the argument. Labs call these functions next
to a measurement, so the reader compares the prediction with what the machine
did.

Units are in the names: seconds (``_s``), bytes (``_bytes``), rates per second
(``_per_s``). Probabilities are floats in [0, 1].

The formulas, in the order of the chapter:

- one-way latency as propagation + transmission + processing + queueing;
- the alpha-beta (Hockney) cost of an n-byte message, and a least-squares fit;
- Little's law, the window limit on throughput, the bandwidth-delay product;
- the Mathis et al. estimate of TCP throughput under loss;
- the time of sequential, pipelined and concurrent requests;
- the M/M/1 queue: utilization, mean number and mean time in the system, mean
  waiting time, and percentiles of the response time;
- the goodput of stop-and-wait and of a sliding window under loss;
- the tail latency of a fan-out request, and hedged requests.

The M/M/1 formulas live in ``models_queueing`` and the tail-latency ones in
``models_tail``. This module re-exports them, so every formula is one
attribute of ``msgpass.models``.

Left out on purpose: networks of queues, M/G/1 and other service-time
distributions, and congestion-control models newer than Reno.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .models_args import _count, _non_negative, _positive, _probability
from .models_queueing import (
    mm1_mean_in_system,
    mm1_mean_time_in_system_s,
    mm1_mean_waiting_time_s,
    mm1_response_time_cdf,
    mm1_response_time_percentile_s,
    mm1_utilization,
)
from .models_tail import (
    fanout_all_below_probability,
    fanout_percentile_s,
    fanout_slow_probability,
    hedged_cdf,
    hedged_percentile_s,
)

__all__ = [
    "FIBRE_SPEED_KM_PER_S",
    "MATHIS_C",
    "MATHIS_C_DELAYED_ACK",
    "propagation_delay_s",
    "transmission_delay_s",
    "one_way_latency_s",
    "alpha_beta_time_s",
    "half_performance_length_bytes",
    "fit_alpha_beta",
    "littles_law",
    "window_throughput_bytes_per_s",
    "bandwidth_delay_product_bytes",
    "mathis_throughput_bytes_per_s",
    "sequential_time_s",
    "pipelined_time_s",
    "concurrent_time_s",
    "mm1_utilization",
    "mm1_mean_in_system",
    "mm1_mean_time_in_system_s",
    "mm1_mean_waiting_time_s",
    "mm1_response_time_cdf",
    "mm1_response_time_percentile_s",
    "stop_and_wait_goodput_bytes_per_s",
    "sliding_window_goodput_bytes_per_s",
    "fanout_slow_probability",
    "fanout_all_below_probability",
    "fanout_percentile_s",
    "hedged_cdf",
    "hedged_percentile_s",
]

# Light in optical fibre travels at about c / 1.47, roughly 200,000 km/s,
# which gives the rule of thumb of 5 microseconds per kilometre.
FIBRE_SPEED_KM_PER_S = 200_000.0

# The constant C of the Mathis formula for a receiver that acknowledges every
# segment, and for one that delays acknowledgements (one ACK per two segments).
MATHIS_C = math.sqrt(3.0 / 2.0)
MATHIS_C_DELAYED_ACK = math.sqrt(3.0 / 4.0)


# ---------------------------------------------------------------- where the time goes


def propagation_delay_s(distance_km: float, speed_km_per_s: float = FIBRE_SPEED_KM_PER_S) -> float:
    """Compute the time a signal takes to travel ``distance_km``.

    The default speed is that of light in optical fibre, about 200,000 km/s,
    so 1,000 km takes about 5 ms one way.
    """
    return _non_negative("distance_km", distance_km) / _positive("speed_km_per_s", speed_km_per_s)


def transmission_delay_s(size_bytes: float, bandwidth_bytes_per_s: float) -> float:
    """Compute the time to put ``size_bytes`` on a link of the given bandwidth."""
    size = _non_negative("size_bytes", size_bytes)
    return size / _positive("bandwidth_bytes_per_s", bandwidth_bytes_per_s)


def one_way_latency_s(
    propagation_s: float,
    transmission_s: float,
    processing_s: float = 0.0,
    queueing_s: float = 0.0,
) -> float:
    """Add the four parts of one-way latency: propagation, transmission, processing, queueing.

    Assumes the parts happen one after the other, which holds for one message on
    a store-and-forward path with a single hop.
    """
    parts = {
        "propagation_s": propagation_s,
        "transmission_s": transmission_s,
        "processing_s": processing_s,
        "queueing_s": queueing_s,
    }
    return sum(_non_negative(name, value) for name, value in parts.items())


# ---------------------------------------------------------------- alpha-beta


def alpha_beta_time_s(size_bytes: float, alpha_s: float, beta_bytes_per_s: float) -> float:
    """Compute Hockney's cost of an n-byte message, T(n) = alpha + n / beta.

    ``alpha_s`` is the fixed cost per message and ``beta_bytes_per_s`` the
    asymptotic bandwidth. Assumes one message on an idle path, a cost linear
    in size and no queueing. Source: R. W. Hockney, "The communication
    challenge for MPP: Intel Paragon and Meiko CS-2", Parallel Computing, 1994.
    """
    size = _non_negative("size_bytes", size_bytes)
    alpha = _non_negative("alpha_s", alpha_s)
    return alpha + size / _positive("beta_bytes_per_s", beta_bytes_per_s)


def half_performance_length_bytes(alpha_s: float, beta_bytes_per_s: float) -> float:
    """Compute n_1/2 = alpha * beta, the size at which effective bandwidth is half of beta."""
    return _non_negative("alpha_s", alpha_s) * _positive("beta_bytes_per_s", beta_bytes_per_s)


def fit_alpha_beta(sizes_bytes: Sequence[float], times_s: Sequence[float]) -> tuple[float, float]:
    """Fit T(n) = alpha + n / beta to measurements by least squares.

    Returns ``(alpha_s, beta_bytes_per_s)``. Needs at least two distinct sizes
    and a fitted slope above 0. A negative fitted alpha (noise on tiny
    messages) is returned as it is, so the caller sees that the fit is poor.
    """
    if len(sizes_bytes) != len(times_s):
        raise ValueError(
            f"invalid measurements: {len(sizes_bytes)} sizes but {len(times_s)} times; "
            f"pass one time per size"
        )
    if len(set(sizes_bytes)) < 2:
        raise ValueError("invalid measurements: at least two distinct sizes are needed for a fit")
    count = len(sizes_bytes)
    mean_size = sum(sizes_bytes) / count
    mean_time = sum(times_s) / count
    covariance = sum(
        (size - mean_size) * (time - mean_time)
        for size, time in zip(sizes_bytes, times_s, strict=True)
    )
    variance = sum((size - mean_size) ** 2 for size in sizes_bytes)
    slope = covariance / variance
    if slope <= 0:
        raise ValueError(
            f"invalid measurements: time does not grow with size (slope {slope:.3g} s/byte), "
            f"so no bandwidth can be fitted; measure larger sizes"
        )
    alpha = mean_time - slope * mean_size
    return alpha, 1.0 / slope


# ---------------------------------------------------------------- throughput


def littles_law(
    *,
    items: float | None = None,
    arrival_rate_per_s: float | None = None,
    time_in_system_s: float | None = None,
) -> float:
    """Solve Little's law, L = lambda * W, for whichever of the three is not given.

    Pass exactly two of ``items`` (L), ``arrival_rate_per_s`` (lambda) and
    ``time_in_system_s`` (W). Assumes a stable system and long-run averages;
    nothing is assumed about distributions or scheduling. Source: J. D. C.
    Little, "A Proof for the Queuing Formula: L = lambda W", Operations
    Research, 1961.
    """
    if items is None and arrival_rate_per_s is not None and time_in_system_s is not None:
        rate = _non_negative("arrival_rate_per_s", arrival_rate_per_s)
        return rate * _non_negative("time_in_system_s", time_in_system_s)
    if arrival_rate_per_s is None and items is not None and time_in_system_s is not None:
        count = _non_negative("items", items)
        return count / _positive("time_in_system_s", time_in_system_s)
    if time_in_system_s is None and items is not None and arrival_rate_per_s is not None:
        count = _non_negative("items", items)
        return count / _positive("arrival_rate_per_s", arrival_rate_per_s)
    raise ValueError(
        "invalid arguments: pass exactly two of items, arrival_rate_per_s and "
        "time_in_system_s, and the third is returned"
    )


def window_throughput_bytes_per_s(window_bytes: float, rtt_s: float) -> float:
    """Compute the upper bound w / RTT on the throughput of a window-limited sender.

    A sender that may have at most ``window_bytes`` unacknowledged gets at most
    one window per round trip; this is Little's law with L = w and W = RTT.
    """
    return _non_negative("window_bytes", window_bytes) / _positive("rtt_s", rtt_s)


def bandwidth_delay_product_bytes(bandwidth_bytes_per_s: float, rtt_s: float) -> float:
    """Compute B * RTT, the smallest window that keeps a link of bandwidth B busy."""
    bandwidth = _non_negative("bandwidth_bytes_per_s", bandwidth_bytes_per_s)
    return bandwidth * _non_negative("rtt_s", rtt_s)


def mathis_throughput_bytes_per_s(
    mss_bytes: float, rtt_s: float, loss_probability: float, c: float = MATHIS_C
) -> float:
    """Estimate TCP throughput under loss, (MSS / RTT) * C / sqrt(p).

    Assumes a long-running Reno-style connection in congestion avoidance
    (additive increase, halving on loss), losses spread evenly with one per
    window sawtooth, no retransmission timeouts and a receive window that never
    limits. ``c`` is ``MATHIS_C`` (sqrt(3/2)) when every segment is
    acknowledged and ``MATHIS_C_DELAYED_ACK`` (sqrt(3/4)) with delayed ACKs.
    The result is an order-of-magnitude estimate. Source: M. Mathis, J. Semke,
    J. Mahdavi, T. Ott, "The Macroscopic Behavior of the TCP Congestion
    Avoidance Algorithm", ACM SIGCOMM Computer Communication Review, 1997.
    """
    mss = _positive("mss_bytes", mss_bytes)
    rtt = _positive("rtt_s", rtt_s)
    loss = _probability("loss_probability", loss_probability)
    if loss == 0:
        raise ValueError(
            "invalid loss_probability: 0; the formula has no loss-limited rate without "
            "loss, so use window_throughput_bytes_per_s for a loss-free path"
        )
    return (mss / rtt) * _positive("c", c) / math.sqrt(loss)


# ---------------------------------------------------------------- request strategies


def sequential_time_s(requests: int, rtt_s: float, service_s: float) -> float:
    """Compute n * (R + S): each request waits for the reply to the previous one."""
    count = _count("requests", requests)
    return count * (_non_negative("rtt_s", rtt_s) + _non_negative("service_s", service_s))


def pipelined_time_s(requests: int, rtt_s: float, service_s: float) -> float:
    """Compute R + n * S: requests sent back to back on one connection, one server.

    Assumes transmission time is negligible and the server handles the
    requests of a connection one at a time, so only one round trip is paid.
    """
    count = _count("requests", requests)
    return _non_negative("rtt_s", rtt_s) + count * _non_negative("service_s", service_s)


def concurrent_time_s(
    requests: int, rtt_s: float, service_s: float, connections: int, *, pipelined: bool = False
) -> float:
    """Compute the time of n requests spread over k connections served in parallel.

    Each connection carries ceil(n / k) requests, sequentially (ceil(n/k) * (R + S))
    or pipelined (R + ceil(n/k) * S). Assumes the server has at least k workers.
    """
    count = _count("requests", requests)
    per_connection = math.ceil(count / _count("connections", connections))
    if pipelined:
        return pipelined_time_s(per_connection, rtt_s, service_s)
    return sequential_time_s(per_connection, rtt_s, service_s)


# ---------------------------------------------------------------- reliable delivery under loss


def stop_and_wait_goodput_bytes_per_s(
    payload_bytes: float,
    rtt_s: float,
    bandwidth_bytes_per_s: float,
    loss_probability: float,
    timeout_s: float | None = None,
) -> float:
    """Compute the useful bytes per second of stop-and-wait under independent loss.

    Each attempt transmits ``payload_bytes`` (taking payload / bandwidth) and
    waits one ``rtt_s`` for the acknowledgement. ``loss_probability`` is the
    chance that one packet is lost, independently for the data packet and for
    its ACK, so an attempt fails with p_rt = 1 - (1 - p)^2. A failed attempt
    costs ``timeout_s`` from its start. With the default timeout equal to
    transmission + RTT, the result is (payload / (RTT + transmission)) * (1 - p_rt).
    ACKs are assumed to take no transmission time.
    """
    payload = _positive("payload_bytes", payload_bytes)
    cycle_s = _non_negative("rtt_s", rtt_s) + transmission_delay_s(payload, bandwidth_bytes_per_s)
    loss = _probability("loss_probability", loss_probability, allow_one=False)
    timeout = cycle_s if timeout_s is None else _positive("timeout_s", timeout_s)
    failure = 1.0 - (1.0 - loss) ** 2
    expected_s = cycle_s + timeout * failure / (1.0 - failure)
    return payload / expected_s


def sliding_window_goodput_bytes_per_s(
    window_bytes: float, rtt_s: float, bandwidth_bytes_per_s: float, loss_probability: float
) -> float:
    """Compute min(window / RTT, bandwidth) * (1 - p) for a selective-repeat sliding window.

    Assumes packets are lost independently with ``loss_probability``, the
    receiver acknowledges each packet selectively so only lost packets are
    resent, retransmissions never stall the window, and ACK loss is hidden by
    later ACKs. A go-back-N sender does worse, because one loss resends a
    whole window.
    """
    window_limit = window_throughput_bytes_per_s(window_bytes, rtt_s)
    link_limit = _positive("bandwidth_bytes_per_s", bandwidth_bytes_per_s)
    loss = _probability("loss_probability", loss_probability)
    return min(window_limit, link_limit) * (1.0 - loss)
