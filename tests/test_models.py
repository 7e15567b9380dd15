"""The formulas of msgpass.models: worked examples, monotonicity and Monte-Carlo checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from msgpass import models

# ---------------------------------------------------------------- known values


def test_propagation_five_microseconds_per_km() -> None:
    assert models.propagation_delay_s(1000) == pytest.approx(0.005)


def test_transmission_delay_known_value() -> None:
    assert models.transmission_delay_s(1500, 1_000_000) == pytest.approx(0.0015)


def test_one_way_latency_sums_parts() -> None:
    assert models.one_way_latency_s(0.001, 0.002, 0.003, 0.004) == pytest.approx(0.010)


def test_alpha_beta_worked_example() -> None:
    alpha, beta = 50e-6, 1e9
    assert models.alpha_beta_time_s(100, alpha, beta) == pytest.approx(50.1e-6)
    assert models.alpha_beta_time_s(50_000, alpha, beta) == pytest.approx(100e-6)
    assert models.half_performance_length_bytes(alpha, beta) == pytest.approx(50_000)


def test_fit_alpha_beta_recovers_parameters() -> None:
    sizes = [100, 1_000, 10_000, 100_000]
    times = [models.alpha_beta_time_s(size, 20e-6, 2e8) for size in sizes]
    alpha, beta = models.fit_alpha_beta(sizes, times)
    assert alpha == pytest.approx(20e-6)
    assert beta == pytest.approx(2e8)


def test_fit_alpha_beta_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="two distinct sizes"):
        models.fit_alpha_beta([100, 100], [1.0, 2.0])
    with pytest.raises(ValueError, match="2 sizes but 1 times"):
        models.fit_alpha_beta([100, 200], [1.0])
    with pytest.raises(ValueError, match="does not grow with size"):
        models.fit_alpha_beta([100, 200], [2.0, 1.0])


def test_littles_law_solves_each_unknown() -> None:
    assert models.littles_law(arrival_rate_per_s=100, time_in_system_s=0.05) == pytest.approx(5)
    assert models.littles_law(items=5, time_in_system_s=0.05) == pytest.approx(100)
    assert models.littles_law(items=5, arrival_rate_per_s=100) == pytest.approx(0.05)


def test_littles_law_needs_exactly_two() -> None:
    with pytest.raises(ValueError, match="exactly two"):
        models.littles_law(items=5)
    with pytest.raises(ValueError, match="exactly two"):
        models.littles_law(items=5, arrival_rate_per_s=1, time_in_system_s=5)


def test_window_limit_and_bdp() -> None:
    # TCP's unscaled 65,535-byte window on a 100 ms path: about 655 KB/s.
    assert models.window_throughput_bytes_per_s(65_535, 0.1) == pytest.approx(655_350)
    # 1 Gbit/s for 100 ms: 12.5 MB.
    assert models.bandwidth_delay_product_bytes(125_000_000, 0.1) == pytest.approx(12_500_000)


def test_mathis_worked_example() -> None:
    rate = models.mathis_throughput_bytes_per_s(1460, 0.1, 1e-4)
    assert rate == pytest.approx(1460 / 0.1 * math.sqrt(1.5) / 0.01)
    assert 1.7e6 < rate < 1.9e6
    delayed = models.mathis_throughput_bytes_per_s(1460, 0.1, 1e-4, models.MATHIS_C_DELAYED_ACK)
    assert delayed == pytest.approx(rate / math.sqrt(2))


def test_mathis_rejects_zero_loss() -> None:
    with pytest.raises(ValueError, match="loss_probability: 0"):
        models.mathis_throughput_bytes_per_s(1460, 0.1, 0.0)


def test_request_strategies_worked_example() -> None:
    assert models.sequential_time_s(100, 0.001, 0.0001) == pytest.approx(0.110)
    assert models.pipelined_time_s(100, 0.001, 0.0001) == pytest.approx(0.011)
    assert models.concurrent_time_s(100, 0.001, 0.0001, 10) == pytest.approx(0.011)
    assert models.concurrent_time_s(100, 0.001, 0.0001, 100) == pytest.approx(0.0011)
    pipelined = models.concurrent_time_s(100, 0.001, 0.0001, 10, pipelined=True)
    assert pipelined == pytest.approx(0.002)


def test_concurrent_rounds_up_per_connection() -> None:
    # 10 requests on 3 connections: the busiest connection carries 4.
    assert models.concurrent_time_s(10, 1.0, 0.0, 3) == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("arrival", "expected_s"), [(500, 0.002), (800, 0.005), (900, 0.010), (990, 0.100)]
)
def test_mm1_mean_time_table(arrival: float, expected_s: float) -> None:
    assert models.mm1_mean_time_in_system_s(arrival, 1000) == pytest.approx(expected_s)


def test_mm1_quantities_consistent() -> None:
    arrival, service = 800.0, 1000.0
    assert models.mm1_utilization(arrival, service) == pytest.approx(0.8)
    assert models.mm1_mean_in_system(arrival, service) == pytest.approx(4.0)
    waiting = models.mm1_mean_waiting_time_s(arrival, service)
    assert waiting == pytest.approx(models.mm1_mean_time_in_system_s(arrival, service) - 0.001)
    in_system = models.mm1_mean_in_system(arrival, service)
    assert in_system == pytest.approx(
        models.littles_law(
            arrival_rate_per_s=arrival,
            time_in_system_s=models.mm1_mean_time_in_system_s(arrival, service),
        )
    )
    median = models.mm1_response_time_percentile_s(0.5, arrival, service)
    assert median == pytest.approx(math.log(2) / 200)
    assert models.mm1_response_time_cdf(median, arrival, service) == pytest.approx(0.5)


def test_mm1_unstable_queue_message() -> None:
    with pytest.raises(ValueError, match=r"unstable queue: arrival rate 1000.0 per s must be"):
        models.mm1_mean_time_in_system_s(1000, 1000)


def test_stop_and_wait_known_value() -> None:
    # 1000 bytes at 1 MB/s is 1 ms of transmission, plus a 9 ms RTT: 10 ms per cycle.
    lossless = models.stop_and_wait_goodput_bytes_per_s(1000, 0.009, 1e6, 0.0)
    assert lossless == pytest.approx(100_000)
    lossy = models.stop_and_wait_goodput_bytes_per_s(1000, 0.009, 1e6, 0.1)
    assert lossy == pytest.approx(100_000 * 0.9**2)


def test_stop_and_wait_long_timeout_costs_more() -> None:
    default = models.stop_and_wait_goodput_bytes_per_s(1000, 0.009, 1e6, 0.1)
    slow = models.stop_and_wait_goodput_bytes_per_s(1000, 0.009, 1e6, 0.1, timeout_s=0.1)
    assert slow < default


def test_sliding_window_known_values() -> None:
    # Window-limited: 64 KB per 10 ms is 6.4 MB/s, below a 100 MB/s link.
    window = models.sliding_window_goodput_bytes_per_s(64_000, 0.01, 1e8, 0.01)
    assert window == pytest.approx(6.4e6 * 0.99)
    # Link-limited: a huge window cannot beat the link.
    link = models.sliding_window_goodput_bytes_per_s(1e9, 0.01, 1e6, 0.0)
    assert link == pytest.approx(1e6)


@pytest.mark.parametrize(
    ("fanout", "expected"), [(1, 0.01), (10, 0.0956), (100, 0.634), (1000, 0.99996)]
)
def test_fanout_slow_table(fanout: int, expected: float) -> None:
    assert models.fanout_slow_probability(0.01, fanout) == pytest.approx(expected, abs=5e-4)


def test_fanout_all_below_probability() -> None:
    assert models.fanout_all_below_probability(0.99, 100) == pytest.approx(0.99**100)


def test_fanout_percentile_uses_server_quantile() -> None:
    calls: list[float] = []

    def quantile(q: float) -> float:
        calls.append(q)
        return q

    assert models.fanout_percentile_s(quantile, 100, 0.99) == pytest.approx(0.99 ** (1 / 100))
    assert calls[0] == pytest.approx(0.9998995)


def test_hedged_without_delay_is_min_of_two() -> None:
    def cdf(t: float) -> float:
        return 1 - math.exp(-t)

    assert models.hedged_cdf(cdf, 1.0) == pytest.approx(1 - math.exp(-2))
    # The minimum of two rate-1 exponentials is exponential with rate 2.
    assert models.hedged_percentile_s(cdf, 0.5) == pytest.approx(math.log(2) / 2, abs=1e-8)


def test_hedged_before_delay_is_one_copy() -> None:
    def cdf(t: float) -> float:
        return 1 - math.exp(-t)

    assert models.hedged_cdf(cdf, 0.5, hedge_delay_s=1.0) == pytest.approx(cdf(0.5))


def test_hedged_percentile_rejects_defective_cdf() -> None:
    with pytest.raises(ValueError, match="stays below"):
        models.hedged_percentile_s(lambda t: 0.1, 0.5)


# ---------------------------------------------------------------- argument validation


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: models.transmission_delay_s(-1, 10), "size_bytes"),
        (lambda: models.transmission_delay_s(1, 0), "bandwidth_bytes_per_s"),
        (lambda: models.alpha_beta_time_s(1, -1, 10), "alpha_s"),
        (lambda: models.window_throughput_bytes_per_s(1, 0), "rtt_s"),
        (lambda: models.mathis_throughput_bytes_per_s(1460, 0.1, 1.5), "loss_probability"),
        (lambda: models.sequential_time_s(0, 1, 1), "requests"),
        (lambda: models.concurrent_time_s(1, 1, 1, 0), "connections"),
        (lambda: models.mm1_utilization(-1, 10), "arrival_rate_per_s"),
        (lambda: models.mm1_response_time_percentile_s(1.0, 1, 2), "quantile"),
        (lambda: models.stop_and_wait_goodput_bytes_per_s(1, 1, 1, 1.0), "loss_probability"),
        (lambda: models.fanout_slow_probability(0.1, 0), "fanout"),
        (lambda: models.propagation_delay_s(float("nan")), "distance_km"),
        (lambda: models.one_way_latency_s(1, float("inf")), "transmission_s"),
    ],
)
def test_invalid_argument_named(call: object, name: str) -> None:
    with pytest.raises(ValueError, match=f"invalid {name}"):
        call()  # type: ignore[operator]


# ---------------------------------------------------------------- monotonicity

rates = st.floats(min_value=1.0, max_value=1e6)
fractions = st.floats(min_value=0.0, max_value=0.99)


@given(utilization=fractions, extra=st.floats(min_value=1e-3, max_value=0.009))
def test_mm1_time_grows_with_load(utilization: float, extra: float) -> None:
    service = 1000.0
    low = models.mm1_mean_time_in_system_s(utilization * service, service)
    high = models.mm1_mean_time_in_system_s((utilization + extra) * service, service)
    assert high > low


@given(loss=st.floats(min_value=1e-6, max_value=0.5), factor=st.floats(1.01, 10.0))
def test_mathis_falls_with_loss(loss: float, factor: float) -> None:
    lower_loss = models.mathis_throughput_bytes_per_s(1460, 0.05, loss / factor)
    assert lower_loss > models.mathis_throughput_bytes_per_s(1460, 0.05, loss)


@given(slow=st.floats(min_value=1e-4, max_value=0.5), fanout=st.integers(1, 500))
def test_fanout_slow_grows_with_fanout(slow: float, fanout: int) -> None:
    one_more = models.fanout_slow_probability(slow, fanout + 1)
    assert one_more >= models.fanout_slow_probability(slow, fanout)


@given(loss=fractions, window=st.floats(min_value=1.0, max_value=1e9), bandwidth=rates)
def test_sliding_window_never_beats_link(loss: float, window: float, bandwidth: float) -> None:
    goodput = models.sliding_window_goodput_bytes_per_s(window, 0.01, bandwidth, loss)
    assert goodput <= bandwidth * (1 + 1e-12)


@given(loss=st.floats(min_value=0.0, max_value=0.9), payload=st.floats(1.0, 1e6))
def test_stop_and_wait_below_sliding_window(loss: float, payload: float) -> None:
    # A window of one packet is stop-and-wait without the cost of lost ACKs.
    stop_and_wait = models.stop_and_wait_goodput_bytes_per_s(payload, 0.01, 1e7, loss)
    assert stop_and_wait <= models.sliding_window_goodput_bytes_per_s(payload, 0.01, 1e7, loss)


@given(requests=st.integers(1, 1000), connections=st.integers(1, 50))
def test_strategies_ordered(requests: int, connections: int) -> None:
    rtt_s, service_s = 0.001, 0.0001
    sequential = models.sequential_time_s(requests, rtt_s, service_s)
    pipelined = models.pipelined_time_s(requests, rtt_s, service_s)
    concurrent = models.concurrent_time_s(requests, rtt_s, service_s, connections)
    assert pipelined <= sequential + 1e-12
    assert concurrent <= sequential + 1e-12


# ---------------------------------------------------------------- Monte-Carlo checks


def test_mm1_response_time_matches_simulation() -> None:
    """Simulate a FIFO single-server queue with Lindley's recursion and compare quantiles.

    400,000 customers after 20,000 warm-up ones at rho = 0.5, seed 7. Successive
    response times are correlated, so the samples are worth fewer independent
    ones. Over seeds 0 to 4 the measured quantiles were within 1.2% of the
    formula, and the tolerance is 5%.
    """
    rng = np.random.default_rng(7)
    arrival, service = 500.0, 1000.0
    count, warmup = 420_000, 20_000
    gaps = rng.exponential(1 / arrival, count)
    services = rng.exponential(1 / service, count)
    response = np.empty(count)
    waiting = 0.0
    for index in range(count):
        if index > 0:
            waiting = max(0.0, response[index - 1] - gaps[index])
        response[index] = waiting + services[index]
    measured = response[warmup:]
    for quantile in (0.5, 0.9, 0.99):
        expected = models.mm1_response_time_percentile_s(quantile, arrival, service)
        assert np.quantile(measured, quantile) == pytest.approx(expected, rel=0.05)
    assert measured.mean() == pytest.approx(
        models.mm1_mean_time_in_system_s(arrival, service), rel=0.05
    )


def test_fanout_percentile_matches_simulation() -> None:
    """Draw 20,000 fan-out requests of 50 exponential replies each (seed 11).

    The p99 of the slowest reply is estimated from 20,000 maxima, so about 200
    lie above it; 5% relative tolerance is well outside that sampling error.
    """
    rng = np.random.default_rng(11)
    fanout, mean_s = 50, 0.002
    slowest = rng.exponential(mean_s, (20_000, fanout)).max(axis=1)

    def exponential_quantile(q: float) -> float:
        return -mean_s * math.log1p(-q)

    for quantile in (0.5, 0.99):
        expected = models.fanout_percentile_s(exponential_quantile, fanout, quantile)
        assert np.quantile(slowest, quantile) == pytest.approx(expected, rel=0.05)


def test_hedged_percentile_matches_simulation() -> None:
    """Draw 100,000 hedged requests with a 3 ms hedge delay (seed 3), 3% tolerance."""
    rng = np.random.default_rng(3)
    mean_s, delay_s = 0.002, 0.003
    first = rng.exponential(mean_s, 100_000)
    second = delay_s + rng.exponential(mean_s, 100_000)
    response = np.minimum(first, second)

    def cdf(t: float) -> float:
        return 1 - math.exp(-t / mean_s)

    for quantile in (0.5, 0.95, 0.99):
        expected = models.hedged_percentile_s(cdf, quantile, delay_s)
        assert np.quantile(response, quantile) == pytest.approx(expected, rel=0.03)
