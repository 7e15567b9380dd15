"""Running ``Node`` classes on a real network: threads and UDP on loopback.

The simulator shows what an algorithm does under faults that the reader
chooses. This module runs the same node classes on real sockets, so the reader
sees that nothing in the node code depended on the simulation. ``RealRuntime``
implements the ``msgpass.node.Runtime`` protocol:

- Each node gets one ``UdpEndpoint`` bound to 127.0.0.1 on a port the OS
  chooses, a receive thread that reads datagrams from it, and a dispatch
  thread that runs the node's handlers one at a time. Timer firings go through
  the same dispatch thread, so node code needs no locks, as in the simulator.
- One timer thread keeps every node's timers in a heap and hands each due
  timer to its node's dispatch thread. A timer cancelled before its handler
  runs never runs.
- Messages travel as one JSON datagram each. Nothing is pickled. The envelope::

      {"type": "Ping", "fields": {"seq": 1},
       "source": "a", "message_id": 7, "sent_at_s": 0.0123}

  ``type`` and ``fields`` are the message: its class name and
  ``dataclasses.asdict``. The receiver rebuilds the message only from the
  classes in the registry passed to the runtime. A datagram with an unknown
  type or with fields that do not fit the class is logged and dropped.
  ``source``, ``message_id`` and ``sent_at_s`` feed the handler's ``sender``
  argument and the trace. ``msgpass.node_wire`` encodes and decodes it, and
  this module re-exports ``encode_message`` and ``decode_message``.

``run_nodes`` wraps the whole life cycle: start, run until a predicate is true
or for a fixed time, stop every thread and close every socket.

Differences from the simulator that a lab should point out:

- Times are wall-clock seconds since ``start``, and they vary from run to run.
- UDP on loopback rarely loses a datagram, but it can when a receive buffer
  overflows. There are no injected faults, crashes or partitions here.
- A JSON round trip turns tuples into lists, so message fields should be lists.

Left out on purpose: more than one process or host, TCP and ZeroMQ transports,
and retransmission. A node that needs reliability builds it from ``send`` and
timers, exactly as it would on the simulator.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .errors import EndpointClosed, MessagingError, MessagingTimeout, ProtocolError
from .node import Node, TimerHandle, derive_node_seed, message_type_name
from .node_wire import _build_registry, decode_message, encode_message
from .trace_events import Deliver, Send, TimerFired, Trace, TraceEvent
from .udp import UdpEndpoint

__all__ = ["RealRuntime", "run_nodes", "encode_message", "decode_message"]

log = logging.getLogger(__name__)

# How often the receive, dispatch and timer threads check for a stop request,
# in seconds. It bounds how long ``stop`` waits for an idle thread.
POLL_INTERVAL_S = 0.05

# How long ``stop`` waits for each thread to finish, in seconds.
STOP_TIMEOUT_S = 2.0

_START = "start"
_MESSAGE = "message"
_TIMER = "timer"


class _NodeWorker:
    """The socket, inbox, lock and threads of one node, owned by ``RealRuntime``."""

    def __init__(self, node: Node, endpoint: UdpEndpoint) -> None:
        self.node = node
        self.endpoint = endpoint
        self.inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        # Held while a handler runs, so a predicate can read a consistent state.
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []


class RealRuntime:
    """Run ``Node`` objects as threads that exchange JSON datagrams over loopback UDP.

    ``message_types`` lists every message class the nodes send. It is the
    registry the receiver rebuilds messages from, and ``send`` rejects any
    other class before it reaches the wire. Use it as a context manager, so
    that threads stop and sockets close even when a test fails::

        with RealRuntime([Pinger("a"), Ponger("b")], [Ping, Pong]) as runtime:
            runtime.start()
            runtime.wait_until(lambda: nodes[0].done, timeout_s=5.0)

    An exception raised by a handler is logged with the node id, kept in
    ``errors``, and raised again by the next ``wait_until`` or ``run_for``.
    The node goes on handling later messages.
    """

    def __init__(
        self,
        nodes: Sequence[Node],
        message_types: Iterable[type[Any]],
        *,
        seed: int = 0,
        trace: Trace | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self._registry = _build_registry(message_types)
        self._nodes: dict[str, Node] = {}
        for node in nodes:
            if node.node_id in self._nodes:
                raise ValueError(f"invalid nodes: node id {node.node_id!r} appears twice")
            self._nodes[node.node_id] = node
        self.seed = seed
        self.trace = trace
        self.host = host
        self.errors: list[BaseException] = []

        self._workers: dict[str, _NodeWorker] = {}
        self._addresses: dict[str, tuple[str, int]] = {}
        self._state = "new"
        self._start_monotonic = 0.0
        self._stop = threading.Event()
        self._counter_lock = threading.Lock()
        self._message_ids = itertools.count(1)
        self._timer_ids = itertools.count(1)
        self._counts = {"sent": 0, "delivered": 0, "timers_fired": 0, "dropped_invalid": 0}
        # Woken after every handler call, so waiters re-check their predicate.
        self._progress = threading.Condition()
        self._timer_condition = threading.Condition()
        self._timer_heap: list[tuple[float, int, str, str]] = []
        self._live_timers: set[int] = set()
        self._timer_thread: threading.Thread | None = None

    # -- the Runtime protocol ----------------------------------------------

    def now(self) -> float:
        """Return seconds since ``start`` on the monotonic clock, or 0.0 before it."""
        if self._state == "new":
            return 0.0
        return time.monotonic() - self._start_monotonic

    def send(self, source: str, dest: str, message: object) -> None:
        """Send ``message`` from node ``source`` to node ``dest`` as one UDP datagram.

        Raises ``ValueError`` for an unknown node or an unregistered message
        class, ``PayloadTooLarge`` above the UDP limit, and ``EndpointClosed``
        once the runtime has stopped.
        """
        if self._state != "running":
            raise EndpointClosed(f"cannot send from {source!r}: the runtime is {self._state}")
        worker = self._require_worker(source)
        address = self._addresses.get(dest)
        if address is None:
            raise ValueError(
                f"cannot send to {dest!r}: node not found; nodes are {sorted(self._nodes)}"
            )
        type_name = message_type_name(message)
        if self._registry.get(type_name) is not type(message):
            raise ValueError(
                f"cannot send {type_name}: it is not in the runtime's message types "
                f"{sorted(self._registry)}; pass it in message_types"
            )
        with self._counter_lock:
            message_id = next(self._message_ids)
            self._counts["sent"] += 1
        sent_at_s = self.now()
        data = encode_message(message, source=source, message_id=message_id, sent_at_s=sent_at_s)
        self._record(Send(sent_at_s, source, dest, type_name, message_id, len(data)))
        worker.endpoint.send_to(data, address)

    def set_timer(self, node_id: str, delay_s: float, name: str) -> TimerHandle:
        """Arm a timer that runs node ``node_id``'s handler for ``name`` after ``delay_s`` s."""
        self._require_worker(node_id)
        if not delay_s >= 0:
            raise ValueError(f"invalid delay_s: {delay_s!r}; expected 0 or more seconds")
        with self._timer_condition:
            timer_id = next(self._timer_ids)
            self._live_timers.add(timer_id)
            heapq.heappush(self._timer_heap, (self.now() + delay_s, timer_id, node_id, name))
            self._timer_condition.notify()
        return TimerHandle(node_id, name, timer_id)

    def cancel_timer(self, handle: TimerHandle) -> None:
        """Disarm a timer; a timer that already fired or was cancelled is ignored."""
        with self._timer_condition:
            self._live_timers.discard(handle.timer_id)

    # -- life cycle ----------------------------------------------------------

    @property
    def nodes(self) -> dict[str, Node]:
        """The nodes of this runtime, by id."""
        return dict(self._nodes)

    def address_of(self, node_id: str) -> tuple[str, int]:
        """Return the UDP address that node ``node_id`` receives on (after ``start``)."""
        if node_id not in self._addresses:
            raise ValueError(f"no address for {node_id!r}: unknown node, or start() not called")
        return self._addresses[node_id]

    def start(self) -> None:
        """Bind one socket per node, start the threads and run every node's ``on_start``.

        Each ``on_start`` runs on its node's dispatch thread before any message
        to that node is handled. Starting twice raises ``MessagingError``.
        """
        if self._state != "new":
            raise MessagingError(f"cannot start: the runtime is already {self._state}")
        self._state = "running"
        self._start_monotonic = time.monotonic()
        try:
            for node_id, node in self._nodes.items():
                endpoint = UdpEndpoint(self.host, 0, timeout_s=POLL_INTERVAL_S)
                self._workers[node_id] = _NodeWorker(node, endpoint)
                self._addresses[node_id] = endpoint.address
                node.attach(self, derive_node_seed(self.seed, node_id))
            for worker in self._workers.values():
                worker.inbox.put((_START,))
                self._spawn(worker, self._dispatch_loop, "dispatch")
                self._spawn(worker, self._receive_loop, "receive")
            self._timer_thread = threading.Thread(
                target=self._timer_loop, name="msgpass-real-timers", daemon=True
            )
            self._timer_thread.start()
        except BaseException:
            self.stop()
            raise
        log.info("real runtime started %d nodes: %s", len(self._nodes), self._addresses)

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        """Block until ``predicate()`` is true, checking after every handler call and drop.

        The predicate runs while no handler runs, so it may read node
        attributes freely. Raises the first handler error if one happened,
        and ``MessagingTimeout`` if ``timeout_s`` passes first.
        """
        if not self._wait(predicate, timeout_s):
            raise MessagingTimeout(
                f"condition not reached within {timeout_s} s; nodes: "
                + ", ".join(repr(node) for node in self._nodes.values())
            )

    def run_for(self, duration_s: float) -> None:
        """Let the nodes run for ``duration_s`` seconds, then return.

        Raises the first handler error as soon as it happens.
        """
        self._wait(lambda: False, duration_s)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop every thread, waiting up to ``timeout_s`` for each, and close every socket.

        Stopping twice is allowed. Raises ``MessagingTimeout`` naming the
        threads that did not finish, which happens when a handler never returns.
        """
        if self._state == "stopped":
            return
        self._state = "stopping"
        self._stop.set()
        with self._timer_condition:
            self._timer_condition.notify_all()
        stuck: list[str] = []
        threads = [thread for worker in self._workers.values() for thread in worker.threads]
        if self._timer_thread is not None:
            threads.append(self._timer_thread)
        for thread in threads:
            thread.join(timeout_s)
            if thread.is_alive():
                stuck.append(thread.name)
        for worker in self._workers.values():
            worker.endpoint.close()
        self._state = "stopped"
        log.info("real runtime stopped: %s", self.stats())
        if stuck:
            log.error("real runtime threads did not stop within %s s: %s", timeout_s, stuck)
            raise MessagingTimeout(
                f"threads {stuck} did not stop within {timeout_s} s; a handler is probably "
                f"blocked or looping, and its sockets were closed anyway"
            )

    def close(self) -> None:
        """Same as ``stop()``, for use as a context manager."""
        self.stop()

    def __enter__(self) -> RealRuntime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stats(self) -> dict[str, int]:
        """Count messages sent and delivered, timers fired, invalid datagrams and errors."""
        with self._counter_lock:
            counts = dict(self._counts)
        counts["handler_errors"] = len(self.errors)
        counts["operations"] = sum(node.operations for node in self._nodes.values())
        return counts

    def __repr__(self) -> str:
        counts = self.stats()
        return (
            f"<RealRuntime {self._state} nodes={sorted(self._nodes)} sent={counts['sent']} "
            f"delivered={counts['delivered']} errors={counts['handler_errors']}>"
        )

    # -- threads -------------------------------------------------------------

    def _spawn(self, worker: _NodeWorker, loop: Callable[[_NodeWorker], None], role: str) -> None:
        thread = threading.Thread(
            target=loop, args=(worker,), name=f"msgpass-real-{worker.node.node_id}-{role}",
            daemon=True,
        )
        worker.threads.append(thread)
        thread.start()

    def _receive_loop(self, worker: _NodeWorker) -> None:
        node_id = worker.node.node_id
        while not self._stop.is_set():
            try:
                data, _ = worker.endpoint.recv()
            except MessagingTimeout:
                continue
            except EndpointClosed:
                return
            except MessagingError as error:
                log.warning("node %s: receive failed and the datagram is lost: %s", node_id, error)
                continue
            try:
                message, source, message_id, sent_at_s = decode_message(data, self._registry)
            except ProtocolError as error:
                with self._counter_lock:
                    self._counts["dropped_invalid"] += 1
                log.warning("node %s dropped a datagram: %s", node_id, error)
                self._notify_progress()
                continue
            worker.inbox.put((_MESSAGE, source, message, message_id, sent_at_s))

    def _dispatch_loop(self, worker: _NodeWorker) -> None:
        while not self._stop.is_set():
            try:
                item = worker.inbox.get(timeout=POLL_INTERVAL_S)
            except queue.Empty:
                continue
            with worker.lock:
                self._handle(worker.node, item)
            self._notify_progress()

    def _handle(self, node: Node, item: tuple[Any, ...]) -> None:
        kind = item[0]
        try:
            if kind == _START:
                node.on_start()
            elif kind == _MESSAGE:
                _, source, message, message_id, sent_at_s = item
                type_name = message_type_name(message)
                self._record(Deliver(self.now(), source, node.node_id, type_name,
                                     message_id, sent_at_s))
                with self._counter_lock:
                    self._counts["delivered"] += 1
                node.dispatch(source, message)
            else:
                _, timer_id, name = item
                with self._timer_condition:
                    if timer_id not in self._live_timers:
                        return
                    self._live_timers.discard(timer_id)
                self._record(TimerFired(self.now(), node.node_id, name))
                with self._counter_lock:
                    self._counts["timers_fired"] += 1
                node.fire_timer(name)
        except Exception as error:
            log.error("node %s failed handling %s: %r", node.node_id, item[:3], error,
                      exc_info=error)
            self.errors.append(error)

    def _timer_loop(self) -> None:
        with self._timer_condition:
            while not self._stop.is_set():
                if not self._timer_heap:
                    self._timer_condition.wait(POLL_INTERVAL_S)
                    continue
                due_s, timer_id, node_id, name = self._timer_heap[0]
                wait_s = due_s - self.now()
                if wait_s > 0:
                    self._timer_condition.wait(min(wait_s, POLL_INTERVAL_S))
                    continue
                heapq.heappop(self._timer_heap)
                if timer_id in self._live_timers:
                    self._workers[node_id].inbox.put((_TIMER, timer_id, name))

    # -- helpers -------------------------------------------------------------

    def _wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        if self._state != "running":
            raise MessagingError(f"cannot wait: the runtime is {self._state}; call start() first")
        if not timeout_s >= 0:
            raise ValueError(f"invalid timeout_s: {timeout_s!r}; expected 0 or more seconds")
        deadline = time.monotonic() + timeout_s
        with self._progress:
            while True:
                if self.errors:
                    raise self.errors[0]
                if self._check(predicate):
                    return True
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    return False
                self._progress.wait(remaining_s)

    def _check(self, predicate: Callable[[], bool]) -> bool:
        # Locks are taken in one fixed order, and a dispatch thread holds only
        # its own, so this cannot deadlock with the handlers.
        workers = list(self._workers.values())
        for worker in workers:
            worker.lock.acquire()
        try:
            return bool(predicate())
        finally:
            for worker in reversed(workers):
                worker.lock.release()

    def _notify_progress(self) -> None:
        with self._progress:
            self._progress.notify_all()

    def _record(self, event: TraceEvent) -> None:
        if self.trace is not None:
            with self._counter_lock:
                self.trace.record(event)

    def _require_worker(self, node_id: str) -> _NodeWorker:
        worker = self._workers.get(node_id)
        if worker is None:
            raise ValueError(f"unknown node {node_id!r}; nodes are {sorted(self._nodes)}")
        return worker


def run_nodes(
    nodes: Sequence[Node],
    message_types: Iterable[type[Any]],
    *,
    duration_s: float | None = None,
    until: Callable[[], bool] | None = None,
    timeout_s: float = 10.0,
    seed: int = 0,
    trace: Trace | None = None,
) -> dict[str, int]:
    """Run ``nodes`` on a ``RealRuntime`` and return its ``stats()`` after a clean stop.

    Pass either ``duration_s`` (run that long) or ``until`` (run until the
    predicate is true, at most ``timeout_s`` seconds, else ``MessagingTimeout``).
    Every thread is joined and every socket closed before this returns or
    raises. A handler error is raised here, as it would be on the simulator.
    """
    if (duration_s is None) == (until is None):
        raise ValueError("invalid arguments: pass exactly one of duration_s and until")
    with RealRuntime(nodes, message_types, seed=seed, trace=trace) as runtime:
        runtime.start()
        if until is not None:
            runtime.wait_until(until, timeout_s)
        elif duration_s is not None:
            runtime.run_for(duration_s)
    return runtime.stats()
