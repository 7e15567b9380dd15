"""Checkers for the chapter 5 scenario labs: idempotency keys and visibility timeouts.

``check_idempotency_key`` (lab 23, microservices) takes the learner's class
``IdempotentHandler(apply)`` with a method ``handle(key, body)``. It must
apply each key's body once, return the stored reply to every repeat of the
key, and raise ``ValueError`` for a repeat whose body differs. The sub-checks
send seeded sequences of retries and duplicates, then release eight threads
at once on the same key, and assert that each key was applied exactly once
(safety) and that every call got its reply (liveness).

``check_visibility_timeout`` (lab 27, cloud scheduling) takes the learner's
``requeue_expired(leases, ready, dead_letters, now, max_attempts)`` and plugs
it into a real ``msgpass.workqueue.WorkQueue`` driven by a fake clock. Seeded
workers crash (they never ack), run too long (their ack comes after the
lease expired) or finish. The sub-checks assert that every task ends up
completed or dead-lettered exactly once, that no task is handed to a second
worker while its lease is still live, that a task is dead-lettered after
exactly ``max_attempts`` claims, and that the run finishes.

Left out on purpose: running the learner's code in a separate process.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from typing import Any

from ..workqueue import Lease, Task, WorkQueue
from .checking import CheckFailed, CheckReport, short_repr
from .timed_calls import TimedCheck

__all__ = ["check_idempotency_key", "check_visibility_timeout"]

IDEMPOTENCY_ID = "idempotency-key"
VISIBILITY_ID = "visibility-timeout"
CONCURRENT_THREADS = 8
CONCURRENT_ROUNDS = 5
THREAD_JOIN_TIMEOUT_S = 10.0
APPLY_DELAY_S = 0.002  # widens the race window in the concurrent check; it waits for nothing

Json = dict[str, Any]


# ---------------------------------------------------------------------------
# idempotency-key
# ---------------------------------------------------------------------------


class _Ledger:
    """The wrapped operation: records every body it applies and returns a numbered receipt."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.applied: list[Json] = []
        self.delay_s = delay_s
        self._lock = threading.Lock()

    def apply(self, body: Json) -> Json:
        if self.delay_s:
            threading.Event().wait(self.delay_s)
        with self._lock:
            self.applied.append(body)
            return {"receipt": len(self.applied), "amount_cents": body["amount_cents"]}

    def count(self, body: Json) -> int:
        return sum(1 for applied in self.applied if applied == body)


def _handle(handler: Any, key: str, body: Json) -> Json:
    reply = handler.handle(key, dict(body))
    if not isinstance(reply, dict):
        raise CheckFailed(
            expected=f"handle({key!r}, ...) to return the reply dict",
            actual=f"{type(reply).__name__} {short_repr(reply)}",
            hint="return what apply(body) returned the first time, for every repeat of the key",
        )
    return reply


def _first_request(candidate: Any, rng: random.Random) -> None:
    ledger = _Ledger()
    handler = candidate(ledger.apply)
    body = {"account": "alice", "amount_cents": rng.randrange(100, 1000)}
    reply = _handle(handler, "order-1", body)
    if ledger.applied != [body]:
        raise CheckFailed(
            expected=f"apply() called once with {short_repr(body)}",
            actual=f"apply() calls: {short_repr(ledger.applied)}",
            hint="a key seen for the first time must be applied",
        )
    if reply != {"receipt": 1, "amount_cents": body["amount_cents"]}:
        raise CheckFailed(
            expected="the reply that apply() returned",
            actual=short_repr(reply),
            hint="return apply(body)'s reply unchanged",
        )


def _repeats(candidate: Any, rng: random.Random) -> None:
    ledger = _Ledger()
    handler = candidate(ledger.apply)
    body = {"account": "bob", "amount_cents": rng.randrange(100, 1000)}
    first = _handle(handler, "order-2", body)
    for attempt in range(2, 5):
        again = _handle(handler, "order-2", body)
        if len(ledger.applied) != 1:
            raise CheckFailed(
                expected="apply() called once for key 'order-2'",
                actual=f"{len(ledger.applied)} calls after {attempt} requests with that key",
                hint="look the key up before applying, and return the stored reply on a hit",
            )
        if again != first:
            raise CheckFailed(
                expected=f"repeat {attempt} to get the first reply {short_repr(first)}",
                actual=short_repr(again),
                hint="store the reply under the key, and return exactly that on a repeat",
            )


def _distinct_keys(candidate: Any, rng: random.Random) -> None:
    ledger = _Ledger()
    handler = candidate(ledger.apply)
    body = {"account": "carol", "amount_cents": rng.randrange(100, 1000)}
    replies = [_handle(handler, f"order-{n}", body) for n in range(3)]
    if len(ledger.applied) != 3:
        raise CheckFailed(
            expected="3 charges for 3 different keys with equal bodies",
            actual=f"{len(ledger.applied)} charges, replies {short_repr(replies)}",
            hint="the key names the request, not the body: two orders for the same amount "
            "are two charges",
        )


def _conflict(candidate: Any, rng: random.Random) -> None:
    ledger = _Ledger()
    handler = candidate(ledger.apply)
    body = {"account": "dave", "amount_cents": 500}
    first = _handle(handler, "order-9", body)
    other = {"account": "dave", "amount_cents": 900}
    try:
        reply = handler.handle("order-9", dict(other))
    except ValueError:
        pass
    else:
        raise CheckFailed(
            expected="ValueError for key 'order-9' reused with a different body",
            actual=f"handle() returned {short_repr(reply)}",
            hint="compare the stored body with the new one and raise ValueError when they "
            "differ: the client reused a key for another request, which is a client bug",
        )
    if ledger.count(other) != 0:
        raise CheckFailed(
            expected="the conflicting body never applied",
            actual=f"apply() calls: {short_repr(ledger.applied)}",
            hint="raise before calling apply()",
        )
    if _handle(handler, "order-9", body) != first:
        raise CheckFailed(
            expected="the original request still gets its stored reply after a conflict",
            actual="a different reply",
            hint="a rejected conflict must not change what is stored",
        )


def _failed_apply(candidate: Any, rng: random.Random) -> None:
    ledger = _Ledger()
    failures = [RuntimeError("payment provider unreachable")]

    def flaky_apply(body: Json) -> Json:
        if failures:
            raise failures.pop()
        return ledger.apply(body)

    handler = candidate(flaky_apply)
    body = {"account": "erin", "amount_cents": 250}
    try:
        handler.handle("order-5", dict(body))
    except RuntimeError:
        pass
    else:
        raise CheckFailed(
            expected="the RuntimeError from apply() to reach the caller",
            actual="handle() returned normally",
            hint="let an exception from apply() propagate, so the client knows to retry",
        )
    reply = _handle(handler, "order-5", body)
    if ledger.applied != [body] or reply.get("receipt") != 1:
        raise CheckFailed(
            expected="the retry after a failed apply() to be applied once",
            actual=f"apply() calls {short_repr(ledger.applied)}, reply {short_repr(reply)}",
            hint="store a reply only after apply() succeeded, so a failed request can be retried",
        )


def _seeded_retries(candidate: Any, rng: random.Random) -> None:
    ledger = _Ledger()
    handler = candidate(ledger.apply)
    bodies = {
        f"order-{n}": {
            "account": rng.choice(["alice", "bob"]),
            "amount_cents": rng.randrange(1, 99),
        }
        for n in range(20)
    }
    requests = [key for key in bodies for _ in range(rng.randint(1, 4))]
    rng.shuffle(requests)
    replies: dict[str, list[Json]] = {}
    for key in requests:
        replies.setdefault(key, []).append(_handle(handler, key, bodies[key]))
    if len(ledger.applied) != len(bodies):
        raise CheckFailed(
            expected=f"{len(bodies)} charges for {len(bodies)} keys "
            f"({len(requests)} requests with retries)",
            actual=f"{len(ledger.applied)} charges",
            hint="apply each key once, whatever order its repeats arrive in",
        )
    for key, key_replies in replies.items():
        if any(reply != key_replies[0] for reply in key_replies):
            raise CheckFailed(
                expected=f"every request with key {key!r} to get the same reply",
                actual=short_repr(key_replies),
                hint="store the reply under the key and return it on every repeat",
            )


def _concurrent_round(handler: Any, key: str, body: Json) -> tuple[list[Any], bool]:
    """Release the threads at once on one key; return their replies and whether all finished."""
    barrier = threading.Barrier(CONCURRENT_THREADS)
    replies: list[Any] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            barrier.wait(timeout=THREAD_JOIN_TIMEOUT_S)
            replies.append(handler.handle(key, dict(body)))
        except BaseException as error:  # re-raised below, in the checker's thread
            errors.append(error)

    threads = [threading.Thread(target=client) for _ in range(CONCURRENT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=THREAD_JOIN_TIMEOUT_S)
    if errors:
        raise errors[0]
    return replies, not any(thread.is_alive() for thread in threads)


def _concurrent_repeats(candidate: Any, rng: random.Random) -> None:
    ledger = _Ledger(delay_s=APPLY_DELAY_S)
    handler = candidate(ledger.apply)
    for round_number in range(CONCURRENT_ROUNDS):
        key = f"order-{round_number}"
        body = {"account": "frank", "amount_cents": rng.randrange(1, 99)}
        replies, finished = _concurrent_round(handler, key, body)
        if not finished:
            raise CheckFailed(
                expected=f"{CONCURRENT_THREADS} concurrent calls to finish",
                actual=f"some were still running after {THREAD_JOIN_TIMEOUT_S} s",
                hint="a lock that is never released blocks every later caller: use 'with lock:'",
            )
        applied = ledger.count(body)
        if applied != 1:
            raise CheckFailed(
                expected=f"one charge for {CONCURRENT_THREADS} concurrent requests "
                f"with key {key!r}",
                actual=f"{applied} charges",
                hint="two threads can both miss the key and both apply: make the lookup, "
                "apply and store one step under a threading.Lock",
            )
        if len(replies) != CONCURRENT_THREADS or any(r != replies[0] for r in replies):
            raise CheckFailed(
                expected=f"{CONCURRENT_THREADS} equal replies",
                actual=short_repr(replies),
                hint="every concurrent repeat must get the stored reply",
            )


def check_idempotency_key(candidate: Any, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check the learner's ``IdempotentHandler`` class; raise ``ExerciseFailed`` if it is wrong."""
    check = TimedCheck(IDEMPOTENCY_ID, seed=seed)
    check.add("first request", _first_request, hint="apply a new key and return its reply")
    check.add("repeats", _repeats, hint="return the stored reply for a repeated key")
    check.add("distinct keys", _distinct_keys, hint="dedupe on the key, not on the body")
    check.add("key reused with another body", _conflict, hint="raise ValueError on a conflict")
    check.add("failed apply", _failed_apply, hint="store a reply only after apply() succeeded")
    check.add("seeded retries", _seeded_retries, hint="apply each key exactly once")
    check.add(
        "concurrent repeats", _concurrent_repeats, hint="guard lookup, apply and store with a lock"
    )
    return check.run(candidate, quiet=quiet)


# ---------------------------------------------------------------------------
# visibility-timeout
# ---------------------------------------------------------------------------

VISIBILITY_TIMEOUT_S = 10.0
MAX_ATTEMPTS = 3
SIMULATION_TASKS = 30
SIMULATION_WORKERS = 3
SIMULATION_STEP_S = 1.0
SIMULATION_MAX_STEPS = 2000
CRASH_PROBABILITY = 0.25
SLOW_PROBABILITY = 0.1


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _call_expire(
    candidate: Any, leases: dict[str, Lease], ready: deque[Task], dead: list[Task], now: float
) -> None:
    candidate(leases, ready, dead, now, MAX_ATTEMPTS)


def _lease(task_id: str, attempts: int, deadline: float) -> Lease:
    return Lease(attempts, Task(task_id, b"", attempts), "worker-1", deadline)


def _ids(tasks: Any) -> list[str]:
    return [task.task_id for task in tasks]


def _live_lease(candidate: Any, rng: random.Random) -> None:
    leases = {"t1": _lease("t1", 1, deadline=10.0)}
    ready: deque[Task] = deque([Task("t2", b"")])
    dead: list[Task] = []
    _call_expire(candidate, leases, ready, dead, now=9.5)
    if list(leases) != ["t1"] or _ids(ready) != ["t2"] or dead:
        raise CheckFailed(
            expected="a lease with deadline 10.0 left alone at now=9.5",
            actual=f"leases {list(leases)}, ready {_ids(ready)}, dead letters {_ids(dead)}",
            hint="move a lease only when now >= lease.deadline: before that its worker may "
            "still finish, and a second worker would do the task twice",
        )


def _expired_lease(candidate: Any, rng: random.Random) -> None:
    leases = {"t1": _lease("t1", 1, deadline=10.0), "t3": _lease("t3", 2, deadline=30.0)}
    ready: deque[Task] = deque([Task("t2", b"")])
    dead: list[Task] = []
    _call_expire(candidate, leases, ready, dead, now=10.0)
    if "t1" in leases:
        raise CheckFailed(
            expected="the expired lease of t1 removed from leases",
            actual=f"leases {list(leases)}",
            hint="pop the lease: a task must be either leased or ready, never both",
        )
    if sorted(_ids(ready)) != ["t1", "t2"] or list(leases) != ["t3"] or dead:
        raise CheckFailed(
            expected="t1 back in ready next to t2, t3 still leased, no dead letters",
            actual=f"ready {_ids(ready)}, leases {list(leases)}, dead letters {_ids(dead)}",
            hint="put the expired lease's task (lease.task) back into ready",
        )
    requeued = next(task for task in ready if task.task_id == "t1")
    if requeued.attempts != 1:
        raise CheckFailed(
            expected="t1 requeued with attempts == 1 (the queue counts a claim when it happens)",
            actual=f"attempts == {requeued.attempts}",
            hint="requeue lease.task unchanged; the queue adds 1 to attempts on every claim",
        )


def _spent_task(candidate: Any, rng: random.Random) -> None:
    leases = {
        "poison": _lease("poison", MAX_ATTEMPTS, deadline=5.0),
        "fresh": _lease("fresh", MAX_ATTEMPTS - 1, deadline=5.0),
    }
    ready: deque[Task] = deque()
    dead: list[Task] = []
    _call_expire(candidate, leases, ready, dead, now=6.0)
    if _ids(dead) != ["poison"] or _ids(ready) != ["fresh"] or leases:
        raise CheckFailed(
            expected=f"with max_attempts={MAX_ATTEMPTS}: 'poison' (attempts {MAX_ATTEMPTS}) "
            f"dead-lettered, 'fresh' (attempts {MAX_ATTEMPTS - 1}) requeued",
            actual=f"dead letters {_ids(dead)}, ready {_ids(ready)}, leases {list(leases)}",
            hint="dead-letter a task when task.attempts >= max_attempts, requeue it otherwise",
        )


class _CrashSimulation:
    """Workers on a fake clock that crash, run too long or finish, with a seeded choice per claim.

    ``live_until`` maps a task id to the (lease id, deadline) of the lease a
    worker is still working under, so that a second claim of the task while
    that lease is live is caught. ``busy`` maps a worker to its (lease,
    finish time, fate), where fate is "ack", "crash" or "slow".
    """

    def __init__(self, candidate: Any, rng: random.Random) -> None:
        self.rng = rng
        self.clock = _Clock()
        self.queue = WorkQueue(
            capacity=SIMULATION_TASKS,
            visibility_timeout_s=VISIBILITY_TIMEOUT_S,
            max_attempts=MAX_ATTEMPTS,
            clock=self.clock,
            expire=candidate,
        )
        self.task_ids = [f"task-{n}" for n in range(SIMULATION_TASKS)]
        self.poison = set(rng.sample(self.task_ids, 3))
        for task_id in self.task_ids:
            self.queue.try_put(task_id, b"")
        self.claims: dict[str, list[float]] = {task_id: [] for task_id in self.task_ids}
        self.live_until: dict[str, tuple[int, float]] = {}
        self.busy: dict[str, tuple[Lease, float, str]] = {}

    def finish_due_work(self) -> None:
        now = self.clock.now
        for worker_id, (lease, finish_at, fate) in list(self.busy.items()):
            if now < finish_at:
                continue
            del self.busy[worker_id]
            if self.live_until.get(lease.task.task_id, (0, 0.0))[0] == lease.lease_id:
                del self.live_until[lease.task.task_id]
            if fate == "crash":
                continue
            accepted = self.queue.ack(lease)
            if not accepted and now < lease.deadline:
                raise CheckFailed(
                    expected=f"the ack of {lease.task.task_id} at time {now} accepted, "
                    f"because its lease runs until {lease.deadline}",
                    actual="the queue had already taken the task back, so the work was wasted",
                    hint="requeue only leases whose deadline has passed (now >= lease.deadline)",
                )

    def start_idle_workers(self) -> None:
        now = self.clock.now
        for n in range(SIMULATION_WORKERS):
            worker_id = f"worker-{n}"
            if worker_id in self.busy:
                continue
            lease = self.queue.claim_nowait(worker_id)
            if lease is None:
                continue
            task_id = lease.task.task_id
            live = self.live_until.get(task_id)
            if live is not None and now < live[1]:
                raise CheckFailed(
                    expected=f"{task_id} not handed out while its lease runs until {live[1]}",
                    actual=f"claimed again at time {now}",
                    hint="requeue only leases whose deadline has passed (now >= lease.deadline)",
                )
            self.claims[task_id].append(now)
            if task_id in self.poison or self.rng.random() < CRASH_PROBABILITY:
                self.busy[worker_id] = (lease, now + 2 * VISIBILITY_TIMEOUT_S, "crash")
                self.live_until[task_id] = (lease.lease_id, lease.deadline)
            elif self.rng.random() < SLOW_PROBABILITY:
                self.busy[worker_id] = (lease, lease.deadline + SIMULATION_STEP_S, "slow")
            else:
                finish_at = now + self.rng.choice([1.0, 2.0, 3.0])
                self.busy[worker_id] = (lease, finish_at, "ack")
                self.live_until[task_id] = (lease.lease_id, lease.deadline)

    def run(self) -> None:
        """Step the clock until no work is left; raise ``CheckFailed`` if that never happens."""
        for _ in range(SIMULATION_MAX_STEPS):
            self.finish_due_work()
            self.start_idle_workers()
            stats = self.queue.stats()
            if not self.busy and stats["ready"] == 0 and stats["leased"] == 0:
                return
            self.clock.now += SIMULATION_STEP_S

        stats = self.queue.stats()
        poison_claims = [len(self.claims[task_id]) for task_id in sorted(self.poison)]
        raise CheckFailed(
            expected=f"all {SIMULATION_TASKS} tasks completed or dead-lettered within "
            f"{SIMULATION_MAX_STEPS} steps",
            actual=f"still {stats['ready']} ready and {stats['leased']} leased; "
            f"claims of the poison tasks: {poison_claims}",
            hint="a task that keeps failing must go to dead_letters once its attempts reach "
            "max_attempts, or it circulates forever",
        )


def _seeded_crashes(candidate: Any, rng: random.Random) -> None:
    simulation = _CrashSimulation(candidate, rng)
    simulation.run()
    _check_outcome(simulation.queue, simulation.task_ids, simulation.poison, simulation.claims)


def _check_outcome(
    queue: WorkQueue, task_ids: list[str], poison: set[str], claims: dict[str, list[float]]
) -> None:
    completed = list(queue.completed)
    dead = _ids(queue.dead_letters)
    twice = sorted({t for t in completed + dead if (completed + dead).count(t) > 1})
    if twice:
        raise CheckFailed(
            expected="each task completed or dead-lettered exactly once",
            actual=f"more than once: {short_repr(twice)}",
            hint="pop the lease when you requeue or dead-letter its task, so it is handled once",
        )
    lost = sorted(set(task_ids) - set(completed) - set(dead))
    if lost:
        raise CheckFailed(
            expected="no task lost",
            actual=f"neither completed nor dead-lettered: {short_repr(lost)}",
            hint="every expired lease's task must go to ready or dead_letters",
        )
    for task_id in sorted(poison):
        if task_id not in dead or len(claims[task_id]) != MAX_ATTEMPTS:
            raise CheckFailed(
                expected=f"poison task {task_id} dead-lettered after exactly {MAX_ATTEMPTS} claims",
                actual=f"{len(claims[task_id])} claims, "
                f"{'dead-lettered' if task_id in dead else 'not dead-lettered'}",
                hint="compare task.attempts >= max_attempts: attempts already counts the claim "
                "that just expired",
            )
    for task_id in dead:
        if len(claims[task_id]) != MAX_ATTEMPTS:
            raise CheckFailed(
                expected=f"{task_id} dead-lettered only after {MAX_ATTEMPTS} claims",
                actual=f"after {len(claims[task_id])} claims",
                hint="dead-letter a task only when task.attempts >= max_attempts",
            )


def check_visibility_timeout(candidate: Any, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check the learner's ``requeue_expired``; raise ``ExerciseFailed`` if it is wrong."""
    check = TimedCheck(VISIBILITY_ID, seed=seed)
    check.add("live lease", _live_lease, hint="leave leases whose deadline is in the future")
    check.add("expired lease", _expired_lease, hint="requeue the task of an expired lease")
    check.add("spent task", _spent_task, hint="dead-letter a task after max_attempts claims")
    check.add(
        "seeded crashes", _seeded_crashes, hint="every task ends completed or dead-lettered once"
    )
    return check.run(candidate, quiet=quiet)
