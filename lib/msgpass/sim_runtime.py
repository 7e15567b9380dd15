"""The node-facing side of the simulator: the Runtime object, timers and handler lookup.

Nodes never call the simulation directly. ``Simulation.add_node`` attaches
each node to one ``_SimulationRuntime``, whose four attributes ``now``,
``send``, ``set_timer`` and ``cancel_timer`` are bound methods of the
simulation: the ``msgpass.node.Runtime`` protocol. ``send`` is in
``msgpass.sim_transport``. The others, and the two calls the other way (a
timer firing into a node, a message into its handler), are here.

Timers are events in the same queue as messages. Cancelling a timer does not
search the queue. It removes the timer id from the armed timers, and the
event loop skips a timer event whose id is no longer armed. A crash cancels
every timer of the node the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import SimulationError
from .node import Node, TimerHandle
from .sim_transport import _TIMER
from .trace_events import TimerFired, Trace

if TYPE_CHECKING:
    from .sim import Simulation

__all__ = ["NodeHosting"]


class _SimulationRuntime:
    """The ``Runtime`` that nodes of a simulation see: four bound methods of the simulation."""

    __slots__ = ("now", "send", "set_timer", "cancel_timer")

    def __init__(self, sim: Simulation) -> None:
        self.now: Callable[[], float] = sim._read_clock
        self.send: Callable[[str, str, object], None] = sim._send
        self.set_timer: Callable[[str, float, str], TimerHandle] = sim._set_timer
        self.cancel_timer: Callable[[TimerHandle], None] = sim._cancel_timer


class NodeHosting:
    """The clock, timer and dispatch methods of ``Simulation``, as a mixin.

    The attributes below belong to ``Simulation``, which sets them in its
    ``__init__``. They are declared here so that mypy can check the methods.
    """

    _now: float
    _nodes: dict[str, Node]
    _crashed: set[str]
    _timer_owner: dict[int, str]  # armed timer id -> node id
    _timers_by_node: dict[str, set[int]]
    _next_timer_id: int
    _timers_fired: int
    _trace: Trace | None
    _handlers: dict[str, dict[type, Callable[[str, Any], None]]]
    _push: Callable[..., None]  # MessageTransport._push

    def _read_clock(self) -> float:
        return self._now

    def _set_timer(self, node_id: str, delay_s: float, name: str) -> TimerHandle:
        if not (math.isfinite(delay_s) and delay_s >= 0):
            raise ValueError(
                f"invalid timer delay {delay_s!r} s for {name!r} on node {node_id!r}: "
                f"expected a finite number >= 0"
            )
        if node_id in self._crashed:
            raise SimulationError(f"node {node_id!r} is crashed, so it cannot set timer {name!r}")
        self._next_timer_id += 1
        timer_id = self._next_timer_id
        self._timer_owner[timer_id] = node_id
        self._timers_by_node[node_id].add(timer_id)
        self._push(self._now + delay_s, _TIMER, timer_id, node_id, name)
        return TimerHandle(node_id, name, timer_id)

    def _cancel_timer(self, handle: TimerHandle) -> None:
        node_id = self._timer_owner.pop(handle.timer_id, None)
        if node_id is not None:
            self._timers_by_node[node_id].discard(handle.timer_id)

    def _fire_timer(self, timer_id: int, node_id: str, name: str) -> None:
        if self._timer_owner.pop(timer_id, None) is None:
            return  # cancelled, or cleared by a crash
        self._timers_by_node[node_id].discard(timer_id)
        self._timers_fired += 1
        if self._trace is not None:
            self._trace.record(TimerFired(self._now, node_id, name))
        try:
            self._nodes[node_id].fire_timer(name)
        except Exception as error:
            error.add_note(
                f"while node {node_id!r} handled timer {name!r} at simulated time {self._now:.6f} s"
            )
            raise

    def _start_node(self, node_id: str) -> None:
        if node_id in self._crashed:
            return  # crashed before it started; restart will run on_restart
        self._nodes[node_id].on_start()

    def _find_handler(self, node_id: str, message: object) -> Callable[[str, Any], None]:
        """Return the bound method that delivers ``message`` to node ``node_id``, and cache it.

        It is the node's ``on_<Type>`` method, as ``Node.dispatch`` would find it.
        A node whose class overrides ``dispatch``, or has no handler for the type,
        gets its ``dispatch`` (which raises ``MissingHandler`` in the second case).
        The cache is per node and message class, so replacing a handler on the
        instance after its first message has no effect.
        """
        node = self._nodes[node_id]
        handler: Callable[[str, Any], None] = node.dispatch
        if type(node).dispatch is Node.dispatch:
            handler = getattr(node, "on_" + message.__class__.__name__, handler)
        self._handlers[node_id][message.__class__] = handler
        return handler
