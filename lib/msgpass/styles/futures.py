"""Future style: a request returns an object that will hold its result.

A future turns "call me back" into "here is a handle; ask it later". This
module writes the two-step lookup with Python's two kinds of future.

``concurrent.futures``. ``ExecutorLookup.get`` submits a blocking
``LookupClient.get`` to a ``ThreadPoolExecutor`` and returns a
``concurrent.futures.Future``. A caller can block on ``result(timeout=...)``,
chain the next step with ``add_done_callback`` (``fetch_balance_chained``),
or fan out over several users and collect with ``wait`` or ``as_completed``.
Cancellation is limited. ``cancel()`` succeeds only while the future still
waits in the executor's queue, and a future whose worker has started runs to
the end.

``asyncio``. ``fetch_balance`` is a coroutine. It reads like the blocking
version, but every ``await`` gives the event loop a chance to run other
tasks. ``asyncio.timeout`` bounds each step, and cancelling the task closes
the connection on the way out. That half lives in
``msgpass.styles.futures_asyncio`` and is imported from here.

Timeouts become ``MessagingTimeout`` in both halves. The standard library
raises ``TimeoutError``, and since Python 3.11
``concurrent.futures.TimeoutError`` and ``asyncio.TimeoutError`` are that
same class.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from types import TracebackType
from typing import TypeVar

from ..errors import EndpointClosed, MessagingError, MessagingTimeout
from ..tcp import DEFAULT_TIMEOUT_S, check_timeout
from .futures_asyncio import (
    AsyncLookupClient,
    fetch_balance,
    fetch_balance_async,
    fetch_balances_gather,
    fetch_balances_taskgroup,
)
from .lookup import LookupClient, balance_key, user_key

__all__ = [
    "ExecutorLookup",
    "result_within",
    "fetch_balance_with_executor",
    "fetch_balance_chained",
    "fetch_balances_wait",
    "fetch_balances_as_completed",
    "AsyncLookupClient",
    "fetch_balance_async",
    "fetch_balance",
    "fetch_balances_gather",
    "fetch_balances_taskgroup",
]

T = TypeVar("T")

DEFAULT_WORKERS = 4


# -- concurrent.futures ---------------------------------------------------------


class ExecutorLookup:
    """Run blocking lookups on a thread pool and hand back ``concurrent.futures.Future`` objects.

    Each worker thread opens its own ``LookupClient`` on first use, because
    one connection cannot serve two threads at once. ``close()`` shuts the
    pool down, cancels the requests still queued, and closes every
    connection::

        with ExecutorLookup(server.port) as lookup:
            future = lookup.get("user:alice")
            future.result(timeout=1.0)  # "42"
    """

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        *,
        max_workers: int = DEFAULT_WORKERS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.port = port
        self.host = host
        self.timeout_s = check_timeout(timeout_s)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers, thread_name_prefix="executor-lookup"
        )
        self._local = threading.local()
        self._clients: list[LookupClient] = []
        self._lock = threading.Lock()
        self._closed = False

    def get(self, key: str, *, timeout_s: float | None = None) -> Future[str]:
        """Submit a lookup of ``key`` and return its future at once.

        The worker waits at most ``timeout_s`` seconds for the reply, so a
        dropped reply fails the future with ``MessagingTimeout``. An error
        reply fails it with ``RemoteError``. Raises ``EndpointClosed`` after
        ``close()``.
        """
        timeout = self.timeout_s if timeout_s is None else check_timeout(timeout_s)
        with self._lock:
            if self._closed:
                raise EndpointClosed(f"{self!r} is closed; create a new one")
            return self._executor.submit(self._get_blocking, key, timeout)

    def _get_blocking(self, key: str, timeout_s: float | None) -> str:
        client: LookupClient | None = getattr(self._local, "client", None)
        if client is None:
            client = LookupClient(
                self.port, self.host, timeout_s=self.timeout_s or DEFAULT_TIMEOUT_S
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client.get(key, timeout_s=timeout_s)

    def close(self) -> None:
        """Cancel queued requests, wait for running ones, and close every connection."""
        with self._lock:
            self._closed = True
        # Running requests end within their own timeout_s.
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    def __enter__(self) -> ExecutorLookup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        connections = len(self._clients)
        return f"<ExecutorLookup {state} -> {self.host}:{self.port}, {connections} connections>"


def result_within(future: Future[T], timeout_s: float, operation: str) -> T:
    """Return ``future.result(timeout=timeout_s)``, raising ``MessagingTimeout`` on timeout.

    ``operation`` names the awaited work in the error message, for example "step 1".

    The future is cancelled on timeout. That takes effect only if it is
    still queued. A running one finishes and its result is dropped.
    """
    try:
        return future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError as error:
        if isinstance(error, MessagingTimeout):
            raise  # the worker's own timeout, already a library error
        future.cancel()
        raise MessagingTimeout(f"{operation} got no result within {timeout_s} s") from error


def fetch_balance_with_executor(lookup: ExecutorLookup, user: str, *, timeout_s: float) -> str:
    """Run the two-step task with futures, blocking on each one in turn.

    Each step waits at most ``timeout_s`` seconds. Blocking on a future right
    after submitting it gains nothing over a plain call. The point is the
    shape: the waiting is explicit, and so is its timeout.
    """
    account_id = result_within(lookup.get(user_key(user)), timeout_s, f"step 1 for {user!r}")
    return result_within(lookup.get(balance_key(account_id)), timeout_s, f"step 2 for {user!r}")


def fetch_balance_chained(
    lookup: ExecutorLookup, user: str, *, timeout_s: float | None = None
) -> Future[str]:
    """Run the two-step task without blocking: return a future of the balance.

    Step 2 is submitted from step 1's done-callback. Its outcome is copied
    into the returned future, which the function creates itself. Errors of
    either step fail the returned future. Cancelling the returned future
    cancels the step in progress, which works only while that step is still
    queued.
    """
    outcome: Future[str] = Future()
    current: list[Future[str]] = []  # the step in progress, for cancellation

    def cancel_step(done: Future[str]) -> None:
        if done.cancelled() and current:
            current[-1].cancel()

    def start(key: str, then: Callable[[Future[str]], None]) -> None:
        try:
            step = lookup.get(key, timeout_s=timeout_s)
        except MessagingError as error:
            _settle(outcome, error=error)
            return
        current.append(step)
        step.add_done_callback(then)

    def after_account(step: Future[str]) -> None:
        error = _failure(step)
        if error is not None:
            _settle(outcome, error=error)
        elif not outcome.cancelled():
            start(balance_key(step.result()), after_balance)

    def after_balance(step: Future[str]) -> None:
        error = _failure(step)
        if error is not None:
            _settle(outcome, error=error)
        else:
            _settle(outcome, value=step.result())

    outcome.add_done_callback(cancel_step)
    start(user_key(user), after_account)
    return outcome


def _failure(step: Future[str]) -> BaseException | None:
    if step.cancelled():
        return concurrent.futures.CancelledError("a step of the lookup was cancelled")
    return step.exception()


def _settle(
    outcome: Future[str], *, value: str | None = None, error: BaseException | None = None
) -> None:
    # The caller may have cancelled the outcome meanwhile, which makes it final.
    if not outcome.set_running_or_notify_cancel():
        return
    if error is None:
        assert value is not None
        outcome.set_result(value)
    else:
        outcome.set_exception(error)


def fetch_balances_wait(
    lookup: ExecutorLookup,
    users: Iterable[str],
    *,
    timeout_s: float,
    step_timeout_s: float | None = None,
) -> dict[str, str | BaseException]:
    """Fan out: start every user's task, then ``wait`` up to ``timeout_s`` seconds for all.

    Returns each user's balance or exception. A task unfinished at the
    deadline is cancelled and reported as ``MessagingTimeout``. Each step
    has its own ``step_timeout_s``, by default the lookup's ``timeout_s``.
    """
    futures = {
        fetch_balance_chained(lookup, user, timeout_s=step_timeout_s): user for user in users
    }
    done, not_done = concurrent.futures.wait(futures, timeout=timeout_s)
    results: dict[str, str | BaseException] = {}
    for future in done:
        error = future.exception()
        results[futures[future]] = future.result() if error is None else error
    for future in not_done:
        future.cancel()
        results[futures[future]] = MessagingTimeout(
            f"fetching the balance of {futures[future]!r} did not finish within {timeout_s} s"
        )
    return results


def fetch_balances_as_completed(
    lookup: ExecutorLookup,
    users: Iterable[str],
    *,
    timeout_s: float,
    step_timeout_s: float | None = None,
) -> Iterator[tuple[str, str | BaseException]]:
    """Fan out and yield ``(user, balance or exception)`` in the order the tasks finish.

    Raises ``MessagingTimeout`` if some task is still unfinished after
    ``timeout_s`` seconds in total. The unfinished tasks are cancelled first.
    Each step has its own ``step_timeout_s``, by default the lookup's ``timeout_s``.
    """
    futures = {
        fetch_balance_chained(lookup, user, timeout_s=step_timeout_s): user for user in users
    }
    try:
        for future in concurrent.futures.as_completed(futures, timeout=timeout_s):
            error = future.exception()
            yield futures[future], future.result() if error is None else error
    except concurrent.futures.TimeoutError as error:
        waiting = sorted(user for future, user in futures.items() if not future.done())
        for future in futures:
            future.cancel()
        raise MessagingTimeout(f"no balance for {waiting} within {timeout_s} s") from error
