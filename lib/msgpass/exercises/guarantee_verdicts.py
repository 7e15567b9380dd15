"""Verdicts and scenario helpers shared by the three checkers of lab 12.

The exercises of lab 12 (``guarantee_checks``) pair a learner's sender or
receiver with the reference node of the other side from ``msgpass.guarantees``.
This module contains what their scenarios share:

- the reference sender (``_reference_sender``) and a wrapper that counts a
  candidate sender's ``Data`` sends per seq (``_counting``);
- verdicts in the sense of ``chaos.Verdict``: each message processed at most
  once, exactly once and acknowledged, in seq order, sent at most
  ``max_attempts`` times, none given up;
- ``_simulate``, ``_judge`` and ``_require_idle``, which run one scenario and
  turn a complaint into ``CheckFailed`` with the run as text;
- ``_expect_fresh_state``, which tells a receiver class whose instances share
  their memory (a set created on the class, say) from one that never
  processes anything, because both look alike in a scenario's verdict.

The names keep their leading underscore: they are helpers of the checkers,
not part of the library that labs import.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..errors import EventLimitExceeded
from ..guarantees import AtLeastOnceSender, Data
from ..node import Node
from ..sim import LinkConfig, Simulation
from ..trace import Trace
from .chaos import CHAOS_MAX_EVENTS, CHAOS_UNTIL_S, Verdict, indent, show_trace, trace_report
from .checking import CheckFailed

__all__ = [
    "RETRY_S",
    "CHAOS_MAX_ATTEMPTS",
    "PAYLOADS",
    "DISTINCT_PAYLOADS",
]

RETRY_S = 0.05
CHAOS_MAX_ATTEMPTS = 40  # enough retries to outlast the faults, which end at 1 s
# Payloads repeat on purpose: two different messages may carry equal payloads.
PAYLOADS = ("deposit 10", "deposit 10", "withdraw 5", "deposit 10", "withdraw 5", "deposit 7")
DISTINCT_PAYLOADS = ("a", "b", "c", "d", "e", "f")
# Put before each run in a report. The trace numbers every message the
# simulation carries, Acks included, while verdicts name messages by seq.
RUN_HEADING = (
    "the run ('#N' counts every message the network carried, Acks included, from 1, "
    "and is not the seq):"
)


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
            actual=f"still busy after {CHAOS_MAX_EVENTS} events\n  {RUN_HEADING}\n"
            f"{indent(trace_report(trace))}",
        ) from None
    return sim, trace


def _judge(verdict: Verdict, nodes: Sequence[Node], trace: Trace, expected: str,
           hint: str | None = None) -> None:
    problem = verdict({node.node_id: node for node in nodes})
    if problem is not None:
        show_trace(trace, "failing run")
        raise CheckFailed(
            expected=expected,
            actual=f"{problem}\n  {RUN_HEADING}\n{indent(trace_report(trace))}",
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
            f"(a timer that keeps being set)\n  {RUN_HEADING}\n{indent(trace_report(trace))}",
            hint="set the retry timer again only while some message is still pending",
        )


def _class_level_containers(receiver_class: type) -> list[str]:
    """Name the sets, dicts and lists that the learner's classes keep on the class itself."""
    names = []
    for klass in getattr(receiver_class, "__mro__", ()):
        if klass.__module__.startswith("msgpass.") or klass is object:
            continue  # the library's classes keep no such state
        for name, value in vars(klass).items():
            if isinstance(value, (set, dict, list)) and not name.startswith("__"):
                names.append(f"{klass.__name__}.{name}")
    return names


def _expect_fresh_state(receiver_class: Any, kept: str) -> None:
    """Raise ``CheckFailed`` when a new receiver inherits what an earlier one remembered.

    Runs message ('a', 0) through one receiver, then through a second, fresh
    one, which must process it too. ``kept`` names the state the exercise
    keeps, for the hint, such as "the set of seen ids".
    """
    runs = []
    for _ in range(2):
        nodes = [_reference_sender(("first",)), receiver_class("r")]
        _simulate(nodes, LinkConfig())
        runs.append(list(_processed(nodes[1])))
    first, second = runs
    shared = _class_level_containers(receiver_class)
    if second == [("a", 0)]:
        return
    if first == [("a", 0)] or shared:
        actual = f"processed={second}"
        if first:
            actual += f", after an earlier receiver processed {first}"
        if shared:
            verb = "is" if len(shared) == 1 else "are"
            actual += f" ({' and '.join(shared)} {verb} shared by every receiver)"
        raise CheckFailed(
            expected="a fresh receiver to process message ('a', 0), the first it receives",
            actual=actual,
            hint=f"a fresh receiver already treats ('a', 0) as seen: create {kept} in "
            f"__init__, not on the class",
        )
    # Neither receiver processed anything and nothing is shared: the scenario
    # checks report that with their own hints.
