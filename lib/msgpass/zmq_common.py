"""Shared plumbing of the ZeroMQ pattern modules: error translation and background threads.

The pattern modules (``zmq_reqrep``, ``zmq_pubsub``, ``zmq_pipeline``,
``zmq_router``) all follow three rules, and this module contains the code that
enforces them in one place:

- Every socket is created with linger 0, so closing it never waits for
  unsent messages, and a context can be terminated at once.
- A background thread never blocks forever in ``recv``. It polls its socket
  with a short timeout and checks a stop event between polls, so ``stop()``
  ends it within about one poll interval and joins it with a timeout.
- A ``zmq.ZMQError`` is translated into a ``msgpass.errors`` class at the
  boundary, with ``raise ... from`` so the original error stays attached.

It also holds the argument checks every pattern module shares:
``check_timeout_s`` and ``check_payload``.

A ZeroMQ socket is not thread-safe. A service here creates and binds its
socket in the caller's thread (so a bind error is raised to the caller and the
endpoint is known when ``start()`` returns), then hands the socket to its
thread, which is the only one to use and close it from then on. Moving a
socket between threads is allowed when a full memory barrier separates the
two users, and ``Thread.start()`` is one.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self, TypeAlias

import zmq

from .errors import EndpointClosed, MessagingError, MessagingTimeout
from .tcp import check_timeout

__all__ = [
    "LOOPBACK_ANY_PORT",
    "POLL_INTERVAL_MS",
    "JOIN_TIMEOUT_S",
    "ZmqContext",
    "ZmqSocket",
    "Payload",
    "check_timeout_s",
    "check_payload",
    "translate_zmq_error",
    "open_socket",
    "bind",
    "connect",
    "BackgroundService",
]

log = logging.getLogger(__name__)

LOOPBACK_ANY_PORT = "tcp://127.0.0.1:*"  # bind here and the OS picks a free port
POLL_INTERVAL_MS = 50  # how long a background thread waits in poll before checking for stop
JOIN_TIMEOUT_S = 5.0  # how long stop() waits for a background thread to end

ZmqContext: TypeAlias = "zmq.Context[zmq.Socket[bytes]]"
ZmqSocket: TypeAlias = "zmq.Socket[bytes]"
Payload: TypeAlias = bytes | bytearray | memoryview  # the bytes-like types a frame may be


def check_timeout_s(timeout_s: float) -> float:
    """Return ``timeout_s`` as a float if it is a positive, finite number of seconds, else raise.

    It applies the rule of ``msgpass.tcp.check_timeout`` and rejects two more
    values: ``None``, because every ZeroMQ call here must end, and infinity,
    which has no millisecond value for ``poll``. Raises ``TypeError`` for a
    value that is not a number and ``ValueError`` for zero, a negative
    number, NaN or infinity.
    """
    if timeout_s is None:
        raise TypeError("timeout_s must be a number of seconds, got None")
    checked = check_timeout(timeout_s)
    if checked is None or not math.isfinite(checked):
        raise ValueError(f"timeout_s must be a finite number of seconds, got {timeout_s!r}")
    return checked


def check_payload(payload: object) -> Payload:
    """Return ``payload`` if it is bytes-like (bytes, bytearray, memoryview), else raise TypeError.

    A ``str`` gets its own message, because forgetting to encode text is the
    usual cause.
    """
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return payload
    if isinstance(payload, str):
        raise TypeError(
            "payload must be bytes, got str; encode it first, for example with .encode()"
        )
    raise TypeError(
        f"payload must be bytes-like (bytes, bytearray or memoryview), "
        f"got {type(payload).__name__}"
    )


def translate_zmq_error(error: zmq.ZMQError, action: str) -> MessagingError:
    """Return the library error that corresponds to a ZeroMQ error.

    ``action`` names what was being done ("receive from tcp://127.0.0.1:5555")
    and goes into the message. The caller raises the result ``from error``.
    """
    if isinstance(error, zmq.Again):
        return MessagingTimeout(f"{action} timed out")
    if error.errno in (zmq.ETERM, zmq.ENOTSOCK):
        return EndpointClosed(f"{action} failed: the socket or its context is already closed")
    if error.errno == zmq.EFSM:
        return MessagingError(
            f"{action} failed: the socket is in the wrong state for this operation (EFSM). "
            f"A REQ socket must receive the reply to one request before it sends the next, "
            f"so after a lost reply close it and open a new one"
        )
    if error.errno == zmq.EADDRINUSE:
        return MessagingError(
            f"{action} failed: address already in use; bind to port 0 "
            f"({LOOPBACK_ANY_PORT}) or stop the process that holds the port"
        )
    if error.errno == zmq.EHOSTUNREACH:
        return MessagingError(
            f"{action} failed: no connected peer has that routing id; "
            f"the client disconnected or the id is wrong"
        )
    return MessagingError(f"{action} failed: {error}")


def open_socket(context: ZmqContext, socket_type: int) -> ZmqSocket:
    """Create a socket with linger 0, so ``close()`` drops unsent messages at once."""
    try:
        socket = context.socket(socket_type)
    except zmq.ZMQError as error:
        raise translate_zmq_error(error, "create a ZeroMQ socket") from error
    socket.setsockopt(zmq.LINGER, 0)
    return socket


def bind(socket: ZmqSocket, endpoint: str) -> str:
    """Bind ``socket`` and return the endpoint it got, with the real port number."""
    try:
        socket.bind(endpoint)
    except zmq.ZMQError as error:
        raise translate_zmq_error(error, f"bind to {endpoint}") from error
    bound: bytes = socket.getsockopt(zmq.LAST_ENDPOINT)  # type: ignore[assignment]
    return bound.decode("ascii")


def connect(socket: ZmqSocket, endpoint: str) -> None:
    """Connect ``socket`` to ``endpoint``, translating a malformed endpoint into our errors."""
    try:
        socket.connect(endpoint)
    except zmq.ZMQError as error:
        raise translate_zmq_error(error, f"connect to {endpoint}") from error


class BackgroundService:
    """A component whose work runs in one background thread that it starts and stops.

    A subclass creates its sockets in ``start()``, then calls
    ``_start_thread(run)``. ``run`` loops until ``self._stopping`` is set, polling
    with ``POLL_INTERVAL_MS`` and closing its sockets in a ``finally`` block.
    ``stop()`` sets the event, joins the thread with a timeout and terminates
    the context when the service created it. The service is also a context
    manager: ``with Server(...) as server:`` starts it if needed and stops it
    on every exit path.

    States go ``new -> running -> stopped``. Starting twice or starting a
    stopped service raises ``EndpointClosed``; stopping twice does nothing.

    When ``run`` raises, the thread ends and the state becomes ``"failed"``.
    The exception is logged with its traceback and kept in ``error``. The
    next ``stop()`` still releases the context, then raises ``MessagingError``
    from the stored exception, once. Leaving a ``with`` block that already
    ends with an exception adds the failure to that exception as a note
    instead, so the exception from the block is not replaced.
    """

    def __init__(self, name: str, context: ZmqContext | None) -> None:
        self.name = name
        self._owns_context = context is None
        self._context: ZmqContext = context if context is not None else zmq.Context()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "new"
        self._error: BaseException | None = None
        self._error_reported = False

    @property
    def state(self) -> str:
        """Lifecycle state: ``"new"``, ``"running"``, ``"failed"`` or ``"stopped"``."""
        return self._state

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the background thread, or None if it has not failed."""
        return self._error

    def _error_text(self) -> str | None:
        """Return the stored failure as ``"Type: message"`` for ``stats()``, or None."""
        if self._error is None:
            return None
        return f"{type(self._error).__name__}: {self._error}"

    def _check_new(self) -> None:
        if self._state != "new":
            raise EndpointClosed(f"{self.name} is {self._state}; create a new one to start again")

    def _start_thread(self, run: Callable[[], None]) -> None:
        thread = threading.Thread(target=self._run_logged, args=(run,), name=self.name, daemon=True)
        self._thread = thread
        self._state = "running"
        thread.start()

    def _run_logged(self, run: Callable[[], None]) -> None:
        log.debug("%s: thread started", self.name)
        try:
            run()
        except BaseException as error:
            # The thread ends here whatever the error is, even SystemExit, so it is
            # recorded for state, stats() and stop() instead of vanishing with the thread.
            self._error = error
            self._state = "failed"
            log.exception("%s: background thread failed and stopped", self.name)
        finally:
            log.debug("%s: thread ended", self.name)

    def stop(self, timeout_s: float = JOIN_TIMEOUT_S) -> None:
        """Stop the thread, wait for it up to ``timeout_s`` seconds and release the context.

        Raises ``MessagingTimeout`` if the thread is still running after the
        timeout. The context is then left open, because terminating it would
        block until that thread closes its socket. Raises ``MessagingError``
        once, after releasing everything, if the thread had failed; the
        original exception is its ``__cause__`` and stays in ``error``.
        """
        self._release(timeout_s)
        failure = self._take_failure()
        if failure is not None:
            raise failure from self._error

    def _release(self, timeout_s: float) -> None:
        if self._state == "stopped":
            return
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise MessagingTimeout(
                    f"{self.name}: background thread did not stop within {timeout_s} s"
                )
        if self._owns_context:
            self._context.term()
        self._state = "stopped"
        log.debug("%s: stopped", self.name)

    def _take_failure(self) -> MessagingError | None:
        """Return the error to report for a failed thread, the first time only."""
        if self._error is None or self._error_reported:
            return None
        self._error_reported = True
        return MessagingError(
            f"{self.name}: background thread failed with {self._error_text()} and stopped "
            f"serving at that point. The traceback is in this error's __cause__ and in the "
            f"log of {__name__}"
        )

    def start(self) -> None:
        """Create the sockets and start the thread; each subclass implements it."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        if self._state == "new":
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self.stop()
            return
        self._release(JOIN_TIMEOUT_S)
        failure = self._take_failure()
        if failure is not None:
            exc.add_note(str(failure))
