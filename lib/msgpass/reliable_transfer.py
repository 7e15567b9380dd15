"""Measuring one reliable transfer on the simulator: completion, order and goodput.

``simulate_transfer`` runs a sender and a receiver from ``msgpass.reliable``
on a fresh ``Simulation`` with the links a lab chooses, and returns a
``TransferResult``: whether every item arrived in order, how long it took and
the goodput, which counts each item's ``Data`` size once however often it was
sent. Lab 11 compares these numbers with the goodput formulas of
``msgpass.models``.

``msgpass.reliable`` re-exports both names.

Left out on purpose: repeated runs and confidence intervals. A lab repeats
the call with several seeds itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .reliable_messages import segment_bytes
from .sim import LinkConfig, SimStats, Simulation
from .trace_events import Trace

if TYPE_CHECKING:  # msgpass.reliable imports this module, so only type checkers import it here
    from .reliable import ReliableSender, SlidingWindowReceiver

__all__ = ["TransferResult", "simulate_transfer"]


@dataclass(frozen=True)
class TransferResult:
    """The outcome of ``simulate_transfer``.

    ``duration_s`` is the simulated time from the start to the last ``Ack``
    (``None`` if the transfer did not finish). ``goodput_bytes_per_s`` counts
    each item's ``Data`` size once, however often it was sent.
    """

    completed: bool
    in_order: bool
    duration_s: float | None
    goodput_bytes_per_s: float | None
    data_sent: int
    retransmissions: int
    sim_stats: SimStats


def simulate_transfer(
    sender: ReliableSender,
    receiver: SlidingWindowReceiver,
    *,
    link: LinkConfig,
    reverse_link: LinkConfig | None = None,
    seed: int = 0,
    until_s: float = 600.0,
    trace: Trace | None = None,
) -> TransferResult:
    """Run ``sender`` and ``receiver`` on a new ``Simulation`` until the sender is done.

    ``link`` carries ``Data`` from sender to receiver and ``reverse_link``
    (default: the same config) carries the ``Ack``s. The run stops when the
    sender is done or at ``until_s`` simulated seconds. ``in_order`` is
    whether the receiver delivered exactly the sender's items, in order.
    """
    sim = Simulation(seed=seed, trace=trace)
    sim.add_node(sender)
    sim.add_node(receiver)
    sim.set_link(sender.node_id, receiver.node_id, link, both_ways=False)
    back = reverse_link if reverse_link is not None else link
    sim.set_link(receiver.node_id, sender.node_id, back, both_ways=False)
    stats = sim.run(until_s=until_s, until=lambda: sender.completed_at_s is not None)

    duration_s = sender.completed_at_s
    goodput = None
    if duration_s is not None and duration_s > 0:
        goodput = segment_bytes(sender.items) / duration_s
    return TransferResult(
        completed=sender.done,
        in_order=receiver.delivered == sender.items,
        duration_s=duration_s,
        goodput_bytes_per_s=goodput,
        data_sent=sender.data_sent,
        retransmissions=sender.retransmissions,
        sim_stats=stats,
    )
