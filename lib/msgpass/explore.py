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
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from .errors import MissingHandler, SimulationError

# DELIVER to TIMER and _canonical are unused here. They are imported so that
# code that imported them from msgpass.explore keeps working.
from .explore_state import DELIVER, DROP, DUPLICATE, TIMER, Step, _canonical, _World  # noqa: F401
from .node import Node, derive_node_seed
from .sim import Simulation
from .trace_events import Trace

__all__ = [
    "Step",
    "ExplorationResult",
    "explore",
    "DEFAULT_MAX_STATES",
]

DEFAULT_MAX_STATES = 100_000  # distinct states; each one costs a deepcopy of the system


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
