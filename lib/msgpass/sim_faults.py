"""Fault injection for the simulated network: partitions, crashes and restarts.

``Simulation`` inherits these methods, so a lab calls them on the simulation
(``sim.partition(...)``, ``sim.crash(...)``). They live in their own module
because they are the failure model, the part of the simulator that a reader
checks first when a protocol misbehaves. The rules:

- A partition cuts links, one way or both. A message is dropped if its link
  is cut when it is sent or when it would arrive, so messages in flight when
  the partition starts are lost too. ``heal`` joins the links again.
- A crashed node receives nothing: messages that arrive while it is down are
  dropped, its timers are cancelled, and messages it tries to send are
  dropped. Messages it sent before the crash are already in the network and
  still arrive.
- ``restart`` runs the node's ``on_restart`` hook, which by default calls
  ``on_start``. The node object and its attributes survive the crash unless
  its ``on_crash`` or ``on_restart`` resets them.

``partition``, ``heal``, ``crash`` and ``restart`` take an optional ``at_s``
that schedules the change at that simulated time instead of making it now.

Left out on purpose: Byzantine faults (nodes that lie), partial network
failures such as a slow but connected link (use a ``LinkConfig`` with a high
latency for those), and disk loss.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from .errors import SimulationError
from .node import Node
from .trace_events import Crash, Restart, Trace

__all__ = ["FaultInjection"]

log = logging.getLogger(__name__)


class FaultInjection:
    """The partition and crash controls of ``Simulation``, as a mixin.

    The attributes below belong to ``Simulation``, which sets them in its
    ``__init__``. They are declared here so that mypy can check the methods.
    """

    _nodes: dict[str, Node]
    _cut: set[tuple[str, str]]  # (source, dest) pairs whose link is cut
    _crashed: set[str]
    _timer_owner: dict[int, str]
    _timers_by_node: dict[str, set[int]]
    _trace: Trace | None
    _now: float
    _quiet: bool
    _rebuild_fast_links: Callable[[], None]  # MessageTransport._rebuild_fast_links

    def schedule(self, at_s: float, fn: Callable[..., object], *args: object) -> None:
        raise NotImplementedError  # Simulation.schedule

    def partition(
        self,
        group_a: Iterable[str] | str,
        group_b: Iterable[str] | str,
        *,
        one_way: bool = False,
        at_s: float | None = None,
    ) -> None:
        """Cut every link from ``group_a`` to ``group_b``, and back unless ``one_way``.

        A group is an iterable of node ids, or one id as a string. With
        ``one_way=True`` messages from a to b are dropped while b to a still
        works, the asymmetric failure that confuses failure detectors.
        ``at_s`` schedules the cut at that simulated time instead of now.
        """
        pairs = self._pairs(group_a, group_b, one_way)
        if at_s is not None:
            self.schedule(at_s, self._cut_links, pairs)
            return
        self._cut_links(pairs)

    def heal(
        self,
        group_a: Iterable[str] | str | None = None,
        group_b: Iterable[str] | str | None = None,
        *,
        one_way: bool = False,
        at_s: float | None = None,
    ) -> None:
        """Reconnect links cut by ``partition``; with no groups, heal every partition.

        With groups, restores the links from ``group_a`` to ``group_b``, and
        back unless ``one_way``. ``at_s`` schedules the healing.
        """
        if group_a is None and group_b is None:
            if at_s is not None:
                self.schedule(at_s, self._heal_links, None)
            else:
                self._heal_links(None)
            return
        if group_a is None or group_b is None:
            raise ValueError("heal needs both groups, or neither to heal every partition")
        pairs = self._pairs(group_a, group_b, one_way)
        if at_s is not None:
            self.schedule(at_s, self._heal_links, pairs)
            return
        self._heal_links(pairs)

    def is_cut(self, source: str, dest: str) -> bool:
        """Return whether a partition currently cuts the link from ``source`` to ``dest``."""
        return (source, dest) in self._cut

    def crash(self, node_id: str, at_s: float | None = None) -> None:
        """Crash ``node_id`` now, or at simulated time ``at_s``.

        Raises ``SimulationError`` for an unknown id, and (when the crash
        happens) if the node is already crashed.
        """
        self._require_node(node_id)
        if at_s is not None:
            self.schedule(at_s, self._crash_now, node_id)
        else:
            self._crash_now(node_id)

    def restart(self, node_id: str, at_s: float | None = None) -> None:
        """Restart crashed node ``node_id`` now, or at ``at_s``; runs its ``on_restart``.

        Raises ``SimulationError`` for an unknown id, and (when the restart
        happens) if the node is not crashed.
        """
        self._require_node(node_id)
        if at_s is not None:
            self.schedule(at_s, self._restart_now, node_id)
        else:
            self._restart_now(node_id)

    def is_crashed(self, node_id: str) -> bool:
        """Return whether ``node_id`` is crashed."""
        return node_id in self._crashed

    # -- applying the changes ---------------------------------------------------

    def _crash_now(self, node_id: str) -> None:
        if node_id in self._crashed:
            raise SimulationError(f"cannot crash node {node_id!r}: it is already crashed")
        self._crashed.add(node_id)
        self._update_quiet()
        for timer_id in self._timers_by_node[node_id]:
            self._timer_owner.pop(timer_id, None)
        self._timers_by_node[node_id].clear()
        if self._trace is not None:
            self._trace.record(Crash(self._now, node_id))
        log.debug("[t=%.6f] node %s crashed", self._now, node_id)
        self._nodes[node_id].on_crash()

    def _restart_now(self, node_id: str) -> None:
        if node_id not in self._crashed:
            raise SimulationError(f"cannot restart node {node_id!r}: it is not crashed")
        self._crashed.discard(node_id)
        self._update_quiet()
        if self._trace is not None:
            self._trace.record(Restart(self._now, node_id))
        log.debug("[t=%.6f] node %s restarted", self._now, node_id)
        self._nodes[node_id].on_restart()

    def _cut_links(self, pairs: set[tuple[str, str]]) -> None:
        self._cut.update(pairs)
        self._update_quiet()

    def _heal_links(self, pairs: set[tuple[str, str]] | None) -> None:
        if pairs is None:
            self._cut.clear()
        else:
            self._cut.difference_update(pairs)
        self._update_quiet()

    def _update_quiet(self) -> None:
        self._quiet = self._trace is None and not self._crashed and not self._cut
        self._rebuild_fast_links()

    def _require_node(self, node_id: str) -> None:
        if node_id not in self._nodes:
            raise SimulationError(
                f"unknown node {node_id!r}; known nodes: {sorted(self._nodes)} "
                f"(add nodes before configuring links, partitions or crashes)"
            )

    def _pairs(
        self, group_a: Iterable[str] | str, group_b: Iterable[str] | str, one_way: bool
    ) -> set[tuple[str, str]]:
        side_a = [group_a] if isinstance(group_a, str) else list(group_a)
        side_b = [group_b] if isinstance(group_b, str) else list(group_b)
        for node_id in side_a + side_b:
            self._require_node(node_id)
        pairs = {(a, b) for a in side_a for b in side_b if a != b}
        if not one_way:
            pairs |= {(b, a) for a, b in pairs}
        return pairs
