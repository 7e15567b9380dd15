"""Raises the quantile to the power N instead of 1/N, which gives a time below the median."""


# Exercise fanout-percentile: compute the fan-out percentile from one server's CDF
def fanout_percentile_from_cdf(per_server_cdf, fanout, quantile):
    """Return the `quantile` of the slowest of `fanout` replies, each with CDF `per_server_cdf`."""
    if fanout < 1:
        raise ValueError(f"invalid fanout {fanout!r}: expected an integer of at least 1")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"invalid quantile {quantile!r}: expected 0 < quantile < 1")
    target = quantile**fanout  # the per-server level: F(t) ** fanout = quantile
    low, high = 0.0, 1e-3
    while per_server_cdf(high) < target:  # grow the bracket: the time scale is unknown
        low, high = high, high * 2.0
    for _ in range(100):  # halve the bracket; 100 halvings reach float precision
        middle = (low + high) / 2.0
        if per_server_cdf(middle) < target:
            low = middle
        else:
            high = middle
    return high
