"""Exercise checkers, and the tool that writes the student edition of the labs.

- ``checking``: the runner every checker shares (``Check``, ``CheckFailed``,
  ``ExerciseFailed``, ``CheckReport``).
- ``framing_checks``: ``check_frame_decoder``, the checker of exercise
  ``frame-decoder`` in lab 3.
- ``promise_checks``, ``retry_checks``: the checkers of the promise, retry
  and deadline exercises in lab 8.
- ``student_edition``: ``python -m msgpass.exercises.student_edition`` copies
  every lab with its reference solutions replaced by stubs, and runs the
  checkers of a learner's notebook.
"""

from .checking import Check, CheckFailed, CheckReport, ExerciseFailed
from .framing_checks import check_frame_decoder
from .guarantee_checks import (
    check_at_least_once_sender,
    check_dedup_receiver,
    check_ordered_delivery,
)
from .styles_checks import check_callback_future, check_with_timeout
from .styles_loop_checks import check_echo_handlers, check_once_emitter
from .promise_checks import check_promise_all, check_promise_then
from .retry_checks import check_retry, check_with_deadline

__all__ = [
    "Check",
    "CheckFailed",
    "CheckReport",
    "ExerciseFailed",
    "check_frame_decoder",
    "check_callback_future",
    "check_echo_handlers",
    "check_once_emitter",
    "check_with_timeout",
    "check_promise_all",
    "check_promise_then",
    "check_retry",
    "check_with_deadline",
    "check_dedup_receiver",
    "check_at_least_once_sender",
    "check_ordered_delivery",
]
