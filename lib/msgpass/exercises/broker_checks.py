"""Checkers for the two exercises of the teaching-broker lab.

``idempotent-consumer``: the learner writes ``apply_transfer(store, delivery)``,
the processing step of a consumer that moves money between accounts. Each
record's value is a JSON transfer ``{"id", "from", "to", "amount"}``. The
state lives in a ``StateFile`` whose ``load()`` returns
``{"balances": {...}, "applied": [...]}`` and whose ``save(state)`` replaces
the whole file atomically. The function must apply each transfer id exactly
once, however often the record is delivered, by saving the applied ids in
the same ``save`` as the balances. The checker runs a real ``BrokerServer``
(memory mode, short ack timeout), produces transfers including producer
retries (the same transfer id stored again at a later offset), and crashes
the consumer at seeded points: inside ``save`` before the file is replaced,
right after it is replaced, or by dropping the ack. After a crash the
consumer is closed without acking and a new one joins the group, so the
broker redelivers. Safety: no transfer id changes the balances twice.
Liveness: every transfer id changes them once, and the final balances equal
the expected ones.

``partition-assignment``: the learner writes the round-robin strategy
``assign(members, partitions)``. Seeded random member and partition sets
check that every partition goes to exactly one member, that counts differ by
at most one, that the answer does not depend on the order of the inputs, and
that every member appears. Then the function runs inside a real broker's
consumer group while consumers join and leave, and every record produced is
consumed exactly once. The consumers pass the function itself as their
``strategy``, which works because the checker's ``BrokerServer`` runs in
the same process; the broker checks each of its answers too.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..broker import Admin, Consumer, Delivery, Producer, TopicPartition
from ..broker.segments import write_file_atomically
from ..broker.server import BrokerServer
from ..errors import RemoteError
from .checking import CheckFailed, CheckReport, short_repr
from .timed_calls import TimedCheck

__all__ = [
    "ConsumerCrashed",
    "StateFile",
    "check_idempotent_consumer",
    "check_partition_assignment",
]

IDEMPOTENT_ID = "idempotent-consumer"
ASSIGNMENT_ID = "partition-assignment"

ACCOUNTS = ("alice", "bob", "carol", "dave")
START_BALANCE = 100
CRASH_RUNS = 20  # seeded runs of the consumer against a real broker
TRANSFERS_PER_RUN = 10
RETRIES_PER_RUN = 3  # transfers a producer stores twice, as after a lost produce reply
FAULT_PROBABILITY = 0.35  # chance of a fault on each of a record's first two deliveries
ACK_TIMEOUT_S = 0.1  # the broker's ack timeout in the crash runs
RUN_DEADLINE_S = 5.0  # one crash run must finish within this many seconds
RANDOM_CASES = 300  # seeded member and partition sets for the strategy checks
REBALANCE_DEADLINE_S = 5.0
CLIENT_TIMEOUT_S = 5.0


class ConsumerCrashed(BaseException):
    """Raised inside ``StateFile.save`` by the checker to simulate the consumer process dying.

    It derives from ``BaseException``, like ``KeyboardInterrupt``, so that an
    ``except Exception`` in the learner's code does not swallow the crash.
    """


class StateFile:
    """A consumer's state as one JSON file, replaced atomically by every ``save``.

    ``load()`` returns a fresh copy of the saved state. ``save(state)``
    writes it to a temporary file and renames it over the old one, so after
    a crash the file contains either the old state or the new one, never a mix.
    With ``durable=True`` both the file and its directory are fsynced.
    """

    def __init__(self, path: Path, initial: Mapping[str, Any], *, durable: bool = False) -> None:
        self.path = Path(path)
        self.durable = durable
        self.saves = 0
        if not self.path.exists():
            write_file_atomically(self.path, dict(initial), durable=durable)

    def load(self) -> dict[str, Any]:
        """Return the saved state; changing it changes nothing until ``save``."""
        state: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        return state

    def save(self, state: Mapping[str, Any]) -> None:
        """Replace the saved state with ``state`` in one atomic step."""
        write_file_atomically(self.path, dict(state), durable=self.durable)
        self.saves += 1

    def __repr__(self) -> str:
        return f"<StateFile {self.path.name}, {self.saves} saves>"


class _CrashingStateFile(StateFile):
    """A ``StateFile`` that raises ``ConsumerCrashed`` in the next ``save``, before or after."""

    crash: str | None = None  # "before" or "after" the file is replaced, or None

    def save(self, state: Mapping[str, Any]) -> None:
        crash, self.crash = self.crash, None
        if crash == "before":
            raise ConsumerCrashed("the consumer died before the state was saved")
        super().save(state)
        if crash == "after":
            raise ConsumerCrashed("the consumer died after the state was saved, before its ack")


def _initial_state() -> dict[str, Any]:
    return {"balances": {name: START_BALANCE for name in ACCOUNTS}, "applied": []}


# ---------------------------------------------------------------------------
# idempotent-consumer
# ---------------------------------------------------------------------------

ApplyTransfer = Callable[[StateFile, Delivery], Any]


def _transfer(rng: random.Random, transfer_id: str) -> dict[str, Any]:
    source, target = rng.sample(ACCOUNTS, 2)
    return {"id": transfer_id, "from": source, "to": target, "amount": rng.randint(1, 30)}


def _expected_balances(transfers: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    balances = {name: START_BALANCE for name in ACCOUNTS}
    for transfer in transfers:
        balances[transfer["from"]] -= transfer["amount"]
        balances[transfer["to"]] += transfer["amount"]
    return balances


def _delivery(transfer: Mapping[str, Any], partition: int, offset: int, count: int) -> Delivery:
    return Delivery(
        topic="transfers",
        partition=partition,
        offset=offset,
        key=str(transfer["from"]).encode(),
        value=json.dumps(transfer).encode(),
        timestamp_ms=0,
        deliveries=count,
    )


def _balances(store: StateFile) -> dict[str, int]:
    state = store.load()
    balances = state.get("balances") if isinstance(state, dict) else None
    if not isinstance(balances, dict):
        raise CheckFailed(
            expected="the saved state to keep its 'balances' mapping",
            actual=f"the saved state is {short_repr(state)}",
            hint="load() the state, change it, and save() the whole of it, keeping 'balances'",
        )
    return balances


@contextmanager
def _temporary_store(crashing: bool = False) -> Iterator[StateFile]:
    with tempfile.TemporaryDirectory(prefix="idempotent-check-") as directory:
        kind = _CrashingStateFile if crashing else StateFile
        yield kind(Path(directory) / "state.json", _initial_state())


def check_one_transfer(apply_transfer: ApplyTransfer, rng: random.Random) -> None:
    transfer = _transfer(rng, "t-1")
    with _temporary_store() as store:
        apply_transfer(store, _delivery(transfer, 0, 0, 1))
        expected = _expected_balances([transfer])
        got = _balances(store)
        if got != expected:
            raise CheckFailed(
                expected=f"balances {expected} after {transfer}",
                actual=f"balances {got}",
                hint="subtract the amount from the 'from' account, add it to the 'to' "
                "account, and save() the state",
            )


def check_redelivered_record(apply_transfer: ApplyTransfer, rng: random.Random) -> None:
    transfer = _transfer(rng, "t-2")
    with _temporary_store() as store:
        apply_transfer(store, _delivery(transfer, 1, 4, 1))
        apply_transfer(store, _delivery(transfer, 1, 4, 2))
        expected = _expected_balances([transfer])
        got = _balances(store)
        if got != expected:
            raise CheckFailed(
                expected=f"balances {expected}: the same record delivered twice applied once",
                actual=f"balances {got}",
                hint="add the transfer's id to state['applied'] and return early when it is "
                "already there",
            )


def check_producer_retry(apply_transfer: ApplyTransfer, rng: random.Random) -> None:
    transfer = _transfer(rng, "t-3")
    with _temporary_store() as store:
        apply_transfer(store, _delivery(transfer, 2, 7, 1))
        apply_transfer(store, _delivery(transfer, 2, 9, 1))
        expected = _expected_balances([transfer])
        got = _balances(store)
        if got != expected:
            raise CheckFailed(
                expected=f"balances {expected}: transfer {transfer['id']} stored at offsets "
                f"7 and 9 by a producer retry is applied once",
                actual=f"balances {got}",
                hint="a producer retry stores the same transfer at a new offset, so recognise "
                "duplicates by the transfer's id, not by its (partition, offset)",
            )


class _CrashRun:
    """One seeded run: produce transfers, consume them with crashes, record every effect."""

    def __init__(self, port: int, number: int, rng: random.Random) -> None:
        self.port = port
        self.rng = rng
        self.topic = f"transfers-{number}"
        self.group = f"bank-{number}"
        self.transfers = [_transfer(rng, f"r{number}-t{i}") for i in range(TRANSFERS_PER_RUN)]
        # Each effect: (partition, offset, delivery count, fault of the call that made it).
        self.effects: dict[str, list[tuple[int, int, int, str]]] = defaultdict(list)
        self.delivered: set[str] = set()
        self.crashes = 0
        self.ids_saved = False  # whether any transfer id of this run reached the saved state

    def produce(self) -> list[tuple[int, int]]:
        messages = list(self.transfers)
        for transfer in self.rng.sample(self.transfers, RETRIES_PER_RUN):
            messages.insert(self.rng.randint(messages.index(transfer) + 1, len(messages)), transfer)
        with Admin(port=self.port, timeout_s=CLIENT_TIMEOUT_S) as admin:
            admin.create_topic(self.topic, 3)
        with Producer(port=self.port, timeout_s=CLIENT_TIMEOUT_S) as producer:
            return producer.send_batch(
                self.topic, [(t["from"].encode(), json.dumps(t).encode()) for t in messages]
            )

    def _join(self) -> Consumer:
        return Consumer(
            port=self.port,
            group=self.group,
            topics=[self.topic],
            max_records=4,
            timeout_s=CLIENT_TIMEOUT_S,
        )

    def consume(self, apply_transfer: ApplyTransfer, store: _CrashingStateFile) -> None:
        with Admin(port=self.port, timeout_s=CLIENT_TIMEOUT_S) as admin:
            ends = [end for _, end in admin.offsets()[self.topic]]
        committed = [0] * len(ends)
        deadline = time.monotonic() + RUN_DEADLINE_S
        consumer = self._join()
        try:
            while committed != ends:
                if time.monotonic() > deadline:
                    raise CheckFailed(
                        expected=f"every record acknowledged within {RUN_DEADLINE_S:g} s",
                        actual=f"committed offsets {committed} of {ends}",
                        hint="apply_transfer() must return normally for every delivery",
                    )
                for delivery in consumer.poll(timeout_s=0.2):
                    fault = self._fault(delivery)
                    if self._process(apply_transfer, store, delivery, fault):
                        consumer.close()  # a dead process acks nothing; the broker redelivers
                        self.crashes += 1
                        consumer = self._join()
                        break
                    if fault != "drop ack":
                        for tp, offset in consumer.ack(delivery).items():
                            committed[tp.partition] = offset
        finally:
            consumer.close()

    def _fault(self, delivery: Delivery) -> str:
        if delivery.deliveries > 2 or self.rng.random() >= FAULT_PROBABILITY:
            return "none"
        return self.rng.choice(["crash before save", "crash after save", "drop ack"])

    def _process(
        self,
        apply_transfer: ApplyTransfer,
        store: _CrashingStateFile,
        delivery: Delivery,
        fault: str,
    ) -> bool:
        """Run the candidate on one delivery; return True if the consumer crashed."""
        transfer_id = json.loads(delivery.value)["id"]
        self.delivered.add(transfer_id)
        store.crash = {"crash before save": "before", "crash after save": "after"}.get(fault)
        before = _balances(store)
        crashed = False
        try:
            apply_transfer(store, delivery)
        except ConsumerCrashed:
            crashed = True
        store.crash = None
        if _balances(store) != before:
            self.effects[transfer_id].append(
                (delivery.partition, delivery.offset, delivery.deliveries, fault)
            )
        return crashed

    def verify(self, store: StateFile) -> None:
        saved = store.path.read_text(encoding="utf-8")
        self.ids_saved = any(json.dumps(t["id"]) in saved for t in self.transfers)
        for transfer in self.transfers:
            effects = self.effects.get(transfer["id"], [])
            if len(effects) > 1:
                self._report_double(transfer["id"], effects)
            if not effects:
                raise CheckFailed(
                    expected=f"transfer {transfer['id']} applied once",
                    actual="it never changed the balances"
                    + (" although it was delivered" if transfer["id"] in self.delivered else ""),
                    hint="a redelivery (deliveries > 1) may be the first time the transfer is "
                    "saved, because the consumer crashed before save(); skip only ids found "
                    "in the saved state['applied'], and save the id together with the balances",
                )
        expected = _expected_balances(self.transfers)
        got = _balances(store)
        if got != expected:
            raise CheckFailed(
                expected=f"final balances {expected}",
                actual=f"final balances {got}",
                hint="apply each transfer's amount exactly once, from 'from' to 'to'",
            )

    def _report_double(self, transfer_id: str, effects: list[tuple[int, int, int, str]]) -> None:
        calls = "; ".join(
            f"partition {p} offset {o} delivery {d} (fault: {f})" for p, o, d, f in effects
        )
        first, second = effects[0], effects[1]
        if first[:2] != second[:2]:
            hint = "the producer stored this transfer twice, at two offsets, so recognise a "
            hint += "duplicate by the transfer's id, not by (partition, offset)"
        elif not self.ids_saved:
            hint = "the consumer crashed after saving and before its ack, so the broker "
            hint += "redelivered the record to a new consumer. Keep the applied ids in the "
            hint += "saved state, not in memory, so that the new consumer sees them"
        else:
            hint = "save the transfer's id in state['applied'] in the same save() as the "
            hint += "balances: with two saves, a crash between them leaves the balances "
            hint += "changed but the id unrecorded"
        raise CheckFailed(
            expected=f"transfer {transfer_id} applied once",
            actual=f"it changed the balances {len(effects)} times: {calls}",
            hint=hint,
        )


def check_crash_runs(apply_transfer: ApplyTransfer, rng: random.Random) -> None:
    crashes = 0
    with (
        tempfile.TemporaryDirectory(prefix="idempotent-check-") as directory,
        BrokerServer(
            None, durability="memory", ack_timeout_s=ACK_TIMEOUT_S, max_deliveries=50
        ) as server,
    ):
        for number in range(CRASH_RUNS):
            run = _CrashRun(server.port, number, rng)
            run.produce()
            store = _CrashingStateFile(Path(directory) / f"state-{number}.json", _initial_state())
            run.consume(apply_transfer, store)
            run.verify(store)
            crashes += run.crashes
    if crashes == 0:
        raise CheckFailed(
            expected="some seeded crashes inside save()",
            actual="no crash happened in any run",
            hint="call store.save(state) to store the new balances",
        )


def check_idempotent_consumer(
    apply_transfer: ApplyTransfer, *, seed: int = 0, quiet: bool = False
) -> CheckReport:
    """Check a learner's ``apply_transfer(store, delivery)`` under redeliveries and crashes.

    Prints a one-line summary and returns a ``CheckReport`` when every check
    passes. Raises ``ExerciseFailed`` (an ``AssertionError``) naming the first
    failed check, what was expected, what happened, and a hint.
    """
    check = TimedCheck(IDEMPOTENT_ID, seed=seed)
    check.add("one transfer", check_one_transfer, hint="apply the transfer and save() the state")
    check.add(
        "same record twice",
        check_redelivered_record,
        hint="remember applied transfer ids in the saved state",
    )
    check.add(
        "producer retry at a new offset",
        check_producer_retry,
        hint="recognise duplicates by the transfer's id",
    )
    check.add(
        f"{CRASH_RUNS} runs with crashes on a real broker",
        check_crash_runs,
        hint="save the balances and the applied id together, in one save()",
    )
    return check.run(apply_transfer, quiet=quiet)


# ---------------------------------------------------------------------------
# partition-assignment
# ---------------------------------------------------------------------------

Assign = Callable[[Sequence[str], Sequence[TopicPartition]], Any]


def _random_case(rng: random.Random) -> tuple[list[str], list[TopicPartition]]:
    members = [f"member-{rng.randrange(10_000):04d}" for _ in range(rng.randint(1, 7))]
    members = list(dict.fromkeys(members))
    partitions = [
        TopicPartition(f"topic-{t}", p)
        for t in rng.sample(range(10), rng.randint(1, 4))
        for p in range(rng.randint(1, 9))
    ]
    return members, partitions


def _normalised(result: Any, members: Sequence[str]) -> dict[str, list[TopicPartition]]:
    """Check the shape of ``assign``'s result; return it with each list sorted."""
    if not isinstance(result, dict):
        raise CheckFailed(
            expected="assign() to return a dict from member to a list of partitions",
            actual=f"{type(result).__name__} {short_repr(result)}",
            hint="return a dict with one key per member",
        )
    if set(result) != set(members):
        raise CheckFailed(
            expected=f"one key per member: {sorted(members)}",
            actual=f"keys {short_repr(sorted(map(str, result)))}",
            hint="start from {member: [] for member in members}, so a member without "
            "partitions still appears",
        )
    normalised: dict[str, list[TopicPartition]] = {}
    for member, partitions in result.items():
        normalised[member] = sorted(TopicPartition(*tp) for tp in partitions)
    return normalised


def _expect_exactly_once(
    result: dict[str, list[TopicPartition]], partitions: Sequence[TopicPartition]
) -> None:
    owners: dict[TopicPartition, list[str]] = defaultdict(list)
    for member, assigned in result.items():
        for tp in assigned:
            owners[tp].append(member)
    for tp in partitions:
        if len(owners.get(tp, [])) != 1:
            raise CheckFailed(
                expected=f"partition {tp.topic}/{tp.partition} given to exactly one member",
                actual=f"given to {owners.get(tp, [])}",
                hint="deal every partition once: one loop over the sorted partitions",
            )
    unknown = sorted(set(owners) - set(partitions))
    if unknown:
        raise CheckFailed(
            expected="only the partitions passed in",
            actual=f"also {short_repr(unknown)}",
            hint="assign exactly the partitions passed in",
        )


def check_small_case(assign: Assign, rng: random.Random) -> None:
    partitions = [TopicPartition("orders", p) for p in range(4)]
    result = _normalised(assign(["b", "a"], partitions), ["a", "b"])
    expected = {"a": partitions[0::2], "b": partitions[1::2]}
    if result != expected:
        raise CheckFailed(
            expected=f"{expected}",
            actual=f"{result}",
            hint="sort the members and the partitions, then give partition i to member "
            "i % len(members)",
        )


def check_exactly_once(assign: Assign, rng: random.Random) -> None:
    for _ in range(RANDOM_CASES):
        members, partitions = _random_case(rng)
        _expect_exactly_once(_normalised(assign(members, partitions), members), partitions)


def check_balanced(assign: Assign, rng: random.Random) -> None:
    for _ in range(RANDOM_CASES):
        members, partitions = _random_case(rng)
        result = _normalised(assign(members, partitions), members)
        counts = {member: len(assigned) for member, assigned in result.items()}
        if max(counts.values()) - min(counts.values()) > 1:
            raise CheckFailed(
                expected=f"partition counts that differ by at most one, for {len(members)} "
                f"members and {len(partitions)} partitions of "
                f"{len({tp.topic for tp in partitions})} topics",
                actual=f"counts {counts}",
                hint="deal all partitions of all topics in one sequence; starting again at "
                "the first member for each topic gives the first members too many",
            )


def check_order_independent(assign: Assign, rng: random.Random) -> None:
    for _ in range(RANDOM_CASES):
        members, partitions = _random_case(rng)
        first = _normalised(assign(list(members), list(partitions)), members)
        rng.shuffle(members)
        rng.shuffle(partitions)
        second = _normalised(assign(members, partitions), members)
        if first != second:
            raise CheckFailed(
                expected="the same assignment for the same members and partitions in any order",
                actual=f"{short_repr(first)} and then {short_repr(second)}",
                hint="sort members and partitions first: every consumer must compute the "
                "same answer from the same group",
            )


def check_more_members(assign: Assign, rng: random.Random) -> None:
    members = ["m1", "m2", "m3", "m4", "m5"]
    partitions = [TopicPartition("audit", 0), TopicPartition("audit", 1)]
    result = _normalised(assign(members, partitions), members)
    _expect_exactly_once(result, partitions)


def check_real_rebalance(assign: Assign, rng: random.Random) -> None:
    with BrokerServer(None, durability="memory") as server:
        _rebalance_on_broker(assign, server.port)


def _poll_all(consumers: list[Consumer], received: dict[tuple[str, int, int], int]) -> None:
    """Poll each consumer once, count what it got and ack it."""
    for consumer in consumers:
        batch = consumer.poll(timeout_s=0.0)
        for delivery in batch:
            received[(delivery.topic, delivery.partition, delivery.offset)] += 1
        consumer.ack(*batch)


def _settle(
    consumers: list[Consumer],
    partitions: list[TopicPartition],
    assign: Assign,
    received: dict[tuple[str, int, int], int],
) -> None:
    """Poll every consumer until all are in one generation; check that generation's split."""
    deadline = time.monotonic() + REBALANCE_DEADLINE_S
    _poll_all(consumers, received)
    while len({c.generation for c in consumers}) > 1 and time.monotonic() < deadline:
        _poll_all(consumers, received)
    owned = {c.member_id: sorted(c.assignment) for c in consumers}
    _expect_exactly_once(owned, partitions)
    expected = _normalised(assign([c.member_id for c in consumers], partitions), list(owned))
    if owned != expected:
        raise CheckFailed(
            expected=f"the broker's split to be assign()'s answer {short_repr(expected)}",
            actual=short_repr(owned),
            hint="assign() must depend only on its arguments",
        )


def _rebalance_on_broker(assign: Assign, port: int) -> None:
    topics = {"orders": 5, "audit": 2}
    partitions = [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]
    with Admin(port=port, timeout_s=CLIENT_TIMEOUT_S) as admin:
        for topic, count in topics.items():
            admin.create_topic(topic, count)
    with Producer(port=port, timeout_s=CLIENT_TIMEOUT_S) as producer:
        for topic in topics:
            producer.send_batch(topic, [b"%d" % i for i in range(30)])
    consumers: list[Consumer] = []
    received: dict[tuple[str, int, int], int] = defaultdict(int)
    try:
        for _ in range(3):
            consumers.append(
                Consumer(
                    port=port,
                    group="assign-check",
                    topics=list(topics),
                    strategy=assign,
                    max_records=5,
                    timeout_s=CLIENT_TIMEOUT_S,
                )
            )
            _settle(consumers, partitions, assign, received)
        consumers.pop(0).close()
        _settle(consumers, partitions, assign, received)
        deadline = time.monotonic() + REBALANCE_DEADLINE_S
        while len(received) < 60 and time.monotonic() < deadline:
            _poll_all(consumers, received)
    except RemoteError as error:
        if error.code != "invalid_assignment":
            raise
        raise CheckFailed(
            expected="the broker to accept every answer of assign() during the rebalances",
            actual=f"the broker rejected one: {error}",
            hint="assign() must give every partition it receives to exactly one of the "
            "members it receives, every time it is called",
        ) from error
    finally:
        for consumer in consumers:
            consumer.close()
    if len(received) < 60:
        raise CheckFailed(
            expected="all 60 records consumed by the group after the rebalances",
            actual=f"{len(received)} records",
            hint="every partition must be owned by a member, or nobody reads it",
        )


def check_partition_assignment(
    assign: Assign, *, seed: int = 0, quiet: bool = False
) -> CheckReport:
    """Check a learner's round-robin ``assign(members, partitions)``.

    Prints a one-line summary and returns a ``CheckReport`` when every check
    passes. Raises ``ExerciseFailed`` (an ``AssertionError``) naming the first
    failed check, what was expected, what happened, and a hint.
    """
    check = TimedCheck(ASSIGNMENT_ID, seed=seed)
    check.add("two members, four partitions", check_small_case, hint="deal like cards")
    check.add(
        "every partition exactly once",
        check_exactly_once,
        hint="give each partition to one member",
    )
    check.add("counts differ by at most one", check_balanced, hint="deal across all topics")
    check.add(
        "same answer in any input order",
        check_order_independent,
        hint="sort members and partitions first",
    )
    check.add(
        "more members than partitions",
        check_more_members,
        hint="members beyond the partitions get empty lists",
    )
    check.add(
        "rebalance in a real consumer group",
        check_real_rebalance,
        hint="assign() runs inside the broker at every join and leave",
    )
    return check.run(assign, quiet=quiet)
