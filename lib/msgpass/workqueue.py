"""A work queue with leases: load balancing, backpressure, crashed workers, dead letters.

A cloud work queue such as Amazon SQS hands tasks to workers under leases
(SQS API Reference, ``ReceiveMessage`` and ``ChangeMessageVisibility``). This
module builds that shape in memory, so a lab can watch each part:

- **Pull-based load balancing.** Workers ``claim`` a task when they are free,
  so a worker stuck on an expensive task is not handed more.
  ``simulate_dispatch`` compares that with round-robin pushing.
- **Backpressure.** The queue holds at most ``capacity`` waiting tasks.
  ``put`` blocks until there is room or its timeout passes, and ``try_put``
  rejects at once, so a fast producer is slowed down or told no.
- **Leases and the visibility timeout.** A claimed task is invisible to
  other workers until its lease deadline. A worker that crashes never acks,
  the lease expires, and the task returns to the queue with its attempt
  count raised, so delivery is at least once and tasks must be idempotent.
- **Poison tasks.** A task whose attempts reach ``max_attempts`` goes to the
  dead-letter list instead of looping forever.

Expired leases are collected lazily, under the queue's lock, whenever a
caller claims, acks or asks for ``stats()``. The collecting step is the
function ``requeue_expired``, which the queue takes as a parameter so that
the lab's exercise can plug in the reader's own version. Time comes from
``clock`` (``time.monotonic`` by default), so tests and checkers drive it with
a fake clock and never sleep.

Left out on purpose: persistence, several queue processes, and extending a
lease while a long task runs (SQS's ``ChangeMessageVisibility``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from .errors import MessagingTimeout

__all__ = [
    "Task",
    "Lease",
    "WorkQueue",
    "requeue_expired",
    "RequeueExpired",
    "DispatchResult",
    "simulate_dispatch",
]

log = logging.getLogger(__name__)

DEFAULT_VISIBILITY_TIMEOUT_S = 30.0  # the same as SQS's default (SQS API Reference, 2012-11-05)
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_CAPACITY = 100


@dataclass(frozen=True)
class Task:
    """One unit of work. ``attempts`` counts the claims so far, including the current one."""

    task_id: str
    payload: bytes
    attempts: int = 0


@dataclass(frozen=True)
class Lease:
    """A claimed task: ``worker_id`` holds it until ``deadline`` (seconds on the queue's clock)."""

    lease_id: int
    task: Task
    worker_id: str
    deadline: float


RequeueExpired = Callable[[dict[str, Lease], deque[Task], list[Task], float, int], object]


def requeue_expired(
    leases: dict[str, Lease],
    ready: deque[Task],
    dead_letters: list[Task],
    now: float,
    max_attempts: int,
) -> list[str]:
    """Return every expired lease's task to ``ready``, or to ``dead_letters`` when it is spent.

    ``leases`` maps task id to its current lease. A lease has expired when
    ``now >= lease.deadline``. Its task goes back to the front of ``ready``,
    because it was claimed before anything still waiting, unless
    ``task.attempts`` has reached ``max_attempts``; then it is appended to
    ``dead_letters``. Returns the ids of the expired tasks.
    """
    expired = sorted(
        (task_id for task_id, lease in leases.items() if now >= lease.deadline),
        key=lambda task_id: leases[task_id].deadline,
    )
    back_to_front: list[Task] = []
    for task_id in expired:
        task = leases.pop(task_id).task
        if task.attempts >= max_attempts:
            dead_letters.append(task)
        else:
            back_to_front.append(task)
    ready.extendleft(reversed(back_to_front))
    return expired


class WorkQueue:
    """A bounded, thread-safe queue of tasks claimed under leases.

    ::

        queue = WorkQueue(capacity=10, visibility_timeout_s=5.0)
        queue.put("t1", b"resize photo 7")
        lease = queue.claim("worker-a", timeout_s=1.0)
        ...  # do the work
        queue.ack(lease)

    ``ack`` returns False, and completes nothing, when the lease has expired
    and the task went back to the queue: the worker was too slow, and another
    worker owns the task now. ``nack`` gives a task back at once, for a retry
    or, after ``max_attempts``, the dead-letter list.
    """

    def __init__(
        self,
        *,
        capacity: int = DEFAULT_CAPACITY,
        visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        clock: Callable[[], float] = time.monotonic,
        expire: RequeueExpired = requeue_expired,
    ) -> None:
        _check_count("capacity", capacity)
        if isinstance(visibility_timeout_s, bool) or not isinstance(
            visibility_timeout_s, (int, float)
        ):
            raise TypeError(
                f"visibility_timeout_s must be a number of seconds, "
                f"got {type(visibility_timeout_s).__name__} {visibility_timeout_s!r}"
            )
        if not visibility_timeout_s > 0:  # also rejects NaN
            raise ValueError(f"visibility_timeout_s must be positive, got {visibility_timeout_s}")
        _check_count("max_attempts", max_attempts)
        self.capacity = capacity
        self.visibility_timeout_s = visibility_timeout_s
        self.max_attempts = max_attempts
        self.clock = clock
        self.expire = expire
        self.ready: deque[Task] = deque()
        self.leases: dict[str, Lease] = {}
        self.dead_letters: list[Task] = []
        self.completed: list[str] = []
        self.rejected_puts = 0
        self.stale_acks = 0
        self.redeliveries = 0
        self._lease_ids = itertools.count(1)
        self._changed = threading.Condition()

    # -- producer side ---------------------------------------------------

    def try_put(self, task_id: str, payload: bytes) -> bool:
        """Enqueue a task if there is room; return False (and count a rejection) if not."""
        with self._changed:
            if len(self.ready) >= self.capacity:
                self.rejected_puts += 1
                return False
            self.ready.append(Task(task_id, payload))
            self._changed.notify_all()
            return True

    def put(self, task_id: str, payload: bytes, *, timeout_s: float) -> None:
        """Enqueue a task, waiting up to ``timeout_s`` for room. Raises ``MessagingTimeout``."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.ready) >= self.capacity:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MessagingTimeout(
                        f"put of task {task_id!r} timed out after {timeout_s} s: the queue "
                        f"is full ({self.capacity} tasks waiting); add workers or slow down"
                    )
                self._changed.wait(left)
            self.ready.append(Task(task_id, payload))
            self._changed.notify_all()

    # -- worker side -----------------------------------------------------

    def claim_nowait(self, worker_id: str) -> Lease | None:
        """Lease the oldest ready task to ``worker_id``, or return None if none is ready."""
        with self._changed:
            self._collect_expired()
            if not self.ready:
                return None
            task = self.ready.popleft()
            task = replace(task, attempts=task.attempts + 1)
            if task.attempts > 1:
                self.redeliveries += 1
            lease = Lease(
                next(self._lease_ids),
                task,
                worker_id,
                self.clock() + self.visibility_timeout_s,
            )
            self.leases[task.task_id] = lease
            self._changed.notify_all()  # a producer blocked in put() may have room now
            return lease

    def claim(self, worker_id: str, *, timeout_s: float, poll_s: float = 0.01) -> Lease | None:
        """Lease a task, waiting up to ``timeout_s`` (wall time) for one; None if none came.

        The wait wakes on every put, and every ``poll_s`` to collect leases
        that expired meanwhile.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            lease = self.claim_nowait(worker_id)
            left = deadline - time.monotonic()
            if lease is not None or left <= 0:
                return lease
            with self._changed:
                if not self.ready:
                    self._changed.wait(min(left, poll_s))

    def ack(self, lease: Lease) -> bool:
        """Mark the leased task done. Return False if the lease was no longer current."""
        with self._changed:
            self._collect_expired()
            current = self.leases.get(lease.task.task_id)
            if current is None or current.lease_id != lease.lease_id:
                self.stale_acks += 1
                log.info("stale ack of task %s by %s ignored", lease.task.task_id, lease.worker_id)
                return False
            del self.leases[lease.task.task_id]
            self.completed.append(lease.task.task_id)
            self._changed.notify_all()
            return True

    def nack(self, lease: Lease) -> bool:
        """Give a leased task back now, for a retry or the dead-letter list."""
        with self._changed:
            current = self.leases.get(lease.task.task_id)
            if current is None or current.lease_id != lease.lease_id:
                self.stale_acks += 1
                return False
            # Expiring the lease now reuses the one rule for retries and dead letters.
            self.leases[lease.task.task_id] = replace(current, deadline=float("-inf"))
            self._collect_expired()
            self._changed.notify_all()
            return True

    # -- observation -----------------------------------------------------

    def _collect_expired(self) -> None:
        before = len(self.dead_letters)
        self.expire(self.leases, self.ready, self.dead_letters, self.clock(), self.max_attempts)
        for task in self.dead_letters[before:]:
            log.warning("task %s dead-lettered after %d attempts", task.task_id, task.attempts)

    def __len__(self) -> int:
        with self._changed:
            return len(self.ready)

    def stats(self) -> dict[str, int]:
        """Counts for display: waiting, leased, completed, dead-lettered, rejected, stale acks."""
        with self._changed:
            self._collect_expired()
            return {
                "ready": len(self.ready),
                "leased": len(self.leases),
                "completed": len(self.completed),
                "dead_letters": len(self.dead_letters),
                "redeliveries": self.redeliveries,
                "rejected_puts": self.rejected_puts,
                "stale_acks": self.stale_acks,
            }

    def __repr__(self) -> str:
        with self._changed:
            return (
                f"<WorkQueue ready={len(self.ready)}/{self.capacity} leased={len(self.leases)} "
                f"completed={len(self.completed)} dead={len(self.dead_letters)}>"
            )


def _check_count(name: str, value: object) -> None:
    # bool is a subclass of int, and a float such as 2.5 would act as the next int up.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


@dataclass(frozen=True)
class DispatchResult:
    """The outcome of ``simulate_dispatch``: busy time and tasks per worker, and the makespan."""

    policy: str
    busy_s: tuple[float, ...]
    tasks: tuple[int, ...]
    makespan_s: float


def simulate_dispatch(
    costs_s: Sequence[float], workers: int, policy: Literal["round-robin", "pull"]
) -> DispatchResult:
    """Compute, in simulated time, how ``costs_s`` spread over ``workers`` under ``policy``.

    ``"round-robin"`` pushes task i to worker ``i % workers`` whatever it is
    doing. ``"pull"`` gives each task to the worker that becomes free first,
    which is what workers calling ``claim`` achieve. All tasks are queued at
    time 0 and a worker runs one task at a time.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    busy = [0.0] * workers
    counts = [0] * workers
    for index, cost in enumerate(costs_s):
        if policy == "round-robin":
            worker = index % workers
        elif policy == "pull":
            worker = min(range(workers), key=lambda w: busy[w])
        else:
            raise ValueError(f"policy must be 'round-robin' or 'pull', got {policy!r}")
        busy[worker] += cost
        counts[worker] += 1
    return DispatchResult(policy, tuple(busy), tuple(counts), max(busy, default=0.0))
