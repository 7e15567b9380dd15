"""Searches only between 0 and 1 s, so slower distributions get a wrong answer."""


# Exercise fanout-percentile: compute the fan-out percentile from one server's CDF
def fanout_percentile_from_cdf(per_server_cdf, fanout, quantile):
    """Return the `quantile` of the slowest of `fanout` replies, each with CDF `per_server_cdf`."""
    if fanout < 1:
        raise ValueError(f"invalid fanout {fanout!r}: expected an integer of at least 1")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"invalid quantile {quantile!r}: expected 0 < quantile < 1")
    target = quantile ** (1.0 / fanout)  # the per-server level: F(t) ** fanout = quantile
    low, high = 0.0, 1.0
    for _ in range(100):  # halve the bracket; 100 halvings reach float precision
        middle = (low + high) / 2.0
        if per_server_cdf(middle) < target:
            low = middle
        else:
            high = middle
    return high
