"""The checkers of the delivery-guarantee exercises in lab 12.

Three exercises, each a ``Node`` class written by the learner:

- ``dedup-receiver``: a ``Receiver`` subclass whose ``on_Data`` processes each
  (sender, seq) id once and sends an ``Ack`` for every copy.
- ``at-least-once-sender``: a sender that retransmits each message every
  ``retry_s`` seconds until it is acknowledged, at most ``max_attempts`` sends
  in all, and lists the messages it gave up on in ``gave_up``.
- ``ordered-delivery``: a ``Receiver`` subclass that processes each sender's
  messages in ``seq`` order from 0, with no gaps and no duplicates.

Each checker pairs the candidate with the reference node of the other side
(from ``msgpass.guarantees``) and runs it three ways. The receiver checkers
first make sure that two fresh receivers share no memory, because a set
created on the class instead of in ``__init__`` otherwise shows up later as
messages that were never processed. A few deterministic
scenarios each isolate one mistake. ``run_chaos`` runs 50 seeded simulations
with loss, duplication, reordering and a crash, whose faults end at a known
time so that liveness can be asserted. ``explore_small`` tries every delivery
order, drop and timer firing of a two-message case.
A failure report includes the failing run as text, and the same run is drawn
as a sequence diagram when matplotlib can draw.

``run_chaos``, ``explore_small`` and ``show_trace`` live in ``chaos``, and
the verdicts live in ``guarantee_verdicts``. This module re-exports the chaos
helpers, so code that imports them from here keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..guarantees import DedupReceiver
from ..node import Node
from ..sim import LinkConfig, Simulation, Uniform
from ..trace import Deliver, Send, Trace
from .chaos import (
    CHAOS_MAX_EVENTS,
    CHAOS_UNTIL_S,
    ChaosFaults,
    ChaosSummary,
    Verdict,
    explore_small,
    run_chaos,
    show_trace,
)
from .checking import CheckFailed, CheckReport
from .guarantee_verdicts import (
    CHAOS_MAX_ATTEMPTS,
    DISTINCT_PAYLOADS,
    PAYLOADS,
    RETRY_S,
    _all_processed_and_acked,
    _at_most_once,
    _both,
    _counting,
    _expect_fresh_state,
    _gave_up,
    _in_order,
    _judge,
    _nothing_given_up,
    _reference_sender,
    _require_idle,
    _sends_at_most,
    _sends_per_seq,
    _simulate,
)
from .timed_calls import TimedCheck

__all__ = [
    "ChaosFaults",
    "ChaosSummary",
    "Verdict",
    "run_chaos",
    "explore_small",
    "show_trace",
    "check_dedup_receiver",
    "check_at_least_once_sender",
    "check_ordered_delivery",
]


# ---------------------------------------------------------------------------
# dedup-receiver
# ---------------------------------------------------------------------------

def _dedup_fresh_state(receiver_class: Any, rng: object) -> None:
    _expect_fresh_state(receiver_class, "the set")


def _dedup_no_faults(receiver_class: Any, rng: object) -> None:
    nodes = [_reference_sender(DISTINCT_PAYLOADS), receiver_class("r")]
    _, trace = _simulate(nodes, LinkConfig())
    _judge(_all_processed_and_acked("r", {"a": 6}), nodes, trace,
           "each of 6 messages processed once and acknowledged, on a network without faults")


def _dedup_equal_payloads(receiver_class: Any, rng: object) -> None:
    nodes = [_reference_sender(PAYLOADS), receiver_class("r")]
    _, trace = _simulate(nodes, LinkConfig())
    _judge(_all_processed_and_acked("r", {"a": 6}), nodes, trace,
           f"each of the messages {list(PAYLOADS)} processed once (equal payloads, different seqs)",
           hint="remember message ids (sender, message.seq), not payloads: two different "
           "messages may carry the same payload, like two deposits of 10")


def _dedup_two_senders(receiver_class: Any, rng: object) -> None:
    nodes = [_reference_sender(PAYLOADS[:3], "a"), _reference_sender(PAYLOADS[3:], "b"),
             receiver_class("r")]
    _, trace = _simulate(nodes, LinkConfig())
    _judge(_all_processed_and_acked("r", {"a": 3, "b": 3}), nodes, trace,
           "messages 0, 1, 2 of sender 'a' and of sender 'b' each processed once",
           hint="seq numbers restart at 0 for each sender, so the id of a message is the "
           "pair (sender, message.seq)")


def _dedup_every_copy_acked(receiver_class: Any, rng: object) -> None:
    nodes = [_reference_sender(DISTINCT_PAYLOADS), receiver_class("r")]
    _, trace = _simulate(nodes, LinkConfig(duplicate=1.0))
    _judge(_all_processed_and_acked("r", {"a": 6}), nodes, trace,
           "each message processed once although the network delivers every message twice")
    copies = sum(
        1 for event in trace.filter(Deliver) if event.dest == "r" and event.message_type == "Data"
    )
    acks = sum(
        1 for event in trace.filter(Send) if event.source == "r" and event.message_type == "Ack"
    )
    if acks < copies:
        raise CheckFailed(
            expected=f"an Ack for each of the {copies} copies of Data that reached the receiver",
            actual=f"{acks} Acks",
            hint="send an Ack for a duplicate too: a duplicate often means the first Ack was "
            "lost, and without a new one the sender retransmits until it gives up",
        )


def _dedup_chaos(receiver_class: Any, rng: object) -> None:
    run_chaos(
        lambda: [_reference_sender(PAYLOADS), receiver_class("r")],
        verdict=_all_processed_and_acked("r", {"a": len(PAYLOADS)}),
        expected="every message processed exactly once and acknowledged, under loss, "
        "duplication, reordering and a crash of the sender (faults end at 1 s)",
        faults=ChaosFaults(crashes=(("a", 0.02, 0.3),)),
    )


def _dedup_explore(receiver_class: Any, rng: object) -> None:
    explore_small(
        lambda: [_reference_sender(PAYLOADS[:2], max_attempts=2), receiver_class("r")],
        safety=_at_most_once("r"),
        liveness=_all_processed_and_acked("r", {"a": 2}),
        expected="messages 0 and 1 (both 'deposit 10') each processed once and acknowledged",
        allow_drops=1,
        allow_duplicates=0,  # retransmissions make the duplicates
    )


def check_dedup_receiver(receiver_class: Any, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check a learner's deduplicating receiver (exercise ``dedup-receiver``).

    ``receiver_class(node_id)`` must build a ``Receiver`` whose ``on_Data``
    processes each (sender, seq) id once with ``self.process(sender, message)``
    and sends ``Ack(message.seq)`` back for every copy. The sender is the
    reference ``AtLeastOnceSender``. Raises ``ExerciseFailed`` at the first
    failed check.
    """
    check = TimedCheck("dedup-receiver", seed=seed)
    check.add("fresh receivers share nothing", _dedup_fresh_state,
              hint="create the set of seen ids in __init__, so each receiver has its own")
    check.add("no faults", _dedup_no_faults,
              hint="process a message the first time its id arrives, and send Ack(message.seq) "
              "back to the sender")
    check.add("equal payloads", _dedup_equal_payloads,
              hint="remember message ids (sender, message.seq), not payloads")
    check.add("two senders", _dedup_two_senders,
              hint="the id of a message is the pair (sender, message.seq)")
    check.add("every copy acknowledged", _dedup_every_copy_acked,
              hint="remember each id before or when you process it, and acknowledge every copy")
    check.add("chaos, 50 seeds", _dedup_chaos,
              hint="check the memory before processing, add the id when you process, and "
              "acknowledge duplicates too")
    check.add("every delivery order", _dedup_explore,
              hint="acknowledge every copy, and never process an id that is already remembered")
    return check.run(receiver_class, quiet=quiet)


# ---------------------------------------------------------------------------
# at-least-once-sender
# ---------------------------------------------------------------------------


def _new_sender(sender_class: Any, payloads: Sequence[str], max_attempts: int) -> Node:
    node: Node = _counting(sender_class)("a", "r", list(payloads), retry_s=RETRY_S,
                                         max_attempts=max_attempts)
    return node


def _sender_no_faults(sender_class: Any, rng: object) -> None:
    nodes = [_new_sender(sender_class, DISTINCT_PAYLOADS, 5), DedupReceiver("r")]
    sim, trace = _simulate(nodes, LinkConfig())
    _judge(_all_processed_and_acked("r", {"a": 6}), nodes, trace,
           "each of 6 messages delivered and acknowledged on a network without faults")
    sends = _sends_per_seq(nodes[0])
    if sends != {seq: 1 for seq in range(6)}:
        raise CheckFailed(
            expected="each message sent exactly once when every Ack arrives within retry_s",
            actual=f"sends per seq: {sends}",
            hint="resend only the messages without an Ack when the retry timer fires",
        )
    _judge(_nothing_given_up("a"), nodes, trace, "no message given up on a network without faults")
    _require_idle(sim, trace, "every message is acknowledged")


def _sender_retransmits(sender_class: Any, rng: object) -> None:
    nodes = [_new_sender(sender_class, DISTINCT_PAYLOADS[:3], 5), DedupReceiver("r")]
    trace = Trace()
    sim = Simulation(seed=0, trace=trace, max_events=CHAOS_MAX_EVENTS)
    for node in nodes:
        sim.add_node(node)
    sim.partition("a", "r", one_way=True)  # the first sends, at 0 s, 0.05 s and 0.1 s, are lost
    sim.heal(at_s=0.12)
    sim.run(until_s=CHAOS_UNTIL_S)
    _judge(_both(_all_processed_and_acked("r", {"a": 3}), _nothing_given_up("a")), nodes, trace,
           "all 3 messages delivered after the link from sender to receiver comes back at 0.12 s "
           "(max_attempts=5, retry_s=0.05)")
    _require_idle(sim, trace, "every message is acknowledged")


def _sender_gives_up(sender_class: Any, rng: object) -> None:
    max_attempts = 4
    nodes = [_new_sender(sender_class, DISTINCT_PAYLOADS[:3], max_attempts), DedupReceiver("r")]
    trace = Trace()
    sim = Simulation(seed=0, trace=trace, max_events=CHAOS_MAX_EVENTS)
    for node in nodes:
        sim.add_node(node)
    sim.partition("a", "r", one_way=True)  # never healed
    sim.run(until_s=CHAOS_UNTIL_S)
    sends = _sends_per_seq(nodes[0])
    expected_sends = {seq: max_attempts for seq in range(3)}
    if sends != expected_sends:
        show_trace(trace, "receiver unreachable")
        raise CheckFailed(
            expected=f"each message sent exactly max_attempts={max_attempts} times when the "
            f"receiver is unreachable: {expected_sends}",
            actual=f"sends per seq: {sends}",
            hint="count the first send as attempt 1; when the timer fires, resend a message "
            "whose count is below max_attempts, otherwise add it to gave_up",
        )
    gave_up = _gave_up(nodes[0])
    if gave_up != {0, 1, 2}:
        raise CheckFailed(
            expected="gave_up == {0, 1, 2} after every attempt failed",
            actual=f"gave_up == {gave_up}",
            hint="add a seq to gave_up when its attempts are used up and the timer fires again",
        )
    _require_idle(sim, trace, "every message is given up")


def _sender_chaos(sender_class: Any, rng: object) -> None:
    run_chaos(
        lambda: [_new_sender(sender_class, PAYLOADS, CHAOS_MAX_ATTEMPTS), DedupReceiver("r")],
        verdict=_both(
            _sends_at_most("a", CHAOS_MAX_ATTEMPTS),
            _all_processed_and_acked("r", {"a": len(PAYLOADS)}),
            _nothing_given_up("a"),
        ),
        expected="every message delivered and acknowledged, without giving up, under loss, "
        "duplication, reordering and a receiver crash from 0.1 s to 0.5 s (faults end at 1 s)",
        faults=ChaosFaults(crashes=(("r", 0.1, 0.5),)),
    )


def _sender_explore(sender_class: Any, rng: object) -> None:
    max_attempts = 2
    explore_small(
        lambda: [_new_sender(sender_class, PAYLOADS[:2], max_attempts), DedupReceiver("r")],
        safety=_sends_at_most("a", max_attempts),
        liveness=_all_processed_and_acked("r", {"a": 2}),
        expected="both messages delivered and acknowledged, each sent at most 2 times",
        allow_drops=1,
        allow_duplicates=0,
    )


def check_at_least_once_sender(
    sender_class: Any, *, seed: int = 0, quiet: bool = False
) -> CheckReport:
    """Check a learner's at-least-once sender (exercise ``at-least-once-sender``).

    ``sender_class(node_id, dest, payloads, retry_s=..., max_attempts=...)``
    must send ``Data(seq, payload)`` for each payload and resend the
    unacknowledged ones each time its ``retry`` timer fires. It sends no
    message more than ``max_attempts`` times, records acknowledged seqs in
    ``acked`` and given-up seqs in ``gave_up``, and stops its timer when
    nothing is pending.
    The receiver is the reference ``DedupReceiver``.
    """
    check = TimedCheck("at-least-once-sender", seed=seed)
    check.add("no faults", _sender_no_faults,
              hint="send every message in on_start, record Acks in on_Ack, and set the retry "
              "timer")
    check.add("lost messages retransmitted", _sender_retransmits,
              hint="when the retry timer fires, resend every message without an Ack and set "
              "the timer again")
    check.add("receiver unreachable", _sender_gives_up,
              hint="give up on a message after max_attempts sends, and stop the timer when "
              "nothing is pending")
    check.add("chaos, 50 seeds", _sender_chaos,
              hint="keep retrying every pending message until its Ack arrives, up to "
              "max_attempts sends")
    check.add("every delivery order", _sender_explore,
              hint="a timer may fire before the Ack of the last send arrives: count attempts "
              "per message and never exceed max_attempts")
    return check.run(sender_class, quiet=quiet)


# ---------------------------------------------------------------------------
# ordered-delivery
# ---------------------------------------------------------------------------


def _ordered_verdict(count: int) -> Verdict:
    return _both(_in_order("r"), _all_processed_and_acked("r", {"a": count}))


def _ordered_fresh_state(receiver_class: Any, rng: object) -> None:
    _expect_fresh_state(receiver_class, "the next expected seq and the buffer")


def _ordered_no_faults(receiver_class: Any, rng: object) -> None:
    nodes = [_reference_sender(DISTINCT_PAYLOADS), receiver_class("r")]
    _, trace = _simulate(nodes, LinkConfig())
    _judge(_ordered_verdict(6), nodes, trace,
           "messages 0 to 5 processed in order and acknowledged, on a network without faults")


def _ordered_reordered(receiver_class: Any, rng: object) -> None:
    nodes = [_reference_sender(DISTINCT_PAYLOADS), receiver_class("r")]
    link = LinkConfig(latency=Uniform(0.001, 0.002), reorder=1.0, reorder_window_s=0.03)
    _, trace = _simulate(nodes, link, seed=3)
    _judge(_ordered_verdict(6), nodes, trace,
           "messages 0 to 5 processed in order, although the network reorders them",
           hint="keep a message that arrives early in a buffer keyed by seq, and process from "
           "the buffer while it holds the next expected seq")


def _ordered_duplicates(receiver_class: Any, rng: object) -> None:
    nodes = [_reference_sender(DISTINCT_PAYLOADS), receiver_class("r")]
    _, trace = _simulate(nodes, LinkConfig(duplicate=1.0))
    _judge(_ordered_verdict(6), nodes, trace,
           "messages 0 to 5 each processed once, although the network delivers every one twice",
           hint="ignore (but acknowledge) a message whose seq is below the next expected seq "
           "or already in the buffer")


def _ordered_chaos(receiver_class: Any, rng: object) -> None:
    run_chaos(
        lambda: [_reference_sender(PAYLOADS), receiver_class("r")],
        verdict=_ordered_verdict(len(PAYLOADS)),
        expected="messages 0 to 5 processed in order, each once, and acknowledged, under "
        "loss, duplication and reordering (faults end at 1 s)",
    )


def _ordered_explore(receiver_class: Any, rng: object) -> None:
    explore_small(
        lambda: [_reference_sender(DISTINCT_PAYLOADS[:2], max_attempts=2), receiver_class("r")],
        safety=_in_order("r"),
        liveness=_ordered_verdict(2),
        expected="messages 0 and 1 processed in order, each once, and acknowledged",
        allow_drops=1,
        allow_duplicates=0,  # retransmissions make the duplicates
    )


def check_ordered_delivery(
    receiver_class: Any, *, seed: int = 0, quiet: bool = False
) -> CheckReport:
    """Check a learner's resequencing receiver (exercise ``ordered-delivery``).

    ``receiver_class(node_id)`` must build a ``Receiver`` whose ``on_Data``
    acknowledges every copy and calls ``self.process(sender, message)`` for
    seq 0, 1, 2, ... in order, once each, holding early messages until the
    gap before them is filled. The sender is the reference ``AtLeastOnceSender``.
    """
    check = TimedCheck("ordered-delivery", seed=seed)
    check.add("fresh receivers share nothing", _ordered_fresh_state,
              hint="create the next expected seq and the buffer in __init__, so each receiver "
              "has its own")
    check.add("no faults", _ordered_no_faults,
              hint="process the message whose seq is the next expected one, and acknowledge it")
    check.add("reordered arrivals", _ordered_reordered,
              hint="buffer early messages by seq and process from the buffer in order")
    check.add("duplicate copies", _ordered_duplicates,
              hint="ignore copies of messages already processed or buffered")
    check.add("chaos, 50 seeds", _ordered_chaos,
              hint="acknowledge every copy, including copies of messages already processed, "
              "and never drop a message you acknowledged")
    check.add("every delivery order", _ordered_explore,
              hint="a message may arrive before, after or twice around any other one")
    return check.run(receiver_class, quiet=quiet)
