"""The send path of the simulator: from ``send`` to the message's arrival event.

When a node calls ``send``, the simulation's ``_send`` decides the message's
fate at once and schedules one event for it:

1. The link from source to dest is looked up, and created on first use with
   the simulation's ``default_link``.
2. A send from a crashed node, or over a cut link, is dropped at once.
3. With a bandwidth limit, the message waits for the messages queued before
   it on the link, then occupies the link for ``size_bytes / bandwidth`` s.
4. ``_propagate`` draws the latency, then loss, then reordering. A lost
   message gets a loss event at the time it would have arrived, so a
   sequence diagram shows it vanish in transit. Unless reordered, the
   arrival is pushed back to the link's previous arrival, which keeps the
   link FIFO.
5. With probability ``duplicate`` a second copy goes through step 4 too.

Every draw comes from the simulation's one generator in this fixed order,
which is what makes a seeded run replay.

The fast path: in the benchmark model, and in most labs, links have no
random faults and no bandwidth limit, and no trace, crash or partition is
active. ``_send`` then skips steps 2, 3 and 5 and every check for them. It
makes the same draws, and schedules the same event, as the general path.

Events are tuples, compared by ``heapq`` element by element:
``(time_s, seq, kind, ...)``. ``seq`` grows by one per event, so events at
the same time keep the order in which they were scheduled, and the
comparison never reaches the payload.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from heapq import heappush
from math import log as ln  # named ln so it does not read as a logger
from typing import Any

from .errors import SimulationError
from .node import Node, message_size_bytes
from .sim_links import LinkConfig, _LinkState
from .trace_events import (
    DROP_CRASHED,
    DROP_PARTITION,
    Drop,
    Duplicate,
    Send,
    Trace,
)

__all__ = ["MessageTransport"]

# Event kinds, the third element of every event tuple.
_DELIVER = 0  # (time_s, seq, _DELIVER, message_id, source, dest, message, sent_at_s)
_LOSS = 1  # (time_s, seq, _LOSS, message_id, source, dest, message, sent_at_s)
_TIMER = 2  # (time_s, seq, _TIMER, timer_id, node_id, name, None, None)
_CALL = 3  # (time_s, seq, _CALL, fn, args, None, None, None)



class MessageTransport:
    """The send path and the event queue of ``Simulation``, as a mixin.

    The attributes below belong to ``Simulation``, which sets them in its
    ``__init__``. They are declared here so that mypy can check the methods.
    """

    _rng: random.Random
    _random: Callable[[], float]  # _rng.random, bound once
    _now: float
    _queue: list[tuple[Any, ...]]
    _seq: int
    _sent: int
    _duplicated: int
    _dropped: dict[str, int]
    _trace: Trace | None
    _nodes: dict[str, Node]
    _links: dict[tuple[str, str], _LinkState]
    _fast_links: dict[str, dict[str, _LinkState]]  # source -> dest -> link
    _default_link_state: _LinkState | None
    _cut: set[tuple[str, str]]
    _crashed: set[str]
    _quiet: bool
    default_link: LinkConfig

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
        heappush(self._queue, (time_s, self._seq, kind, a, b, c, d, e))

    def _send(self, source: str, dest: str, message: object) -> None:
        link = self._fast_links[source].get(dest)
        if link is None:
            self._send_general(source, dest, message)
            return

        # The fast path, for a link in _fast_links: nothing to record, nothing to
        # drop and no bandwidth limit. It makes the same random draw, and
        # schedules the same event, as _send_general would for this link.
        self._sent = message_id = self._sent + 1
        now = self._now
        # An Exponential latency is drawn inline with the formula of
        # random.expovariate (CPython 3.11 to 3.13) from the same generator, so
        # the draw equals sample_latency's. It saves two Python calls per message.
        rate = link.exponential_rate
        delay_s = -ln(1.0 - self._random()) / rate if rate else link.sample_latency()
        arrives_s = now + delay_s
        if arrives_s < link.last_arrival_s:
            arrives_s = link.last_arrival_s  # FIFO: never before an earlier message
        link.last_arrival_s = arrives_s
        self._seq = seq = self._seq + 1
        heappush(self._queue, (arrives_s, seq, _DELIVER, message_id, source, dest, message, now))

    def _send_general(self, source: str, dest: str, message: object) -> None:
        link = self._links.get((source, dest))
        if link is None:
            # Links are created on first use, so an unknown dest is caught here.
            if dest not in self._nodes:
                raise SimulationError(
                    f"node {source!r} sent {type(message).__name__} to unknown node {dest!r}; "
                    f"known nodes: {sorted(self._nodes)}"
                )
            link = self._add_default_link((source, dest))
            if link.plain and self._quiet:
                self._send(source, dest, message)  # the new link is on the fast path
                return
        self._sent += 1  # every send gets the next id, even one dropped at once
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

    def _add_link(self, pair: tuple[str, str], config: LinkConfig) -> _LinkState:
        link = self._links[pair] = _LinkState(config, self._rng)
        self._update_fast_link(pair, link)
        return link

    def _add_default_link(self, pair: tuple[str, str]) -> _LinkState:
        # Most links use the default config, and a network of n nodes has
        # n * (n - 1) of them, so they are copied from one template.
        template = self._default_link_state
        if template is None or template.config is not self.default_link:
            template = self._default_link_state = _LinkState(self.default_link, self._rng)
        link = self._links[pair] = template.copy_unused()
        self._update_fast_link(pair, link)
        return link

    def _update_fast_link(self, pair: tuple[str, str], link: _LinkState) -> None:
        if link.plain and self._quiet:
            self._fast_links[pair[0]][pair[1]] = link
        else:
            self._fast_links[pair[0]].pop(pair[1], None)

    def _rebuild_fast_links(self) -> None:
        """Fill ``_fast_links`` again after the simulation became quiet or stopped being so."""
        self._fast_links = {node_id: {} for node_id in self._nodes}
        if self._quiet:
            for (source, dest), link in self._links.items():
                if link.plain:
                    self._fast_links[source][dest] = link

    def _drop(self, message_id: int, source: str, dest: str, message: object, reason: str) -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + 1
        if self._trace is not None:
            self._trace.record(
                Drop(self._now, source, dest, type(message).__name__, message_id, reason)
            )

