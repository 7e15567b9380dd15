"""Servers that the labs need but that are not the lesson themselves.

Lab 2 compares a client that waits for each reply with one that keeps several
requests outstanding. For that comparison to mean anything, the server must
take a known, fixed time per request, so this module provides ``DelayServer``:
an asyncio server that replies to every request after ``delay_s`` seconds.

The server runs its own event loop in a thread of its own. A notebook's kernel
already runs an event loop, and a blocking client in the notebook blocks that
loop. A server on the same loop could then never reply, and the client would
wait until its timeout. With the server on another loop in another thread,
both a blocking client and an asyncio client in the notebook can talk to it.

Left out on purpose: several worker processes, admission control and back
pressure. The server accepts every request and keeps all of them in service
at once when ``concurrent`` is true.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import struct
import threading
from types import TracebackType

from .errors import ConnectionClosed, EndpointClosed, MessagingError, MessagingTimeout
from .tcp import AsyncFramedConnection, check_port, start_server

__all__ = [
    "REQUEST_ID",
    "DelayServer",
]

log = logging.getLogger(__name__)

# The first 8 bytes of a lab 2 request: an unsigned big-endian request id. The
# server copies the whole request into its reply, so a client that keeps
# several requests outstanding can match each reply to its request.
REQUEST_ID = struct.Struct("!Q")

START_TIMEOUT_S = 5.0  # how long start() waits for the server thread to listen
IDLE_TIMEOUT_S = 60.0  # a connection that sends nothing for this long is closed
CLOSE_GRACE_S = 1.0  # how long close() lets connections end on their own before cancelling them


class DelayServer:
    """An echo server that replies to each request after a fixed service delay.

    With ``concurrent=True`` each request gets its own asyncio task, so any
    number of requests can be in service at the same time, and the delay
    does not add up across requests: the server is never the bottleneck.
    With ``concurrent=False`` a connection's requests are served one at a
    time in arrival order, like a single worker, and requests that arrive
    meanwhile wait in the socket buffer.

    Use it as a context manager; it listens on ``127.0.0.1`` and a free port,
    which ``port`` reports::

        with DelayServer(delay_s=0.005) as server:
            conn = connect("127.0.0.1", server.port)

    ``close()`` stops the listener and the thread and waits for both, so no
    port stays bound and no thread keeps running.

    ``delay_s`` must be a finite number of seconds, zero or more. Anything
    else raises ``TypeError`` or ``ValueError`` here, as does an invalid port.
    """

    def __init__(
        self,
        delay_s: float,
        *,
        concurrent: bool = True,
        nodelay: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if isinstance(delay_s, bool) or not isinstance(delay_s, (int, float)):
            raise TypeError(f"delay_s must be a number of seconds, got {type(delay_s).__name__}")
        if not (math.isfinite(delay_s) and delay_s >= 0):
            raise ValueError(
                f"delay_s must be a finite number of seconds, zero or more, got {delay_s!r}"
            )
        check_port(port, required=False)
        self.delay_s = delay_s
        self.concurrent = concurrent
        self.nodelay = nodelay
        self.host = host
        self.port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._handlers: set[asyncio.Task[object]] = set()
        self._state = "new"
        self.connections = 0
        self.requests = 0
        self.replies = 0
        self.in_service = 0
        self.max_in_service = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the server thread and return once the server is listening.

        Raises ``MessagingTimeout`` if it is not listening within
        ``timeout_s``, and the startup error (for example a port in use,
        translated by ``msgpass.tcp``) if it could not listen at all.
        """
        if self._state != "new":
            raise EndpointClosed(f"a DelayServer starts only once; this one is {self._state}")
        self._state = "running"
        self._thread = threading.Thread(
            target=self._run_thread, name=f"DelayServer({self.delay_s} s)", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.close()
            raise MessagingTimeout(f"DelayServer did not start listening within {timeout_s} s")
        if self._start_error is not None:
            self.close()
            raise self._start_error

    def close(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Stop listening, end the server thread and wait for it.

        Requests still in service are cancelled. Calling ``close`` again
        does nothing. Raises ``MessagingTimeout`` if the thread does not end
        within ``timeout_s``.
        """
        if self._state != "running":
            self._state = "closed"
            return
        self._state = "closed"
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            # RuntimeError means the loop closed after the check, so the thread is ending anyway.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise MessagingTimeout(f"DelayServer thread did not stop within {timeout_s} s")

    def __enter__(self) -> DelayServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ server thread

    def _run_thread(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            # Cancel connection handlers that are still running, then close the loop.
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            server = await start_server(
                self._handle_connection, self.host, self.port, nodelay=self.nodelay
            )
        except Exception as error:  # start() re-raises it in the caller's thread
            self._start_error = error
            self._ready.set()
            return
        async with server:
            self.port = server.port
            log.info(
                "DelayServer listening on %s:%d, delay %s s", self.host, self.port, self.delay_s
            )
            self._ready.set()
            await self._stop.wait()
            await self._wait_handlers_done()
        log.info("DelayServer on port %d stopped", self.port)

    async def _wait_handlers_done(self) -> None:
        """Give connections whose client already closed up to ``CLOSE_GRACE_S`` to end.

        Closing the server cancels every handler that is still running, so
        waiting first means only connections still in use are cut off.
        """
        if not self._handlers:
            return
        _, still_running = await asyncio.wait(self._handlers, timeout=CLOSE_GRACE_S)
        if still_running:
            log.info("cancelling %d connections that are still open", len(still_running))

    async def _handle_connection(self, conn: AsyncFramedConnection) -> None:
        self.connections += 1
        # The task running this handler also closes the connection after it returns,
        # so waiting for the task covers the whole connection.
        handler_task = asyncio.current_task()
        if handler_task is not None:
            self._handlers.add(handler_task)
            handler_task.add_done_callback(self._handlers.discard)
        replies: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    request = await conn.recv(timeout_s=IDLE_TIMEOUT_S)
                except ConnectionClosed:
                    return  # the client is done
                except MessagingTimeout:
                    log.info(
                        "closing connection %s, idle for %s s", conn.peer_address, IDLE_TIMEOUT_S
                    )
                    return
                self.requests += 1
                if self.concurrent:
                    task = asyncio.create_task(self._reply_after_delay(conn, request))
                    replies.add(task)
                    task.add_done_callback(replies.discard)
                else:
                    await self._reply_after_delay(conn, request)
        finally:
            for task in replies:
                task.cancel()

    async def _reply_after_delay(self, conn: AsyncFramedConnection, request: bytes) -> None:
        self.in_service += 1
        self.max_in_service = max(self.max_in_service, self.in_service)
        try:
            await asyncio.sleep(self.delay_s)
            conn.send_nowait(request)
            self.replies += 1
        except MessagingError as error:
            log.warning(
                "reply to %s for a %d-byte request failed: %s",
                conn.peer_address,
                len(request),
                error,
            )
        finally:
            self.in_service -= 1

    # ------------------------------------------------------------------ display

    def stats(self) -> dict[str, int | float | bool]:
        """Counters for display in a notebook.

        ``max_in_service`` is the largest number of requests that were
        waiting out their delay at the same moment.
        """
        return {
            "delay_s": self.delay_s,
            "concurrent": self.concurrent,
            "connections": self.connections,
            "requests": self.requests,
            "replies": self.replies,
            "max_in_service": self.max_in_service,
        }

    def __repr__(self) -> str:
        mode = "concurrent" if self.concurrent else "one at a time"
        return (
            f"<DelayServer {self._state} on {self.host}:{self.port}, delay {self.delay_s} s, "
            f"{mode}, {self.replies}/{self.requests} requests answered>"
        )
