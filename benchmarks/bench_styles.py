"""Measure the two-step lookup in each asynchronous style, and what the promise layer costs.

Two tables, each measured in one run so that its ratios compare like with like:

1. Network. Operations per second of the same two-step task (``user:alice``,
   then ``balance:42``) against one ``LookupServer`` on loopback with no
   service delay. One operation is both requests, and the caller waits for
   its result before starting the next, so every row measures latency per
   operation, not concurrency. Styles: a blocking ``LookupClient``, nested
   callbacks on a ``CallbackClient``, a ``concurrent.futures`` chain on an
   ``ExecutorLookup``, an ``asyncio`` coroutine on an ``AsyncLookupClient``,
   and ``Promise.then`` on top of the callback client. Each case opens its
   connections and runs one untimed operation before the clock starts.
2. Dispatch, without network. A chain of N steps that each add 1 to a
   number. "Plain callbacks" means callbacks that go through the same queue
   as promise handlers: each step queues the next with
   ``Dispatcher.call_soon`` and runs on the dispatcher thread. The promise
   chain is built with ``Promise.then`` in the calling thread, and its
   handlers run on the same kind of dispatcher thread. The ratio of these
   two rows isolates the promise layer (states, the lock, one new promise
   per step) from the queue and thread hop that both pay. Target: the
   promise layer costs at most 2x plain callbacks per step. Two more rows
   give context. "then() calls only" times only the ``then`` calls that
   build a chain whose head is still pending, which shows how the promise
   layer's time splits between creating promises and running handlers.
   "direct calls" passes each step's result to a callback called at once,
   in the same thread, with no queue, which shows what the hop itself
   costs. The report gives the promise layer's ratio against both
   callback rows.

Each repetition runs every case once, in turn. The tables show the median of
the repetitions and their range.

Run: ``.venv/bin/python benchmarks/bench_styles.py [--quick] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from msgpass.styles.callbacks import CallbackClient, fetch_balance_callbacks
from msgpass.styles.futures import (
    AsyncLookupClient,
    ExecutorLookup,
    fetch_balance_async,
    fetch_balance_chained,
)
from msgpass.styles.lookup import LookupClient, LookupServer, balance_key, user_key
from msgpass.styles.promise import Dispatcher, Promise

TIMEOUT_S = 30.0  # for every wait; a run that takes longer has failed
USER = "alice"
EXPECTED_BALANCE = "100"
TARGET_RATIO = 2.0  # promise time per step over callback time per step


@dataclass(frozen=True)
class Config:
    """Operation and step counts for one run."""

    network_ops: int
    dispatch_steps: int
    repeat: int


FULL = Config(network_ops=2000, dispatch_steps=50_000, repeat=5)
QUICK = Config(network_ops=300, dispatch_steps=10_000, repeat=3)
SMOKE = Config(network_ops=3, dispatch_steps=20, repeat=1)


def check_balance(value: object) -> None:
    if value != EXPECTED_BALANCE:
        raise AssertionError(f"expected balance {EXPECTED_BALANCE!r}, got {value!r}")


# -- network cases: each returns the seconds that `ops` operations took -----------


def run_blocking(port: int, ops: int) -> float:
    with LookupClient(port, timeout_s=TIMEOUT_S) as client:

        def fetch() -> str:
            return client.get(balance_key(client.get(user_key(USER))))

        check_balance(fetch())
        start = time.perf_counter()
        for _ in range(ops):
            check_balance(fetch())
        return time.perf_counter() - start


def run_callbacks(port: int, ops: int) -> float:
    with CallbackClient(port, timeout_s=TIMEOUT_S) as client:

        def fetch() -> object:
            done = threading.Event()
            outcome: list[object] = []

            def finish(result: object) -> None:
                outcome.append(result)
                done.set()

            fetch_balance_callbacks(client, USER, finish, finish)
            if not done.wait(TIMEOUT_S):
                raise TimeoutError("callback fetch got no result")
            return outcome[0]

        check_balance(fetch())
        start = time.perf_counter()
        for _ in range(ops):
            check_balance(fetch())
        return time.perf_counter() - start


def run_futures(port: int, ops: int) -> float:
    with ExecutorLookup(port, max_workers=1, timeout_s=TIMEOUT_S) as lookup:
        check_balance(fetch_balance_chained(lookup, USER).result(timeout=TIMEOUT_S))
        start = time.perf_counter()
        for _ in range(ops):
            check_balance(fetch_balance_chained(lookup, USER).result(timeout=TIMEOUT_S))
        return time.perf_counter() - start


def run_asyncio(port: int, ops: int) -> float:
    async def measure() -> float:
        async with await AsyncLookupClient.open(port=port, timeout_s=TIMEOUT_S) as client:
            check_balance(await fetch_balance_async(client, USER, timeout_s=TIMEOUT_S))
            start = time.perf_counter()
            for _ in range(ops):
                check_balance(await fetch_balance_async(client, USER, timeout_s=TIMEOUT_S))
            return time.perf_counter() - start

    return asyncio.run(measure())


def run_promise(port: int, ops: int) -> float:
    dispatcher = Dispatcher("bench-promise-network")
    with CallbackClient(port, timeout_s=TIMEOUT_S) as client:

        def get(key: str) -> Promise[Any]:
            return Promise(
                lambda resolve, reject: client.get(key, resolve, reject), dispatcher=dispatcher
            )

        def fetch() -> object:
            chain = get(user_key(USER)).then(lambda account_id: get(balance_key(account_id)))
            return chain.result(TIMEOUT_S)

        check_balance(fetch())
        start = time.perf_counter()
        for _ in range(ops):
            check_balance(fetch())
        elapsed = time.perf_counter() - start
    dispatcher.close(TIMEOUT_S)
    return elapsed


NETWORK_CASES: dict[str, Callable[[int, int], float]] = {
    "blocking LookupClient": run_blocking,
    "callbacks (CallbackClient)": run_callbacks,
    "concurrent.futures chain": run_futures,
    "asyncio coroutine": run_asyncio,
    "Promise.then on callbacks": run_promise,
}


# -- dispatch cases: N chained steps, no network ----------------------------------


def chain_direct_calls(dispatcher: Dispatcher, steps: int) -> float:
    """Run ``steps`` steps that each hand their result to a callback at once; return seconds.

    Nothing is queued and no thread is involved, so ``dispatcher`` is unused.
    """
    received: list[int] = [0]

    def receive(value: int) -> None:
        received[0] = value

    def step(value: int, on_done: Callable[[int], None]) -> None:
        on_done(value + 1)

    start = time.perf_counter()
    for _ in range(steps):
        step(received[0], receive)
    elapsed = time.perf_counter() - start
    if received[0] != steps:
        raise AssertionError(f"direct call chain returned {received[0]}, expected {steps}")
    return elapsed


def chain_callbacks(dispatcher: Dispatcher, steps: int) -> float:
    """Run ``steps`` callbacks, each queuing the next; return the seconds taken."""
    done = threading.Event()
    result: list[int] = []

    def step(remaining: int, value: int) -> None:
        if remaining == 0:
            result.append(value)
            done.set()
            return
        dispatcher.call_soon(step, remaining - 1, value + 1)

    start = time.perf_counter()
    dispatcher.call_soon(step, steps, 0)
    if not done.wait(TIMEOUT_S):
        raise TimeoutError(f"callback chain of {steps} steps did not finish")
    elapsed = time.perf_counter() - start
    if result != [steps]:
        raise AssertionError(f"callback chain returned {result}, expected [{steps}]")
    return elapsed


def add_one(value: int) -> int:
    return value + 1


def chain_promises(dispatcher: Dispatcher, steps: int) -> float:
    """Run ``steps`` chained ``then(add_one)`` handlers; return the seconds taken."""
    start = time.perf_counter()
    promise: Promise[Any] = Promise.resolve(0, dispatcher=dispatcher)
    for _ in range(steps):
        promise = promise.then(add_one)
    value = promise.result(TIMEOUT_S)
    elapsed = time.perf_counter() - start
    if value != steps:
        raise AssertionError(f"promise chain returned {value}, expected {steps}")
    return elapsed


def build_promise_chain(dispatcher: Dispatcher, steps: int) -> float:
    """Time only the ``then`` calls, on a chain whose first promise is still pending.

    Nothing is dispatched while the clock runs, so this row shows how much of
    the ``Promise.then`` row is spent creating promises rather than running
    handlers. The chain is settled and checked after the clock stops.
    """
    head, resolve, _ = Promise.with_resolvers(dispatcher=dispatcher)
    promise: Promise[Any] = head
    start = time.perf_counter()
    for _ in range(steps):
        promise = promise.then(add_one)
    elapsed = time.perf_counter() - start
    resolve(0)
    value = promise.result(TIMEOUT_S)
    if value != steps:
        raise AssertionError(f"promise chain returned {value}, expected {steps}")
    return elapsed


DISPATCH_CASES: dict[str, Callable[[Dispatcher, int], float]] = {
    "callbacks via call_soon": chain_callbacks,
    "Promise.then": chain_promises,
    "then() calls only": build_promise_chain,
    "direct calls, no queue": chain_direct_calls,
}


def measure(config: Config) -> dict[str, dict[str, list[float]]]:
    """Run every case ``config.repeat`` times; return the rates per table and case."""
    network: dict[str, list[float]] = {name: [] for name in NETWORK_CASES}
    dispatch: dict[str, list[float]] = {name: [] for name in DISPATCH_CASES}
    with LookupServer() as server:
        for _ in range(config.repeat):
            for name, run in NETWORK_CASES.items():
                network[name].append(config.network_ops / run(server.port, config.network_ops))
    for _ in range(config.repeat):
        for name, chain in DISPATCH_CASES.items():
            dispatcher = Dispatcher(f"bench-{name}")
            try:
                elapsed = chain(dispatcher, config.dispatch_steps)
            finally:
                dispatcher.close(TIMEOUT_S)
            dispatch[name].append(config.dispatch_steps / elapsed)
    return {"network_ops_per_s": network, "dispatch_steps_per_s": dispatch}


def promise_overhead(
    results: dict[str, dict[str, list[float]]], baseline: str = "callbacks via call_soon"
) -> float:
    """Return the promise chain's time per step over the ``baseline`` row's (medians)."""
    dispatch = results["dispatch_steps_per_s"]
    callbacks = statistics.median(dispatch[baseline])
    promises = statistics.median(dispatch["Promise.then"])
    return callbacks / promises


def format_report(results: dict[str, dict[str, list[float]]], config: Config) -> str:
    """Return both tables with medians, ratios to the baseline row, and ranges."""
    lines = [
        f"Python {platform.python_version()}, {multiprocessing.cpu_count()} CPUs, "
        f"median of {config.repeat} repetitions",
        "",
        f"Two-step lookup on loopback, {config.network_ops} operations per repetition",
        f"{'style':30} {'ops/s':>9} {'vs blocking':>12}   range of repetitions",
    ]
    lines += _rows(results["network_ops_per_s"], "blocking LookupClient")
    lines += [
        "",
        f"Dispatch only, a chain of {config.dispatch_steps} steps per repetition",
        f"{'style':30} {'steps/s':>9} {'vs callbacks':>12}   range of repetitions",
    ]
    lines += _rows(results["dispatch_steps_per_s"], "callbacks via call_soon")
    ratio = promise_overhead(results)
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    direct_ratio = promise_overhead(results, "direct calls, no queue")
    lines += [
        "",
        f"Promise layer: {ratio:.2f}x the time per step of callbacks queued with call_soon "
        f"(target at most {TARGET_RATIO:.0f}x): {verdict}",
        f"Promise layer: {direct_ratio:.2f}x the time per step of direct calls "
        f"(no target; this ratio includes the queue and the thread hop)",
    ]
    return "\n".join(lines)


def _rows(table: dict[str, list[float]], baseline_name: str) -> list[str]:
    baseline = statistics.median(table[baseline_name])
    rows = []
    for name, rates in table.items():
        rate = statistics.median(rates)
        rows.append(
            f"{name:30} {rate:9.0f} {rate / baseline:11.2f}x   {min(rates):.0f} to {max(rates):.0f}"
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="run fewer operations, for a run of a few seconds"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="repetitions per case (default 5, or 3 quick)"
    )
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    if args.repeat is not None:
        if args.repeat < 1:
            parser.error(f"--repeat must be 1 or more, got {args.repeat}")
        config = Config(config.network_ops, config.dispatch_steps, args.repeat)
    print(format_report(measure(config), config))


if __name__ == "__main__":
    main()
