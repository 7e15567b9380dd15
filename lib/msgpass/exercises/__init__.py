"""Exercise checkers, and the tool that writes the student edition of the labs.

- ``checking``: the runner every checker shares (``Check``, ``CheckFailed``,
  ``ExerciseFailed``, ``CheckReport``).
- One module of checkers per exercise, named after its subject, with the
  lab it belongs to in its docstring. Shared helpers: ``chaos`` (seeded chaos
  runs and exhaustive exploration of small cases), ``fakes`` (fake clocks,
  timers and random sources), ``timed_calls`` (calling learner code with a
  deadline), ``minipromise`` and ``promise_support``.
- ``solution_markers``: finding exercise cells and replacing their solution
  regions with stubs.
- ``student_edition``: ``python -m msgpass.exercises.student_edition`` copies
  every lab with its reference solutions replaced by stubs, and runs the
  checkers of a learner's notebook.
"""

from .broker_checks import check_idempotent_consumer, check_partition_assignment
from .checking import Check, CheckFailed, CheckReport, ExerciseFailed
from .framing_checks import check_frame_decoder
from .guarantee_checks import (
    check_at_least_once_sender,
    check_dedup_receiver,
    check_ordered_delivery,
)
from .kafka_checks import check_commit_after_processing
from .kafka_practice_checks import check_consumer_lag
from .pipeline_checks import check_partitioned_aggregation, check_qos1_dedup
from .practice_checks import check_bounded_submit, check_bounded_writer
from .promise_checks import check_promise_all, check_promise_then
from .reliable_checks import check_sliding_window_receiver, check_stop_and_wait_sender
from .retry_checks import check_retry, check_with_deadline
from .scenario_checks import check_idempotency_key, check_visibility_timeout
from .security_checks import check_verify_tls_client
from .spool_checks import check_spool_claim
from .styles_checks import check_callback_future, check_with_timeout
from .styles_loop_checks import check_echo_handlers, check_once_emitter
from .tail_checks import check_fanout_percentile, check_hedged_request
from .window_checks import check_tumbling_window

__all__ = [
    "Check",
    "CheckFailed",
    "CheckReport",
    "ExerciseFailed",
    "check_frame_decoder",
    "check_promise_all",
    "check_promise_then",
    "check_retry",
    "check_with_deadline",
    "check_callback_future",
    "check_echo_handlers",
    "check_once_emitter",
    "check_with_timeout",
    "check_fanout_percentile",
    "check_hedged_request",
    "check_sliding_window_receiver",
    "check_stop_and_wait_sender",
    "check_dedup_receiver",
    "check_at_least_once_sender",
    "check_ordered_delivery",
    "check_spool_claim",
    "check_commit_after_processing",
    "check_consumer_lag",
    "check_idempotent_consumer",
    "check_partition_assignment",
    "check_verify_tls_client",
    "check_bounded_writer",
    "check_bounded_submit",
    "check_partitioned_aggregation",
    "check_qos1_dedup",
    "check_idempotency_key",
    "check_visibility_timeout",
    "check_tumbling_window",
]
