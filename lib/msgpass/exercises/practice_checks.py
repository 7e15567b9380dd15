"""The checkers of chapter 4's labs: ``bounded-writer`` (lab 19) and ``bounded-submit`` (lab 20).

``bounded-writer``: the learner writes ``async def write_frames(writer, payloads) -> int``.
It writes every payload as a length-prefixed frame (``encode_frame``), in
order, returns the number of bytes written, and respects backpressure: the
transport's write buffer never holds more than its high-water mark plus one
frame. ``check_bounded_writer`` runs it against a fast reader and against slow
loopback readers (``msgpass.servers_backpressure``), on an event loop of its
own in a helper thread, because the notebook's thread already runs one.

``bounded-submit``: the learner writes a class ``BoundedSubmitter(executor,
max_in_flight)`` whose ``submit(fn, *args, timeout_s)`` returns the
executor's future, keeps at most ``max_in_flight`` tasks unfinished, raises
``TimeoutError`` when no slot frees within ``timeout_s``, and frees a slot
whenever a task finishes, fails or is cancelled, or the executor rejects it.
``check_bounded_submit`` drives it with tasks held on ``threading.Event``
gates, so what is running at each moment is known without timing.
"""

from __future__ import annotations

import concurrent.futures as cf
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from ..framing import encode_frame
from ..servers_backpressure import write_to_slow_reader
from .checking import CheckFailed, CheckReport, expect_equal
from .timed_calls import STILL_RUNNING, TimedCheck, call_with_deadline, run_in_fresh_loop

__all__ = ["check_bounded_writer", "check_bounded_submit"]

CASE_TIMEOUT_S = 10.0
SETTLE_S = 2.0  # how long a task or a call may take to reach the state a check expects
# A submit that must block is given this long to do something it should not.
BLOCKED_OBSERVATION_S = 0.2


# ---------------------------------------------------------------------------
# bounded-writer
# ---------------------------------------------------------------------------


def _run_writer_case(
    write_frames: Any,
    payloads: list[bytes],
    *,
    high_water_bytes: int,
    read_interval_s: float,
) -> None:
    returned: list[Any] = []

    async def write_all(writer: Any, messages: list[bytes]) -> None:
        returned.append(await write_frames(writer, messages))

    async def case() -> None:
        expected = b"".join(encode_frame(payload) for payload in payloads)
        trace = await write_to_slow_reader(
            write_all,
            payloads,
            high_water_bytes=high_water_bytes,
            read_interval_s=read_interval_s,
            timeout_s=CASE_TIMEOUT_S - 1.0,
            expected=expected,
        )
        largest_frame = max((len(encode_frame(p)) for p in payloads), default=0)
        bound = high_water_bytes + largest_frame
        if trace.max_buffer_bytes > bound:
            raise CheckFailed(
                expected=f"the write buffer to stay at or below {bound} bytes "
                f"(high-water mark {high_water_bytes} plus one frame of {largest_frame})",
                actual=f"it reached {trace.max_buffer_bytes} bytes while the reader was slow",
            )
        if trace.bytes_delivered != len(expected) or not trace.delivered_in_order:
            raise CheckFailed(
                expected=f"the reader to get {len(payloads)} frames, {len(expected)} bytes, "
                f"exactly as encode_frame() writes them, in order",
                actual=f"{trace.bytes_delivered} bytes, "
                f"{'in the right order' if trace.delivered_in_order else 'differing'}",
                hint="write encode_frame(payload) for every payload, in order, and never "
                "skip one because the buffer is full: wait for it to drain instead",
            )
        expect_equal(returned[0], len(expected), "the number of bytes write_frames() returned")

    run_in_fresh_loop(case, timeout_s=CASE_TIMEOUT_S)


def check_fast_reader(write_frames: Any, rng: random.Random) -> None:
    payloads = [f"message {i}".encode() for i in range(20)]
    _run_writer_case(write_frames, payloads, high_water_bytes=64 * 1024, read_interval_s=0.0)


def check_empty_list(write_frames: Any, rng: random.Random) -> None:
    _run_writer_case(write_frames, [], high_water_bytes=16 * 1024, read_interval_s=0.0)


def check_slow_reader(write_frames: Any, rng: random.Random) -> None:
    payloads = [bytes([i % 256]) * 1024 for i in range(600)]
    _run_writer_case(write_frames, payloads, high_water_bytes=16 * 1024, read_interval_s=0.001)


def check_varied_sizes(write_frames: Any, rng: random.Random) -> None:
    payloads = [rng.randbytes(rng.randint(0, 8192)) for _ in range(150)]
    _run_writer_case(write_frames, payloads, high_water_bytes=8 * 1024, read_interval_s=0.001)


def check_bounded_writer(write_frames: Any, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check a learner's ``write_frames(writer, payloads)`` coroutine function.

    Raises ``ExerciseFailed`` naming the first failed check; prints one line on success.
    """
    check = TimedCheck("bounded-writer", seed=seed)
    check.add(
        "fast reader",
        check_fast_reader,
        hint="write encode_frame(payload) for each payload and return the total of their lengths",
    )
    check.add("empty list", check_empty_list, hint="with no payloads, write nothing and return 0")
    check.add(
        "slow reader",
        check_slow_reader,
        hint="write() never waits, so await writer.drain() after each write: it pauses "
        "while the buffer is above the high-water mark",
    )
    check.add(
        "varied sizes",
        check_varied_sizes,
        hint="await writer.drain() after every write, not every few writes, so at most "
        "one frame is added above the high-water mark",
    )
    return check.run(write_frames, quiet=quiet)


# ---------------------------------------------------------------------------
# bounded-submit
# ---------------------------------------------------------------------------


class _Gate:
    """Tasks that wait on an event, and a record of which ones started."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started: list[int] = []
        self._lock = threading.Lock()

    def task(self, task_id: int) -> int:
        with self._lock:
            self.started.append(task_id)
        if not self.release.wait(CASE_TIMEOUT_S):
            raise TimeoutError(f"checker task {task_id} was never released")
        return task_id * 10

    def wait_started(self, count: int) -> bool:
        deadline = time.monotonic() + SETTLE_S
        while len(self.started) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True


def _submit(submitter: Any, fn: Callable[..., Any], *args: Any, timeout_s: float) -> Any:
    future = submitter.submit(fn, *args, timeout_s=timeout_s)
    if not isinstance(future, cf.Future):
        raise CheckFailed(
            expected="submit() to return the executor's Future",
            actual=f"{type(future).__name__} {future!r}",
            hint="return the future that executor.submit() returned",
        )
    return future


def check_runs_every_task(submitter_class: Any, rng: random.Random) -> None:
    with cf.ThreadPoolExecutor(max_workers=4) as executor:
        submitter = submitter_class(executor, 3)
        futures = [_submit(submitter, pow, n, 2, timeout_s=SETTLE_S) for n in range(30)]
        results = [future.result(timeout=SETTLE_S) for future in futures]
    expect_equal(results, [n * n for n in range(30)], "the results of 30 tasks")


def check_bound_holds(submitter_class: Any, rng: random.Random) -> None:
    limit = 3
    gate = _Gate()
    # More workers than the limit, so any task submitted starts at once and is seen.
    with cf.ThreadPoolExecutor(max_workers=8) as executor:
        submitter = submitter_class(executor, limit)

        def submit_all() -> list[Any]:
            return [_submit(submitter, gate.task, i, timeout_s=CASE_TIMEOUT_S) for i in range(6)]

        outcome: dict[str, Any] = {}
        producer = threading.Thread(
            target=lambda: outcome.update(futures=submit_all()),
            name="checker-producer",
            daemon=True,
        )
        producer.start()
        try:
            if not gate.wait_started(limit):
                raise CheckFailed(
                    expected=f"{limit} tasks running with max_in_flight={limit}",
                    actual=f"{len(gate.started)} started",
                    hint="submit each task to the executor once a slot is free",
                )
            producer.join(BLOCKED_OBSERVATION_S)
            if len(gate.started) > limit or not producer.is_alive():
                raise CheckFailed(
                    expected=f"submit() number {limit + 1} to wait while {limit} tasks run",
                    actual=f"{len(gate.started)} tasks started and the producer "
                    f"{'finished' if not producer.is_alive() else 'went on'}",
                    hint="take a slot (a threading.BoundedSemaphore) before executor.submit(), "
                    "and give it back only when the task's future is done",
                )
        finally:
            gate.release.set()
            producer.join(CASE_TIMEOUT_S)
    if "futures" not in outcome:
        raise CheckFailed(
            expected="every submit() to return once earlier tasks finished",
            actual="the producer did not finish",
            hint="give a slot back in a done callback: future.add_done_callback(...)",
        )
    results = [future.result(timeout=SETTLE_S) for future in outcome["futures"]]
    expect_equal(results, [i * 10 for i in range(6)], "the results of 6 gated tasks")


def _expect_timeout(submitter: Any, fn: Callable[..., Any], *args: Any, what: str) -> None:
    started = time.monotonic()
    try:
        result = call_with_deadline(
            lambda: _submit(submitter, fn, *args, timeout_s=0.1), timeout_s=SETTLE_S
        )
    except TimeoutError:
        return
    if result is STILL_RUNNING:
        raise CheckFailed(
            expected=f"submit(..., timeout_s=0.1) {what} to raise TimeoutError within 0.1 s",
            actual=f"it was still waiting after {time.monotonic() - started:.1f} s",
            hint="pass the timeout on: semaphore.acquire(timeout=timeout_s) returns False "
            "when it runs out, and then raise TimeoutError",
        )
    raise CheckFailed(
        expected=f"submit(..., timeout_s=0.1) {what} to raise TimeoutError",
        actual=f"it returned {result!r}",
        hint="check what acquire(timeout=...) returned: False means no slot, so raise TimeoutError",
    )


def check_timeout_when_full(submitter_class: Any, rng: random.Random) -> None:
    gate = _Gate()
    with cf.ThreadPoolExecutor(max_workers=4) as executor:
        submitter = submitter_class(executor, 2)
        try:
            for i in range(2):
                _submit(submitter, gate.task, i, timeout_s=SETTLE_S)
            _expect_timeout(submitter, gate.task, 99, what="with both slots busy")
        finally:
            gate.release.set()
    if 99 in gate.started:
        raise CheckFailed(
            expected="a submit() that timed out not to run its task",
            actual="task 99 ran",
            hint="raise TimeoutError before calling executor.submit()",
        )


def check_failures_free_slots(submitter_class: Any, rng: random.Random) -> None:
    def fail(n: int) -> None:
        raise ValueError(f"checker task {n} failed on purpose")

    with cf.ThreadPoolExecutor(max_workers=2) as executor:
        submitter = submitter_class(executor, 2)
        futures = []
        for n in range(6):
            try:
                futures.append(_submit(submitter, fail, n, timeout_s=SETTLE_S))
            except TimeoutError:
                raise CheckFailed(
                    expected=f"submit() number {n + 1} to find a free slot",
                    actual="TimeoutError: the slots of failed tasks were never given back",
                ) from None
        for n, future in enumerate(futures):
            error = future.exception(timeout=SETTLE_S)
            if not isinstance(error, ValueError):
                raise CheckFailed(
                    expected=f"task {n}'s future to hold its ValueError",
                    actual=repr(error),
                    hint="return the executor's future unchanged, so the task's exception "
                    "reaches the caller",
                )


def check_cancelled_frees_slot(submitter_class: Any, rng: random.Random) -> None:
    gate = _Gate()
    with cf.ThreadPoolExecutor(max_workers=1) as executor:
        submitter = submitter_class(executor, 2)
        try:
            _submit(submitter, gate.task, 0, timeout_s=SETTLE_S)
            queued = _submit(submitter, gate.task, 1, timeout_s=SETTLE_S)
            if not queued.cancel():
                raise CheckFailed(
                    expected="the second task to be queued and cancellable",
                    actual="future.cancel() returned False",
                )
            try:
                _submit(submitter, gate.task, 2, timeout_s=SETTLE_S)
            except TimeoutError:
                raise CheckFailed(
                    expected="cancelling a queued task to free its slot",
                    actual="the next submit() timed out",
                ) from None
        finally:
            gate.release.set()


def check_rejected_submit_frees_slot(submitter_class: Any, rng: random.Random) -> None:
    executor = cf.ThreadPoolExecutor(max_workers=1)
    executor.shutdown()
    submitter = submitter_class(executor, 2)
    for attempt in range(3):
        try:
            _submit(submitter, pow, 2, 2, timeout_s=0.1)
        except RuntimeError:
            continue
        except TimeoutError:
            raise CheckFailed(
                expected=f"attempt {attempt + 1} on a shut-down executor to raise RuntimeError",
                actual="TimeoutError: the slots of rejected submits were never given back",
            ) from None
        raise CheckFailed(
            expected="submit() on a shut-down executor to raise the executor's RuntimeError",
            actual="it returned",
        )


def check_bounded_submit(
    submitter_class: Any, *, seed: int = 0, quiet: bool = False
) -> CheckReport:
    """Check a learner's ``BoundedSubmitter`` class.

    Raises ``ExerciseFailed`` naming the first failed check; prints one line on success.
    """
    check = TimedCheck("bounded-submit", seed=seed)
    check.add(
        "runs every task",
        check_runs_every_task,
        hint="submit(fn, *args, timeout_s=...) passes fn and args to executor.submit()",
    )
    check.add(
        "bound holds",
        check_bound_holds,
        hint="take a slot before executor.submit() and give it back when the future is done",
    )
    check.add(
        "timeout when full",
        check_timeout_when_full,
        hint="wait for a slot at most timeout_s, then raise TimeoutError",
    )
    check.add(
        "failed tasks free slots",
        check_failures_free_slots,
        hint="give the slot back in a done callback, which runs whether the task "
        "succeeded or raised",
    )
    check.add(
        "cancelled task frees slot",
        check_cancelled_frees_slot,
        hint="a cancelled task never runs, so only a done callback on its future "
        "can give its slot back, not code wrapped around fn",
    )
    check.add(
        "rejected submit frees slot",
        check_rejected_submit_frees_slot,
        hint="if executor.submit() raises, release the slot and re-raise (try/except)",
    )
    return check.run(submitter_class, quiet=quiet)
