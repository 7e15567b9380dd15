"""The checkers of the two exercises of lab 11 (reliable delivery over a lossy network).

``stop-and-wait-sender``: the learner writes the handlers of a stop-and-wait
sender with the constructor ``(node_id, peer, items, timeout_s)``. It sends
``Data(seq, payload)`` for item ``seq`` to ``peer``, resends it each time its
timer expires, moves on when ``Ack(seq, ...)`` for that item arrives, and
ignores any other ``Ack``. The checker pairs it with the library's
``StopAndWaitReceiver``.

``sliding-window-receiver``: the learner writes ``on_Data`` of a
selective-repeat receiver with the constructor ``(node_id, window)`` and the
attributes ``delivered``, ``next_expected`` and ``buffer``. The checker calls
it directly with scripted arrivals, then pairs it with the library's
``SlidingWindowSender``.

Both checkers assert safety (the receiver delivers exactly the items, in
order, once each) and liveness (everything is delivered within a simulated
time bound, and the sender then goes quiet). They run the candidate on a
perfect link, on 60 seeded links that lose, duplicate and reorder messages,
and under every delivery order of a two-item transfer with one dropped
message (``msgpass.explore``). A
failed run is reported with its trace as text, and drawn as a sequence
diagram when the notebook shows matplotlib figures inline. The runs and the
exploration live in ``reliable_runs``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ..errors import EventLimitExceeded
from ..node import TimerHandle
from ..reliable import Ack, Data, SlidingWindowSender, StopAndWaitReceiver
from ..sim import Constant, LinkConfig, Simulation, Uniform
from ..trace_events import Send, Trace
from .checking import CheckFailed, CheckReport, short_repr
from .reliable_runs import (
    CHAOS_TIME_LIMIT_S,
    MAX_EVENTS,
    _explore_transfer,
    _items,
    _run_transfer,
    _show_trace,
)
from .timed_calls import TimedCheck

__all__ = [
    "SENDER_EXERCISE_ID",
    "RECEIVER_EXERCISE_ID",
    "check_stop_and_wait_sender",
    "check_sliding_window_receiver",
]

SENDER_EXERCISE_ID = "stop-and-wait-sender"
RECEIVER_EXERCISE_ID = "sliding-window-receiver"

CHAOS_RUNS = 60
CHAOS_ITEMS = 6
CHAOS_LINK = LinkConfig(
    latency=Uniform(0.005, 0.02), loss=0.2, duplicate=0.1, reorder=0.2, reorder_window_s=0.03
)
TIMEOUT_S = 0.1
WINDOW = 4
PERFECT_LATENCY_S = 0.01
# Exploration bounds (``reliable_runs.EXPLORE_MAX_STATES`` caps the states).
# A clean two-item transfer takes 4 steps, and recovering from the one drop
# adds the drop, the timer, the resend and its delivery. Each step costs a
# deepcopy of both nodes. The window's two timers multiply the orders, so its
# depth is one lower, which keeps each exploration under about 1 s.
SENDER_EXPLORE_DEPTH = 8
RECEIVER_EXPLORE_DEPTH = 7


# ------------------------------------------------------------------ the sender exercise


def _sender_lossless(sender_class: Any, rng: random.Random) -> None:
    # Ten round trips take twice the timeout, so a timer left armed fires mid-transfer.
    items = _items(rng, 10)
    trace = Trace()
    sim = Simulation(seed=1, trace=trace, max_events=MAX_EVENTS)
    sim.add_node(sender_class("a", "b", items, TIMEOUT_S))
    receiver = sim.add_node(StopAndWaitReceiver("b"))
    sim.set_link("a", "b", LinkConfig(latency=Constant(PERFECT_LATENCY_S)))
    try:
        sim.run(until_s=CHAOS_TIME_LIMIT_S)
    except EventLimitExceeded:
        raise CheckFailed(
            expected=f"{len(items)} items sent over a perfect link",
            actual=f"{MAX_EVENTS} events without stopping",
            hint="a timer or a send repeats without end; send the next item only when "
            "the Ack of the current one arrives",
        ) from None
    data_sent = [e for e in trace.filter(Send) if e.source == "a"]
    if receiver.delivered != items:
        raise CheckFailed(
            expected=f"delivered == {short_repr(items)} over a link that loses nothing",
            actual=f"{short_repr(receiver.delivered)}; trace:\n" + _show_trace(trace, "lossless"),
            hint="on_start sends Data(0, items[0]); each Ack for the current seq moves on "
            "and sends the next item at once",
        )
    if len(data_sent) != len(items):
        raise CheckFailed(
            expected=f"exactly {len(items)} Data messages on a link that loses nothing, "
            f"since the timeout ({TIMEOUT_S} s) is far above the round trip "
            f"({2 * PERFECT_LATENCY_S} s)",
            actual=f"{len(data_sent)} Data messages; trace:\n" + _show_trace(trace, "lossless"),
            hint="cancel the timer of an item when its Ack arrives, or an old timer "
            "resends an item that was never lost",
        )
    finished_s = max(e.time_s for e in trace.filter("deliver"))
    bound_s = len(items) * 2 * PERFECT_LATENCY_S
    if finished_s > bound_s + 1e-9:
        raise CheckFailed(
            expected=f"the last Ack by {bound_s:.3f} s (one round trip per item)",
            actual=f"it arrived at {finished_s:.3f} s",
            hint="send the next item as soon as the Ack arrives, not when a timer fires",
        )


def _sender_chaos(sender_class: Any, rng: random.Random) -> None:
    for run in range(CHAOS_RUNS):
        items = _items(rng, CHAOS_ITEMS)
        seed = rng.randrange(2**32)
        _run_transfer(
            sender_class("a", "b", items, TIMEOUT_S),
            StopAndWaitReceiver("b"),
            items,
            CHAOS_LINK,
            seed,
            f"chaos run {run + 1} of {CHAOS_RUNS}",
        )


def _sender_explore(sender_class: Any, rng: random.Random) -> None:
    items = ["first", "second"]
    _explore_transfer(
        lambda: [sender_class("a", "b", items, TIMEOUT_S), StopAndWaitReceiver("b")],
        items,
        SENDER_EXPLORE_DEPTH,
        "a stale or duplicate Ack (one whose seq is not the item in flight) must change "
        "nothing, and every timer expiry must resend the item in flight and re-arm the timer",
    )


def check_stop_and_wait_sender(
    sender_class: Any, *, seed: int = 0, quiet: bool = False
) -> CheckReport:
    """Check a learner's stop-and-wait sender class; see the module docstring for the contract.

    Prints a one-line summary and returns a ``CheckReport`` when every check
    passes. Raises ``ExerciseFailed`` naming the first failed check, what was
    expected, what happened (with the trace) and a hint.
    """
    check = TimedCheck(SENDER_EXERCISE_ID, seed=seed)
    check.add(
        "perfect link",
        _sender_lossless,
        hint="send one Data, wait for its Ack, then send the next",
    )
    check.add(
        f"{CHAOS_RUNS} seeded runs with loss, duplication and reordering",
        _sender_chaos,
        hint="resend the item in flight on every timer expiry and ignore Acks for other seqs",
    )
    check.add(
        "every order of 2 items with 1 drop",
        _sender_explore,
        hint="ignore an Ack whose seq is not the item in flight",
    )
    return check.run(sender_class, quiet=quiet)


# ------------------------------------------------------------------ the receiver exercise


class _RecordingRuntime:
    """A ``Runtime`` that only records what a node sends, for calling handlers directly."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []

    def now(self) -> float:
        return 0.0

    def send(self, source: str, dest: str, message: object) -> None:
        self.sent.append((dest, message))

    def set_timer(self, node_id: str, delay_s: float, name: str) -> TimerHandle:
        raise CheckFailed(
            expected="a receiver that sets no timers",
            actual=f"set_timer({delay_s}, {name!r})",
            hint="the receiver only reacts to Data: buffer, deliver in order, acknowledge",
        )

    def cancel_timer(self, handle: TimerHandle) -> None:
        pass


def _script(
    receiver_class: Any, window: int, items: list[str], arrivals: list[int]
) -> tuple[Any, list[tuple[list[str], object]]]:
    """Deliver ``Data`` for each seq in ``arrivals`` directly; return the receiver and steps.

    Each step is what ``delivered`` held after that arrival, and the
    messages the receiver sent in response.
    """
    runtime = _RecordingRuntime()
    receiver = receiver_class("b", window)
    receiver.attach(runtime, 0)
    steps: list[tuple[list[str], object]] = []
    for seq in arrivals:
        before = len(runtime.sent)
        receiver.dispatch("a", Data(seq, items[seq]))
        replies = [message for dest, message in runtime.sent[before:] if dest == "a"]
        steps.append((list(receiver.delivered), replies))
    return receiver, steps


def _expect_steps(
    steps: Sequence[tuple[list[str], object]],
    expected: Sequence[tuple[list[str], object]],
    arrivals: list[int],
    hint: str,
) -> None:
    for number, (got, want) in enumerate(zip(steps, expected, strict=True)):
        if got != want:
            raise CheckFailed(
                expected=f"after Data seq {arrivals[: number + 1]} arrived: delivered "
                f"{short_repr(want[0])} and replies {short_repr(want[1])}",
                actual=f"delivered {short_repr(got[0])} and replies {short_repr(got[1])}",
                hint=hint,
            )


def _receiver_in_order(receiver_class: Any, rng: random.Random) -> None:
    items = _items(rng, 4)
    arrivals = [0, 1, 2, 3]
    _, steps = _script(receiver_class, WINDOW, items, arrivals)
    expected = [(items[: n + 1], [Ack(n, n + 1)]) for n in arrivals]
    _expect_steps(
        steps,
        expected,
        arrivals,
        "deliver an item that arrives in order at once, and answer each Data with "
        "Ack(seq=message.seq, next_expected=self.next_expected) sent to the sender",
    )


def _receiver_out_of_order(receiver_class: Any, rng: random.Random) -> None:
    items = _items(rng, 4)
    arrivals = [1, 2, 0, 3]
    _, steps = _script(receiver_class, WINDOW, items, arrivals)
    expected: list[tuple[list[str], object]] = [
        ([], [Ack(1, 0)]),
        ([], [Ack(2, 0)]),
        (items[:3], [Ack(0, 3)]),
        (items, [Ack(3, 4)]),
    ]
    _expect_steps(
        steps,
        expected,
        arrivals,
        "keep an early item in self.buffer (by seq) and acknowledge it; when the missing "
        "one arrives, deliver it and every buffered item that now follows in order",
    )


def _receiver_duplicates(receiver_class: Any, rng: random.Random) -> None:
    items = _items(rng, 3)
    arrivals = [0, 0, 2, 2, 1, 1, 0]
    _, steps = _script(receiver_class, WINDOW, items, arrivals)
    expected: list[tuple[list[str], object]] = [
        (items[:1], [Ack(0, 1)]),
        (items[:1], [Ack(0, 1)]),
        (items[:1], [Ack(2, 1)]),
        (items[:1], [Ack(2, 1)]),
        (items, [Ack(1, 3)]),
        (items, [Ack(1, 3)]),
        (items, [Ack(0, 3)]),
    ]
    _expect_steps(
        steps,
        expected,
        arrivals,
        "a duplicate (an item already delivered or already buffered) is never delivered "
        "again, but it is acknowledged again, because the first Ack may have been lost",
    )


def _receiver_beyond_window(receiver_class: Any, rng: random.Random) -> None:
    items = _items(rng, 6)
    arrivals = [4, 5, 0, 3, 2, 1]
    window = 3
    _, steps = _script(receiver_class, window, items, arrivals)
    expected: list[tuple[list[str], object]] = [
        ([], []),
        ([], []),
        (items[:1], [Ack(0, 1)]),
        (items[:1], [Ack(3, 1)]),
        (items[:1], [Ack(2, 1)]),
        (items[:4], [Ack(1, 4)]),
    ]
    _expect_steps(
        steps,
        expected,
        arrivals,
        "a seq at or beyond next_expected + window cannot come from a correct sender: "
        "ignore it, without buffering or acknowledging it",
    )


def _receiver_chaos(receiver_class: Any, rng: random.Random) -> None:
    for run in range(CHAOS_RUNS):
        items = _items(rng, CHAOS_ITEMS + 2)
        seed = rng.randrange(2**32)
        _run_transfer(
            SlidingWindowSender("a", "b", items, WINDOW, TIMEOUT_S),
            receiver_class("b", WINDOW),
            items,
            CHAOS_LINK,
            seed,
            f"chaos run {run + 1} of {CHAOS_RUNS}",
        )


def _receiver_explore(receiver_class: Any, rng: random.Random) -> None:
    items = ["first", "second"]
    _explore_transfer(
        lambda: [SlidingWindowSender("a", "b", items, 2, TIMEOUT_S), receiver_class("b", 2)],
        items,
        RECEIVER_EXPLORE_DEPTH,
        "deliver only from next_expected on, buffer early items, and acknowledge every "
        "Data within the window, duplicates included",
    )


def check_sliding_window_receiver(
    receiver_class: Any, *, seed: int = 0, quiet: bool = False
) -> CheckReport:
    """Check a learner's selective-repeat receiver class; see the module docstring.

    Prints a one-line summary and returns a ``CheckReport`` when every check
    passes. Raises ``ExerciseFailed`` naming the first failed check, what was
    expected, what happened and a hint.
    """
    check = TimedCheck(RECEIVER_EXERCISE_ID, seed=seed)
    check.add("in-order arrivals", _receiver_in_order, hint="deliver and acknowledge")
    check.add(
        "early arrivals are buffered", _receiver_out_of_order, hint="buffer early items"
    )
    check.add(
        "duplicates acknowledged, not delivered",
        _receiver_duplicates,
        hint="acknowledge duplicates again, deliver them never",
    )
    check.add(
        "arrivals beyond the window ignored",
        _receiver_beyond_window,
        hint="ignore seqs at or beyond next_expected + window",
    )
    check.add(
        f"{CHAOS_RUNS} seeded runs with loss, duplication and reordering",
        _receiver_chaos,
        hint="deliver in order and exactly once, and acknowledge every Data in the window",
    )
    check.add(
        "every order of 2 items with 1 drop",
        _receiver_explore,
        hint="deliver in order and exactly once, and acknowledge every Data in the window",
    )
    return check.run(receiver_class, quiet=quiet)
