"""Callback style: pass the function to call when the reply arrives.

``CallbackClient.get(key, on_success, on_error)`` returns at once. One
background I/O thread owns the socket: it sends queued requests, reads
replies, runs timers, and calls exactly one of the two callbacks per request,
on that thread. The two-step task then nests, because step 2 can only start
inside the callback of step 1::

    def on_account(account_id):
        client.get(balance_key(account_id), on_done, on_error)

    client.get(user_key("alice"), on_account, on_error)

Each extra step adds one level, and each level must pass ``on_error`` along by
hand. Forgetting it once makes an error vanish. ``fetch_balance_callbacks``
is the two-step task written this way.

What the client guarantees, and how:

- Exactly once. A request lives in a table of pending requests until its
  reply, its timeout or ``close()`` removes it, and only the remover calls a
  callback. All three run on the I/O thread, so no lock is needed. A reply
  that arrives after its timeout finds nothing in the table and is counted as
  late.
- Per-request timeouts. Each request has a deadline. The I/O thread waits in
  ``selectors`` no longer than the nearest deadline, then fails the expired
  requests with ``MessagingTimeout``.
- A callback that raises is logged with the request id and key, and the I/O
  thread goes on serving the other requests.

Left out on purpose: reconnecting, and retries. ``msgpass.styles.eventloop``
shows a general event loop. This client is a minimal one that serves a
single socket.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ..errors import (
    ConnectionClosed,
    EndpointClosed,
    MessagingError,
    MessagingTimeout,
    RemoteError,
    translate_os_error,
)
from ..framing import FrameDecoder, encode_frame
from ..tcp import DEFAULT_TIMEOUT_S, check_timeout
from .lookup import balance_key, decode_reply, encode_request, user_key

__all__ = ["CallbackClient", "fetch_balance_callbacks"]

log = logging.getLogger(__name__)

RECV_BYTES = 64 * 1024  # read size of the I/O thread
CLOSE_TIMEOUT_S = 5.0  # how long close() waits for the I/O thread

SuccessCallback = Callable[[str], object]
ErrorCallback = Callable[[Exception], object]


@dataclass(frozen=True)
class _Request:
    """One request on its way from ``get`` to the I/O thread."""

    request_id: int
    key: str
    on_success: SuccessCallback
    on_error: ErrorCallback
    deadline: float


class CallbackClient:
    """A lookup client whose ``get`` returns at once and reports through callbacks.

    Connects to ``host:port`` within ``timeout_s`` seconds, which is also
    the default timeout of every request. Callbacks run on the client's I/O
    thread. They must not block, because the thread serves every request in
    the meantime. They may call ``get`` again. ``close()`` fails the requests
    still pending with ``EndpointClosed``, then joins the thread::

        with CallbackClient(server.port) as client:
            client.get("user:alice", print, log_error)
    """

    def __init__(
        self, port: int, host: str = "127.0.0.1", *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.timeout_s = check_timeout(timeout_s)
        action = f"connect to {host}:{port}"
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as error:
            raise translate_os_error(error, action) from error
        self._sock.setblocking(False)
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._inbox: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._state_lock = threading.Lock()
        self._closing = False
        self._broken: MessagingError | None = None
        self._next_id = 1
        # Owned by the I/O thread only.
        self._pending: dict[int, _Request] = {}
        self._timers: list[tuple[float, int]] = []  # heap of (deadline, request id)
        self._outgoing = bytearray()
        self._decoder = FrameDecoder()
        self._counts = dict.fromkeys(
            ("requests", "replies", "timeouts", "late_replies", "callback_errors"), 0
        )
        self._thread = threading.Thread(
            target=self._run, name=f"callback-client-{port}", daemon=True
        )
        self._thread.start()

    # -- the caller's side --------------------------------------------------------

    def get(
        self,
        key: str,
        on_success: SuccessCallback,
        on_error: ErrorCallback,
        *,
        timeout_s: float | None = None,
    ) -> int:
        """Request ``key`` and return the request id at once.

        Later, on the I/O thread, exactly one of ``on_success(value)`` or
        ``on_error(exception)`` is called. The exception is ``RemoteError``
        for an error reply, ``MessagingTimeout`` when no reply comes within
        ``timeout_s`` seconds, ``ConnectionClosed`` when the server goes
        away, and ``EndpointClosed`` when ``close()`` runs first. Raises
        ``EndpointClosed`` (or the connection error) at once if the client is
        already closed.
        """
        timeout = self.timeout_s if timeout_s is None else check_timeout(timeout_s)
        if not (callable(on_success) and callable(on_error)):
            raise TypeError("on_success and on_error must both be callable")
        with self._state_lock:
            if self._broken is not None:
                raise EndpointClosed(
                    f"the client's connection failed earlier ({self._broken}); create a new client"
                ) from self._broken
            if self._closing:
                raise EndpointClosed(f"{self!r} is closed; create a new client")
            request_id = self._next_id
            self._next_id += 1
        deadline = float("inf") if timeout is None else time.monotonic() + timeout
        self._inbox.put(_Request(request_id, key, on_success, on_error, deadline))
        self._wake()
        return request_id

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Fail pending requests with ``EndpointClosed``, stop the I/O thread, close the socket.

        Calling it again does nothing. Raises ``RuntimeError`` when called from
        a callback, because the I/O thread cannot wait for itself to finish.
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "close() was called from a callback on the I/O thread, which cannot join "
                "itself; call close() from another thread"
            )
        with self._state_lock:
            self._closing = True
        self._wake()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise MessagingTimeout(
                f"the I/O thread did not stop within {timeout_s} s; a callback is probably blocked"
            )

    def _wake(self) -> None:
        # The socket pair may be closed already if the I/O thread has exited.
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    def __enter__(self) -> CallbackClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the I/O thread -------------------------------------------------------------

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_reader, selectors.EVENT_READ)
        selector.register(self._sock, selectors.EVENT_READ)
        final_error: MessagingError = EndpointClosed("the client was closed before the reply")
        try:
            while not self._closing:
                self._take_new_requests()
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self._outgoing else 0)
                selector.modify(self._sock, events)
                for key, mask in selector.select(self._seconds_to_next_deadline()):
                    if key.fileobj is self._wake_reader:
                        self._drain_wake_socket()
                        continue
                    if mask & selectors.EVENT_WRITE:
                        self._send_some()
                    if mask & selectors.EVENT_READ:
                        self._receive_some()
                self._expire_timers()
        except MessagingError as error:
            log.warning("callback client: connection failed: %s", error)
            final_error = error
            with self._state_lock:
                self._broken = error
        except Exception as error:
            log.exception("callback client: the I/O thread failed")
            final_error = MessagingError(f"the client's I/O thread failed: {error!r}")
            with self._state_lock:
                self._broken = final_error
        finally:
            selector.close()
            self._sock.close()
            with self._state_lock:
                self._closing = True
            self._fail_everything(final_error)
            self._wake_reader.close()
            self._wake_writer.close()

    def _take_new_requests(self) -> None:
        while True:
            try:
                request = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._pending[request.request_id] = request
            heapq.heappush(self._timers, (request.deadline, request.request_id))
            self._outgoing += encode_frame(encode_request(request.key, request.request_id))
            self._counts["requests"] += 1

    def _seconds_to_next_deadline(self) -> float | None:
        # Timers of requests that already got their reply are skipped lazily here.
        while self._timers and self._timers[0][1] not in self._pending:
            heapq.heappop(self._timers)
        if not self._timers:
            return None
        return max(0.0, self._timers[0][0] - time.monotonic())

    def _expire_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, request_id = heapq.heappop(self._timers)
            request = self._pending.pop(request_id, None)
            if request is None:
                continue  # its reply arrived before the deadline
            self._counts["timeouts"] += 1
            error = MessagingTimeout(f"get {request.key!r} (request {request_id}) timed out")
            self._call(request, request.on_error, error)

    def _drain_wake_socket(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_reader.recv(4096):
                pass

    def _send_some(self) -> None:
        try:
            sent = self._sock.send(self._outgoing)
        except BlockingIOError:
            return
        except OSError as error:
            raise translate_os_error(error, "send a request") from error
        del self._outgoing[:sent]

    def _receive_some(self) -> None:
        try:
            data = self._sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError as error:
            raise translate_os_error(error, "receive a reply") from error
        if not data:
            self._decoder.close()  # raises IncompleteFrame if a frame was cut off
            raise ConnectionClosed("the lookup server closed the connection")
        for payload in self._decoder.feed(data):
            self._deliver(payload)

    def _deliver(self, payload: bytes) -> None:
        request_id, outcome = decode_reply(payload)
        request = None if request_id is None else self._pending.pop(request_id, None)
        if request is None:
            self._counts["late_replies"] += 1
            log.debug(
                "callback client: ignoring a reply to request %s, which is no longer pending",
                request_id,
            )
            return
        self._counts["replies"] += 1
        if isinstance(outcome, RemoteError):
            self._call(request, request.on_error, outcome)
        else:
            self._call(request, request.on_success, outcome)

    def _call(self, request: _Request, callback: Callable[[Any], object], arg: object) -> None:
        """Run one callback; an exception it raises is logged, never lost, never fatal."""
        try:
            callback(arg)
        except Exception:
            self._counts["callback_errors"] += 1
            log.exception(
                "callback client: callback %s for request %d (%s) raised; the I/O thread goes on",
                getattr(callback, "__qualname__", repr(callback)),
                request.request_id,
                request.key,
            )

    def _fail_everything(self, error: MessagingError) -> None:
        # Requests queued after the loop's last look at the inbox fail here too.
        self._take_new_requests()
        pending, self._pending = self._pending, {}
        self._timers.clear()
        for request in pending.values():
            self._call(request, request.on_error, error)

    # -- display ------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Request counters. ``pending`` is read without a lock, so it is a snapshot."""
        counts = dict(self._counts)
        counts["pending"] = len(self._pending)
        return counts

    def __repr__(self) -> str:
        if self._broken is not None:
            state = "broken"
        elif self._closing:
            state = "closed"
        else:
            state = "open"
        requests = self._counts["requests"]
        return f"<CallbackClient {state}, {requests} requests, {len(self._pending)} pending>"


def fetch_balance_callbacks(
    client: CallbackClient,
    user: str,
    on_done: SuccessCallback,
    on_error: ErrorCallback,
    *,
    timeout_s: float | None = None,
) -> None:
    """Run the two-step task in callback style: ``on_done(balance)`` or ``on_error(exc)``.

    Step 2 starts inside step 1's success callback, and both steps hand
    ``on_error`` down. Each step has its own ``timeout_s``. If starting step 2
    raises (the client was closed in between), the error goes to
    ``on_error`` too, because no caller is left on the stack to catch it.
    """

    def on_account(account_id: str) -> None:
        try:
            client.get(balance_key(account_id), on_done, on_error, timeout_s=timeout_s)
        except MessagingError as error:
            on_error(error)

    client.get(user_key(user), on_account, on_error, timeout_s=timeout_s)
