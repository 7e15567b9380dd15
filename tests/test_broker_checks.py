"""Edge cases of the teaching-broker lab's checkers (the lab's own cells are in test_exercises)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from msgpass.broker import Delivery, TopicPartition, assign_round_robin
from msgpass.broker.groups import STRATEGIES
from msgpass.exercises import (
    ExerciseFailed,
    check_idempotent_consumer,
    check_partition_assignment,
)
from msgpass.exercises.broker_checks import StateFile


def _apply_once(store: StateFile, delivery: Delivery) -> None:
    state = store.load()
    transfer = json.loads(delivery.value)
    if transfer["id"] in state["applied"]:
        return
    state["balances"][transfer["from"]] -= transfer["amount"]
    state["balances"][transfer["to"]] += transfer["amount"]
    state["applied"].append(transfer["id"])
    store.save(state)


def test_state_file_round_trip(tmp_path: Path):
    store = StateFile(tmp_path / "state.json", {"balances": {"a": 1}, "applied": []})
    state = store.load()
    state["balances"]["a"] = 2
    assert store.load()["balances"]["a"] == 1  # nothing changes before save()
    store.save(state)
    assert StateFile(tmp_path / "state.json", {}).load()["balances"]["a"] == 2
    assert store.saves == 1
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_idempotent_reference_passes_other_seed():
    report = check_idempotent_consumer(_apply_once, seed=7, quiet=True)
    assert len(report.checks_passed) == 4


def test_idempotent_stub_not_implemented():
    def stub(store: StateFile, delivery: Delivery) -> None:
        raise NotImplementedError("idempotent-consumer")

    with pytest.raises(ExerciseFailed, match="not implemented yet"):
        check_idempotent_consumer(stub, quiet=True)


def test_idempotent_crash_not_swallowed():
    # A broad `except Exception` must not hide the checker's simulated crash.
    def careful(store: StateFile, delivery: Delivery) -> None:
        with contextlib.suppress(Exception):
            _apply_once(store, delivery)

    check_idempotent_consumer(careful, quiet=True)


def test_idempotent_learner_error_stops_broker():
    threads_before = set(threading.enumerate())

    def broken(store: StateFile, delivery: Delivery) -> None:
        if json.loads(delivery.value)["id"].startswith("r"):
            raise ValueError("bad transfer")
        _apply_once(store, delivery)

    with pytest.raises(ExerciseFailed, match="unexpected ValueError"):
        check_idempotent_consumer(broken, quiet=True)
    assert set(threading.enumerate()) <= threads_before


def test_idempotent_no_save_is_rejected():
    def forgets_to_save(store: StateFile, delivery: Delivery) -> None:
        store.load()

    with pytest.raises(ExerciseFailed, match="one transfer"):
        check_idempotent_consumer(forgets_to_save, quiet=True)


def test_assignment_library_strategy_passes():
    check_partition_assignment(assign_round_robin, quiet=True)
    assert sorted(STRATEGIES) == ["range", "round_robin"]


def test_assignment_non_dict_rejected():
    def as_list(members: Sequence[str], partitions: Sequence[TopicPartition]) -> object:
        return [list(partitions)]

    with pytest.raises(ExerciseFailed, match="return a dict"):
        check_partition_assignment(as_list, quiet=True)


def test_assignment_missing_member_rejected():
    def drops_idle(
        members: Sequence[str], partitions: Sequence[TopicPartition]
    ) -> dict[str, list[TopicPartition]]:
        full = assign_round_robin(members, partitions)
        return {member: tps for member, tps in full.items() if tps}

    with pytest.raises(ExerciseFailed, match="empty list|one key per member"):
        check_partition_assignment(drops_idle, quiet=True)


def test_assignment_failure_leaves_strategies():
    def greedy(
        members: Sequence[str], partitions: Sequence[TopicPartition]
    ) -> dict[str, list[TopicPartition]]:
        ordered = sorted(members)
        return {m: (list(partitions) if m == ordered[0] else []) for m in ordered}

    with pytest.raises(ExerciseFailed):
        check_partition_assignment(greedy, quiet=True)
    assert sorted(STRATEGIES) == ["range", "round_robin"]


def test_assignment_rejected_by_broker():
    # Correct on the checker's own member names, wrong on the broker's member ids.
    def wrong_in_broker(
        members: Sequence[str], partitions: Sequence[TopicPartition]
    ) -> dict[str, list[TopicPartition]]:
        if any(member.startswith("assign-check-") for member in members):
            return {member: list(partitions) for member in members}
        return assign_round_robin(members, partitions)

    with pytest.raises(ExerciseFailed, match="the broker rejected one") as error:
        check_partition_assignment(wrong_in_broker, quiet=True)
    assert "rebalance in a real consumer group" in str(error.value)
    assert "to both" in str(error.value)
