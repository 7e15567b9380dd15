"""Promise combinators, which wait on many promises at once: ``all``, ``race`` and the rest.

Each combinator turns a list of inputs into one result promise. The inputs
are converted with ``Promise.resolve``, so a plain value counts as already
fulfilled and a ``concurrent.futures.Future`` is adopted. Then every input gets
one reaction that reports its outcome to the result:

- ``all`` counts the inputs still pending and fulfils the result with the
  values in input order when the count reaches zero. The first rejection
  rejects the result at once (fail-fast), and later ones are ignored.
- ``all_settled`` maps each input to a ``Settlement`` and then calls ``all``
  on those, which never reject.
- ``race`` settles the result like the first input to settle.
- ``any`` fulfils with the first value and rejects only when every input has
  rejected, with an ``ExceptionGroup`` of the errors in input order.

The reactions run on the dispatcher thread, but the inputs may come from
several dispatchers, so the shared counters are updated under a lock, and
the result is settled with ``_try_settle``, which lets only the first caller
win. Call these through the ``Promise`` class methods (``Promise.all`` and so
on), whose docstrings give the full contract. The functions here take the
class as ``cls`` so that a subclass of ``Promise`` gets results of its own type.

Left out on purpose: cancelling the inputs that lost a race, which
Promises/A+ cannot express (``bridges`` shows where cancellation can travel).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from .dispatcher import Dispatcher
from .promise import FULFILLED, REJECTED, Promise, Settlement

__all__ = [
    "promise_all",
    "promise_all_settled",
    "promise_race",
    "promise_any",
]


def promise_all(
    cls: type[Promise[Any]], items: Iterable[Any], *, dispatcher: Dispatcher | None
) -> Promise[Any]:
    """Implement ``Promise.all``: count fulfilled inputs under a lock, fail on the first error."""
    inputs = [cls.resolve(item, dispatcher=dispatcher) for item in items]
    result: Promise[Any] = cls(dispatcher=dispatcher)
    result._resolved = True
    if not inputs:
        result._settle(FULFILLED, [], None)
        return result
    values: list[Any] = [None] * len(inputs)
    remaining = [len(inputs)]
    lock = threading.Lock()

    def on_settled(index: int, source: Promise[Any]) -> None:
        if source._state == REJECTED:
            result._try_settle(REJECTED, None, source._error)
            return
        with lock:
            values[index] = source._value
            remaining[0] -= 1
            complete = remaining[0] == 0
        if complete:
            result._try_settle(FULFILLED, list(values), None)

    for index, promise in enumerate(inputs):
        promise._add_reaction((on_settled, (index, promise)))
    return result


def promise_all_settled(
    cls: type[Promise[Any]], items: Iterable[Any], *, dispatcher: Dispatcher | None
) -> Promise[Any]:
    """Implement ``Promise.all_settled``: turn each outcome into a ``Settlement``, then ``all``."""
    inputs = [cls.resolve(item, dispatcher=dispatcher) for item in items]
    settled = [
        promise.then(
            lambda value: Settlement(FULFILLED, value=value),
            lambda error: Settlement(REJECTED, error=error),
        )
        for promise in inputs
    ]
    return cls.all(settled, dispatcher=dispatcher)


def promise_race(
    cls: type[Promise[Any]], items: Iterable[Any], *, dispatcher: Dispatcher | None
) -> Promise[Any]:
    """Implement ``Promise.race``: the first input to settle settles the result."""
    inputs = [cls.resolve(item, dispatcher=dispatcher) for item in items]
    if not inputs:
        raise ValueError("Promise.race() needs at least one input, or it never settles")
    result: Promise[Any] = cls(dispatcher=dispatcher)
    result._resolved = True
    for promise in inputs:
        promise._add_reaction((result._settle_like_if_pending, (promise,)))
    return result


def promise_any(
    cls: type[Promise[Any]], items: Iterable[Any], *, dispatcher: Dispatcher | None
) -> Promise[Any]:
    """Implement ``Promise.any``: the first value wins, and the errors are kept in input order."""
    inputs = [cls.resolve(item, dispatcher=dispatcher) for item in items]
    if not inputs:
        raise ValueError("Promise.any() needs at least one input")
    result: Promise[Any] = cls(dispatcher=dispatcher)
    result._resolved = True
    errors: list[BaseException | None] = [None] * len(inputs)
    remaining = [len(inputs)]
    lock = threading.Lock()

    def on_settled(index: int, source: Promise[Any]) -> None:
        if source._state == FULFILLED:
            result._try_settle(FULFILLED, source._value, None)
            return
        with lock:
            errors[index] = source._error
            remaining[0] -= 1
            complete = remaining[0] == 0
        if complete:
            group = BaseExceptionGroup(
                f"all {len(inputs)} promises were rejected",
                [error for error in errors if error is not None],
            )
            result._try_settle(REJECTED, None, group)

    for index, promise in enumerate(inputs):
        promise._add_reaction((on_settled, (index, promise)))
    return result
