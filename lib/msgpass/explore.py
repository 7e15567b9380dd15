"""Exhaustive exploration: run small scenarios under every possible delivery order.

A simulation with a seed shows one schedule. A bug that needs a rare order
(a duplicate that arrives after a reply, a timer that fires just before a
message) may need millions of seeds to show up. For a small scenario, the
explorer tries every order instead:

- The state of the system is the state of every node plus the multiset of
  messages in flight and the set of armed timers.
- A step picks one in-flight message and delivers it, or (within the budgets
  ``allow_drops`` and ``allow_duplicates``) drops or duplicates it, or fires
  one armed timer. Time plays no role: any in-flight message may arrive next,
  and any armed timer may fire next.
- The search is breadth-first, so the first violation it finds has the fewest
  steps of all violations. Two paths that lead to the same state are explored
  once (a memo of state keys).

After every step ``invariant(nodes)`` must return true. When no message is in
flight and no timer is armed (a final state), ``goal(nodes)`` must return true
too, if a goal is given. An exception raised by a handler also counts as a
violation, except ``MissingHandler``, which is a bug in the scenario itself and
propagates.

Requirements on the nodes:

- Each branch works on ``copy.deepcopy`` of the whole system, so node objects
  must be deep-copyable (plain attributes are; open files and sockets are not).
- Two states are the same when the canonical form of each node's ``state()``
  is equal. ``Node.state()`` defaults to ``vars(self)`` minus the runtime's
  attributes. The canonical form sorts sets and dict items and turns
  dataclasses into tuples of their fields, so equal states have equal keys.
  Values of other types are compared by ``repr``, so such an attribute needs a
  ``repr`` that shows its whole value.
- ``now()`` returns the number of steps taken so far, because the explorer has
  no clock. Node code that decides something from ``now()`` therefore gets
  different values than in a simulation.

Left out on purpose: crashes, partitions and link latency (a partition is
explored by dropping messages), partial-order reduction and symmetry
reduction, which real model checkers (TLC, SPIN) use to explore bigger systems.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from .errors import MissingHandler, SimulationError
from .node import Node, TimerHandle, derive_node_seed, message_size_bytes
from .sim import Simulation
from .trace_events import (
    DROP_CHOSEN,
    Deliver,
    Drop,
    Duplicate,
    Send,
    TimerFired,
    Trace,
)

__all__ = [
    "Step",
    "ExplorationResult",
    "explore",
    "DEFAULT_MAX_STATES",
]

DEFAULT_MAX_STATES = 100_000  # distinct states; each one costs a deepcopy of the system

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


@dataclass(frozen=True)
class ExplorationResult:
    """The outcome of ``explore``.

    ``violation`` is ``None`` if no reachable state broke the invariant or
    the goal. Otherwise it describes the first violation found, and ``steps``
    and ``trace`` hold a shortest path to it. ``exhausted`` is true when every
    state reachable within ``max_depth`` steps was explored and no path was
    cut short by the depth or state bound, so a ``None`` violation is then a proof
    for this scenario.
    """

    states_explored: int
    transitions: int
    exhausted: bool
    max_depth_reached: int
    violation: str | None = None
    violation_kind: str | None = None  # "invariant", "goal" or "exception"
    steps: list[Step] | None = None
    trace: Trace | None = None
    final_nodes: dict[str, Node] | None = None

    @property
    def ok(self) -> bool:
        """Whether no violation was found."""
        return self.violation is None

    def format(self) -> str:
        """Return a short text report: the counts and, if any, the numbered violating steps."""
        if self.violation is not None:
            outcome = "stopped at the first violation"
        elif self.exhausted:
            outcome = "exhausted"
        else:
            outcome = "NOT exhausted: the depth or state bound cut paths short"
        lines = [
            f"explored {self.states_explored} states, {self.transitions} transitions, "
            f"depth {self.max_depth_reached}, {outcome}"
        ]
        if self.violation is None:
            lines.append("no violation found")
        else:
            lines.append(f"{self.violation_kind} violated: {self.violation}")
            lines.append(f"shortest path, {len(self.steps or [])} steps:")
            for number, step in enumerate(self.steps or [], start=1):
                lines.append(f"  {number}. {step}")
        return "\n".join(lines)


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


def explore(
    build: Callable[[], Simulation | list[Node]],
    *,
    invariant: Callable[[dict[str, Node]], bool],
    goal: Callable[[dict[str, Node]], bool] | None = None,
    max_depth: int = 20,
    allow_drops: int = 0,
    allow_duplicates: int = 0,
    max_states: int = DEFAULT_MAX_STATES,
) -> ExplorationResult:
    """Explore every order of deliveries and timer firings, and return a shortest violation.

    ``build`` returns fresh nodes, as a list or as a ``Simulation`` whose nodes
    are taken (its links, faults and seed are ignored). It is called once to
    explore, and once more to replay the violating path and record its trace.
    Each node is attached to the explorer with the seed it would get from a
    ``Simulation(seed=0)``, and its ``on_start`` runs in list order.

    ``invariant`` and ``goal`` receive the nodes by id. ``max_depth`` bounds the
    number of steps on a path and ``max_states`` the number of distinct
    states. ``allow_drops`` and ``allow_duplicates`` are how many messages a
    path may drop or duplicate in total.

    Raises ``ValueError`` for negative bounds and ``SimulationError`` if
    ``build`` returns no nodes or two nodes with the same id.
    """
    if max_depth < 0 or max_states < 1 or allow_drops < 0 or allow_duplicates < 0:
        raise ValueError(
            f"invalid bounds: max_depth={max_depth}, max_states={max_states}, "
            f"allow_drops={allow_drops}, allow_duplicates={allow_duplicates}; "
            f"expected max_states >= 1 and the others >= 0"
        )

    initial, failure = _start(build, invariant, record=False)
    if failure is not None:
        kind, description = failure
        return _violation([], kind, description, build, invariant, 1, 0, 0, initial)

    queue: deque[tuple[_World, tuple[Step, ...]]] = deque([(initial, ())])
    seen: set[Hashable] = {initial.key()}
    transitions = 0
    max_depth_reached = 0
    cut_short = False

    while queue:
        world, path = queue.popleft()
        depth = len(path)
        max_depth_reached = max(max_depth_reached, depth)
        if world.is_final():
            if goal is not None and not goal(world.nodes):
                return _violation(
                    list(path),
                    "goal",
                    "the goal does not hold in a final state",
                    build,
                    invariant,
                    len(seen),
                    transitions,
                    max_depth_reached,
                    world,
                )
            continue
        if depth >= max_depth:
            cut_short = True
            continue

        for step in world.choices(allow_drops, allow_duplicates):
            successor = copy.deepcopy(world)
            transitions += 1
            failure = _take_step(successor, step, invariant)
            if failure is not None:
                kind, description = failure
                return _violation(
                    [*path, step],
                    kind,
                    description,
                    build,
                    invariant,
                    len(seen),
                    transitions,
                    depth + 1,
                    successor,
                )
            key = successor.key()
            if key in seen:
                continue
            if len(seen) >= max_states:
                cut_short = True
                continue
            seen.add(key)
            queue.append((successor, (*path, step)))

    return ExplorationResult(
        states_explored=len(seen),
        transitions=transitions,
        exhausted=not cut_short,
        max_depth_reached=max_depth_reached,
    )


# -- helpers -------------------------------------------------------------------


def _start(
    build: Callable[[], Simulation | list[Node]],
    invariant: Callable[[dict[str, Node]], bool],
    *,
    record: bool,
) -> tuple[_World, tuple[str, str] | None]:
    built = build()
    node_list = list(built.nodes.values()) if isinstance(built, Simulation) else list(built)
    if not node_list:
        raise SimulationError("build() returned no nodes; return a list of Node objects")
    nodes: dict[str, Node] = {}
    for node in node_list:
        if node.node_id in nodes:
            raise SimulationError(f"build() returned two nodes with id {node.node_id!r}")
        nodes[node.node_id] = node
    world = _World(nodes)
    if record:
        world.trace = Trace()
    for node in node_list:
        node.attach(world, derive_node_seed(0, node.node_id))
    try:
        for node in node_list:
            node.on_start()
    except MissingHandler:
        raise
    except Exception as error:
        return world, ("exception", f"on_start raised {error!r}")
    if not invariant(nodes):
        return world, ("invariant", "the invariant does not hold after on_start")
    return world, None


def _take_step(
    world: _World, step: Step, invariant: Callable[[dict[str, Node]], bool]
) -> tuple[str, str] | None:
    """Apply ``step`` and check the invariant; return (kind, description) of a violation."""
    try:
        world.apply(step)
    except MissingHandler:
        raise
    except Exception as error:
        return "exception", f"{step} raised {error!r}"
    if not invariant(world.nodes):
        return "invariant", f"the invariant does not hold after: {step}"
    return None


def _violation(
    steps: list[Step],
    kind: str,
    description: str,
    build: Callable[[], Simulation | list[Node]],
    invariant: Callable[[dict[str, Node]], bool],
    states: int,
    transitions: int,
    depth: int,
    world: _World,
) -> ExplorationResult:
    """Build the result for a violation, replaying ``steps`` on fresh nodes to record a trace."""
    replay, _ = _start(build, invariant, record=True)
    for step in steps:
        try:
            replay.apply(step)
        except Exception:  # the same exception that made the violation; the trace is complete
            break
    return ExplorationResult(
        states_explored=states,
        transitions=transitions,
        exhausted=False,
        max_depth_reached=depth,
        violation=description,
        violation_kind=kind,
        steps=steps,
        trace=replay.trace,
        final_nodes=dict(world.nodes),
    )


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
