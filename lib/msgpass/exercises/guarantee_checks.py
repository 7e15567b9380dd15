"""The checkers of the delivery-guarantee exercises in lab 12, and chaos helpers for any checker.

Three exercises, each a ``Node`` class written by the learner:

- ``dedup-receiver``: a ``Receiver`` subclass whose ``on_Data`` processes each
  (sender, seq) id once and sends an ``Ack`` for every copy.
- ``at-least-once-sender``: a sender that retransmits each message every
  ``retry_s`` seconds until it is acknowledged, at most ``max_attempts`` sends
  in all, and lists the messages it gave up on in ``gave_up``.
- ``ordered-delivery``: a ``Receiver`` subclass that processes each sender's
  messages in ``seq`` order from 0, with no gaps and no duplicates.

Each checker pairs the candidate with the reference node of the other side
(from ``msgpass.guarantees``) and runs it three ways. A few deterministic
scenarios each isolate one mistake. ``run_chaos`` runs 50 seeded simulations
with loss, duplication, reordering and a crash, whose faults end at a known
time so that liveness can be asserted. ``explore_small`` tries every delivery
order, drop and timer firing of a two-message case.
A failure report includes the failing run as text, and the same run is drawn
as a sequence diagram when matplotlib can draw.

``run_chaos`` and ``explore_small`` take any node classes, so other checkers
can reuse them: a verdict function looks at the nodes and returns ``None``
when all is well, or one sentence saying what went wrong.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import EventLimitExceeded
from ..explore import ExplorationResult, explore
from ..guarantees import AtLeastOnceSender, Data, DedupReceiver
from ..node import Node
from ..sim import LinkConfig, SimStats, Simulation, Uniform
from ..sim_links import Latency
from ..trace import Deliver, Send, Trace, draw_sequence, render_text
from .checking import Check, CheckFailed, CheckReport

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

log = logging.getLogger(__name__)

# A verdict looks at the nodes by id and returns None, or what went wrong.
Verdict = Callable[[dict[str, Node]], str | None]

CHAOS_SEEDS = range(50)
CHAOS_UNTIL_S = 30.0  # simulated seconds, far beyond the 1 s of faults and 0.5 s of crash
CHAOS_MAX_EVENTS = 50_000  # per run; a correct run here takes a few hundred events
TRACE_LINES = 60  # events listed in a failure report
RETRY_S = 0.05
CHAOS_MAX_ATTEMPTS = 40  # enough retries to outlast the faults, which end at 1 s
# Payloads repeat on purpose: two different messages may carry equal payloads.
PAYLOADS = ("deposit 10", "deposit 10", "withdraw 5", "deposit 10", "withdraw 5", "deposit 7")


@dataclass(frozen=True)
class ChaosFaults:
    """The faults of a chaos run: a faulty network until ``heal_at_s``, then a clean one.

    Every link has the given latency, loss, duplication and reordering until
    ``heal_at_s`` simulated seconds, and only the latency afterwards (``None``
    keeps the faults forever). ``crashes`` lists (node id, crash at s, restart
    at s) triples. Finite faults are what make liveness checkable: after they
    end, a correct protocol must finish.
    """

    latency: Latency = Uniform(0.001, 0.010)
    loss: float = 0.2
    duplicate: float = 0.2
    reorder: float = 0.3
    heal_at_s: float | None = 1.0
    crashes: tuple[tuple[str, float, float], ...] = ()

    def faulty_link(self) -> LinkConfig:
        """Return the link configuration in force until ``heal_at_s``."""
        return LinkConfig(
            latency=self.latency, loss=self.loss, duplicate=self.duplicate, reorder=self.reorder
        )


@dataclass(frozen=True)
class ChaosSummary:
    """Totals over the runs of ``run_chaos``, all of which passed the verdict."""

    runs: int
    sent: int
    delivered: int
    dropped: int
    duplicated: int


def show_trace(trace: Trace, title: str) -> None:
    """Draw ``trace`` as a sequence diagram in a notebook; elsewhere, do nothing.

    Drawing is best effort: a missing display or any plotting error is
    logged, so that the text report still reaches the learner.
    """
    try:
        import matplotlib
        import matplotlib.pyplot as plt

        if "inline" not in matplotlib.get_backend():
            return  # not in a notebook: the text trace in the report is all there is
        from IPython.display import display

        figure, ax = plt.subplots(figsize=(7, 5))
        draw_sequence(trace, ax=ax, title=title, max_events=120)
        display(figure)  # type: ignore[no-untyped-call]
        plt.close(figure)
    except Exception as error:  # the report matters more than the drawing
        log.warning("could not draw the failing trace: %r", error)


def _trace_report(trace: Trace | None) -> str:
    if trace is None or len(trace) == 0:
        return "(no trace recorded)"
    return render_text(trace, limit=TRACE_LINES)


def run_chaos(
    build: Callable[[], list[Node]],
    *,
    verdict: Verdict,
    expected: str,
    seeds: Iterable[int] = CHAOS_SEEDS,
    faults: ChaosFaults = ChaosFaults(),
    until_s: float = CHAOS_UNTIL_S,
    max_events: int = CHAOS_MAX_EVENTS,
    require_idle: bool = True,
) -> ChaosSummary:
    """Simulate fresh nodes from ``build`` once per seed, with ``faults``, and judge each run.

    Each run lasts until the network is idle or ``until_s`` simulated seconds
    have passed, then ``verdict(nodes)`` judges it. Raises ``CheckFailed`` at
    the first failing seed, with ``expected`` (the property checked), the
    verdict's complaint and the run's trace as text, after drawing the
    trace with ``show_trace``. A run that exceeds ``max_events`` fails too,
    and so does one that still has events pending at ``until_s`` when
    ``require_idle`` is true.
    """
    totals = Counter[str]()
    runs = 0
    for seed in seeds:
        trace = Trace()
        sim = Simulation(seed=seed, default_link=faults.faulty_link(), trace=trace,
                         max_events=max_events)
        nodes = [sim.add_node(node) for node in build()]
        if faults.heal_at_s is not None:
            sim.schedule(faults.heal_at_s, _heal_links, sim, LinkConfig(latency=faults.latency))
        for node_id, crash_at_s, restart_at_s in faults.crashes:
            sim.crash(node_id, at_s=crash_at_s)
            sim.restart(node_id, at_s=restart_at_s)
        problem: str | None
        try:
            stats = sim.run(until_s=until_s)
        except EventLimitExceeded:
            problem = (
                f"the run was still busy after {max_events} events at simulated time "
                f"{sim.now:.3f} s: some node keeps sending or setting timers"
            )
        else:
            problem = verdict({node.node_id: node for node in nodes})
            if problem is None and require_idle and sim.pending_events():
                problem = (
                    f"{sim.pending_events()} event(s) were still pending at {until_s} s: "
                    f"some node keeps setting timers after its work is done"
                )
        if problem is not None:
            show_trace(trace, f"failing chaos run, seed {seed}")
            raise CheckFailed(
                expected=expected,
                actual=f"in the chaos run with seed {seed}, {problem}\n"
                f"  the run ({faults}):\n{_indent(_trace_report(trace))}",
            )
        runs += 1
        _add_stats(totals, stats)
    return ChaosSummary(runs, totals["sent"], totals["delivered"], totals["dropped"],
                        totals["duplicated"])


def explore_small(
    build: Callable[[], list[Node]],
    *,
    safety: Verdict,
    liveness: Verdict,
    expected: str,
    max_depth: int = 30,
    allow_drops: int = 1,
    allow_duplicates: int = 1,
    max_states: int = 20_000,
) -> ExplorationResult:
    """Explore every delivery order of a small scenario and fail on its shortest violation.

    ``safety`` must hold after every step, and ``liveness`` in every final
    state (no message in flight, no timer armed). Raises ``CheckFailed`` with
    the shortest violating path as text (after drawing it with
    ``show_trace``), or when the exploration could not finish within
    ``max_depth`` steps and ``max_states`` states, which happens when a node
    keeps re-arming timers or sending forever.
    """
    result = explore(
        lambda: _with_fast_copy_random(build()),
        invariant=lambda nodes: safety(nodes) is None,
        goal=lambda nodes: liveness(nodes) is None,
        max_depth=max_depth,
        allow_drops=allow_drops,
        allow_duplicates=allow_duplicates,
        max_states=max_states,
    )
    budget = f"up to {allow_drops} drop(s) and {allow_duplicates} duplicate(s)"
    if result.violation is not None:
        if result.violation_kind == "exception" and "NotImplementedError" in result.violation:
            raise NotImplementedError(result.violation)
        nodes = result.final_nodes or {}
        complaint = safety(nodes) if result.violation_kind == "invariant" else liveness(nodes)
        show_trace(result.trace or Trace(), "shortest failing path (times are step numbers)")
        raise CheckFailed(
            expected=f"{expected}, in every order of deliveries and timers with {budget}",
            actual=f"{complaint or result.violation}\n{_indent(result.format())}\n"
            f"  as a trace (times are step numbers):\n{_indent(_trace_report(result.trace))}",
        )
    if not result.exhausted:
        raise CheckFailed(
            expected=f"the system to become idle within {max_depth} steps in every order",
            actual=f"{result.format()}",
            hint="stop sending and stop re-arming timers once every message is acknowledged "
            "or has used all its attempts",
        )
    return result


class _FastCopyRandom(random.Random):
    """A ``random.Random`` whose deep copy copies its state in one step.

    The explorer deep-copies every node at every step. ``copy.deepcopy`` of a
    plain ``Random`` copies its 625-number state one number at a time. That
    took about half the time of an exploration here (measured with cProfile),
    so ``explore_small`` gives each node this generator instead. It draws the
    same numbers.
    """

    def __deepcopy__(self, memo: dict[int, object]) -> _FastCopyRandom:
        clone = _FastCopyRandom(0)
        clone.setstate(self.getstate())
        return clone


def _with_fast_copy_random(nodes: list[Node]) -> list[Node]:
    for node in nodes:
        node.random = _FastCopyRandom(0)  # explore() reseeds it when it attaches the node
    return nodes


def _heal_links(sim: Simulation, clean: LinkConfig) -> None:
    for source in sim.nodes:
        for dest in sim.nodes:
            if source != dest:
                sim.set_link(source, dest, clean, both_ways=False)


def _add_stats(totals: Counter[str], stats: SimStats) -> None:
    totals["sent"] += stats.sent
    totals["delivered"] += stats.delivered
    totals["dropped"] += stats.dropped
    totals["duplicated"] += stats.duplicated


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


# ---------------------------------------------------------------------------
# Verdicts shared by the three exercises
# ---------------------------------------------------------------------------


def _processed(node: Node) -> list[tuple[str, int]]:
    processed = getattr(node, "processed", None)
    if not isinstance(processed, list):
        raise CheckFailed(
            expected=f"{type(node).__name__}.processed to be the list kept by Receiver",
            actual=f"{type(processed).__name__} {processed!r}",
            hint="call super().__init__(node_id) in __init__ and record messages with "
            "self.process(sender, message), never by assigning processed",
        )
    return processed


def _expected_ids(senders: dict[str, int]) -> list[tuple[str, int]]:
    return [(sender, seq) for sender, count in senders.items() for seq in range(count)]


def _at_most_once(receiver: str) -> Verdict:
    def verdict(nodes: dict[str, Node]) -> str | None:
        times = Counter(_processed(nodes[receiver]))
        twice = sorted(key for key, count in times.items() if count > 1)
        if twice:
            processed = _processed(nodes[receiver])
            return f"message(s) {twice} were processed more than once: processed={processed}"
        return None

    return verdict


def _all_processed_and_acked(receiver: str, senders: dict[str, int]) -> Verdict:
    """Return a verdict: each message processed exactly once, and acknowledged at its sender."""

    def verdict(nodes: dict[str, Node]) -> str | None:
        processed = _processed(nodes[receiver])
        times = Counter(processed)
        for key in _expected_ids(senders):
            if times[key] != 1:
                return f"message {key} was processed {times[key]} times: processed={processed}"
        unexpected = sorted(set(times) - set(_expected_ids(senders)))
        if unexpected:
            return f"the receiver processed messages that were never sent: {unexpected}"
        for sender, count in senders.items():
            acked: set[int] = set(getattr(nodes[sender], "acked", ()))
            missing = sorted(set(range(count)) - set(acked))
            if missing:
                return (
                    f"sender {sender!r} never got an Ack for message(s) {missing}, "
                    f"although the receiver processed them"
                )
        return None

    return verdict


def _in_order(receiver: str) -> Verdict:
    def verdict(nodes: dict[str, Node]) -> str | None:
        seqs = [seq for _, seq in _processed(nodes[receiver])]
        if seqs != list(range(len(seqs))):
            return f"the receiver processed seqs {seqs}, not 0, 1, 2, ... in order without repeats"
        return None

    return verdict


def _both(*verdicts: Verdict) -> Verdict:
    def verdict(nodes: dict[str, Node]) -> str | None:
        for one in verdicts:
            problem = one(nodes)
            if problem is not None:
                return problem
        return None

    return verdict


def _simulate(nodes: Sequence[Node], link: LinkConfig, *, seed: int = 0,
              until_s: float = CHAOS_UNTIL_S) -> tuple[Simulation, Trace]:
    trace = Trace()
    sim = Simulation(seed=seed, default_link=link, trace=trace, max_events=CHAOS_MAX_EVENTS)
    for node in nodes:
        sim.add_node(node)
    try:
        sim.run(until_s=until_s)
    except EventLimitExceeded:
        raise CheckFailed(
            expected="the run to end: nodes stop sending once their work is done",
            actual=f"still busy after {CHAOS_MAX_EVENTS} events:\n"
            f"{_indent(_trace_report(trace))}",
        ) from None
    return sim, trace


def _judge(verdict: Verdict, nodes: Sequence[Node], trace: Trace, expected: str,
           hint: str | None = None) -> None:
    problem = verdict({node.node_id: node for node in nodes})
    if problem is not None:
        show_trace(trace, "failing run")
        raise CheckFailed(
            expected=expected,
            actual=f"{problem}\n  the run:\n{_indent(_trace_report(trace))}",
            hint=hint,
        )


def _sends_per_seq(node: Node) -> dict[int, int]:
    return dict(getattr(node, "data_sends", {}))


def _gave_up(node: Node) -> set[int]:
    gave_up = getattr(node, "gave_up", None)
    if not isinstance(gave_up, (set, frozenset, list, tuple)):
        raise CheckFailed(
            expected=f"{type(node).__name__}.gave_up to be a set of the seqs given up",
            actual=f"{type(gave_up).__name__} {gave_up!r}",
            hint="keep the set that __init__ creates and add a seq to it when you give up",
        )
    return set(gave_up)


def _counting(sender_class: Any) -> Any:
    """Return a subclass of ``sender_class`` that counts its ``Data`` sends in ``data_sends``."""

    class CountingSender(sender_class):  # type: ignore[misc]
        def send(self, dest: str, message: object) -> None:
            if isinstance(message, Data):
                sends = self.__dict__.setdefault("data_sends", {})
                sends[message.seq] = sends.get(message.seq, 0) + 1
            super().send(dest, message)

    # Error messages about missing handlers then name the learner's class.
    CountingSender.__name__ = sender_class.__name__
    CountingSender.__qualname__ = sender_class.__qualname__
    return CountingSender


def _sends_at_most(sender: str, max_attempts: int) -> Verdict:
    def verdict(nodes: dict[str, Node]) -> str | None:
        sends = _sends_per_seq(nodes[sender])
        over = {seq: count for seq, count in sends.items() if count > max_attempts}
        if over:
            return f"message(s) were sent more than max_attempts={max_attempts} times: {over}"
        return None

    return verdict


def _nothing_given_up(sender: str) -> Verdict:
    def verdict(nodes: dict[str, Node]) -> str | None:
        gave_up = _gave_up(nodes[sender])
        if gave_up:
            return (
                f"the sender gave up on {sorted(gave_up)} although the faults ended long "
                f"before its attempts ran out"
            )
        return None

    return verdict


def _reference_sender(
    payloads: Sequence[str] = PAYLOADS, node_id: str = "a", max_attempts: int = CHAOS_MAX_ATTEMPTS
) -> AtLeastOnceSender:
    return AtLeastOnceSender(node_id, "r", payloads, retry_s=RETRY_S, max_attempts=max_attempts)


def _require_idle(sim: Simulation, trace: Trace, what: str) -> None:
    if sim.pending_events():
        show_trace(trace, "run that never became idle")
        raise CheckFailed(
            expected=f"the network to become idle once {what}",
            actual=f"{sim.pending_events()} event(s) still pending at {sim.now:.1f} s "
            f"(a timer that keeps being set):\n{_indent(_trace_report(trace))}",
            hint="set the retry timer again only while some message is still pending",
        )


# ---------------------------------------------------------------------------
# dedup-receiver
# ---------------------------------------------------------------------------

DISTINCT_PAYLOADS = ("a", "b", "c", "d", "e", "f")


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
    check = Check("dedup-receiver", seed=seed)
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
    check = Check("at-least-once-sender", seed=seed)
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
    check = Check("ordered-delivery", seed=seed)
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
