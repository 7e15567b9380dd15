"""Future style on asyncio: the two-step lookup as coroutines and tasks.

``fetch_balance`` is a coroutine. It reads like the blocking version, but
every ``await`` gives the event loop a chance to run other tasks.
``asyncio.timeout`` bounds each step. ``asyncio.gather`` and
``asyncio.TaskGroup`` fan out over several users. Cancelling the task raises
``CancelledError`` at the ``await`` where it waits, so ``async with`` closes
the connection on the way out and the error goes on to the caller.

Timeouts become ``MessagingTimeout``. asyncio raises ``TimeoutError``, which
since Python 3.11 is also ``asyncio.TimeoutError``. The ``concurrent.futures``
half of the future style is in ``msgpass.styles.futures``, which imports
these names, so both halves can be imported from there.

Left out on purpose: several requests in flight on one connection
(``AsyncLookupClient`` takes turns, see its ``NOTE:``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import TracebackType

from ..errors import MessagingTimeout, RemoteError
from ..tcp import DEFAULT_TIMEOUT_S, check_timeout
from ..tcp_asyncio import AsyncFramedConnection, open_connection
from .lookup import balance_key, decode_reply, encode_request, user_key

__all__ = [
    "AsyncLookupClient",
    "fetch_balance_async",
    "fetch_balance",
    "fetch_balances_gather",
    "fetch_balances_taskgroup",
]


class AsyncLookupClient:
    """One asyncio connection to the lookup server, one request at a time.

    ``open`` connects. ``get`` sends a request and awaits its reply. A lock
    makes concurrent ``get`` calls take turns on the connection, and request
    ids let ``get`` skip a reply that belongs to an earlier request which was
    cancelled or timed out.

    NOTE: taking turns keeps the code short. A production client multiplexes
    instead. A reader task matches replies to waiting futures by request id,
    as ``msgpass.styles.callbacks.CallbackClient`` does with callbacks.
    """

    def __init__(self, conn: AsyncFramedConnection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self._next_id = 1
        self.late_replies = 0

    @classmethod
    async def open(
        cls, host: str = "127.0.0.1", port: int = 0, *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> AsyncLookupClient:
        """Connect within ``timeout_s`` seconds and return the client."""
        return cls(await open_connection(host, port, timeout_s=timeout_s))

    async def get(self, key: str, *, timeout_s: float | None = DEFAULT_TIMEOUT_S) -> str:
        """Return the value under ``key``, or raise ``RemoteError`` or ``MessagingTimeout``.

        ``timeout_s`` covers waiting for the connection, sending and receiving.
        The connection's own timeout, set in ``open``, applies as well.
        """
        timeout = check_timeout(timeout_s)
        request_id = self._next_id
        self._next_id += 1
        try:
            async with asyncio.timeout(timeout):
                async with self._lock:
                    await self._conn.send(encode_request(key, request_id))
                    while True:
                        reply_id, outcome = decode_reply(await self._conn.recv(timeout_s=None))
                        if reply_id == request_id:
                            break
                        self.late_replies += 1
        except TimeoutError as error:
            if isinstance(error, MessagingTimeout):
                raise
            raise MessagingTimeout(
                f"get {key!r} (request {request_id}) timed out after {timeout} s"
            ) from error
        if isinstance(outcome, RemoteError):
            raise outcome
        return outcome

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()

    async def __aenter__(self) -> AsyncLookupClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncLookupClient {self._conn!r}>"


async def fetch_balance_async(client: AsyncLookupClient, user: str, *, timeout_s: float) -> str:
    """Run the two-step task on an open client, each step within ``timeout_s`` seconds."""
    account_id = await client.get(user_key(user), timeout_s=timeout_s)
    return await client.get(balance_key(account_id), timeout_s=timeout_s)


async def fetch_balance(
    host: str, port: int, user: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> str:
    """Connect, run the two-step task, and close the connection whatever happens.

    Each step, and the connection attempt, get ``timeout_s`` seconds. If the
    task is cancelled, ``CancelledError`` interrupts the ``await`` in progress,
    ``async with`` closes the connection, and the ``CancelledError`` goes
    on to the caller. A cancelled fetch never returns a balance.
    """
    async with await AsyncLookupClient.open(host, port, timeout_s=timeout_s) as client:
        return await fetch_balance_async(client, user, timeout_s=timeout_s)


async def fetch_balances_gather(
    host: str, port: int, users: Iterable[str], *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[str, str | BaseException]:
    """Fan out with ``asyncio.gather``: every user's task runs to its end.

    ``return_exceptions=True`` puts each failure in the result in place of a
    balance, so one missing user does not hide the others' balances.
    """
    names = list(users)
    results = await asyncio.gather(
        *(fetch_balance(host, port, user, timeout_s=timeout_s) for user in names),
        return_exceptions=True,
    )
    return dict(zip(names, results, strict=True))


async def fetch_balances_taskgroup(
    host: str, port: int, users: Iterable[str], *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[str, str]:
    """Fan out with ``asyncio.TaskGroup``, which fails fast.

    The first failure cancels the other tasks, and the group raises an
    ``ExceptionGroup`` with every failure (cancellations are not included).
    """
    async with asyncio.TaskGroup() as group:
        tasks = {
            user: group.create_task(fetch_balance(host, port, user, timeout_s=timeout_s))
            for user in users
        }
    return {user: task.result() for user, task in tasks.items()}
