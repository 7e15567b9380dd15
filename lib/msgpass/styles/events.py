"""Events: many listeners subscribe to named events, and one emitter notifies them.

The callback style hands one function to one operation. The event style turns
this around: an object announces what happens to it (``"connected"``,
``"message"``, ``"closed"``) and any number of listeners subscribe by name. The
emitter does not know who listens, which decouples the two sides. The price is
that nothing forces anyone to listen, so an error emitted with no listener
could vanish. This ``EventEmitter`` follows the rules of Node.js's ``events`` module
that prevent that:

- ``emit("error", exc)`` with no ``"error"`` listener raises ``exc`` in the
  caller of ``emit``.
- A listener that raises does not stop the other listeners. Its exception goes
  to the ``"error"`` listeners if there are any, and is logged with the event
  name and the emitter id otherwise. This part differs from Node.js, where the
  exception propagates out of ``emit`` and skips the remaining listeners.
- ``emit`` calls the listeners that were registered when it started. Listeners
  added or removed by a listener take effect from the next ``emit`` on.
- Adding more than ``max_listeners`` listeners to one event logs one warning per
  event, because that usually means a listener is added in a loop and never
  removed (a leak).

Listeners run synchronously, in registration order, on the thread that calls
``emit``. The listener table is guarded by a lock, so ``on``, ``off`` and
``emit`` may be called from several threads. The listeners themselves get no
lock, so a listener that touches shared state must protect it.

Left out on purpose: Node's ``"newListener"`` and ``"removeListener"`` events,
``prependListener``, and awaiting an event from asyncio.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_MAX_LISTENERS",
    "ERROR_EVENT",
    "EventEmitter",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_LISTENERS = 10  # per event, as in Node.js; 0 disables the leak warning
ERROR_EVENT = "error"

_emitter_ids = itertools.count(1)


@dataclass(eq=False)
class _Listener:
    """One registration: the function, the arguments bound with it, and whether it is a once."""

    fn: Callable[..., object]
    args: tuple[Any, ...]
    once: bool
    # Set under the emitter's lock when a once listener is claimed by an emit, so a
    # re-entrant emit cannot run it a second time.
    fired: bool = field(default=False)


class EventEmitter:
    """A table of named events and the listeners subscribed to each.

    ::

        emitter = EventEmitter(name="conn-1")
        emitter.on("message", print, "got:")
        emitter.emit("message", b"hi")      # prints "got: b'hi'", returns True

    A listener is called as ``fn(*bound_args, *emit_args)``: the arguments given
    to ``on`` come first, then those given to ``emit``. ``id`` is a number unique
    within the process, and log lines name the emitter by it.
    """

    def __init__(self, *, name: str = "", max_listeners: int = DEFAULT_MAX_LISTENERS) -> None:
        self.id = next(_emitter_ids)
        self.name = name
        self._lock = threading.Lock()
        self._listeners: dict[Hashable, list[_Listener]] = {}
        self._leak_warned: set[Hashable] = set()
        self._max_listeners = 0
        self.set_max_listeners(max_listeners)
        self.emitted = 0
        self.listener_errors = 0

    # -- subscribing -------------------------------------------------------------------

    def on(self, event: Hashable, fn: Callable[..., object], *args: Any) -> EventEmitter:
        """Call ``fn(*args, *emit_args)`` on every later ``emit`` of ``event``.

        Adding the same function twice registers it twice, so it runs twice per
        emit. Returns the emitter so that calls can be chained.
        """
        self._add(event, _Listener(fn, args, once=False))
        return self

    def once(self, event: Hashable, fn: Callable[..., object], *args: Any) -> EventEmitter:
        """Call ``fn`` on the next ``emit`` of ``event`` only, then forget it.

        The registration is removed before ``fn`` runs, so ``fn`` runs at most
        once even if it emits the same event again. ``off(event, fn)`` removes
        it before it fires, given the original function.
        """
        self._add(event, _Listener(fn, args, once=True))
        return self

    def off(self, event: Hashable, fn: Callable[..., object]) -> bool:
        """Remove the most recently added registration of ``fn`` for ``event``.

        Works for listeners added with ``on`` and with ``once``. Returns whether
        a registration was found. An ``emit`` already in progress still calls
        the listener, because it works on a snapshot.
        """
        with self._lock:
            registrations = self._listeners.get(event, [])
            for index in range(len(registrations) - 1, -1, -1):
                if registrations[index].fn == fn:
                    del registrations[index]
                    if not registrations:
                        del self._listeners[event]
                    return True
        return False

    def remove_all_listeners(self, event: Hashable | None = None) -> None:
        """Remove every listener of ``event``, or of all events when ``event`` is None."""
        with self._lock:
            if event is None:
                self._listeners.clear()
            else:
                self._listeners.pop(event, None)

    def set_max_listeners(self, max_listeners: int) -> None:
        """Set the per-event listener count above which a leak warning is logged (0: never)."""
        if max_listeners < 0:
            raise ValueError(
                f"max_listeners must be 0 (unlimited) or positive, got {max_listeners}"
            )
        self._max_listeners = max_listeners

    def _add(self, event: Hashable, listener: _Listener) -> None:
        if not callable(listener.fn):
            raise TypeError(f"a listener must be callable, got {listener.fn!r}")
        with self._lock:
            registrations = self._listeners.setdefault(event, [])
            registrations.append(listener)
            count = len(registrations)
            warn = 0 < self._max_listeners < count and event not in self._leak_warned
            if warn:
                self._leak_warned.add(event)
        if warn:
            log.warning(
                "possible listener leak on %r: %d listeners for event %r exceed the maximum "
                "of %d; remove listeners with off() or raise the limit with set_max_listeners()",
                self, count, event, self._max_listeners,
            )

    # -- emitting ----------------------------------------------------------------------

    def emit(self, event: Hashable, *args: Any) -> bool:
        """Call every listener of ``event`` with ``args`` and return whether any ran.

        Raises the first argument when ``event`` is ``"error"``, no listener is
        registered and that argument is an exception. With any other first argument it
        raises ``RuntimeError`` naming the arguments. An ``Exception`` raised by
        a listener is routed as the module docstring describes and does not
        propagate out of ``emit``.
        """
        with self._lock:
            self.emitted += 1
        claimed = self._claim(event)
        if not claimed:
            if event == ERROR_EVENT:
                self._raise_unhandled_error(args)
            return False
        self._call(event, claimed, args)
        return True

    def _claim(self, event: Hashable) -> list[_Listener]:
        # Snapshot the listeners of one emit, and take each once listener out of the table.
        with self._lock:
            claimed: list[_Listener] = []
            for listener in list(self._listeners.get(event, ())):
                if listener.once:
                    if listener.fired:
                        continue
                    listener.fired = True
                    self._remove_registration(event, listener)
                claimed.append(listener)
            return claimed

    def _call(self, event: Hashable, claimed: list[_Listener], args: tuple[Any, ...]) -> None:
        for listener in claimed:
            try:
                listener.fn(*listener.args, *args)
            except Exception as error:
                self._route_listener_error(event, listener, error)

    def _remove_registration(self, event: Hashable, listener: _Listener) -> None:
        # Called with the lock held. Compares by identity, not by function.
        registrations = self._listeners.get(event, [])
        for index, candidate in enumerate(registrations):
            if candidate is listener:
                del registrations[index]
                break
        if not registrations:
            self._listeners.pop(event, None)

    def _raise_unhandled_error(self, args: tuple[Any, ...]) -> None:
        if args and isinstance(args[0], BaseException):
            raise args[0]
        raise RuntimeError(
            f"unhandled 'error' event on {self!r} with arguments {args!r}; "
            f"add a listener with on('error', ...) or emit an exception instance"
        )

    def _route_listener_error(
        self, event: Hashable, listener: _Listener, error: Exception
    ) -> None:
        self.listener_errors += 1
        error.add_note(f"raised by listener {listener.fn!r} of event {event!r} on {self!r}")
        if event != ERROR_EVENT:
            error_listeners = self._claim(ERROR_EVENT)
            if error_listeners:
                # No recursion: a failing "error" listener reaches the log below,
                # never the "error" event again.
                self._call(ERROR_EVENT, error_listeners, (error,))
                return
        log.error(
            "listener %r of event %r on %r raised %s: %s",
            listener.fn, event, self, type(error).__name__, error,
            exc_info=error,
        )

    # -- inspecting --------------------------------------------------------------------

    def listener_count(self, event: Hashable) -> int:
        """Return the number of registrations for ``event``; a function added twice counts twice."""
        with self._lock:
            return len(self._listeners.get(event, ()))

    def listeners(self, event: Hashable) -> list[Callable[..., object]]:
        """Return the functions registered for ``event`` in call order, ``once`` ones included."""
        with self._lock:
            return [listener.fn for listener in self._listeners.get(event, ())]

    def event_names(self) -> list[Hashable]:
        """Return the events that have at least one listener, in the order first added."""
        with self._lock:
            return list(self._listeners)

    def stats(self) -> dict[str, int]:
        """Counters for display in a notebook."""
        with self._lock:
            listener_total = sum(len(group) for group in self._listeners.values())
            return {
                "events": len(self._listeners),
                "listeners": listener_total,
                "emitted": self.emitted,
                "listener_errors": self.listener_errors,
            }

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        with self._lock:
            events = len(self._listeners)
            listener_total = sum(len(group) for group in self._listeners.values())
        return f"<EventEmitter #{self.id}{label}: {events} events, {listener_total} listeners>"
