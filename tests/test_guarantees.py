"""Delivery-guarantee nodes and the chaos and exploration helpers of their checkers."""

from __future__ import annotations

import random

import pytest

from msgpass.exercises import guarantee_checks as checks
from msgpass.exercises.checking import CheckFailed
from msgpass.guarantees import (
    Ack,
    AtLeastOnceSender,
    AtMostOnceSender,
    Data,
    DedupReceiver,
    OrderedReceiver,
    PlainReceiver,
    count_outcomes,
)
from msgpass.sim import LinkConfig, Simulation, Uniform
from msgpass.trace import Trace

FAULTY = LinkConfig(latency=Uniform(0.005, 0.015), loss=0.2, duplicate=0.1, reorder=0.2)
PAYLOADS = [f"p{n}" for n in range(100)]
EXPECTED = [("s", seq) for seq in range(100)]


def _run(sender, receiver, *, seed=1, link=FAULTY, trace=None, crash=None):  # type: ignore[no-untyped-def]
    sim = Simulation(seed=seed, default_link=link, trace=trace)
    sim.add_node(sender)
    sim.add_node(receiver)
    if crash is not None:
        sim.crash(crash[0], at_s=crash[1])
        sim.restart(crash[0], at_s=crash[2])
    return sim.run(until_s=60.0)


def test_count_outcomes_counts_each_case() -> None:
    expected = [("a", 0), ("a", 1), ("a", 2)]
    outcome = count_outcomes(expected, [("a", 1), ("a", 2), ("a", 2), ("b", 0)])
    assert (outcome.never, outcome.once, outcome.more_than_once, outcome.unexpected) == (1, 1, 1, 1)
    assert not outcome.exactly_once


def test_at_most_once_never_processes_twice() -> None:
    receiver = DedupReceiver("r")
    _run(AtMostOnceSender("s", "r", PAYLOADS), receiver)
    outcome = count_outcomes(EXPECTED, receiver.processed)
    assert outcome.more_than_once == 0
    assert outcome.never > 0  # 20 % loss and no retries


def test_at_least_once_plain_processes_duplicates() -> None:
    receiver = PlainReceiver("r")
    _run(AtLeastOnceSender("s", "r", PAYLOADS, retry_s=0.1), receiver)
    outcome = count_outcomes(EXPECTED, receiver.processed)
    assert outcome.never == 0
    assert outcome.more_than_once > 0


def test_dedup_gives_exactly_once_processing() -> None:
    receiver = DedupReceiver("r")
    sender = AtLeastOnceSender("s", "r", PAYLOADS, retry_s=0.1)
    stats = _run(sender, receiver)
    assert count_outcomes(EXPECTED, receiver.processed).exactly_once
    assert sender.acked == set(range(100))
    assert stats.operations == 100


def test_ordered_receiver_processes_in_order() -> None:
    receiver = OrderedReceiver("r")
    _run(AtLeastOnceSender("s", "r", PAYLOADS, retry_s=0.1), receiver)
    assert receiver.processed_seqs == list(range(100))


def test_ordered_receiver_drops_beyond_buffer_without_ack() -> None:
    receiver = OrderedReceiver("r", max_buffer=2)
    sent: list[tuple[str, object]] = []
    receiver.send = lambda dest, message: sent.append((dest, message))  # type: ignore[method-assign]
    receiver.on_Data("s", Data(5, "early"))
    assert sent == []
    receiver.on_Data("s", Data(1, "b"))
    receiver.on_Data("s", Data(0, "a"))
    assert receiver.processed_seqs == [0, 1]
    assert sent[-1] == ("s", Ack(0))


def test_volatile_dedup_memory_fails_after_crash() -> None:
    volatile = DedupReceiver("r", durable=False)
    _run(AtLeastOnceSender("s", "r", PAYLOADS, retry_s=0.1), volatile, crash=("r", 0.05, 0.3))
    durable = DedupReceiver("r", durable=True)
    _run(AtLeastOnceSender("s", "r", PAYLOADS, retry_s=0.1), durable, crash=("r", 0.05, 0.3))
    assert count_outcomes(EXPECTED, volatile.processed).more_than_once > 0
    assert count_outcomes(EXPECTED, durable.processed).exactly_once


def test_dedup_memory_window_evicts_oldest() -> None:
    receiver = DedupReceiver("r", memory=2)
    receiver.send = lambda dest, message: None  # type: ignore[method-assign]
    for seq in (0, 1, 2, 0):
        receiver.on_Data("s", Data(seq, "x"))
    assert receiver.processed_seqs == [0, 1, 2, 0]  # 0 was forgotten when 2 came in
    assert list(receiver.seen) == [("s", 2), ("s", 0)]


def test_sender_gives_up_after_max_attempts() -> None:
    sender = AtLeastOnceSender("s", "r", ["a", "b"], retry_s=0.05, max_attempts=3)
    stats = _run(sender, DedupReceiver("r"), link=LinkConfig(loss=1.0))
    assert sender.attempts == {0: 3, 1: 3}
    assert sender.gave_up == {0, 1}
    assert stats.stop_reason == "idle"


def test_sender_restart_resends_pending() -> None:
    sender = AtLeastOnceSender("s", "r", PAYLOADS, retry_s=0.1)
    receiver = DedupReceiver("r")
    _run(sender, receiver, crash=("s", 0.001, 0.5))
    assert sender.acked == set(range(100))
    assert count_outcomes(EXPECTED, receiver.processed).exactly_once


def test_invalid_arguments_rejected() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        AtLeastOnceSender("s", "r", ["a"], max_attempts=0)
    with pytest.raises(ValueError, match="retry_s"):
        AtLeastOnceSender("s", "r", ["a"], retry_s=0)
    with pytest.raises(ValueError, match="memory"):
        DedupReceiver("r", memory=0)
    with pytest.raises(ValueError, match="max_buffer"):
        OrderedReceiver("r", max_buffer=0)


def test_same_seed_replays_same_trace() -> None:
    traces = []
    for _ in range(2):
        trace = Trace()
        _run(AtLeastOnceSender("s", "r", PAYLOADS, retry_s=0.1), DedupReceiver("r"), trace=trace)
        traces.append(trace)
    assert traces[0] == traces[1]


class ForgetfulReceiver(DedupReceiver):
    """Acknowledges only the first copy of each message."""

    def on_Data(self, sender: str, message: Data) -> None:
        if (sender, message.seq) not in self.seen:
            super().on_Data(sender, message)


def test_explore_small_reports_shortest_failure() -> None:
    with pytest.raises(CheckFailed) as caught:
        checks._dedup_explore(ForgetfulReceiver, random.Random(0))
    report = caught.value.actual
    assert "never got an Ack" in report
    assert "shortest path" in report
    assert "drop" in report


def test_explore_small_passes_reference() -> None:
    result = checks.explore_small(
        lambda: [checks._reference_sender(["x", "y"], max_attempts=2), DedupReceiver("r")],
        safety=checks._at_most_once("r"),
        liveness=checks._all_processed_and_acked("r", {"a": 2}),
        expected="both processed once",
    )
    assert result.exhausted
    assert result.states_explored > 100


def test_run_chaos_reports_seed_and_trace() -> None:
    with pytest.raises(CheckFailed) as caught:
        checks.run_chaos(
            lambda: [checks._reference_sender(["x", "y"]), PlainReceiver("r")],
            verdict=checks._at_most_once("r"),
            expected="nothing processed twice",
        )
    assert "seed" in caught.value.actual
    assert "deliver" in caught.value.actual


def test_run_chaos_summary_counts_faults() -> None:
    summary = checks.run_chaos(
        lambda: [checks._reference_sender(["x", "y", "z"]), DedupReceiver("r")],
        verdict=checks._all_processed_and_acked("r", {"a": 3}),
        expected="each processed once",
    )
    assert summary.runs == 50
    assert summary.dropped > 0
    assert summary.duplicated > 0
