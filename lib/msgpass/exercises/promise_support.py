"""Helpers shared by the promise checkers of lab 8: log capture and the wait bound.

``msgpass.styles`` logs an unhandled rejection and a handler that raised on a
dispatcher thread instead of raising them. The checkers of ``promise-then``,
``promise-all-fail-fast``, ``retry-backoff-jitter`` and ``with-deadline``
collect those records with ``capture_promise_logs`` while a check runs and
turn them into a finding with ``expect_no_unhandled``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Final

from .checking import CheckFailed

__all__ = ["WAIT_S", "UNHANDLED_MARK", "capture_promise_logs", "expect_no_unhandled"]

WAIT_S: Final = 2.0  # how long a check waits for a promise that should settle
UNHANDLED_MARK: Final = "without a rejection handler"  # text of the library's log line


@contextlib.contextmanager
def capture_promise_logs() -> Iterator[list[logging.LogRecord]]:
    """Collect warnings and errors of ``msgpass.styles`` (promises, dispatchers) while a check runs.

    The records are kept instead of printed, so that a check can report an
    unhandled rejection or a failing handler as a finding.
    """
    records: list[logging.LogRecord] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("msgpass.styles")
    handler = _Collect(logging.WARNING)
    saved_propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved_propagate


def expect_no_unhandled(records: list[logging.LogRecord], hint: str) -> None:
    """Raise ``CheckFailed`` if an error record was logged (an unhandled rejection)."""
    errors = [record for record in records if record.levelno >= logging.ERROR]
    if errors:
        raise CheckFailed(
            expected="no unhandled rejection and no failing handler logged",
            actual=f"{len(errors)} error log line(s), the first: {errors[0].getMessage()}",
            hint=hint,
        )
