"""Wrong: re-raises the first attempt's error instead of the last one's."""

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
    first_error: Exception | None = None
    for attempt in range(attempts):
        try:
            return op()
        except Exception as error:
            first_error = first_error or error
            if attempt == attempts - 1:
                raise first_error  # noqa: B904 -- the mistake this file keeps
        bound_s = min(max_delay_s, base_delay_s * 2**attempt)
        sleep(rng.uniform(0.0, bound_s))
    raise AssertionError("unreachable: the loop returns or raises")
