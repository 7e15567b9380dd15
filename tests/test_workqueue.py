"""Tests of msgpass.workqueue: leases, backpressure, dead letters, dispatch.

Time comes from a fake clock, so lease expiry is tested without sleeping.
The thread test uses real threads that poll the queue with deadlines.
"""

from __future__ import annotations

import random
import threading
from collections import deque

import pytest

from msgpass.errors import MessagingTimeout
from msgpass.workqueue import Lease, Task, WorkQueue, requeue_expired, simulate_dispatch


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_queue(**options: object) -> tuple[WorkQueue, FakeClock]:
    clock = FakeClock()
    settings: dict[str, object] = {"visibility_timeout_s": 10.0, "max_attempts": 3}
    settings.update(options)
    return WorkQueue(clock=clock, **settings), clock  # type: ignore[arg-type]


def test_claim_then_ack_completes() -> None:
    queue, _ = make_queue()
    queue.try_put("t1", b"x")
    lease = queue.claim_nowait("w1")
    assert lease is not None
    assert lease.task.attempts == 1
    assert queue.ack(lease)
    assert queue.completed == ["t1"]
    assert queue.claim_nowait("w1") is None


def test_claimed_task_invisible_until_timeout() -> None:
    queue, clock = make_queue()
    queue.try_put("t1", b"x")
    assert queue.claim_nowait("w1") is not None
    clock.now = 9.9
    assert queue.claim_nowait("w2") is None
    clock.now = 10.0
    second = queue.claim_nowait("w2")
    assert second is not None
    assert second.task.attempts == 2


def test_stale_ack_rejected() -> None:
    queue, clock = make_queue()
    queue.try_put("t1", b"x")
    first = queue.claim_nowait("w1")
    clock.now = 10.0
    second = queue.claim_nowait("w2")
    assert first is not None and second is not None
    assert not queue.ack(first)
    assert queue.ack(second)
    assert queue.completed == ["t1"]
    assert queue.stats()["stale_acks"] == 1


def test_poison_task_dead_lettered() -> None:
    queue, clock = make_queue(max_attempts=2)
    queue.try_put("poison", b"x")
    for _ in range(2):
        lease = queue.claim_nowait("w1")
        assert lease is not None
        assert queue.nack(lease)
    assert [task.task_id for task in queue.dead_letters] == ["poison"]
    assert queue.dead_letters[0].attempts == 2
    assert queue.claim_nowait("w1") is None


def test_expired_task_goes_first() -> None:
    queue, clock = make_queue()
    queue.try_put("old", b"x")
    assert queue.claim_nowait("w1") is not None
    queue.try_put("new", b"y")
    clock.now = 10.0
    lease = queue.claim_nowait("w2")
    assert lease is not None
    assert lease.task.task_id == "old"


def test_try_put_rejects_when_full() -> None:
    queue, _ = make_queue(capacity=2)
    assert queue.try_put("a", b"")
    assert queue.try_put("b", b"")
    assert not queue.try_put("c", b"")
    assert queue.stats()["rejected_puts"] == 1


def test_put_times_out_when_full() -> None:
    queue, _ = make_queue(capacity=1)
    queue.put("a", b"", timeout_s=0.1)
    with pytest.raises(MessagingTimeout, match="queue is full"):
        queue.put("b", b"", timeout_s=0.05)


def test_put_unblocks_after_claim() -> None:
    queue, _ = make_queue(capacity=1)
    queue.put("a", b"", timeout_s=0.1)
    putter = threading.Thread(target=queue.put, args=("b", b""), kwargs={"timeout_s": 5.0})
    putter.start()
    assert queue.claim("w1", timeout_s=5.0) is not None
    putter.join(timeout=5.0)
    assert not putter.is_alive()
    assert len(queue) == 1


def test_invalid_settings_rejected() -> None:
    with pytest.raises(ValueError, match="capacity"):
        WorkQueue(capacity=0)
    with pytest.raises(ValueError, match="visibility_timeout_s"):
        WorkQueue(visibility_timeout_s=0)
    with pytest.raises(ValueError, match="max_attempts"):
        WorkQueue(max_attempts=0)
    with pytest.raises(ValueError, match="visibility_timeout_s"):
        WorkQueue(visibility_timeout_s=float("nan"))


@pytest.mark.parametrize("field", ["capacity", "max_attempts"])
@pytest.mark.parametrize("value", [2.5, 2.0, True, "3", None])
def test_non_int_counts_rejected(field: str, value: object) -> None:
    with pytest.raises(TypeError, match=f"{field} must be an int, got {type(value).__name__}"):
        WorkQueue(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, "5", None])
def test_non_number_visibility_timeout_rejected(value: object) -> None:
    with pytest.raises(TypeError, match="visibility_timeout_s must be a number of seconds"):
        WorkQueue(visibility_timeout_s=value)  # type: ignore[arg-type]


def test_requeue_expired_keeps_live_leases() -> None:
    leases = {
        "a": Lease(1, Task("a", b"", 1), "w1", deadline=5.0),
        "b": Lease(2, Task("b", b"", 3), "w1", deadline=4.0),
        "c": Lease(3, Task("c", b"", 1), "w2", deadline=50.0),
    }
    ready: deque[Task] = deque([Task("d", b"")])
    dead: list[Task] = []
    moved = requeue_expired(leases, ready, dead, now=5.0, max_attempts=3)
    assert moved == ["b", "a"]
    assert list(leases) == ["c"]
    assert [task.task_id for task in ready] == ["a", "d"]
    assert [task.task_id for task in dead] == ["b"]


def test_threads_complete_every_task_once() -> None:
    queue = WorkQueue(capacity=20, visibility_timeout_s=5.0)
    total = 200

    def work(worker_id: str) -> None:
        while (lease := queue.claim(worker_id, timeout_s=0.2)) is not None:
            queue.ack(lease)

    workers = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for worker in workers:
        worker.start()
    for index in range(total):
        queue.put(f"t{index}", b"", timeout_s=5.0)
    for worker in workers:
        worker.join(timeout=10.0)
    assert not any(worker.is_alive() for worker in workers)
    assert sorted(queue.completed) == sorted(f"t{index}" for index in range(total))


def test_pull_beats_round_robin_on_uneven_costs() -> None:
    rng = random.Random(3)
    costs = [rng.choice([1.0, 1.0, 1.0, 10.0]) for _ in range(100)]
    round_robin = simulate_dispatch(costs, 4, "round-robin")
    pull = simulate_dispatch(costs, 4, "pull")
    assert sum(round_robin.tasks) == sum(pull.tasks) == 100
    assert sum(pull.busy_s) == pytest.approx(sum(costs))
    assert pull.makespan_s <= round_robin.makespan_s
    assert pull.makespan_s <= sum(costs) / 4 + max(costs)


def test_dispatch_rejects_unknown_policy() -> None:
    with pytest.raises(ValueError, match="policy"):
        simulate_dispatch([1.0], 1, "random")  # type: ignore[arg-type]
