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

Left out on purpose: congestion (links never slow down under load), processing
time inside nodes (handlers take zero simulated time), and clocks that drift.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import EventLimitExceeded, SimulationError
from .node import Node, TimerHandle, derive_node_seed, message_size_bytes
from .sim_faults import FaultInjection
from .sim_links import (
    Constant,
    Exponential,
    LinkConfig,
    LogNormal,
    Uniform,
    _LinkState,
)
from .trace_events import (
    DROP_CRASHED,
    DROP_LOSS,
    DROP_PARTITION,
    Deliver,
    Drop,
    Duplicate,
    Send,
    TimerFired,
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

# Event kinds, the third element of every event tuple.
_DELIVER = 0  # (time_s, seq, _DELIVER, message_id, source, dest, message, sent_at_s)
_LOSS = 1  # (time_s, seq, _LOSS, message_id, source, dest, message, sent_at_s)
_TIMER = 2  # (time_s, seq, _TIMER, timer_id, node_id, name, None, None)
_CALL = 3  # (time_s, seq, _CALL, fn, args, None, None, None)


@dataclass(frozen=True)
class SimStats:
    """Counters of a simulation so far, as returned by ``Simulation.stats()`` and ``run()``.

    Latency figures are seconds from send to delivery, over delivered
    messages, as nearest-rank quantiles. They are ``None`` until something is
    delivered. ``messages_per_operation`` is messages sent divided by the
    operations that nodes counted with ``count_operation``, and ``None`` if
    no operation was counted.
    """

    now_s: float
    events: int
    sent: int
    delivered: int
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    duplicated: int = 0
    timers_fired: int = 0
    operations: int = 0
    messages_per_operation: float | None = None
    latency_p50_s: float | None = None
    latency_p90_s: float | None = None
    latency_p99_s: float | None = None
    latency_max_s: float | None = None
    stop_reason: str = "not run"

    @property
    def dropped(self) -> int:
        """The number of messages dropped, for any reason."""
        return sum(self.dropped_by_reason.values())


class _SimulationRuntime:
    """The ``Runtime`` that nodes of a simulation see: four bound methods of the simulation."""

    __slots__ = ("now", "send", "set_timer", "cancel_timer")

    def __init__(self, sim: Simulation) -> None:
        self.now: Callable[[], float] = sim._read_clock
        self.send: Callable[[str, str, object], None] = sim._send
        self.set_timer: Callable[[str, float, str], TimerHandle] = sim._set_timer
        self.cancel_timer: Callable[[TimerHandle], None] = sim._cancel_timer


class Simulation(FaultInjection):
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

        self._events = 0
        self._sent = 0
        self._dropped: dict[str, int] = {}
        self._duplicated = 0
        self._timers_fired = 0
        self._latencies: list[float] = []
        self._stop_reason = "not run"
        # True while no trace, crash or partition can affect a send (see _send).
        self._quiet = trace is None
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
                self._links[pair] = _LinkState(config, self._rng)
            else:
                link.configure(config, self._rng)

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

        queue = self._queue
        pop = heapq.heappop
        cut = self._cut
        crashed = self._crashed
        latencies = self._latencies
        trace = self._trace
        handlers = self._handlers
        timer_owner = self._timer_owner
        limit = self._events + self.max_events
        stop_at = math.inf if until_s is None else until_s
        stop_reason = "idle"

        while queue:
            event = pop(queue)
            time_s = event[0]
            if time_s > stop_at or self._events >= limit:
                heapq.heappush(queue, event)  # not processed: put it back for a later run
                if time_s > stop_at:
                    stop_reason = "until_s"
                    break
                raise EventLimitExceeded(self.max_events, self._now)
            kind = event[2]

            if kind == _DELIVER:
                self._events += 1
                self._now = time_s
                _, _, _, message_id, source, dest, message, sent_at_s = event
                if cut and (source, dest) in cut:
                    self._drop(message_id, source, dest, message, DROP_PARTITION)
                elif crashed and dest in crashed:
                    self._drop(message_id, source, dest, message, DROP_CRASHED)
                else:
                    latencies.append(time_s - sent_at_s)  # its length counts deliveries
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
                self._events += 1
                self._now = time_s
                self._fire_timer(event[3], event[4], event[5])
            else:
                self._events += 1
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
        ordered = sorted(self._latencies)
        return SimStats(
            now_s=self._now,
            events=self._events,
            sent=self._sent,
            delivered=len(self._latencies),
            dropped_by_reason=dict(self._dropped),
            duplicated=self._duplicated,
            timers_fired=self._timers_fired,
            operations=operations,
            messages_per_operation=self._sent / operations if operations else None,
            latency_p50_s=_nearest_rank(ordered, 0.50),
            latency_p90_s=_nearest_rank(ordered, 0.90),
            latency_p99_s=_nearest_rank(ordered, 0.99),
            latency_max_s=ordered[-1] if ordered else None,
            stop_reason=self._stop_reason,
        )

    def __repr__(self) -> str:
        return (
            f"Simulation(seed={self.seed}, now={self._now:.6f}s, nodes={len(self._nodes)}, "
            f"crashed={sorted(self._crashed)}, cut_links={len(self._cut)}, "
            f"pending_events={len(self._queue)}, events={self._events})"
        )

    # -- the Runtime that nodes call ---------------------------------------

    def _read_clock(self) -> float:
        return self._now

    def _send(self, source: str, dest: str, message: object) -> None:
        link = self._links.get((source, dest))
        if link is None:
            link = self._create_link(source, dest, message)
        self._sent += 1  # every send gets the next id, even one dropped at once

        if link.plain and self._quiet:
            # The fast path: nothing to record, nothing to drop, no bandwidth
            # limit. It makes the same draw as the general path below would.
            now = self._now
            arrives_s = now + link.sample_latency()
            if arrives_s < link.last_arrival_s:
                arrives_s = link.last_arrival_s  # FIFO: never before an earlier message
            link.last_arrival_s = arrives_s
            self._seq += 1
            heapq.heappush(
                self._queue,
                (arrives_s, self._seq, _DELIVER, self._sent, source, dest, message, now),
            )
            return
        self._send_general(link, source, dest, message)

    def _create_link(self, source: str, dest: str, message: object) -> _LinkState:
        # Links are created on first use, so an unknown dest is caught here.
        if dest not in self._nodes:
            raise SimulationError(
                f"node {source!r} sent {type(message).__name__} to unknown node {dest!r}; "
                f"known nodes: {sorted(self._nodes)}"
            )
        link = self._links[(source, dest)] = _LinkState(self.default_link, self._rng)
        return link

    def _send_general(self, link: _LinkState, source: str, dest: str, message: object) -> None:
        now = self._now
        message_id = self._sent
        config = link.config
        trace = self._trace

        size_bytes = 0
        if trace is not None or config.bandwidth_bytes_per_s is not None:
            size_bytes = message_size_bytes(message)
        if trace is not None:
            trace.record(Send(now, source, dest, type(message).__name__, message_id, size_bytes))

        if self._crashed and source in self._crashed:
            self._drop(message_id, source, dest, message, DROP_CRASHED)
            return
        if self._cut and (source, dest) in self._cut:
            self._drop(message_id, source, dest, message, DROP_PARTITION)
            return

        # Transmission: the message waits for the messages queued before it on
        # this link, then occupies the link for size / bandwidth seconds.
        departs_s = now
        if config.bandwidth_bytes_per_s is not None:
            start_s = max(now, link.transmit_free_at_s)
            departs_s = start_s + size_bytes / config.bandwidth_bytes_per_s
            link.transmit_free_at_s = departs_s

        self._propagate(link, message_id, source, dest, message, now, departs_s)
        if config.duplicate and self._rng.random() < config.duplicate:
            self._duplicated += 1
            if trace is not None:
                trace.record(Duplicate(now, source, dest, type(message).__name__, message_id))
            self._propagate(link, message_id, source, dest, message, now, departs_s)

    def _propagate(
        self,
        link: _LinkState,
        message_id: int,
        source: str,
        dest: str,
        message: object,
        sent_at_s: float,
        departs_s: float,
    ) -> None:
        """Draw one copy's latency, loss and reordering, and schedule its arrival or loss.

        The draws happen in a fixed order (latency, then loss and reorder if
        enabled), so the same seed yields the same fate for the same message.
        """
        config = link.config
        rng = self._rng
        arrives_s = departs_s + link.sample_latency()
        if config.loss and rng.random() < config.loss:
            self._push(arrives_s, _LOSS, message_id, source, dest, message, sent_at_s)
            return
        if config.reorder and rng.random() < config.reorder:
            # Held back past later messages, and later messages do not wait for it.
            arrives_s += rng.uniform(0.0, config.effective_reorder_window_s())
        else:
            if arrives_s < link.last_arrival_s:
                arrives_s = link.last_arrival_s
            link.last_arrival_s = arrives_s
        self._push(arrives_s, _DELIVER, message_id, source, dest, message, sent_at_s)

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

    # -- event handlers ------------------------------------------------------

    def _push(
        self,
        time_s: float,
        kind: int,
        a: object,
        b: object = None,
        c: object = None,
        d: object = None,
        e: object = None,
    ) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (time_s, self._seq, kind, a, b, c, d, e))

    def _drop(self, message_id: int, source: str, dest: str, message: object, reason: str) -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + 1
        if self._trace is not None:
            self._trace.record(
                Drop(self._now, source, dest, type(message).__name__, message_id, reason)
            )

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

    # -- helpers -------------------------------------------------------------

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


def _nearest_rank(ordered: list[float], quantile: float) -> float | None:
    """Return the nearest-rank ``quantile`` of an ascending list, or ``None`` if it is empty."""
    if not ordered:
        return None
    rank = max(1, math.ceil(quantile * len(ordered)))
    return ordered[rank - 1]
