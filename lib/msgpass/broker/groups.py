"""Consumer groups: who in a group reads which partition, and when that changes.

A consumer group shares the work of reading topics: each partition is read
by exactly one member of the group at a time, so the members together see
every record once (or more, after failures) and in order within a partition.

Two pure functions decide the split, so they can be tested and compared
without a broker:

- ``assign_range``: per topic, the partitions in order are cut into
  contiguous ranges, one per member in sorted order. The first
  ``partitions % members`` members get one extra partition. Neighbouring
  partitions stay together, but with many topics the first members get the
  extra partition of every topic.
- ``assign_round_robin``: all partitions, sorted by topic and number, are
  dealt to the members like cards. Every member ends up with the same number
  of partitions, give or take one.

``ConsumerGroup`` takes a strategy by name (a key of ``STRATEGIES``) or as
any function ``assign(members, partitions) -> {member: [partitions]}``. The
group checks every result before it uses it: each partition must go to
exactly one member, and only to members of the group. A member missing from
the result gets no partitions. A result that breaks these rules, or a
strategy that raises, fails the membership change with ``RemoteError`` code
``"invalid_assignment"``, and the group keeps its previous members and
assignment.

``ConsumerGroup`` tracks the members. Each member proves it is alive by
calling the broker (every fetch counts as a heartbeat). A member silent for
longer than its session timeout is removed. Any join, leave or removal starts
a new *generation*: the generation id goes up by one and the assignment is
computed again. A member that asks for records with an old generation id gets
the new assignment instead of records, so no partition is read by two members
of the same generation.

NOTE: Kafka lets the consumers compute the assignment (the group leader runs
the strategy) and pauses the whole group during a rebalance. Here the broker
computes it at once and each member switches on its next request.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

from ..errors import RemoteError

__all__ = [
    "TopicPartition",
    "Assignment",
    "assign_range",
    "assign_round_robin",
    "Strategy",
    "STRATEGIES",
    "strategy_name",
    "Member",
    "ConsumerGroup",
]

log = logging.getLogger(__name__)


class TopicPartition(NamedTuple):
    """A partition named by its topic and its number within the topic."""

    topic: str
    partition: int


Assignment = dict[str, list[TopicPartition]]


def assign_range(members: Sequence[str], partitions: Sequence[TopicPartition]) -> Assignment:
    """Give each member a contiguous range of every topic's partitions.

    Every member appears in the result, with an empty list when there are
    more members than partitions.
    """
    ordered_members = sorted(set(members))
    assignment: Assignment = {member: [] for member in ordered_members}
    if not ordered_members:
        return assignment
    by_topic: dict[str, list[TopicPartition]] = {}
    for tp in sorted(set(partitions)):
        by_topic.setdefault(tp.topic, []).append(tp)
    for topic_partitions in by_topic.values():
        share, extra = divmod(len(topic_partitions), len(ordered_members))
        start = 0
        for index, member in enumerate(ordered_members):
            count = share + (1 if index < extra else 0)
            assignment[member].extend(topic_partitions[start : start + count])
            start += count
    return assignment


def assign_round_robin(members: Sequence[str], partitions: Sequence[TopicPartition]) -> Assignment:
    """Deal the partitions, sorted by topic and number, to the sorted members in turn."""
    ordered_members = sorted(set(members))
    assignment: Assignment = {member: [] for member in ordered_members}
    if not ordered_members:
        return assignment
    for tp, member in zip(sorted(set(partitions)), itertools.cycle(ordered_members)):
        assignment[member].append(tp)
    return assignment


Strategy = Callable[[Sequence[str], Sequence[TopicPartition]], Assignment]

STRATEGIES: Mapping[str, Strategy] = MappingProxyType(
    {
        "range": assign_range,
        "round_robin": assign_round_robin,
    }
)


def strategy_name(strategy: str | Strategy) -> str:
    """Return the name a strategy is shown under: its key, or a function's ``__name__``."""
    if isinstance(strategy, str):
        return strategy
    return str(getattr(strategy, "__name__", repr(strategy)))


@dataclass
class Member:
    """One consumer in a group: what it subscribes to and when it was last heard from."""

    member_id: str
    topics: tuple[str, ...]
    session_timeout_s: float
    last_seen_s: float


class ConsumerGroup:
    """The members, generation and assignment of one consumer group.

    ``partition_count(topic)`` returns how many partitions a topic has, so
    the group can list the partitions to assign. ``strategy`` is a name in
    ``strategies`` or a function with the signature of ``assign_range``.
    Raises ``ValueError`` for an unknown name. Times are ``time.monotonic()``
    seconds passed in by the caller, which keeps this class free of clocks.
    """

    def __init__(
        self,
        name: str,
        partition_count: Callable[[str], int],
        *,
        strategy: str | Strategy = "range",
        strategies: Mapping[str, Strategy] = STRATEGIES,
    ) -> None:
        if isinstance(strategy, str):
            if strategy not in strategies:
                raise ValueError(
                    f"unknown assignment strategy {strategy!r}; use one of {sorted(strategies)} "
                    f"or pass a function assign(members, partitions)"
                )
            self._assign = strategies[strategy]
        elif callable(strategy):
            self._assign = strategy
        else:
            raise TypeError(
                f"strategy must be a strategy name or a function, got {type(strategy).__name__}"
            )
        self.name = name
        self.strategy = strategy_name(strategy)
        self.generation = 0
        self.members: dict[str, Member] = {}
        self.assignment: Assignment = {}
        self._partition_count = partition_count

    def join(self, topics: Collection[str], session_timeout_s: float, now_s: float) -> str:
        """Add a member subscribed to ``topics`` and return its new member id."""
        # Random ids, so that a client holding an id from before a broker restart
        # cannot be mistaken for a member that joined after it.
        member_id = f"{self.name}-{uuid.uuid4().hex[:12]}"
        member = Member(member_id, tuple(sorted(topics)), session_timeout_s, now_s)
        self._rebalance({**self.members, member_id: member})
        log.info("group %s: %s joined for %s", self.name, member_id, sorted(topics))
        return member_id

    def leave(self, member_id: str) -> None:
        """Remove a member that is closing. Unknown ids are ignored (it may have expired)."""
        if member_id in self.members:
            self._rebalance({m: v for m, v in self.members.items() if m != member_id})
            log.info("group %s: %s left", self.name, member_id)

    def heartbeat(self, member_id: str, now_s: float) -> Member:
        """Record that ``member_id`` is alive and return it.

        Raises ``RemoteError`` with code ``"unknown_member"`` when the member
        left or was removed after its session timeout; it must join again.
        """
        member = self.members.get(member_id)
        if member is None:
            raise RemoteError(
                f"member {member_id!r} is not in group {self.name!r}: its session timed out "
                f"or it left; join the group again",
                code="unknown_member",
            )
        member.last_seen_s = now_s
        return member

    def expire(self, now_s: float) -> list[str]:
        """Remove members silent for longer than their session timeout; return their ids."""
        expired = [
            member.member_id
            for member in self.members.values()
            if now_s - member.last_seen_s > member.session_timeout_s
        ]
        if expired:
            self._rebalance({m: v for m, v in self.members.items() if m not in expired})
        for member_id in expired:
            log.warning("group %s: %s missed its session timeout; removed it", self.name, member_id)
        return expired

    def owner_of(self, tp: TopicPartition) -> str | None:
        """Return the member that reads ``tp`` in the current generation, if any."""
        for member_id, partitions in self.assignment.items():
            if tp in partitions:
                return member_id
        return None

    def refresh(self) -> None:
        """Recompute the assignment, for example after a topic got more partitions."""
        self._rebalance(dict(self.members))

    def _rebalance(self, members: dict[str, Member]) -> None:
        """Make ``members`` the group's members, with a new generation and assignment.

        The assignment is computed and checked first, so when the strategy
        fails, the group keeps its members, generation and assignment.
        """
        # Members that subscribe to the same topics share those topics' partitions.
        subscribers: dict[str, list[str]] = {}
        for member in members.values():
            for topic in member.topics:
                subscribers.setdefault(topic, []).append(member.member_id)
        by_member_set: dict[tuple[str, ...], list[TopicPartition]] = {}
        for topic, member_ids in subscribers.items():
            key = tuple(sorted(member_ids))
            partitions = [TopicPartition(topic, p) for p in range(self._partition_count(topic))]
            by_member_set.setdefault(key, []).extend(partitions)
        assignment: Assignment = {member_id: [] for member_id in members}
        for member_set, topic_partitions in by_member_set.items():
            shares = self._checked_shares(member_set, topic_partitions)
            for member_id, share in shares.items():
                assignment[member_id].extend(share)
        self.members = members
        self.generation += 1
        self.assignment = {member: sorted(tps) for member, tps in assignment.items()}
        log.info(
            "group %s: generation %d, assignment %s", self.name, self.generation, self.assignment
        )

    def _checked_shares(
        self, members: Sequence[str], partitions: Sequence[TopicPartition]
    ) -> Assignment:
        """Run the strategy and check its result; raise ``RemoteError`` naming a violation."""
        try:
            result = self._assign(list(members), list(partitions))
        except Exception as error:
            raise _invalid(self, f"raised {error!r}") from error
        if not isinstance(result, Mapping):
            raise _invalid(self, f"returned {type(result).__name__}, not a dict")

        unknown = sorted(map(repr, set(result) - set(members)))
        if unknown:
            raise _invalid(
                self,
                f"assigned partitions to {', '.join(unknown)}, "
                f"which are not members {list(members)}",
            )

        owners: dict[TopicPartition, str] = {}
        shares: Assignment = {}
        for member_id, share in result.items():
            if isinstance(share, (str, bytes)) or not isinstance(share, Iterable):
                raise _invalid(self, f"gave {member_id!r} {share!r}, not a list of partitions")
            shares[member_id] = []
            for item in share:
                try:
                    tp = TopicPartition(*item)
                except TypeError as error:
                    raise _invalid(self, f"gave {member_id!r} {item!r}, not a partition") from error
                if tp in owners:
                    owner = owners[tp]
                    both = f"{owner!r} twice" if owner == member_id else f"both {owner!r} and"
                    raise _invalid(self, f"gave {tp.topic}/{tp.partition} to {both} {member_id!r}")
                owners[tp] = member_id
                shares[member_id].append(tp)

        extra = sorted(set(owners) - set(partitions), key=str)
        if extra:
            raise _invalid(self, f"assigned partitions it was not given: {extra}")
        missing = sorted(set(partitions) - set(owners), key=str)
        if missing:
            raise _invalid(self, f"left partitions without a member: {missing}")
        return shares

    def describe(self) -> Mapping[str, object]:
        """Return the group's state as plain data, for display in a notebook."""
        return {
            "group": self.name,
            "strategy": self.strategy,
            "generation": self.generation,
            "assignment": {
                member: [f"{tp.topic}/{tp.partition}" for tp in tps]
                for member, tps in self.assignment.items()
            },
        }

    def __repr__(self) -> str:
        return (
            f"<ConsumerGroup {self.name!r} generation {self.generation}, "
            f"{len(self.members)} members, {self.strategy}>"
        )


def _invalid(group: ConsumerGroup, violation: str) -> RemoteError:
    return RemoteError(
        f"assignment strategy {group.strategy!r} of group {group.name!r} {violation}; "
        f"each partition must go to exactly one member of the group",
        code="invalid_assignment",
    )
