"""Measure what one operation costs in each asynchronous style, for lab 9.

Two kinds of measurement, both sequential (each operation finishes before the
next starts), so that they show the cost of one operation rather than
concurrency:

- Dispatch: a chain of ``steps`` steps that each add 1 to a number, with no
  network. Plain function calls are the floor. The other rows hand each step
  to the next through a ``Dispatcher`` thread, ``Promise.then``, a one-worker
  ``ThreadPoolExecutor``, ``asyncio`` ``call_soon`` or ``await`` of a
  coroutine, so the difference to the floor is the cost of the hand-off.
- Network: the two-step lookup (``user:alice``, then ``balance:42``) against a
  ``LookupServer`` on loopback, once per style: blocking, callbacks,
  ``concurrent.futures``, ``Promise`` and ``asyncio``.

Every function checks the result of every operation and raises
``RuntimeError`` if one is wrong, so a row in a table always stands for
completed, correct work. The ``asyncio`` functions are coroutines: in a
notebook they are awaited on the kernel's running loop, where
``asyncio.run`` would fail.

``benchmarks/bench_styles.py`` measures the network rows at larger counts
from the command line. This module repeats the idea in a form a lab can
import.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

from .callbacks import CallbackClient, fetch_balance_callbacks
from .dispatcher import Dispatcher
from .futures import AsyncLookupClient, ExecutorLookup, fetch_balance_async, fetch_balance_chained
from .lookup import LookupClient, balance_key, user_key
from .promise import Promise

__all__ = [
    "DISPATCH_CASES",
    "NETWORK_CASES",
    "Measurement",
    "measure_dispatch",
    "measure_network",
    "median_measurement",
]

WAIT_S: Final = 30.0  # every wait gives up after this long; a run that takes longer has failed
USER: Final = "alice"
EXPECTED_BALANCE: Final = "100"


@dataclass(frozen=True)
class Measurement:
    """``operations`` completed, correct operations of one style, and the seconds they took."""

    style: str
    kind: str  # "dispatch" or "network"
    operations: int
    seconds: float

    @property
    def us_per_op(self) -> float:
        """Microseconds per operation."""
        return self.seconds / self.operations * 1e6


def _check(value: object, expected: object, style: str) -> None:
    if value != expected:
        raise RuntimeError(f"{style}: expected {expected!r}, got {value!r}")


# -- dispatch: a chain of steps, no network -----------------------------------------


def chain_direct(steps: int) -> float:
    """Call ``add_one`` ``steps`` times in a plain loop; return the seconds taken."""
    value = 0
    start = time.perf_counter()
    for _ in range(steps):
        value = _add_one(value)
    elapsed = time.perf_counter() - start
    _check(value, steps, "direct calls")
    return elapsed


def chain_dispatcher(steps: int) -> float:
    """Run ``steps`` callbacks on a ``Dispatcher``, each queuing the next."""
    dispatcher = Dispatcher("measure-call-soon")
    done = threading.Event()
    result: list[int] = []

    def step(remaining: int, value: int) -> None:
        if remaining == 0:
            result.append(value)
            done.set()
            return
        dispatcher.call_soon(step, remaining - 1, value + 1)

    try:
        start = time.perf_counter()
        dispatcher.call_soon(step, steps, 0)
        if not done.wait(WAIT_S):
            raise RuntimeError(f"callback chain of {steps} steps did not finish in {WAIT_S} s")
        elapsed = time.perf_counter() - start
    finally:
        dispatcher.close(WAIT_S)
    _check(result, [steps], "Dispatcher.call_soon")
    return elapsed


def chain_promise(steps: int) -> float:
    """Chain ``steps`` ``then(add_one)`` handlers on a private dispatcher."""
    dispatcher = Dispatcher("measure-promise")
    try:
        start = time.perf_counter()
        promise: Promise[Any] = Promise.resolve(0, dispatcher=dispatcher)
        for _ in range(steps):
            promise = promise.then(_add_one)
        value = promise.result(WAIT_S)
        elapsed = time.perf_counter() - start
    finally:
        dispatcher.close(WAIT_S)
    _check(value, steps, "Promise.then")
    return elapsed


def chain_executor(steps: int) -> float:
    """Run ``steps`` tasks on a one-worker thread pool, each submitted after the last finished.

    The caller's thread waits for each future, so every step is two thread
    hand-offs: caller to worker, and worker back to caller.
    """
    value = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="measure-executor") as pool:
        start = time.perf_counter()
        for _ in range(steps):
            future: Future[int] = pool.submit(_add_one, value)
            value = future.result(WAIT_S)
        elapsed = time.perf_counter() - start
    _check(value, steps, "ThreadPoolExecutor.submit")
    return elapsed


async def chain_asyncio_call_soon(steps: int) -> float:
    """Run ``steps`` callbacks on the running loop, each scheduling the next with ``call_soon``."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[int] = loop.create_future()

    def step(remaining: int, value: int) -> None:
        if remaining == 0:
            finished.set_result(value)
            return
        loop.call_soon(step, remaining - 1, value + 1)

    start = time.perf_counter()
    loop.call_soon(step, steps, 0)
    value = await asyncio.wait_for(finished, WAIT_S)
    elapsed = time.perf_counter() - start
    _check(value, steps, "asyncio call_soon")
    return elapsed


async def chain_coroutines(steps: int) -> float:
    """Await ``steps`` coroutines one after another.

    A coroutine that never waits for I/O runs to the end inside ``await``
    without returning to the loop, so this row costs a frame per step, not a
    loop iteration.
    """

    async def add_one_async(value: int) -> int:
        return value + 1

    value = 0
    start = time.perf_counter()
    for _ in range(steps):
        value = await add_one_async(value)
    elapsed = time.perf_counter() - start
    _check(value, steps, "await coroutine")
    return elapsed


def _add_one(value: int) -> int:
    return value + 1


DISPATCH_CASES: Final[dict[str, Callable[[int], float | Awaitable[float]]]] = {
    "direct calls": chain_direct,
    "await coroutine": chain_coroutines,
    "asyncio call_soon": chain_asyncio_call_soon,
    "Dispatcher.call_soon": chain_dispatcher,
    "Promise.then": chain_promise,
    "ThreadPoolExecutor": chain_executor,
}


# -- network: the two-step lookup ------------------------------------------------------


def fetch_blocking(port: int, ops: int) -> float:
    """Run ``ops`` two-step lookups with a blocking ``LookupClient``."""
    with LookupClient(port, timeout_s=WAIT_S) as client:

        def fetch() -> str:
            return client.get(balance_key(client.get(user_key(USER))))

        _check(fetch(), EXPECTED_BALANCE, "blocking")  # warm-up, untimed
        start = time.perf_counter()
        for _ in range(ops):
            _check(fetch(), EXPECTED_BALANCE, "blocking")
        return time.perf_counter() - start


def fetch_callbacks(port: int, ops: int) -> float:
    """Run ``ops`` two-step lookups with nested callbacks on a ``CallbackClient``."""
    with CallbackClient(port, timeout_s=WAIT_S) as client:

        def fetch() -> object:
            done = threading.Event()
            outcome: list[object] = []

            def finish(result: object) -> None:
                outcome.append(result)
                done.set()

            fetch_balance_callbacks(client, USER, finish, finish)
            if not done.wait(WAIT_S):
                raise RuntimeError(f"callbacks: no result within {WAIT_S} s")
            return outcome[0]

        _check(fetch(), EXPECTED_BALANCE, "callbacks")
        start = time.perf_counter()
        for _ in range(ops):
            _check(fetch(), EXPECTED_BALANCE, "callbacks")
        return time.perf_counter() - start


def fetch_futures(port: int, ops: int) -> float:
    """Run ``ops`` two-step lookups as ``concurrent.futures`` chains on an ``ExecutorLookup``."""
    with ExecutorLookup(port, max_workers=1, timeout_s=WAIT_S) as lookup:
        _check(fetch_balance_chained(lookup, USER).result(WAIT_S), EXPECTED_BALANCE, "futures")
        start = time.perf_counter()
        for _ in range(ops):
            balance = fetch_balance_chained(lookup, USER).result(WAIT_S)
            _check(balance, EXPECTED_BALANCE, "futures")
        return time.perf_counter() - start


def fetch_promise(port: int, ops: int) -> float:
    """Run ``ops`` two-step lookups as ``Promise.then`` chains over a ``CallbackClient``."""
    dispatcher = Dispatcher("measure-promise-network")
    try:
        with CallbackClient(port, timeout_s=WAIT_S) as client:

            def get(key: str) -> Promise[Any]:
                return Promise(
                    lambda resolve, reject: client.get(key, resolve, reject),
                    dispatcher=dispatcher,
                )

            def fetch() -> object:
                chain = get(user_key(USER)).then(lambda account: get(balance_key(account)))
                return chain.result(WAIT_S)

            _check(fetch(), EXPECTED_BALANCE, "promise")
            start = time.perf_counter()
            for _ in range(ops):
                _check(fetch(), EXPECTED_BALANCE, "promise")
            elapsed = time.perf_counter() - start
    finally:
        dispatcher.close(WAIT_S)
    return elapsed


async def fetch_asyncio(port: int, ops: int) -> float:
    """Run ``ops`` two-step lookups as coroutines on an ``AsyncLookupClient``."""
    async with await AsyncLookupClient.open(port=port, timeout_s=WAIT_S) as client:
        _check(
            await fetch_balance_async(client, USER, timeout_s=WAIT_S), EXPECTED_BALANCE, "asyncio"
        )
        start = time.perf_counter()
        for _ in range(ops):
            balance = await fetch_balance_async(client, USER, timeout_s=WAIT_S)
            _check(balance, EXPECTED_BALANCE, "asyncio")
        return time.perf_counter() - start


NETWORK_CASES: Final[dict[str, Callable[[int, int], float | Awaitable[float]]]] = {
    "blocking": fetch_blocking,
    "callbacks": fetch_callbacks,
    "concurrent.futures": fetch_futures,
    "Promise.then": fetch_promise,
    "asyncio": fetch_asyncio,
}


# -- running the cases ----------------------------------------------------------------


async def _seconds(outcome: float | Awaitable[float]) -> float:
    if isinstance(outcome, (int, float)):
        return float(outcome)
    return await outcome


async def measure_dispatch(steps: int, repeat: int) -> list[Measurement]:
    """Run every dispatch case ``repeat`` times, in turn; return one measurement per run.

    A coroutine, because two cases need a running ``asyncio`` loop. The
    thread-based cases block the loop while they run, which is harmless in a
    notebook cell that waits for them anyway.
    """
    runs: list[Measurement] = []
    for _ in range(repeat):
        for style, case in DISPATCH_CASES.items():
            seconds = await _seconds(case(steps))
            runs.append(Measurement(style, "dispatch", steps, seconds))
    return runs


async def measure_network(port: int, ops: int, repeat: int) -> list[Measurement]:
    """Run every network case against the lookup server on ``port``; see ``measure_dispatch``.

    NOTE: the blocking cases block the running loop for the length of one
    case, so an asyncio server on the same loop would stall. Use a
    ``LookupServer``, which serves from its own threads.
    """
    runs: list[Measurement] = []
    for _ in range(repeat):
        for style, case in NETWORK_CASES.items():
            seconds = await _seconds(case(port, ops))
            runs.append(Measurement(style, "network", ops, seconds))
    return runs


def median_measurement(runs: list[Measurement]) -> dict[str, float]:
    """Return the median microseconds per operation of each style, in first-seen order."""
    by_style: dict[str, list[float]] = {}
    for run in runs:
        by_style.setdefault(run.style, []).append(run.us_per_op)
    return {style: statistics.median(values) for style, values in by_style.items()}
