"""A deterministic simulated network: a virtual clock, seeded faults, replayable runs.

Real networks make the bugs of distributed algorithms rare and unrepeatable. A
simulator makes them common and repeatable. It owns the clock, so a ten-minute
timeout takes no time. It draws every latency, loss and duplication from one
``random.Random`` seeded by the caller, so the same seed replays the same run,
event for event.

How it works (a discrete-event simulation): a priority queue holds future
events ordered by simulated time, and ``run`` pops them one at a time,
advances the clock to the event's time and lets the event happen. There are
four kinds of event, all stored as plain tuples ``(time_s, seq, kind, ...)``:

- deliver a message to its destination's ``on_<Type>`` handler,
- drop a message that the link lost in transit,
- fire a timer,
- call a function scheduled with ``schedule`` (crashes, restarts, partitions,
  anything a lab wants to inject).

``seq`` is a counter that breaks ties, so two events at the same time happen in
the order they were scheduled. Nothing else breaks ties, which is why runs replay.

Faults and their rules:

- Links (``LinkConfig`` in ``msgpass.sim_links``): latency, bandwidth with a
  FIFO transmit queue, loss, duplication and reordering, per direction.
- Partitions, crashes and restarts (``msgpass.sim_faults``, whose methods
  ``Simulation`` inherits): a cut link drops what it carries, and a crashed
  node receives nothing, sends nothing and loses its timers.

The rest of the simulator is split by concept too. ``Simulation`` inherits
the send path and the event queue from ``msgpass.sim_transport``, and the
timers and handler lookup from ``msgpass.sim_runtime``. ``SimStats`` and the
latency quantiles are in ``msgpass.sim_stats``. This module contains the
event loop and the public methods.

Left out on purpose: congestion (links never slow down under load), processing
time inside nodes (handlers take zero simulated time), and clocks that drift.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
from array import array
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import EventLimitExceeded, SimulationError
from .node import Node, derive_node_seed
from .sim_faults import FaultInjection
from .sim_links import (
    Constant,
    Exponential,
    LinkConfig,
    LogNormal,
    Uniform,
    _LinkState,
)
from .sim_runtime import NodeHosting, _SimulationRuntime
from .sim_stats import SimStats, latency_quantiles
from .sim_transport import _CALL, _DELIVER, _LOSS, _TIMER, MessageTransport
from .trace_events import (
    DROP_CRASHED,
    DROP_LOSS,
    DROP_PARTITION,
    Deliver,
    Trace,
)

__all__ = [
    "Simulation",
    "SimStats",
    "LinkConfig",
    "Constant",
    "Uniform",
    "Exponential",
    "LogNormal",
    "DEFAULT_MAX_EVENTS",
]

log = logging.getLogger(__name__)

NodeT = TypeVar("NodeT", bound=Node)

# Per call of run(). At a few microseconds per event, a runaway run stops after seconds.
DEFAULT_MAX_EVENTS = 1_000_000


class Simulation(FaultInjection, MessageTransport, NodeHosting):
    """A simulated network of ``Node`` objects, driven by a virtual clock.

    ::

        sim = Simulation(seed=7, default_link=LinkConfig(latency=Exponential(0.01), loss=0.1))
        sim.add_node(Pinger("a"))
        sim.add_node(Ponger("b"))
        sim.partition(["a"], ["b"], one_way=True, at_s=1.0)
        stats = sim.run(until_s=10.0)

    ``seed`` seeds the one generator that every link draws from, and each
    node's ``random`` is seeded from it and the node's id. ``trace``, if
    given, receives every event (see ``msgpass.trace_events``). ``max_events``
    bounds each call of ``run``.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        default_link: LinkConfig | None = None,
        trace: Trace | None = None,
        max_events: int = DEFAULT_MAX_EVENTS,
    ) -> None:
        if max_events < 1:
            raise ValueError(f"invalid max_events={max_events}: expected at least 1")
        self.seed = seed
        self.default_link = default_link if default_link is not None else LinkConfig()
        self._trace = trace
        self.max_events = max_events

        self._rng = random.Random(seed)
        self._random = self._rng.random
        self._default_link_state: _LinkState | None = None
        self._now = 0.0
        self._queue: list[tuple[Any, ...]] = []
        self._seq = 0
        self._runtime = _SimulationRuntime(self)

        self._nodes: dict[str, Node] = {}
        self._links: dict[tuple[str, str], _LinkState] = {}
        self._cut: set[tuple[str, str]] = set()
        self._crashed: set[str] = set()
        self._timer_owner: dict[int, str] = {}  # armed timer id -> node id
        self._timers_by_node: dict[str, set[int]] = {}
        self._next_timer_id = 0

        # Events processed other than successful deliveries, which the length of
        # _latencies counts: stats() adds the two.
        self._other_events = 0
        self._sent = 0
        self._dropped: dict[str, int] = {}
        self._duplicated = 0
        self._timers_fired = 0
        # One double per delivery, not a list of float objects: 8 bytes instead of
        # 32 per latency, and numpy reads it without converting each value.
        self._latencies = array("d")
        self._stop_reason = "not run"
        # True while no trace, crash or partition can affect a send.
        self._quiet = trace is None
        # source -> dest -> link, for the links that _send may handle on its fast
        # path: links without random faults or bandwidth limit, while the
        # simulation is quiet. set_link and _update_quiet keep it up to date, so
        # a send needs one lookup to know which path to take.
        self._fast_links: dict[str, dict[str, _LinkState]] = {}
        self._running = False
        # node id -> message class -> bound handler method, so that a delivery
        # skips building the method name and looking it up.
        self._handlers: dict[str, dict[type, Callable[[str, Any], None]]] = {}

    # -- building the network --------------------------------------------

    def add_node(self, node: NodeT) -> NodeT:
        """Add ``node`` to the network and schedule its ``on_start`` at the current time.

        Raises ``SimulationError`` if a node with the same id was added before.
        Returns the node, so ``a = sim.add_node(Pinger("a"))`` reads naturally.
        """
        if not isinstance(node, Node):
            raise TypeError(f"add_node expected a Node, got {type(node).__name__}")
        if not hasattr(node, "node_id"):
            raise TypeError(
                f"{type(node).__name__} object has no node_id; its __init__ must call "
                f"super().__init__(node_id)"
            )
        if node.node_id in self._nodes:
            raise SimulationError(f"a node with id {node.node_id!r} was already added")
        self._nodes[node.node_id] = node
        self._timers_by_node[node.node_id] = set()
        self._handlers[node.node_id] = {}
        self._fast_links[node.node_id] = {}
        node.attach(self._runtime, derive_node_seed(self.seed, node.node_id))
        self._push(self._now, _CALL, self._start_node, (node.node_id,))
        return node

    @property
    def nodes(self) -> dict[str, Node]:
        """The nodes by id, in the order they were added (a copy)."""
        return dict(self._nodes)

    @property
    def now(self) -> float:
        """The simulated time in seconds."""
        return self._now

    @property
    def trace(self) -> Trace | None:
        """The recorder that receives every event, or ``None``; may be replaced between runs."""
        return self._trace

    @trace.setter
    def trace(self, trace: Trace | None) -> None:
        self._trace = trace
        self._update_quiet()

    @property
    def runtime(self) -> _SimulationRuntime:
        """The ``msgpass.node.Runtime`` that this simulation's nodes are attached to."""
        return self._runtime

    def set_link(self, a: str, b: str, config: LinkConfig, *, both_ways: bool = True) -> None:
        """Configure the link from ``a`` to ``b``, and back too if ``both_ways``.

        Messages already in flight keep the timing they were given when sent.
        """
        self._require_node(a)
        self._require_node(b)
        pairs = [(a, b), (b, a)] if both_ways else [(a, b)]
        for pair in pairs:
            link = self._links.get(pair)
            if link is None:
                self._add_link(pair, config)
            else:
                link.configure(config, self._rng)
                self._update_fast_link(pair, link)

    def link(self, a: str, b: str) -> LinkConfig:
        """Return the configuration of the link from ``a`` to ``b``."""
        link = self._links.get((a, b))
        return link.config if link is not None else self.default_link

    def schedule(self, at_s: float, fn: Callable[..., object], *args: object) -> None:
        """Call ``fn(*args)`` when the clock reaches ``at_s`` seconds.

        Raises ``SimulationError`` if ``at_s`` is in the past.
        """
        if not math.isfinite(at_s) or at_s < self._now:
            raise SimulationError(
                f"cannot schedule at {at_s!r} s: the clock is already at {self._now:.6f} s"
            )
        self._push(at_s, _CALL, fn, args)

    # -- running ------------------------------------------------------------

    def run(
        self,
        *,
        until_s: float | None = None,
        until: Callable[[], bool] | None = None,
    ) -> SimStats:
        """Process events until one of the stop conditions holds, and return ``stats()``.

        The run stops in three cases. No event is left, so the network is idle.
        The next event is later than ``until_s``, and then the clock is set to
        ``until_s``. Or ``until()`` returns true, which is checked before the
        first event and after each one. It raises ``EventLimitExceeded`` if
        it processes ``max_events`` events without stopping. An exception from
        a node's handler propagates, with a note naming the node and the time.
        ``run`` may be called again to continue.
        """
        if until_s is not None and (math.isnan(until_s) or until_s < self._now):
            raise SimulationError(
                f"invalid until_s={until_s!r}: the clock is already at {self._now:.6f} s"
            )
        if self._running:
            raise SimulationError(
                "run() was called while the simulation is already running, for example "
                "from a handler; schedule work with schedule() instead"
            )
        if until is not None and until():
            self._stop_reason = "until"
            return self.stats()
        self._running = True
        try:
            self._run_events(until_s, until)
        finally:
            self._running = False
        return self.stats()

    def _run_events(self, until_s: float | None, until: Callable[[], bool] | None) -> None:
        # This loop runs once per event, so it is written for speed. Everything it
        # uses is bound to a local name first, because a local read is cheaper
        # than an attribute read. A delivery is counted only by appending its
        # latency, and the event limit is counted in a local variable. Crashes,
        # partitions and the trace are still checked per event, because a
        # handler or a scheduled call may change them in the middle of a run.
        queue = self._queue
        pop = heapq.heappop
        cut = self._cut
        crashed = self._crashed
        record_latency = self._latencies.append  # its length counts deliveries
        trace = self._trace
        handlers = self._handlers
        timer_owner = self._timer_owner
        deliver = _DELIVER
        max_events = self.max_events
        processed = 0  # events processed by this call, for the max_events bound
        stop_at = math.inf if until_s is None else until_s
        stop_reason = "idle"

        while queue:
            event = pop(queue)
            time_s = event[0]
            if time_s > stop_at or processed >= max_events:
                heapq.heappush(queue, event)  # not processed: put it back for a later run
                if time_s > stop_at:
                    stop_reason = "until_s"
                    break
                raise EventLimitExceeded(max_events, self._now)
            kind = event[2]

            if kind == deliver:
                processed += 1
                self._now = time_s
                _, _, _, message_id, source, dest, message, sent_at_s = event
                if cut and (source, dest) in cut:
                    self._other_events += 1
                    self._drop(message_id, source, dest, message, DROP_PARTITION)
                elif crashed and dest in crashed:
                    self._other_events += 1
                    self._drop(message_id, source, dest, message, DROP_CRASHED)
                else:
                    record_latency(time_s - sent_at_s)
                    if trace is not None:
                        trace.record(
                            Deliver(
                                time_s, source, dest, type(message).__name__, message_id, sent_at_s
                            )
                        )
                    handler = handlers[dest].get(message.__class__)
                    if handler is None:
                        handler = self._find_handler(dest, message)
                    try:
                        handler(source, message)
                    except Exception as error:
                        error.add_note(
                            f"while node {dest!r} handled {type(message).__name__} "
                            f"from {source!r} at simulated time {time_s:.6f} s"
                        )
                        raise
            elif kind == _TIMER:
                if event[3] not in timer_owner:
                    continue  # cancelled: it neither counts as an event nor moves the clock
                processed += 1
                self._other_events += 1
                self._now = time_s
                self._fire_timer(event[3], event[4], event[5])
            else:
                processed += 1
                self._other_events += 1
                self._now = time_s
                if kind == _LOSS:
                    self._drop(event[3], event[4], event[5], event[6], DROP_LOSS)
                else:
                    event[3](*event[4])

            if until is not None and until():
                stop_reason = "until"
                break
        else:
            if until_s is not None:
                self._now = until_s
        if stop_reason == "until_s":
            self._now = stop_at
        self._stop_reason = stop_reason

    def pending_events(self) -> int:
        """Return how many events are waiting in the queue."""
        return len(self._queue)

    def stats(self) -> SimStats:
        """Return the counters and latency quantiles of everything simulated so far."""
        operations = sum(node.operations for node in self._nodes.values())
        p50, p90, p99, latency_max = latency_quantiles(self._latencies)
        return SimStats(
            now_s=self._now,
            events=self._other_events + len(self._latencies),
            sent=self._sent,
            delivered=len(self._latencies),
            dropped_by_reason=dict(self._dropped),
            duplicated=self._duplicated,
            timers_fired=self._timers_fired,
            operations=operations,
            messages_per_operation=self._sent / operations if operations else None,
            latency_p50_s=p50,
            latency_p90_s=p90,
            latency_p99_s=p99,
            latency_max_s=latency_max,
            stop_reason=self._stop_reason,
        )

    def __repr__(self) -> str:
        return (
            f"Simulation(seed={self.seed}, now={self._now:.6f}s, nodes={len(self._nodes)}, "
            f"crashed={sorted(self._crashed)}, cut_links={len(self._cut)}, "
            f"pending_events={len(self._queue)}, "
            f"events={self._other_events + len(self._latencies)})"
        )
