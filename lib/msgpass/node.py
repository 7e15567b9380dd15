"""The node API: code for one process of a distributed system, written once, run anywhere.

A distributed algorithm is a set of processes that react to two things: a
message arriving and a timer going off. A ``Node`` subclass writes those
reactions as methods, and a *runtime* delivers messages and fires timers:

- ``msgpass.sim.Simulation`` runs nodes on a simulated network with a virtual
  clock, seeded faults and a replayable schedule.
- ``msgpass.explore.explore`` runs the same nodes under every delivery order.
- a real runtime runs them as threads exchanging JSON over loopback sockets.

The node never learns which runtime it is on: it only calls ``send``,
``set_timer``, ``cancel_timer``, ``now``, ``random`` and ``log``::

    @dataclass(frozen=True)
    class Ping:
        seq: int

    class Pinger(Node):
        def on_start(self) -> None:
            self.send("b", Ping(seq=1))
            self.set_timer(0.5, "retry")

        def on_Ping(self, sender: str, message: Ping) -> None:
            ...

        def on_timer_retry(self) -> None:
            ...

Dispatch rules:

- A message of class ``Ping`` goes to ``on_Ping(sender, message)``. A node that
  receives a type it has no handler for raises ``MissingHandler``, naming the
  method it expected.
- A timer called ``"retry"`` goes to ``on_timer_retry()`` if the class defines
  it, otherwise to ``on_timer("retry")``.
- ``on_start`` runs once when the runtime starts the node. ``on_crash`` runs
  when a simulated crash stops it, and ``on_restart`` when it comes back.

Crash and restart keep the Python object, so every attribute survives a crash
unless the class resets it. A class that models a process losing its memory
resets its volatile attributes in ``on_crash`` or ``on_restart``. The default
``on_restart`` calls ``on_start`` again.

Messages are frozen dataclasses whose fields are JSON values (numbers, strings,
booleans, ``None``, lists and dicts of those), so that the real runtime can put
them on the wire as JSON and the simulator can measure their size.

Left out on purpose: request/reply helpers, RPC stubs and reliable delivery.
Those are built from ``send`` and timers in the labs.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import random
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import MissingHandler, SimulationError

__all__ = [
    "TimerHandle",
    "Runtime",
    "Node",
    "NodeRandom",
    "message_type_name",
    "message_size_bytes",
    "derive_node_seed",
]

log = logging.getLogger(__name__)

# Attributes that the base class and the runtime manage. ``Node.state`` leaves
# them out, so they never count as the node's own state when explore compares states.
_RUNTIME_ATTRIBUTES = frozenset({"node_id", "random", "log", "_runtime", "_operations"})


@dataclass(frozen=True)
class TimerHandle:
    """The receipt for one armed timer; pass it to ``cancel_timer`` to disarm the timer.

    ``timer_id`` is unique within one runtime, so two timers with the same name
    remain distinct.
    """

    node_id: str
    name: str
    timer_id: int


class Runtime(Protocol):
    """The interface a runtime offers its nodes: a clock, message sending and timers.

    ``Node`` calls these with its own id. The simulator, the explorer and the
    real runtime implement them, so a node class runs unchanged on each.
    """

    def now(self) -> float:
        """Return the current time in seconds on this runtime's clock."""
        ...

    def send(self, source: str, dest: str, message: object) -> None:
        """Hand ``message`` to the network for delivery from ``source`` to ``dest``."""
        ...

    def set_timer(self, node_id: str, delay_s: float, name: str) -> TimerHandle:
        """Arm a timer that fires ``name`` at node ``node_id`` after ``delay_s`` seconds."""
        ...

    def cancel_timer(self, handle: TimerHandle) -> None:
        """Disarm a timer; cancelling one that already fired or was cancelled does nothing."""
        ...


class _Unattached:
    """The runtime of a node that no runtime has attached yet: every call explains that."""

    def _fail(self) -> SimulationError:
        return SimulationError(
            "this node is not attached to a runtime; add it to a Simulation "
            "(sim.add_node(node)) or a real runtime before it sends, sets timers or reads now()"
        )

    def now(self) -> float:
        raise self._fail()

    def send(self, source: str, dest: str, message: object) -> None:
        raise self._fail()

    def set_timer(self, node_id: str, delay_s: float, name: str) -> TimerHandle:
        raise self._fail()

    def cancel_timer(self, handle: TimerHandle) -> None:
        raise self._fail()


_UNATTACHED = _Unattached()


class _NodeLogAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefix each log line with the runtime's time and the node id."""

    def __init__(self, node: Node) -> None:
        super().__init__(logging.getLogger(f"{__name__}.{node.node_id}"), {})
        self._node = node

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        node = self._node
        now = node._runtime.now() if node._runtime is not _UNATTACHED else 0.0
        return f"[t={now:.6f} {node.node_id}] {msg}", kwargs


class NodeRandom(random.Random):
    """The random number generator of a node: a ``random.Random`` with a fast deep copy.

    ``msgpass.explore`` deep-copies every node at every step. ``copy.deepcopy``
    of a plain ``Random`` goes through ``__reduce__`` and copies the 625-number
    Mersenne Twister state one number at a time, which took about half the time
    of an exploration (measured with cProfile on the lab 12 checkers). This
    class copies the state with one ``getstate`` and ``setstate``, so the copy
    draws the same numbers as the original from then on.
    """

    def __deepcopy__(self, memo: dict[int, object]) -> NodeRandom:
        clone = type(self).__new__(type(self))  # no seeding: setstate replaces the state
        memo[id(self)] = clone
        clone.setstate(self.getstate())
        for key, value in vars(self).items():  # attributes a subclass may add
            setattr(clone, key, copy.deepcopy(value, memo))
        return clone


class Node:
    """Base class of a process in a message-passing system.

    Subclasses define ``on_<MessageType>(sender, message)`` handlers, timer
    handlers and the ``on_start`` hook. Everything else is here:

    - ``send(dest, message)``: hand a message to the network. It returns at
      once and gives no guarantee of delivery.
    - ``set_timer(delay_s, name)`` / ``cancel_timer(handle)``: timers by name.
    - ``now()``: the runtime's clock in seconds.
    - ``random``: a ``NodeRandom`` (a ``random.Random``) seeded from the run's
      seed and the node id. A node that draws its random numbers only from it
      replays exactly.
    - ``log``: a logger whose lines start with the time and the node id.
    - ``count_operation()``: count one client-visible operation, so the runtime
      can report messages per operation.

    A runtime calls ``attach`` before anything else, then ``on_start``,
    ``dispatch`` for each message and ``fire_timer`` for each timer.
    """

    def __init__(self, node_id: str) -> None:
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"invalid node id {node_id!r}: expected a non-empty string")
        self.node_id = node_id
        self.random: random.Random = NodeRandom(derive_node_seed(0, node_id))
        self.log: logging.LoggerAdapter = _NodeLogAdapter(self)  # type: ignore[type-arg]
        self._runtime: Runtime = _UNATTACHED
        self._operations = 0

    # -- wiring, called by runtimes ----------------------------------------

    def attach(self, runtime: Runtime, seed: int) -> None:
        """Connect the node to ``runtime`` and reseed ``random`` with ``seed``.

        Runtimes call this once when the node is added; node code does not.
        """
        self._runtime = runtime
        self.random.seed(seed)

    def dispatch(self, sender: str, message: object) -> None:
        """Call the handler named after the message's class: ``on_<ClassName>(sender, message)``.

        Raises ``MissingHandler`` if the class defines no such method.
        """
        type_name = type(message).__name__
        handler = getattr(self, "on_" + type_name, None)
        if handler is None:
            raise MissingHandler(
                self.node_id,
                type(self).__name__,
                f"message {type_name} from {sender!r}",
                ["on_" + type_name + "(self, sender, message)"],
            )
        handler(sender, message)

    def fire_timer(self, name: str) -> None:
        """Call ``on_timer_<name>()`` if the class defines it, else ``on_timer(name)``."""
        handler = getattr(self, "on_timer_" + name, None)
        if handler is not None:
            handler()
        else:
            self.on_timer(name)

    # -- what node code calls ------------------------------------------------

    def send(self, dest: str, message: object) -> None:
        """Send ``message`` to node ``dest``. Returns at once; delivery is up to the network."""
        self._runtime.send(self.node_id, dest, message)

    def set_timer(self, delay_s: float, name: str) -> TimerHandle:
        """Arm a timer that calls this node's timer handler for ``name`` after ``delay_s`` s."""
        return self._runtime.set_timer(self.node_id, delay_s, name)

    def cancel_timer(self, handle: TimerHandle) -> None:
        """Disarm a timer set by ``set_timer``; a timer that already fired is ignored."""
        self._runtime.cancel_timer(handle)

    def now(self) -> float:
        """Return the runtime's current time in seconds."""
        return self._runtime.now()

    def count_operation(self, count: int = 1) -> None:
        """Count ``count`` completed client operations for the messages-per-operation figure."""
        self._operations += count

    @property
    def operations(self) -> int:
        """The number of operations this node has counted with ``count_operation``."""
        return self._operations

    # -- hooks a subclass may override -------------------------------------

    def on_start(self) -> None:
        """Run once when the runtime starts the node. The default does nothing."""

    def on_crash(self) -> None:
        """Run when a simulated crash stops the node.

        The node is already marked crashed, its timers are cancelled and
        messages it sends from here are dropped. Use it to forget volatile state.
        """

    def on_restart(self) -> None:
        """Run when a crashed node comes back. The default calls ``on_start``."""
        self.on_start()

    def on_timer(self, name: str) -> None:
        """Handle a timer that has no ``on_timer_<name>`` method. The default raises."""
        raise MissingHandler(
            self.node_id,
            type(self).__name__,
            f"timer {name!r}",
            [f"on_timer_{name}(self)", "on_timer(self, name)"],
        )

    # -- state, for exploration and display ----------------------------------

    def state(self) -> dict[str, Any]:
        """Return the node's own state as a dict, for comparing and displaying states.

        The default is ``vars(self)`` without the attributes that the base
        class and the runtime own (``node_id``, ``random``, ``log``,
        ``_runtime``, ``_operations``). ``msgpass.explore`` treats two nodes
        whose ``state()`` has the same canonical form as the same state, and
        compares values of types it does not know by ``repr``. Override this
        method when some attributes are caches that should not count, or to
        return values whose ``repr`` shows their whole content.
        """
        return {key: value for key, value in vars(self).items() if key not in _RUNTIME_ATTRIBUTES}

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in self.state().items())
        return f"{type(self).__name__}({self.node_id!r}{', ' if fields else ''}{fields})"


def message_type_name(message: object) -> str:
    """Return the name that handlers and traces use for ``message``: its class name."""
    return type(message).__name__


def message_size_bytes(message: object) -> int:
    """Return the size of ``message`` on the wire, in bytes, for bandwidth and traces.

    A message that has a ``size_bytes`` attribute (a field or a property) sets
    its own size, which lets a lab model a 1 MB payload without building one.
    Otherwise the size is the length of the message's JSON encoding:
    ``len(json.dumps(dataclasses.asdict(message)))`` for a dataclass, and
    ``len(json.dumps(message))`` for a plain JSON value. Anything else raises
    ``TypeError``, because it could not travel on the real runtime either.
    """
    declared = getattr(message, "size_bytes", None)
    if isinstance(declared, int) and not isinstance(declared, bool):
        if declared < 0:
            raise ValueError(
                f"{type(message).__name__}.size_bytes is {declared}; a size must be >= 0"
            )
        return declared
    if dataclasses.is_dataclass(message) and not isinstance(message, type):
        payload: object = dataclasses.asdict(message)
    else:
        payload = message
    try:
        return len(json.dumps(payload))
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"message {type(message).__name__} is not JSON-serializable ({error}); "
            f"use fields of JSON types (int, float, str, bool, None, list, dict) "
            f"or give the message a size_bytes attribute"
        ) from error


def derive_node_seed(run_seed: int, node_id: str) -> int:
    """Return the seed of a node's ``random``, derived from the run's seed and the node id.

    SHA-256 makes the result independent of ``PYTHONHASHSEED`` and of the
    order in which nodes are added, so a node's random numbers replay exactly.
    """
    digest = hashlib.sha256(f"{run_seed}/{node_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")
