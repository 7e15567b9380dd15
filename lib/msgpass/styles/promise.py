"""Promises: a placeholder for a result that arrives later, with handlers chained onto it.

A callback hands the continuation to the operation. A promise turns this
around: the operation returns an object at once, and the caller attaches what
should happen next with ``then``. Each ``then`` returns a new promise, so the
two-step lookup reads as a flat chain instead of nested callbacks::

    get("user:alice").then(lambda account: get(f"balance:{account}")).then(print)

The rules follow JavaScript's Promises/A+ specification, and the comments name
the matching methods of Java's ``CompletableFuture``:

- A promise is ``PENDING``, then ``FULFILLED`` with a value or ``REJECTED``
  with an exception, and never changes again.
- ``then(on_fulfilled, on_rejected)`` returns a new promise. A handler's
  return value fulfils it, and an exception raised by a handler rejects it
  with that exception, traceback included. A handler that returns a promise
  or a ``concurrent.futures.Future`` makes the new promise adopt that
  object's outcome (``thenApply`` versus ``thenCompose`` in Java, one method
  here as in JavaScript). A missing handler passes the outcome through.
- Handlers run on a ``Dispatcher`` (``msgpass.styles.dispatcher``): one
  thread that runs them one at a time, in the order they were queued. A
  handler never runs inside the call to ``then``, ``fulfill`` or a resolver
  function, and never while a lock is held, so a handler may call ``then``
  or settle other promises freely.
- ``Promise.all``, ``all_settled``, ``race`` and ``any`` combine many
  promises into one. They are written in ``msgpass.styles.combinators``.
- A rejection never vanishes. A rejected promise is logged with its id when
  it is garbage-collected, unless a handler was attached to it (``then``,
  ``catch``, ``finally_``, ``result``, a combinator or a bridge).

Left out on purpose: cancellation (Promises/A+ has none; ``bridges`` shows
where cancellation can travel), adopting arbitrary objects with a ``then``
method, and adopting ``asyncio`` futures, which ``bridges.promise_from_asyncio``
converts instead.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import CancelledError as ConcurrentCancelledError
from concurrent.futures import Future as ConcurrentFuture
from dataclasses import dataclass
from types import CoroutineType
from typing import Any, Final, Generic, TypeVar

from ..errors import InvalidStateError, MessagingTimeout
from .dispatcher import DISPATCHER_IDLE_EXIT_S, Dispatcher, default_dispatcher

__all__ = [
    "DISPATCHER_IDLE_EXIT_S",
    "FULFILLED",
    "PENDING",
    "REJECTED",
    "Dispatcher",
    "Promise",
    "Settlement",
    "default_dispatcher",
]

log = logging.getLogger(__name__)

PENDING: Final = "pending"
FULFILLED: Final = "fulfilled"
REJECTED: Final = "rejected"

T = TypeVar("T")
Resolve = Callable[[Any], None]
Reject = Callable[[BaseException], None]

# One queued call, ``fn(*args)``, as the dispatcher's queue stores it.
_Call = tuple[Callable[..., object], tuple[Any, ...]]

_promise_ids = itertools.count(1)


@dataclass(frozen=True)
class Settlement:
    """The outcome of one promise, as ``Promise.all_settled`` reports it."""

    state: str
    value: Any = None
    error: BaseException | None = None


class Promise(Generic[T]):
    """A result that is not there yet: pending, then fulfilled or rejected exactly once.

    ``executor``, if given, is what JavaScript calls the executor function (not
    a ``concurrent.futures`` executor). It is called at once as
    ``executor(resolve, reject)`` and starts the work. ``resolve(value)``
    fulfils the promise, or adopts ``value`` if it is a promise or a
    concurrent future, and ``reject(error)`` rejects it. As in JavaScript, only
    the first call to either counts. A later call is ignored, and a rejection
    ignored this way is logged at warning level so that its exception does not
    vanish. An exception raised by ``executor`` rejects the promise::

        p = Promise(lambda resolve, reject: resolve(42))
        p.then(lambda value: value + 1).result(timeout_s=1.0)   # 43

    ``fulfill`` and ``reject_with`` settle the promise from outside and raise
    ``InvalidStateError`` if it is already settled or resolved. ``id`` is
    unique within the process, and log lines name the promise by it.
    """

    __slots__ = (
        "id",
        "_dispatcher",
        "_lock",
        "_waiter",
        "_state",
        "_value",
        "_error",
        "_reactions",
        "_resolved",
        "_handled",
        "__weakref__",
    )

    def __init__(
        self,
        executor: Callable[[Resolve, Reject], object] | None = None,
        *,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self.id = next(_promise_ids)
        self._dispatcher = dispatcher if dispatcher is not None else default_dispatcher()
        # Every promise on a dispatcher shares the dispatcher's lock, so a new
        # promise allocates no lock, and settling it and queuing its handlers
        # take one lock instead of two. No handler ever runs under it.
        self._lock = self._dispatcher._lock
        # Created by the first wait() on a pending promise. Most promises are
        # chained with then() and never waited on.
        self._waiter: threading.Event | None = None
        self._state: str = PENDING
        self._value: Any = None
        self._error: BaseException | None = None
        self._reactions: list[_Call] | None = None
        # True once a resolver has been used, even while an adopted promise is
        # still pending ("resolved" in Promises/A+ terms).
        self._resolved = False
        self._handled = False
        if executor is None:
            return
        resolve, reject = self._resolver_functions()
        try:
            executor(resolve, reject)
        except Exception as error:
            reject(error)

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> str:
        """``PENDING``, ``FULFILLED`` or ``REJECTED``."""
        return self._state

    @property
    def dispatcher(self) -> Dispatcher:
        """The dispatcher that runs this promise's handlers."""
        return self._dispatcher

    def done(self) -> bool:
        """Return True once the promise is fulfilled or rejected."""
        return self._state != PENDING

    # --------------------------------------------------------------- settling

    @classmethod
    def with_resolvers(
        cls, *, dispatcher: Dispatcher | None = None
    ) -> tuple[Promise[Any], Resolve, Reject]:
        """Return a new pending promise with its ``resolve`` and ``reject`` functions.

        The counterpart of JavaScript's ``Promise.withResolvers()``, for code
        that settles the promise later, from another thread or callback.
        """
        promise: Promise[Any] = cls(dispatcher=dispatcher)
        resolve, reject = promise._resolver_functions()
        return promise, resolve, reject

    def fulfill(self, value: T) -> None:
        """Fulfil the promise with ``value`` (``CompletableFuture.complete``).

        Raises ``InvalidStateError`` if the promise is already settled or
        resolved, and ``TypeError`` for a promise or future value, which
        ``resolve`` adopts instead.
        """
        if isinstance(value, (Promise, ConcurrentFuture)):
            raise TypeError(
                f"fulfill() takes a plain value, got {value!r}; "
                f"use a resolve function from with_resolvers() to adopt it"
            )
        self._claim("fulfill")
        self._settle(FULFILLED, value, None)

    def reject_with(self, error: BaseException) -> None:
        """Reject the promise with ``error`` (``CompletableFuture.completeExceptionally``).

        Raises ``InvalidStateError`` if the promise is already settled or resolved.
        """
        _check_error(error)
        self._claim("reject")
        self._settle(REJECTED, None, error)

    def _claim(self, action: str) -> None:
        with self._lock:
            if self._resolved or self._state != PENDING:
                raise InvalidStateError(f"cannot {action} {self!r}: it is already resolved")
            self._resolved = True

    def _resolver_functions(self) -> tuple[Resolve, Reject]:
        def resolve(value: Any) -> None:
            if self._try_claim():
                self._resolve_with(value)
            else:
                log.debug("promise #%d: resolve(%r) ignored, already resolved", self.id, value)

        def reject(error: BaseException) -> None:
            _check_error(error)
            if self._try_claim():
                self._settle(REJECTED, None, error)
            else:
                log.warning(
                    "promise #%d: reject(%r) ignored because the promise is already resolved",
                    self.id,
                    error,
                    exc_info=(type(error), error, error.__traceback__),
                )

        return resolve, reject

    def _try_claim(self) -> bool:
        with self._lock:
            if self._resolved:
                return False
            self._resolved = True
            return True

    def _resolve_with(self, value: Any) -> None:
        """Fulfil with ``value``, or adopt it if it is a promise or a concurrent future."""
        if not isinstance(value, _NOT_PLAIN_VALUES):
            self._settle(FULFILLED, value, None)
        elif value is self:
            self._settle(REJECTED, None, TypeError(f"{self!r} cannot be resolved with itself"))
        elif isinstance(value, Promise):
            value._add_reaction((self._settle_like, (value,)))
        elif isinstance(value, ConcurrentFuture):
            value.add_done_callback(self._settle_like_future)
        elif isinstance(value, CoroutineType):
            value.close()  # or Python would also warn that it was never awaited
            self._settle(
                REJECTED,
                None,
                TypeError(
                    f"promise #{self.id} got a coroutine, which a promise cannot run; "
                    f"convert it with msgpass.styles.bridges.promise_from_asyncio"
                ),
            )

    def _settle_like(self, source: Promise[Any]) -> None:
        self._settle(source._state, source._value, source._error)

    def _settle_like_future(self, future: ConcurrentFuture[Any]) -> None:
        if future.cancelled():
            self._settle(REJECTED, None, ConcurrentCancelledError(f"{future!r} was cancelled"))
        elif (error := future.exception()) is not None:
            self._settle(REJECTED, None, error)
        else:
            self._settle(FULFILLED, future.result(), None)

    def _settle(self, state: str, value: Any, error: BaseException | None) -> None:
        with self._lock:
            if self._state != PENDING:
                raise InvalidStateError(f"cannot settle {self!r} again")
            # State last: wait() reads it without the lock, then reads the outcome.
            self._value = value
            self._error = error
            self._state = state
            reactions, self._reactions = self._reactions, None
            # Queued under the lock so that a concurrent then() cannot get its
            # handler ahead of the ones registered before settlement.
            if reactions is not None:
                self._dispatcher._call_all_soon_locked(reactions)
            waiter = self._waiter
        if waiter is not None:
            waiter.set()

    def _try_settle(self, state: str, value: Any, error: BaseException | None) -> bool:
        try:
            self._settle(state, value, error)
        except InvalidStateError:
            return False
        return True

    # -------------------------------------------------------------- reactions

    def add_done_callback(self, fn: Callable[[Promise[T]], object]) -> None:
        """Call ``fn(promise)`` on the dispatcher once the promise is settled.

        The callback takes over responsibility for a rejection, so the promise
        counts as handled. An exception raised by ``fn`` is logged, because no
        promise is chained to it.
        """
        self._add_reaction((fn, (self,)))

    def _add_reaction(self, reaction: _Call) -> None:
        """Queue ``fn(*args)`` for ``reaction = (fn, args)`` once the promise settles.

        Reactions run in the order they were added. Most reactions pass this
        promise in ``args``. That reference cycle lasts only until the
        promise settles and drops its reaction list.
        """
        with self._lock:
            self._handled = True
            if self._state != PENDING:
                self._dispatcher._call_soon_locked(*reaction)
            elif self._reactions is None:
                self._reactions = [reaction]
            else:
                self._reactions.append(reaction)

    def then(
        self,
        on_fulfilled: Callable[[T], Any] | None = None,
        on_rejected: Callable[[BaseException], Any] | None = None,
    ) -> Promise[Any]:
        """Return a new promise settled by the handler that matches this promise's outcome.

        ``on_fulfilled(value)`` or ``on_rejected(error)`` runs on the dispatcher
        after this promise settles, never inside this call. Its return value
        fulfils the new promise (a promise or concurrent future is adopted), and
        an exception it raises rejects the new promise. Without a matching
        handler the outcome passes through unchanged.
        """
        child: Promise[Any] = Promise(dispatcher=self._dispatcher)
        child._resolved = True  # only this promise's reaction settles it
        self._add_reaction((_run_then_reaction, (self, child, on_fulfilled, on_rejected)))
        return child

    def catch(self, on_rejected: Callable[[BaseException], Any]) -> Promise[Any]:
        """Return ``then(None, on_rejected)`` (``CompletableFuture.exceptionally``)."""
        return self.then(None, on_rejected)

    def finally_(self, on_settled: Callable[[], Any]) -> Promise[T]:
        """Run ``on_settled()`` on both paths and pass the outcome through.

        If ``on_settled`` raises, or returns a promise that rejects, the new
        promise rejects with that error instead. A promise it returns is
        waited for before the outcome passes on.
        """

        def after_fulfilled(value: T) -> Any:
            outcome = on_settled()
            if isinstance(outcome, (Promise, ConcurrentFuture)):
                return Promise.resolve(outcome, dispatcher=self._dispatcher).then(lambda _: value)
            return value

        def after_rejected(error: BaseException) -> Any:
            outcome = on_settled()
            if isinstance(outcome, (Promise, ConcurrentFuture)):
                return Promise.resolve(outcome, dispatcher=self._dispatcher).then(
                    functools.partial(_raise, error)
                )
            raise error

        return self.then(after_fulfilled, after_rejected)

    # ---------------------------------------------------------------- waiting

    def wait(self, timeout_s: float) -> None:
        """Block until the promise is settled; raise ``MessagingTimeout`` after ``timeout_s``.

        Raises ``RuntimeError`` when called from a handler on this promise's
        dispatcher while the promise is pending. The handlers that could
        settle it are queued behind the caller, so the wait could never end.
        """
        if self._state != PENDING:
            return
        if self._dispatcher.in_dispatcher_thread():
            raise RuntimeError(
                f"wait() on pending {self!r} from a handler on its own dispatcher would "
                f"deadlock; return the promise from the handler or chain with then()"
            )
        with self._lock:
            if self._state != PENDING:
                return
            if self._waiter is None:
                self._waiter = threading.Event()
            waiter = self._waiter
        if not waiter.wait(timeout_s):
            raise MessagingTimeout(f"promise #{self.id} still pending after {timeout_s} s")

    def result(self, timeout_s: float) -> T:
        """Wait as ``wait`` does, then return the value or raise the rejection error."""
        self.wait(timeout_s)
        with self._lock:
            self._handled = True
        if self._error is not None:
            raise self._error
        value: T = self._value
        return value

    def exception(self, timeout_s: float) -> BaseException | None:
        """Wait as ``wait`` does, then return the rejection error, or None if fulfilled."""
        self.wait(timeout_s)
        with self._lock:
            self._handled = True
        return self._error

    def __await__(self) -> Generator[Any, None, T]:
        """Await the promise from a coroutine through ``bridges.asyncio_from_promise``."""
        from .bridges import asyncio_from_promise

        result: T = yield from asyncio_from_promise(self).__await__()
        return result

    # ------------------------------------------------------------ combinators
    # all, all_settled, race and any are written in the combinators module,
    # which imports this one, so each method imports its function when called.

    @classmethod
    def resolve(cls, value: Any, *, dispatcher: Dispatcher | None = None) -> Promise[Any]:
        """Return ``value`` if it is a promise, else a promise resolved with it.

        A concurrent future is adopted (``CompletableFuture.completedFuture``
        for plain values).
        """
        if isinstance(value, Promise):
            return value
        promise: Promise[Any] = cls(dispatcher=dispatcher)
        promise._resolved = True
        promise._resolve_with(value)
        return promise

    @classmethod
    def reject(cls, error: BaseException, *, dispatcher: Dispatcher | None = None) -> Promise[Any]:
        """Return a promise already rejected with ``error``."""
        promise: Promise[Any] = cls(dispatcher=dispatcher)
        promise.reject_with(error)
        return promise

    @classmethod
    def all(cls, items: Iterable[Any], *, dispatcher: Dispatcher | None = None) -> Promise[Any]:
        """Fulfil with every value, in input order, or reject with the first rejection.

        Items that are not promises count as fulfilled with themselves. The
        result rejects as soon as one input rejects (fail-fast, as in
        JavaScript), and later rejections count as handled. Java's ``allOf``
        instead waits for every input. No input: fulfils with ``[]``.
        """
        from .combinators import promise_all

        return promise_all(cls, items, dispatcher=dispatcher)

    @classmethod
    def all_settled(
        cls, items: Iterable[Any], *, dispatcher: Dispatcher | None = None
    ) -> Promise[Any]:
        """Fulfil, once every input has settled, with one ``Settlement`` per input, in order."""
        from .combinators import promise_all_settled

        return promise_all_settled(cls, items, dispatcher=dispatcher)

    @classmethod
    def race(cls, items: Iterable[Any], *, dispatcher: Dispatcher | None = None) -> Promise[Any]:
        """Settle like the first input to settle, fulfilled or rejected.

        Raises ``ValueError`` for no input. JavaScript returns a promise that
        stays pending forever instead, which is never what the caller wants.
        """
        from .combinators import promise_race

        return promise_race(cls, items, dispatcher=dispatcher)

    @classmethod
    def any(cls, items: Iterable[Any], *, dispatcher: Dispatcher | None = None) -> Promise[Any]:
        """Fulfil with the first value, or reject with every error if all inputs reject.

        The rejection is an ``ExceptionGroup`` (a ``BaseExceptionGroup`` if an
        error is not an ``Exception``) with the errors in input order, the
        counterpart of JavaScript's ``AggregateError``. Java's ``anyOf`` instead
        settles like the first input, as ``race`` does. Raises ``ValueError``
        for no input, because an empty group cannot be built.
        """
        from .combinators import promise_any

        return promise_any(cls, items, dispatcher=dispatcher)

    def _settle_like_if_pending(self, source: Promise[Any]) -> None:
        self._try_settle(source._state, source._value, source._error)

    # ------------------------------------------------------------- reporting

    def __repr__(self) -> str:
        state = self._state
        if state == FULFILLED:
            detail = f" value={self._value!r}"
        elif state == REJECTED:
            detail = f" error={self._error!r}"
        else:
            reactions = self._reactions
            detail = f" handlers={0 if reactions is None else len(reactions)}"
        return f"<Promise #{self.id} {state}{detail}>"

    def __del__(self) -> None:
        # getattr: __init__ may have failed before these attributes existed.
        error = getattr(self, "_error", None)
        if error is None or getattr(self, "_handled", True):
            return
        log.error(
            "promise #%d was rejected with %r and garbage-collected without a rejection "
            "handler; attach one with catch() or then()",
            self.id,
            error,
            exc_info=(type(error), error, error.__traceback__),
        )


# Values that resolve() adopts or rejects instead of fulfilling with them.
_NOT_PLAIN_VALUES = (Promise, ConcurrentFuture, CoroutineType)


def _run_then_reaction(
    source: Promise[Any],
    child: Promise[Any],
    on_fulfilled: Callable[[Any], Any] | None,
    on_rejected: Callable[[BaseException], Any] | None,
) -> None:
    """Run the handler that ``source.then()`` registered, and settle ``child`` with its outcome.

    A module function rather than a closure made in ``then``, so a ``then``
    call allocates one tuple of arguments and no function object.
    """
    handler: Callable[[Any], Any] | None
    if source._state == FULFILLED:
        handler, argument = on_fulfilled, source._value
    else:
        handler, argument = on_rejected, source._error
    if handler is None:
        child._settle_like(source)
        return
    try:
        outcome = handler(argument)
    except BaseException as error:
        child._settle(REJECTED, None, error)
    else:
        child._resolve_with(outcome)


def _check_error(error: object) -> None:
    if not isinstance(error, BaseException):
        raise TypeError(f"a promise is rejected with an exception instance, got {error!r}")


def _raise(error: BaseException, _ignored: object) -> Any:
    raise error
