"""``MiniPromise``: the promise that exercise ``promise-then`` of lab 8 builds on.

The library's ``msgpass.styles.promise.Promise`` does everything at once. For
the exercise, the learner gets a promise cut down to its three states
(``PENDING``, then ``FULFILLED`` or ``REJECTED`` once), a scheduler that runs
reactions later, and a list of reactions. The learner writes ``then`` in a
subclass, and ``promise_checks.check_promise_then`` checks it.

Left out on purpose: ``then`` itself, adoption of a promise passed to
``fulfill``, and the unhandled-rejection log. ``promise_checks`` re-exports
every name here, so lab 8 imports them from there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

from ..errors import InvalidStateError

__all__ = ["PENDING", "FULFILLED", "REJECTED", "Scheduler", "MiniPromise"]

PENDING: Final = "pending"
FULFILLED: Final = "fulfilled"
REJECTED: Final = "rejected"

# A scheduler takes a reaction and queues it to run later; it must not run it at once.
Scheduler = Callable[[Callable[[], object]], object]


class MiniPromise:
    """A promise cut down to its states: pending, then fulfilled or rejected once.

    ``scheduler(reaction)`` must queue ``reaction()`` to run later, on another
    thread or a later turn of a loop, and return without running it.
    ``fulfill`` and ``reject`` settle the promise and raise
    ``InvalidStateError`` if it is already settled. ``add_reaction(reaction)``
    hands ``reaction()`` to the scheduler once the promise is settled, or at
    once if it already is. ``fulfill`` does not adopt a promise given as the
    value: adoption is part of the exercise. ``then`` is the exercise.
    """

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.state: str = PENDING
        self.value: Any = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._reactions: list[Callable[[], object]] = []

    def fulfill(self, value: Any) -> None:
        """Settle the promise as fulfilled with ``value``."""
        self._settle(FULFILLED, value, None)

    def reject(self, error: BaseException) -> None:
        """Settle the promise as rejected with the exception ``error``."""
        if not isinstance(error, BaseException):
            raise TypeError(f"reject() takes an exception instance, got {error!r}")
        self._settle(REJECTED, None, error)

    def _settle(self, state: str, value: Any, error: BaseException | None) -> None:
        with self._lock:
            if self.state != PENDING:
                raise InvalidStateError(f"cannot settle {self!r} again")
            self.state, self.value, self.error = state, value, error
            reactions, self._reactions = self._reactions, []
        for reaction in reactions:
            self.scheduler(reaction)

    def add_reaction(self, reaction: Callable[[], object]) -> None:
        """Have the scheduler run ``reaction()`` once this promise is settled."""
        with self._lock:
            if self.state == PENDING:
                self._reactions.append(reaction)
                return
        self.scheduler(reaction)

    def then(
        self,
        on_fulfilled: Callable[[Any], Any] | None = None,
        on_rejected: Callable[[BaseException], Any] | None = None,
    ) -> MiniPromise:
        """Return a new promise settled by the matching handler (the exercise)."""
        raise NotImplementedError("MiniPromise.then is the exercise: write it in a subclass")

    def __repr__(self) -> str:
        detail = {FULFILLED: f" value={self.value!r}", REJECTED: f" error={self.error!r}"}
        return f"<{type(self).__name__} {self.state}{detail.get(self.state, '')}>"
