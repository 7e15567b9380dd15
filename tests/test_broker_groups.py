"""Partition assignment strategies and consumer-group membership of msgpass.broker."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msgpass.broker.groups import (
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
