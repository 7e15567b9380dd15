"""The events of a message-passing run, and a recorder that keeps them in order.

A run on the simulator (``msgpass.sim``), a path found by the explorer
(``msgpass.explore``) and a run on a real transport all report what happened as
small immutable records. Each record says that a message was sent, delivered,
dropped or duplicated, that a timer fired, or that a node crashed or restarted.
``Trace`` collects them in the order they happened. The drawings and the text
rendering in ``msgpass.trace`` read nothing but these records, so any runtime
that fills a ``Trace`` can be drawn.

Times are in seconds of the runtime's clock: simulated seconds on the
simulator, seconds since the start of the run on a real transport, and the step
number on an explored path (which has no clock). A message keeps one
``message_id`` from its ``Send`` to each of its ``Deliver`` or ``Drop``
events. A duplicated message keeps the same id, so a duplicate shows up as a
second ``Deliver`` (or ``Drop``) with the id of the original ``Send``.

Left out on purpose: causal metadata (vector clocks) and message contents.
Events name the message's type only, which is what a sequence diagram labels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, overload

__all__ = [
    "DROP_LOSS",
    "DROP_PARTITION",
    "DROP_CRASHED",
    "DROP_CHOSEN",
    "Send",
    "Deliver",
    "Drop",
    "Duplicate",
    "TimerFired",
    "Crash",
    "Restart",
    "TraceEvent",
    "EVENT_TYPES",
    "Trace",
]

# The reasons a Drop event gives.
DROP_LOSS = "loss"  # the link lost the message at random (LinkConfig.loss)
DROP_PARTITION = "partition"  # a partition cut the link from source to dest
DROP_CRASHED = "crashed"  # the destination was crashed when the message arrived
DROP_CHOSEN = "chosen"  # the explorer chose to drop it, within its drop budget


@dataclass(frozen=True)
class Send:
    """A node handed a message to the network at ``time_s``."""

    kind: ClassVar[str] = "send"

    time_s: float
    source: str
    dest: str
    message_type: str
    message_id: int
    size_bytes: int


@dataclass(frozen=True)
class Deliver:
    """A message reached its destination's handler at ``time_s``.

    ``sent_at_s`` repeats the time of the matching ``Send`` so that a diagram
    can draw the arrow, and a latency can be computed, from this event alone.
    """

    kind: ClassVar[str] = "deliver"

    time_s: float
    source: str
    dest: str
    message_type: str
    message_id: int
    sent_at_s: float


@dataclass(frozen=True)
class Drop:
    """A message was lost at ``time_s``, for the ``reason`` given by a ``DROP_*`` constant."""

    kind: ClassVar[str] = "drop"

    time_s: float
    source: str
    dest: str
    message_type: str
    message_id: int
    reason: str


@dataclass(frozen=True)
class Duplicate:
    """The network made an extra copy of a message at ``time_s`` (the send time).

    The copy travels on its own and is delivered or dropped like any message,
    under the same ``message_id``.
    """

    kind: ClassVar[str] = "duplicate"

    time_s: float
    source: str
    dest: str
    message_type: str
    message_id: int


@dataclass(frozen=True)
class TimerFired:
    """The timer called ``name`` of node ``node_id`` fired at ``time_s``."""

    kind: ClassVar[str] = "timer"

    time_s: float
    node_id: str
    name: str


@dataclass(frozen=True)
class Crash:
    """Node ``node_id`` crashed at ``time_s``: it receives nothing until it restarts."""

    kind: ClassVar[str] = "crash"

    time_s: float
    node_id: str


@dataclass(frozen=True)
class Restart:
    """Node ``node_id`` came back at ``time_s`` after a crash."""

    kind: ClassVar[str] = "restart"

    time_s: float
    node_id: str


TraceEvent = Send | Deliver | Drop | Duplicate | TimerFired | Crash | Restart

EVENT_TYPES: tuple[type[TraceEvent], ...] = (
    Send,
    Deliver,
    Drop,
    Duplicate,
    TimerFired,
    Crash,
    Restart,
)

_TYPE_BY_KIND: dict[str, type[TraceEvent]] = {cls.kind: cls for cls in EVENT_TYPES}

E = TypeVar("E", Send, Deliver, Drop, Duplicate, TimerFired, Crash, Restart)


class Trace:
    """An ordered record of the events of one run.

    A runtime calls ``record`` for each event as it happens; readers iterate,
    index or ``filter`` it::

        trace = Trace()
        sim = Simulation(seed=1, trace=trace)
        ...
        sends = trace.filter(Send)          # or trace.filter("send")
    """

    def __init__(self) -> None:
        self._events: list[TraceEvent] = []

    def record(self, event: TraceEvent) -> None:
        """Append ``event``; raises ``TypeError`` for anything that is not a trace event."""
        if not isinstance(event, EVENT_TYPES):
            raise TypeError(
                f"invalid trace event: expected one of "
                f"{', '.join(cls.__name__ for cls in EVENT_TYPES)}, "
                f"got {type(event).__name__}"
            )
        self._events.append(event)

    @property
    def events(self) -> list[TraceEvent]:
        """A copy of the events recorded so far, in the order they were recorded."""
        return list(self._events)

    @overload
    def filter(self, kind: type[E]) -> list[E]: ...

    @overload
    def filter(self, kind: str) -> list[TraceEvent]: ...

    def filter(self, kind: type[Any] | str) -> list[Any]:
        """Return the events of one kind, in order.

        ``kind`` is an event class (``Send``) or its ``kind`` string (``"send"``,
        ``"deliver"``, ``"drop"``, ``"duplicate"``, ``"timer"``, ``"crash"``,
        ``"restart"``). An unknown string raises ``ValueError``.
        """
        if isinstance(kind, str):
            if kind not in _TYPE_BY_KIND:
                raise ValueError(
                    f"unknown event kind {kind!r}; expected one of {sorted(_TYPE_BY_KIND)}"
                )
            cls: type[Any] = _TYPE_BY_KIND[kind]
        elif kind in EVENT_TYPES:
            cls = kind
        else:
            raise TypeError(f"invalid event kind {kind!r}; pass an event class such as Send")
        return [event for event in self._events if type(event) is cls]

    def counts(self) -> dict[str, int]:
        """Return how many events of each kind were recorded, keyed by kind string."""
        return dict(Counter(event.kind for event in self._events))

    def clear(self) -> None:
        """Forget every recorded event, so the recorder can be reused for another run."""
        self._events.clear()

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(list(self._events))

    def __getitem__(self, index: int) -> TraceEvent:
        return self._events[index]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trace):
            return NotImplemented
        return self._events == other._events

    __hash__ = None  # type: ignore[assignment]  # mutable, so unhashable like a list

    def __repr__(self) -> str:
        counts = ", ".join(f"{kind}={count}" for kind, count in sorted(self.counts().items()))
        return f"Trace({len(self._events)} events: {counts or 'none'})"
