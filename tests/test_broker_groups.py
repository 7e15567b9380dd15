"""Partition assignment strategies and consumer-group membership of msgpass.broker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msgpass.broker.groups import (
    STRATEGIES,
    ConsumerGroup,
    TopicPartition,
    assign_range,
    assign_round_robin,
)
from msgpass.errors import RemoteError

members_strategy = st.lists(
    st.text("abcdef", min_size=1, max_size=4), min_size=1, max_size=8, unique=True
)
topics_strategy = st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(1, 12), min_size=1)


def _partitions(topics: dict[str, int]) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]


def _check_exact_cover(
    assignment: dict[str, list[TopicPartition]], partitions: list[TopicPartition]
) -> None:
    given_out = [tp for tps in assignment.values() for tp in tps]
    assert sorted(given_out) == sorted(partitions)  # every partition exactly once


@given(members_strategy, topics_strategy)
def test_round_robin_balanced(members: list[str], topics: dict[str, int]):
    partitions = _partitions(topics)
    assignment = assign_round_robin(members, partitions)
    _check_exact_cover(assignment, partitions)
    assert set(assignment) == set(members)
    counts = [len(tps) for tps in assignment.values()]
    assert max(counts) - min(counts) <= 1


@given(members_strategy, topics_strategy)
def test_range_contiguous_per_topic(members: list[str], topics: dict[str, int]):
    partitions = _partitions(topics)
    assignment = assign_range(members, partitions)
    _check_exact_cover(assignment, partitions)
    for topic, count in topics.items():
        shares = []
        for member in sorted(members):
            numbers = [tp.partition for tp in assignment[member] if tp.topic == topic]
            if numbers:
                assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
            shares.append(len(numbers))
        assert max(shares) - min(shares) <= 1
        assert sum(shares) == count


def test_range_example():
    partitions = _partitions({"t": 5})
    assert assign_range(["b", "a"], partitions) == {
        "a": [TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("t", 2)],
        "b": [TopicPartition("t", 3), TopicPartition("t", 4)],
    }


def test_round_robin_example():
    partitions = _partitions({"t": 3})
    assert assign_round_robin(["a", "b"], partitions) == {
        "a": [TopicPartition("t", 0), TopicPartition("t", 2)],
        "b": [TopicPartition("t", 1)],
    }


def test_group_generations_on_join_leave_expire():
    group = ConsumerGroup("g", lambda topic: 4, strategy="round_robin")
    first = group.join(["t"], session_timeout_s=1.0, now_s=0.0)
    assert group.generation == 1
    assert len(group.assignment[first]) == 4
    second = group.join(["t"], session_timeout_s=1.0, now_s=0.0)
    assert group.generation == 2
    assert len(group.assignment[first]) == 2
    assert len(group.assignment[second]) == 2

    group.heartbeat(first, now_s=1.5)
    assert group.expire(now_s=1.6) == [second]
    assert group.generation == 3
    assert len(group.assignment[first]) == 4
    with pytest.raises(RemoteError) as raised:
        group.heartbeat(second, now_s=1.7)
    assert raised.value.code == "unknown_member"

    group.leave(first)
    assert group.generation == 4
    assert group.assignment == {}


def test_group_only_assigns_subscribed_topics():
    counts = {"a": 2, "b": 3}
    group = ConsumerGroup("g", counts.__getitem__)
    only_a = group.join(["a"], session_timeout_s=5, now_s=0)
    both = group.join(["a", "b"], session_timeout_s=5, now_s=0)
    assert {tp.topic for tp in group.assignment[only_a]} == {"a"}
    assert [tp for tp in group.assignment[both] if tp.topic == "b"] == _partitions({"b": 3})


def test_unknown_strategy_rejected():
    with pytest.raises(ValueError, match="unknown assignment strategy"):
        ConsumerGroup("g", lambda topic: 1, strategy="sticky")


# -- strategies given as functions --------------------------------------------

Shares = dict[str, list[TopicPartition]]


def _reverse(members: Sequence[str], partitions: Sequence[TopicPartition]) -> Shares:
    """Deal the partitions to the members in reverse order: valid, and unlike the built-ins."""
    ordered = sorted(members, reverse=True)
    shares: Shares = {member: [] for member in ordered}
    for index, tp in enumerate(sorted(partitions)):
        shares[ordered[index % len(ordered)]].append(tp)
    return shares


def test_function_strategy_used():
    group = ConsumerGroup("g", lambda topic: 3, strategy=_reverse)
    first = group.join(["t"], session_timeout_s=5, now_s=0)
    second = group.join(["t"], session_timeout_s=5, now_s=0)
    assert group.assignment == _reverse([first, second], _partitions({"t": 3}))
    assert group.assignment != assign_round_robin([first, second], _partitions({"t": 3}))
    assert group.strategy == "_reverse"
    assert group.describe()["strategy"] == "_reverse"


def test_missing_member_gets_nothing():
    def only_first(members: Sequence[str], partitions: Sequence[TopicPartition]) -> Shares:
        return {sorted(members)[0]: list(partitions)}

    group = ConsumerGroup("g", lambda topic: 2, strategy=only_first)
    first = group.join(["t"], session_timeout_s=5, now_s=0)
    second = group.join(["t"], session_timeout_s=5, now_s=0)
    owner, idle = sorted([first, second])
    assert group.assignment[owner] == _partitions({"t": 2})
    assert group.assignment[idle] == []


def _everything_twice(members: Sequence[str], partitions: Sequence[TopicPartition]) -> Shares:
    return {member: list(partitions) for member in members}


def _first_twice(members: Sequence[str], partitions: Sequence[TopicPartition]) -> Shares:
    shares = assign_round_robin(members, partitions)
    shares[sorted(members)[0]].append(min(partitions))
    return shares


def _drops_last(members: Sequence[str], partitions: Sequence[TopicPartition]) -> Shares:
    return assign_round_robin(members, sorted(partitions)[:-1])


def _invents_member(members: Sequence[str], partitions: Sequence[TopicPartition]) -> Shares:
    return {"ghost": list(partitions)}


def _invents_partition(members: Sequence[str], partitions: Sequence[TopicPartition]) -> Shares:
    shares = assign_round_robin(members, partitions)
    shares[sorted(members)[0]].append(TopicPartition("t", 99))
    return shares


def _raises(members: Sequence[str], partitions: Sequence[TopicPartition]) -> Shares:
    raise ZeroDivisionError("learner bug")


def _returns_list(members: Sequence[str], partitions: Sequence[TopicPartition]) -> object:
    return [list(partitions)]


def _not_partitions(members: Sequence[str], partitions: Sequence[TopicPartition]) -> object:
    return {member: [7] for member in members}


@pytest.mark.parametrize(
    ("strategy", "violation"),
    [
        (_first_twice, r"gave t/0 to '.*' twice"),
        (
            _drops_last,
            r"left partitions without a member: \[TopicPartition\(topic='t', partition=2",
        ),
        (_invents_member, r"assigned partitions to 'ghost', which are not members"),
        (_invents_partition, r"assigned partitions it was not given: .*partition=99"),
        (_raises, r"raised ZeroDivisionError\('learner bug'\)"),
        (_returns_list, r"returned list, not a dict"),
        (_not_partitions, r"gave '.*' 7, not a partition"),
    ],
)
def test_invalid_assignment_rejected(strategy: Any, violation: str):
    group = ConsumerGroup("g", lambda topic: 3, strategy=strategy)
    with pytest.raises(RemoteError, match=violation) as error:
        group.join(["t"], session_timeout_s=5, now_s=0)
    assert error.value.code == "invalid_assignment"
    # The failed join changed nothing.
    assert group.members == {}
    assert group.generation == 0


def test_failed_rebalance_keeps_group():
    calls = 0

    def fails_on_second_member(
        members: Sequence[str], partitions: Sequence[TopicPartition]
    ) -> Shares:
        nonlocal calls
        calls += 1
        return _everything_twice(members, partitions)

    group = ConsumerGroup("g", lambda topic: 2, strategy=fails_on_second_member)
    first = group.join(["t"], session_timeout_s=5, now_s=0)
    before = dict(group.assignment)
    with pytest.raises(RemoteError, match="gave t/0 to both") as error:
        group.join(["t"], session_timeout_s=5, now_s=0)
    assert error.value.code == "invalid_assignment"
    assert list(group.members) == [first]
    assert group.generation == 1
    assert group.assignment == before
    assert calls == 2


def test_strategy_table_read_only():
    with pytest.raises(TypeError):
        STRATEGIES["mine"] = _reverse  # type: ignore[index]
    assert sorted(STRATEGIES) == ["range", "round_robin"]


def test_strategy_of_wrong_type_rejected():
    with pytest.raises(TypeError, match="strategy name or a function"):
        ConsumerGroup("g", lambda topic: 1, strategy=3)  # type: ignore[arg-type]


def test_failed_leave_and_expire_keep_group():
    broken = False

    def breaks_on_request(members: Sequence[str], partitions: Sequence[TopicPartition]) -> Shares:
        if broken:
            return {}
        return assign_round_robin(members, partitions)

    group = ConsumerGroup("g", lambda topic: 2, strategy=breaks_on_request)
    first = group.join(["t"], session_timeout_s=1.0, now_s=0)
    second = group.join(["t"], session_timeout_s=1.0, now_s=0)
    before = dict(group.assignment)
    broken = True
    with pytest.raises(RemoteError, match="left partitions without a member"):
        group.leave(first)
    group.heartbeat(first, now_s=4.5)
    with pytest.raises(RemoteError, match="left partitions without a member"):
        group.expire(now_s=5.0)  # the second member's session timed out
    assert sorted(group.members) == sorted([first, second])
    assert group.generation == 2
    assert group.assignment == before
