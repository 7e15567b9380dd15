"""Wrong: drops the result of a successful attempt instead of returning it, so the loop never ends.

A learner's version of this mistake spins in ``while True`` at full speed.
This file waits 5 ms on each pass after a success instead, so the thread
that the checker leaves running after its deadline does not take a CPU core
from the tests that follow. To the checker both look the same: a call that
does not return.
"""

import time


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
    attempt = 0
    while True:
        try:
            op()  # meant "return op()"
        except Exception:
            if attempt == attempts - 1:
                raise
            sleep(rng.uniform(0, min(max_delay_s, base_delay_s * 2**attempt)))
            attempt += 1
            continue
        time.sleep(0.005)  # only in this file: see the docstring
