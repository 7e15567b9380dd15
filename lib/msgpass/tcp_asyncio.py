"""Framed messages over TCP with asyncio: the same frames, one event loop, no threads.

The blocking servers in ``msgpass.tcp`` give every client its own thread,
parked in ``recv``. Here one event loop serves every connection: a handler
coroutine runs per client, and each ``await`` lets the others run.

- ``open_connection`` and ``AsyncFramedConnection`` are one connection with
  ``send``, ``send_nowait`` and ``recv`` of whole payloads, and the rules for
  timeouts and backpressure. They live in ``msgpass.tcp_asyncio_connection``
  and are imported from here.
- ``start_server`` and ``AsyncFramedServer``, in this module, accept clients
  and run ``await handler(conn)`` for each. The server closes the connection
  when the handler returns, logs a handler's exception with the client's
  address and goes on, and on ``close()`` cancels every handler still
  running.

Left out on purpose: TLS, a cap on the number of connections, and idle
timeouts. Import these names from ``msgpass.tcp``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

from .errors import translate_os_error
from .framing import DEFAULT_MAX_FRAME_BYTES, check_max_frame_bytes
from .tcp_asyncio_connection import (
    STREAM_LIMIT_BYTES,
    AsyncFramedConnection,
    open_connection,
    set_nodelay,
)
from .tcp_common import DEFAULT_TIMEOUT_S, check_port, check_timeout, format_address

__all__ = [
    "open_connection",
    "AsyncFramedConnection",
    "start_server",
    "AsyncFramedServer",
]

log = logging.getLogger(__name__)


ConnectionHandler = Callable[[AsyncFramedConnection], Awaitable[None]]


class AsyncFramedServer:
    """A listening asyncio server that runs ``handler(conn)`` for every client.

    Made by ``start_server``. The connection is closed when the handler
    returns. An exception in a handler is logged with the client's address,
    and the server goes on. ``close()`` stops listening, cancels every
    running handler, waits for them, and closes their connections.
    """

    def __init__(
        self,
        handler: ConnectionHandler,
        *,
        nodelay: bool,
        max_frame_bytes: int,
        timeout_s: float | None,
    ) -> None:
        self.handler = handler
        self.nodelay = nodelay
        self.max_frame_bytes = check_max_frame_bytes(max_frame_bytes)
        self.timeout_s = check_timeout(timeout_s)
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] = ("", 0)
        self._tasks: dict[asyncio.Task[None], AsyncFramedConnection] = {}
        self._closed = False
        self.connections_accepted = 0
        self.handler_errors = 0

    async def _listen(self, host: str, port: int) -> None:
        try:
            self._server = await asyncio.start_server(
                self._on_client, host, port, limit=STREAM_LIMIT_BYTES
            )
        except OSError as error:
            raise translate_os_error(error, f"listen on {host}:{port}") from error
        sockname = self._server.sockets[0].getsockname()
        self._address = (str(sockname[0]), int(sockname[1]))

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        set_nodelay(writer, self.nodelay)
        conn = AsyncFramedConnection(
            reader, writer, max_frame_bytes=self.max_frame_bytes, timeout_s=self.timeout_s
        )
        task = asyncio.current_task()
        assert task is not None  # asyncio runs this callback as a task
        self._tasks[task] = conn
        self.connections_accepted += 1
        try:
            await self.handler(conn)
        except asyncio.CancelledError:
            if not self._closed:
                raise
            # Cancelled by close(). The done-callback that CPython 3.11's streams module
            # adds to this task calls task.exception(), which raises for a cancelled
            # task and prints a traceback, so a handler stopped by close() ends normally.
            task.uncancel()
        except Exception:
            self.handler_errors += 1
            log.exception(
                "handler for %s failed; closing that connection", format_address(conn.peer_address)
            )
        finally:
            self._tasks.pop(task, None)
            await conn.close()

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on."""
        return self._address

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self._address[1]

    async def close(self) -> None:
        """Stop listening, cancel and await every handler, and close its connection."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> AsyncFramedServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def stats(self) -> dict[str, int]:
        """Connection counters, for display in a notebook."""
        return {
            "connections_accepted": self.connections_accepted,
            "connections_open": len(self._tasks),
            "handler_errors": self.handler_errors,
        }

    def __repr__(self) -> str:
        state = "closed" if self._closed else "listening"
        return (
            f"<AsyncFramedServer {state} on {self._address[0]}:{self._address[1]}, "
            f"{len(self._tasks)} open connections>"
        )


async def start_server(
    handler: ConnectionHandler,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    nodelay: bool = False,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
) -> AsyncFramedServer:
    """Listen on ``host:port`` and run ``await handler(conn)`` for every client.

    ``timeout_s`` becomes each connection's default for ``send`` and ``recv``::

        async def echo(conn):
            async for payload in conn:
                await conn.send(payload)

        async with await start_server(echo) as server:
            ...  # clients connect to server.port
    """
    check_port(port, required=False)
    if not callable(handler):
        raise TypeError(f"handler must be an async function, got {type(handler).__name__}")
    server = AsyncFramedServer(
        handler, nodelay=nodelay, max_frame_bytes=max_frame_bytes, timeout_s=timeout_s
    )
    await server._listen(host, port)
    return server
