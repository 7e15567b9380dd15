"""Wrong: draws from the uncapped bound and caps the drawn delay, which piles delays up at the
cap.
"""

# Exercise retry-backoff-jitter: retry with exponential backoff and full jitter
def retry(
    op: Callable[[], Any],
    *,
    attempts: int,
    base_delay_s: float,
    max_delay_s: float,
    rng: random.Random,
    sleep: Callable[[float], None],
) -> Any:
    """Call op() up to `attempts` times, sleeping a full-jitter backoff between attempts."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    for attempt in range(attempts):
        try:
            return op()
        except Exception:
            if attempt == attempts - 1:
                raise  # the last attempt's error, unchanged
        sleep(min(max_delay_s, rng.uniform(0.0, base_delay_s * 2**attempt)))
    raise AssertionError("unreachable: the loop returns or raises")
