"""The explored system's state: the steps between states, and how states are compared.

``msgpass.explore`` searches a graph whose vertices are states of a small
system and whose edges are steps. This module defines both:

- ``Step``: one choice, which delivers, drops or duplicates one in-flight
  message, or fires one armed timer.
- ``_World``: one state, which contains the nodes, the multiset of in-flight
  messages and the armed timers. It is also the ``Runtime`` that its nodes
  call, so a handler's sends and timers land in the world that ran it.
- ``_canonical``: the hashable form of a value in which equal values look the
  same. ``_World.key`` builds a state's memo key from it, which is how two
  paths that reach the same state are explored once.

Left out on purpose: message latency and clocks, because the explorer tries
every order instead of simulating time. ``now()`` returns the number of steps taken.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from .errors import SimulationError
from .node import Node, TimerHandle, message_size_bytes
from .trace_events import (
    DROP_CHOSEN,
    Deliver,
    Drop,
    Duplicate,
    Send,
    TimerFired,
    Trace,
)

__all__ = ["Step", "DELIVER", "DROP", "DUPLICATE", "TIMER"]

# The four kinds of step.
DELIVER = "deliver"
DROP = "drop"
DUPLICATE = "duplicate"
TIMER = "timer"


@dataclass(frozen=True)
class Step:
    """One choice on an explored path: a message delivered, dropped or duplicated, or a timer.

    ``source``, ``message`` and ``message_type`` are ``None`` for a timer step,
    and ``timer_name`` is ``None`` for a message step. ``node_id`` is the node
    that receives the message or owns the timer.
    """

    action: str
    node_id: str
    source: str | None = None
    message: object = None
    message_type: str | None = None
    timer_name: str | None = None

    def __str__(self) -> str:
        if self.action == TIMER:
            return f"timer {self.timer_name!r} fires at {self.node_id}"
        return f"{self.action} {self.message!r} {self.source} -> {self.node_id}"



class _World:
    """One state of the explored system; it is also the ``Runtime`` of its nodes.

    ``copy.deepcopy`` of a world copies its nodes, and each copied node's
    runtime reference points at the copied world, because deepcopy keeps
    shared references shared.
    """

    def __init__(self, nodes: dict[str, Node]) -> None:
        self.nodes = nodes
        # (message id, source, dest, message, step at which it was sent)
        self.in_flight: list[tuple[int, str, str, object, float]] = []
        self.timers: dict[int, tuple[str, str]] = {}  # timer id -> (node id, name)
        self.next_message_id = 0
        self.next_timer_id = 0
        self.steps_taken = 0
        self.drops_used = 0
        self.duplicates_used = 0
        self.trace: Trace | None = None  # set only while replaying the shortest path

    # The Runtime protocol.
    def now(self) -> float:
        return float(self.steps_taken)

    def send(self, source: str, dest: str, message: object) -> None:
        if dest not in self.nodes:
            raise SimulationError(
                f"node {source!r} sent {type(message).__name__} to unknown node {dest!r}; "
                f"known nodes: {sorted(self.nodes)}"
            )
        self.next_message_id += 1
        self.in_flight.append((self.next_message_id, source, dest, message, self.now()))
        if self.trace is not None:
            self.trace.record(
                Send(
                    self.now(),
                    source,
                    dest,
                    type(message).__name__,
                    self.next_message_id,
                    message_size_bytes(message),
                )
            )

    def set_timer(self, node_id: str, delay_s: float, name: str) -> TimerHandle:
        self.next_timer_id += 1
        self.timers[self.next_timer_id] = (node_id, name)
        return TimerHandle(node_id, name, self.next_timer_id)

    def cancel_timer(self, handle: TimerHandle) -> None:
        self.timers.pop(handle.timer_id, None)

    # Choices and steps.
    def choices(self, allow_drops: int, allow_duplicates: int) -> list[Step]:
        """Return every distinct step possible from this state, in a fixed order."""
        steps: list[Step] = []
        seen: set[Hashable] = set()
        for _, source, dest, message, _ in self.in_flight:
            key = (source, dest, _canonical(message))
            if key in seen:
                continue  # identical copies in flight lead to identical states
            seen.add(key)
            message_type = type(message).__name__
            steps.append(Step(DELIVER, dest, source, message, message_type))
            if self.drops_used < allow_drops:
                steps.append(Step(DROP, dest, source, message, message_type))
            if self.duplicates_used < allow_duplicates:
                steps.append(Step(DUPLICATE, dest, source, message, message_type))
        timer_keys: set[tuple[str, str]] = set()
        for node_id, name in self.timers.values():
            if (node_id, name) not in timer_keys:
                timer_keys.add((node_id, name))
                steps.append(Step(TIMER, node_id, timer_name=name))
        return steps

    def apply(self, step: Step) -> None:
        """Perform ``step`` on this world (the caller passes a copy)."""
        self.steps_taken += 1
        now = self.now()
        trace = self.trace
        if step.action == TIMER:
            timer_id = next(
                timer_id
                for timer_id, (node_id, name) in self.timers.items()
                if node_id == step.node_id and name == step.timer_name
            )
            del self.timers[timer_id]
            if trace is not None:
                trace.record(TimerFired(now, step.node_id, str(step.timer_name)))
            self.nodes[step.node_id].fire_timer(str(step.timer_name))
            return

        target = (step.source, step.node_id, _canonical(step.message))
        index = next(
            index
            for index, (_, source, dest, message, _) in enumerate(self.in_flight)
            if (source, dest, _canonical(message)) == target
        )
        message_id, source, dest, message, sent_at = self.in_flight[index]
        message_type = type(message).__name__
        if step.action == DUPLICATE:
            self.duplicates_used += 1
            self.in_flight.append(self.in_flight[index])
            if trace is not None:
                trace.record(Duplicate(now, source, dest, message_type, message_id))
            return
        del self.in_flight[index]
        if step.action == DROP:
            self.drops_used += 1
            if trace is not None:
                trace.record(Drop(now, source, dest, message_type, message_id, DROP_CHOSEN))
            return
        if trace is not None:
            trace.record(Deliver(now, source, dest, message_type, message_id, sent_at))
        self.nodes[dest].dispatch(source, message)

    def key(self) -> Hashable:
        """Return the canonical, hashable form of this state, for the memo."""
        nodes = tuple(
            (node_id, _canonical(node.state())) for node_id, node in sorted(self.nodes.items())
        )
        messages = [
            (source, dest, _canonical(message)) for _, source, dest, message, _ in self.in_flight
        ]
        in_flight = tuple(sorted(messages, key=repr))  # a multiset: order does not matter
        timers = tuple(sorted(self.timers.values()))
        return (nodes, in_flight, timers, self.drops_used, self.duplicates_used)

    def is_final(self) -> bool:
        return not self.in_flight and not self.timers


def _canonical(value: Any) -> Hashable:
    """Return a hashable form of ``value`` in which equal values look the same.

    Sets and dicts are sorted (by the ``repr`` of their canonical items, so
    mixed types sort too), dataclasses become their class name and fields,
    lists and tuples are converted item by item, and anything else is
    compared by ``repr``.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_canonical(item) for item in value))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted((_canonical(item) for item in value), key=repr)))
    if isinstance(value, dict):
        items = ((_canonical(key), _canonical(item)) for key, item in value.items())
        return ("dict", tuple(sorted(items, key=repr)))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = tuple(
            (field.name, _canonical(getattr(value, field.name)))
            for field in dataclasses.fields(value)
        )
        return (type(value).__name__, fields)
    return ("repr", type(value).__name__, repr(value))
