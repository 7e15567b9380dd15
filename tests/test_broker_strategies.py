"""Assignment strategies given to the broker by name or as a function, over real TCP."""

from __future__ import annotations

import selectors
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence

import pytest

from msgpass.broker import Admin, BrokerServer, Consumer, TopicPartition, assign_round_robin
from msgpass.broker.groups import STRATEGIES, Strategy
from msgpass.broker.server import find_in_process
from msgpass.errors import RemoteError

CHILD_TIMEOUT_S = 15.0  # deadline for a broker subprocess to print its port

PARTITIONS = [TopicPartition("orders", p) for p in range(5)]

Shares = dict[str, list[TopicPartition]]


def _reverse(members: Sequence[str], partitions: Sequence[TopicPartition]) -> Shares:
    """Deal the partitions to the members in reverse order: valid, and unlike the built-ins."""
    ordered = sorted(members, reverse=True)
    shares: Shares = {member: [] for member in ordered}
    for index, tp in enumerate(sorted(partitions)):
        shares[ordered[index % len(ordered)]].append(tp)
    return shares


def _all_to_everyone(members: Sequence[str], partitions: Sequence[TopicPartition]) -> Shares:
    """Valid for one member only: with two, every partition goes to both."""
    return {member: list(partitions) for member in members}


@pytest.fixture
def server() -> Iterator[BrokerServer]:
    with BrokerServer(None, durability="memory", strategies={"reverse": _reverse}) as broker:
        with Admin(port=broker.port) as admin:
            admin.create_topic("orders", 5)
        yield broker


def _settled(consumers: list[Consumer]) -> dict[str, list[TopicPartition]]:
    """Poll until every consumer has the group's latest generation; return who owns what."""
    deadline = time.monotonic() + 5.0
    for consumer in consumers:
        consumer.poll(timeout_s=0.0)
    while len({c.generation for c in consumers}) > 1 and time.monotonic() < deadline:
        for consumer in consumers:
            consumer.poll(timeout_s=0.0)
    return {c.member_id: sorted(c.assignment) for c in consumers}


def _expected(strategy: Strategy, owned: dict[str, list[TopicPartition]]) -> Shares:
    """Return the strategy's result for the members of ``owned``, each list sorted."""
    return {m: sorted(tps) for m, tps in strategy(list(owned), PARTITIONS).items()}


def test_function_strategy_in_process(server: BrokerServer):
    with (
        Consumer(port=server.port, group="g", topics=["orders"], strategy=_reverse) as first,
        Consumer(port=server.port, group="g", topics=["orders"], strategy=_reverse) as second,
    ):
        owned = _settled([first, second])
        assert owned == _expected(_reverse, owned)
        assert owned != _expected(assign_round_robin, owned)
        assert first.strategy == second.strategy
        assert first.strategy.startswith("_reverse-")
    assert sorted(STRATEGIES) == ["range", "round_robin"]
    assert server.broker.strategies[first.strategy] is _reverse


def test_named_strategy_from_server(server: BrokerServer):
    with (
        Consumer(port=server.port, group="g", topics=["orders"], strategy="reverse") as first,
        Consumer(port=server.port, group="g", topics=["orders"]) as second,
    ):
        owned = _settled([first, second])
        assert owned == _expected(_reverse, owned)
        described = server.broker.describe_group("g")
        assert described["strategy"] == "reverse"


def test_unknown_strategy_name(server: BrokerServer):
    with pytest.raises(RemoteError, match="unknown assignment strategy 'sticky'") as error:
        Consumer(port=server.port, group="g", topics=["orders"], strategy="sticky")
    assert error.value.code == "unknown_strategy"
    assert "'reverse'" in str(error.value)


def test_invalid_assignment_over_wire(server: BrokerServer):
    with Consumer(
        port=server.port, group="g", topics=["orders"], strategy=_all_to_everyone
    ) as first:
        with pytest.raises(RemoteError, match="gave orders/0 to both") as error:
            Consumer(port=server.port, group="g", topics=["orders"])
        assert error.value.code == "invalid_assignment"
        # The group kept its one member and that member's partitions.
        first.poll(timeout_s=0.0)
        assert first.generation == 1
        assert len(first.assignment) == 5


def test_stopped_server_not_found():
    server = BrokerServer(None, durability="memory").start()
    address = ("127.0.0.1", server.port)
    try:
        assert find_in_process(address) is server
    finally:
        server.stop()
    assert find_in_process(address) is None


def _start_child() -> tuple[subprocess.Popen[bytes], int]:
    command = [sys.executable, "-m", "msgpass.broker.server", "--durability", "memory"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=CHILD_TIMEOUT_S)
    line = process.stdout.readline().decode() if ready else ""
    if not line.startswith("port "):
        process.kill()
        process.wait(timeout=5.0)
        process.stdout.close()
        pytest.fail(f"the broker process printed {line!r} instead of its port")
    return process, int(line.split()[1])


def test_function_strategy_other_process():
    process, port = _start_child()
    try:
        with Admin(port=port) as admin:
            admin.create_topic("orders", 2)
        with pytest.raises(ValueError, match="does not run in this process"):
            Consumer(port=port, group="g", topics=["orders"], strategy=_reverse)
        with Consumer(port=port, group="g", topics=["orders"], strategy="round_robin") as named:
            assert len(named.assignment) == 2
    finally:
        process.terminate()
        process.wait(timeout=10.0)
        assert process.stdout is not None
        process.stdout.close()
