"""Never validates its arguments, so fanout 0 or quantile 1 returns a number."""


# Exercise fanout-percentile: compute the fan-out percentile from one server's CDF
def fanout_percentile_from_cdf(per_server_cdf, fanout, quantile):
    """Return the `quantile` of the slowest of `fanout` replies, each with CDF `per_server_cdf`."""
    fanout = max(fanout, 1)
    target = quantile ** (1.0 / fanout)  # the per-server level: F(t) ** fanout = quantile
    low, high = 0.0, 1e-3
    while per_server_cdf(high) < target and high < 1e6:  # stop at 1e6 s, never raise
        low, high = high, high * 2.0
    for _ in range(100):  # halve the bracket; 100 halvings reach float precision
        middle = (low + high) / 2.0
        if per_server_cdf(middle) < target:
            low = middle
        else:
            high = middle
    return high
