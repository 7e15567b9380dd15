"""The M/M/1 queue of chapter 3: utilization, mean occupancy and time, response-time percentiles.

M/M/1 assumes Poisson arrivals at rate lambda, exponential service times with
mean 1/mu, one server and first-come first-served order. Every function
raises ``ValueError`` when lambda >= mu, because the queue then grows without
bound and has no steady state. Source: L. Kleinrock, "Queueing Systems,
Volume 1: Theory", 1975.

``msgpass.models`` re-exports every function here, so labs call them as
``models.mm1_...``.

Left out on purpose: M/M/c, M/G/1 and networks of queues.
"""

from __future__ import annotations

import math

from .models_args import _non_negative, _positive, _probability

__all__ = [
    "mm1_utilization",
    "mm1_mean_in_system",
    "mm1_mean_time_in_system_s",
    "mm1_mean_waiting_time_s",
    "mm1_response_time_cdf",
    "mm1_response_time_percentile_s",
]


def _stable(arrival_rate_per_s: float, service_rate_per_s: float) -> tuple[float, float]:
    arrival = _non_negative("arrival_rate_per_s", arrival_rate_per_s)
    service = _positive("service_rate_per_s", service_rate_per_s)
    if arrival >= service:
        raise ValueError(
            f"unstable queue: arrival rate {arrival} per s must be below service rate "
            f"{service} per s, or the queue grows without bound; lower the load or add servers"
        )
    return arrival, service




def mm1_utilization(arrival_rate_per_s: float, service_rate_per_s: float) -> float:
    """Compute rho = lambda / mu for an M/M/1 queue; raises if lambda >= mu.

    M/M/1 assumes Poisson arrivals at rate lambda, exponential service times
    with mean 1/mu, one server and first-come first-served order. Source:
    L. Kleinrock, "Queueing Systems, Volume 1: Theory", 1975.
    """
    arrival, service = _stable(arrival_rate_per_s, service_rate_per_s)
    return arrival / service


def mm1_mean_in_system(arrival_rate_per_s: float, service_rate_per_s: float) -> float:
    """Compute L = rho / (1 - rho), the mean number of requests in an M/M/1 system."""
    rho = mm1_utilization(arrival_rate_per_s, service_rate_per_s)
    return rho / (1.0 - rho)


def mm1_mean_time_in_system_s(arrival_rate_per_s: float, service_rate_per_s: float) -> float:
    """Compute W = 1 / (mu - lambda), the mean response time (waiting plus service)."""
    arrival, service = _stable(arrival_rate_per_s, service_rate_per_s)
    return 1.0 / (service - arrival)


def mm1_mean_waiting_time_s(arrival_rate_per_s: float, service_rate_per_s: float) -> float:
    """Compute Wq = rho / (mu - lambda), the mean time spent queueing before service."""
    arrival, service = _stable(arrival_rate_per_s, service_rate_per_s)
    return (arrival / service) / (service - arrival)


def mm1_response_time_cdf(
    time_s: float, arrival_rate_per_s: float, service_rate_per_s: float
) -> float:
    """Compute P(response time <= t) = 1 - exp(-(mu - lambda) t) for M/M/1 in FIFO order."""
    arrival, service = _stable(arrival_rate_per_s, service_rate_per_s)
    return 1.0 - math.exp(-(service - arrival) * _non_negative("time_s", time_s))


def mm1_response_time_percentile_s(
    quantile: float, arrival_rate_per_s: float, service_rate_per_s: float
) -> float:
    """Compute the response time below which a fraction ``quantile`` of requests finish.

    In an M/M/1 FIFO queue the response time is exponential with rate
    mu - lambda, so the q-quantile is -ln(1 - q) / (mu - lambda). The p99 is
    about 4.6 times the mean.
    """
    q = _probability("quantile", quantile, allow_one=False)
    arrival, service = _stable(arrival_rate_per_s, service_rate_per_s)
    return -math.log1p(-q) / (service - arrival)
