"""The broker's wire format: record runs in fetch and read replies, and ack ranges."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msgpass.broker import Admin, BrokerServer, Consumer, Delivery, Producer
from msgpass.broker import server as server_module
from msgpass.broker.protocol import (
    decode_message,
    decode_runs,
    encode_message,
    pack_runs,
    records_from_reply,
    unpack_records,
)
from msgpass.broker.records import LENGTH, encode_records
from msgpass.errors import ProtocolError, RemoteError
from msgpass.tcp_threaded import ThreadedServer

TOPIC = "orders"


def _run_bytes(first_offset: int, count: int) -> bytes:
    items = [(b"k%d" % i, b"value-%d" % i, None) for i in range(count)]
    data, _ = encode_records(first_offset, 1_700_000_000_000, items)
    return data


def _reply(*runs: tuple[str, int, int, bytes, list[int]]) -> tuple[dict[str, Any], bytes]:
    fields, payload = pack_runs(runs)
    return {"ok": True, "runs": fields}, payload


# -- record runs ----------------------------------------------------------------


def test_runs_decode_two_partitions():
    header, payload = _reply(
        (TOPIC, 0, 10, _run_bytes(10, 3), [1, 1, 2]),
        (TOPIC, 1, 0, _run_bytes(0, 2), [1, 1]),
    )
    rebuilt = records_from_reply(header, payload)
    assert [(t, p, r.offset) for t, p, _, r in rebuilt] == [
        (TOPIC, 0, 10),
        (TOPIC, 0, 11),
        (TOPIC, 0, 12),
        (TOPIC, 1, 0),
        (TOPIC, 1, 1),
    ]
    assert [count for _, _, count, _ in rebuilt] == [1, 1, 2, 1, 1]
    assert rebuilt[1][3].key == b"k1"
    assert rebuilt[1][3].value == b"value-1"


def test_runs_longer_than_payload():
    header, payload = _reply((TOPIC, 0, 0, _run_bytes(0, 2), [1, 1]))
    header["runs"][0][3] += 1
    with pytest.raises(ProtocolError, match=r"needs bytes 0\.\.\d+ but the payload has"):
        decode_runs(header, payload)


def test_runs_shorter_than_payload():
    header, payload = _reply((TOPIC, 0, 0, _run_bytes(0, 2), [1, 1]))
    with pytest.raises(ProtocolError, match=f"cover {len(payload)} of the {len(payload) + 3}"):
        decode_runs(header, payload + b"xyz")


def test_runs_missing_from_header():
    with pytest.raises(ProtocolError, match="no list of record runs"):
        decode_runs({"ok": True}, b"")


def test_truncated_payload_rejected():
    data = _run_bytes(5, 3)
    header, payload = _reply((TOPIC, 2, 5, data, [1, 1, 1]))
    cut = payload[:-1]
    with pytest.raises(ProtocolError, match="payload has"):
        decode_runs(header, cut)
    # A sender that also shortened the run's length: the last record is torn.
    header["runs"][0][3] = len(cut)
    with pytest.raises(ProtocolError, match="damaged record at offset 7") as error:
        decode_runs(header, cut)
    assert "orders/2" in str(error.value)


def test_flipped_bit_names_offset():
    data = bytearray(_run_bytes(40, 4))
    record_size = len(data) // 4  # the four records have the same size
    data[2 * record_size + record_size - 5] ^= 0x01  # a bit of the third record's value
    header, payload = _reply((TOPIC, 1, 40, bytes(data), [1, 1, 1, 1]))
    with pytest.raises(ProtocolError, match="damaged record at offset 42") as error:
        decode_runs(header, payload)
    assert "CRC mismatch" in str(error.value)
    assert "orders/1" in str(error.value)


def test_wrong_first_offset_rejected():
    header, payload = _reply((TOPIC, 0, 3, _run_bytes(0, 2), [1, 1]))
    with pytest.raises(ProtocolError, match="has offset 0, expected 3"):
        decode_runs(header, payload)


def test_delivery_count_mismatch():
    header, payload = _reply((TOPIC, 0, 0, _run_bytes(0, 2), [1, 1, 1]))
    with pytest.raises(ProtocolError, match="2 records but 3 delivery counts"):
        decode_runs(header, payload)


@pytest.mark.parametrize(
    "run",
    [
        [TOPIC, 0, 0, True, [1]],  # a JSON true as byte_length
        [TOPIC, True, 0, 41, [1]],
        [TOPIC, 0, False, 41, [1]],
        [TOPIC, 0, 0, -41, [1]],  # a negative length would reread earlier bytes
        [TOPIC, 0, 0, 41.0, [1]],
        [TOPIC, 0, 0, "41", [1]],
        [7, 0, 0, 41, [1]],
        [TOPIC, 0, 0, 41, [True]],
        [TOPIC, 0, 0, 41, "1"],
        [TOPIC, 0, 0, 41],
    ],
)
def test_invalid_run_fields_rejected(run: list[Any]):
    payload = _run_bytes(0, 1)
    with pytest.raises(ProtocolError, match="invalid record run"):
        decode_runs({"runs": [run]}, payload)


def test_negative_length_cannot_replay_bytes():
    data = _run_bytes(0, 1)
    runs = [
        [TOPIC, 0, 0, len(data), [1]],
        [TOPIC, 0, 0, -len(data), []],
        [TOPIC, 0, 0, len(data), [1]],
    ]
    with pytest.raises(ProtocolError, match="invalid record run"):
        decode_runs({"runs": runs}, data)


def test_record_sizes_reject_booleans():
    with pytest.raises(ProtocolError, match="invalid record size pair"):
        unpack_records([[True, 1]], b"kv")
    with pytest.raises(ProtocolError, match="invalid record size pair"):
        unpack_records([[-1, True]], b"v")


record_items = st.lists(
    st.tuples(
        st.none() | st.binary(max_size=8),
        st.binary(max_size=32),
        st.none() | st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
    ),
    max_size=5,
)
run_specs = st.lists(
    st.tuples(
        st.text("abc.-_", min_size=1, max_size=5),
        st.integers(0, 50),
        st.integers(0, 2**40),
        record_items,
        st.integers(1, 9),
    ),
    max_size=4,
)


@given(run_specs)
def test_pack_decode_round_trip(specs: list[Any]):
    runs = []
    for topic, partition, first_offset, items, count in specs:
        data, _ = encode_records(first_offset, 123, items)
        runs.append((topic, partition, first_offset, data, [count] * len(items)))
    fields, payload = pack_runs(runs)
    # The header crosses the wire as JSON.
    header, received = decode_message(encode_message({"runs": fields}, payload))
    decoded = decode_runs(header, received)
    assert len(decoded) == len(specs)
    for (topic, partition, first_offset, items, count), got in zip(specs, decoded, strict=True):
        got_topic, got_partition, deliveries, records = got
        assert (got_topic, got_partition) == (topic, partition)
        assert deliveries == [count] * len(items)
        assert [r[0] for r in records] == list(range(first_offset, first_offset + len(items)))
        assert [(r[2], r[3], r[4]) for r in records] == [(k, v, h or {}) for k, v, h in items]


# -- a damaged fetch reply reaching a real Consumer ---------------------------


def _damaged_broker(body: bytes) -> bytes:
    """A fake broker: joins succeed and every fetch returns a run with a flipped bit."""
    header, _ = decode_message(body)
    op = header["op"]
    if op == "join":
        return encode_message(
            {"ok": True, "member_id": "m-1", "generation": 1, "assignment": [[TOPIC, 0]]}
        )
    if op == "fetch":
        data = bytearray(_run_bytes(7, 2))
        data[LENGTH.size] ^= 0x80  # a bit of the first record's CRC
        fields, payload = pack_runs([(TOPIC, 0, 7, bytes(data), [1, 1])])
        reply = {"ok": True, "generation": 1, "assignment": [[TOPIC, 0]], "runs": fields}
        return encode_message(reply, payload)
    return encode_message({"ok": True})


def test_consumer_rejects_damaged_fetch():
    with (
        ThreadedServer(_damaged_broker) as fake,
        Consumer(port=fake.port, group="g", topics=[TOPIC], timeout_s=5.0) as consumer,
        pytest.raises(ProtocolError, match="damaged record at offset 7") as error,
    ):
        consumer.poll(timeout_s=1.0)
    assert "CRC mismatch" in str(error.value)


# -- ack and nack ranges against a real broker --------------------------------


@pytest.fixture
def server() -> Iterator[BrokerServer]:
    with BrokerServer(None, durability="memory", ack_timeout_s=30.0) as broker:
        with Admin(port=broker.port) as admin:
            admin.create_topic(TOPIC, 2)
        with Producer(port=broker.port) as producer:
            producer.send_batch(TOPIC, [b"%d" % i for i in range(10)], partition=0)
        yield broker


@pytest.fixture
def consumer(server: BrokerServer) -> Iterator[Consumer]:
    with Consumer(port=server.port, group="g", topics=[TOPIC]) as member:
        yield member


def _fetch(consumer: Consumer, expected: int) -> list[Delivery]:
    received: list[Delivery] = []
    deadline = time.monotonic() + 5.0
    while len(received) < expected and time.monotonic() < deadline:
        received.extend(consumer.poll(timeout_s=0.5))
    assert len(received) == expected
    return received


def _ack(consumer: Consumer, **fields: Any) -> dict[str, Any]:
    reply, _ = consumer.request({"op": "ack", "group": "g", **fields})
    return reply


def test_ack_range_acks_every_offset(consumer: Consumer):
    _fetch(consumer, 10)
    reply = _ack(consumer, ranges=[[TOPIC, 0, 0, 10]])
    assert reply["committed"] == [[TOPIC, 0, 10]]
    assert consumer.committed(TOPIC, 0) == 10


def test_ack_range_with_gap(consumer: Consumer):
    _fetch(consumer, 10)
    reply = _ack(consumer, ranges=[[TOPIC, 0, 0, 3], [TOPIC, 0, 5, 10]])
    assert reply["committed"] == [[TOPIC, 0, 3]]
    reply = _ack(consumer, acks=[[TOPIC, 0, 3], [TOPIC, 0, 4]])
    assert reply["committed"] == [[TOPIC, 0, 10]]


def test_overlapping_ack_ranges(consumer: Consumer):
    _fetch(consumer, 10)
    reply = _ack(consumer, ranges=[[TOPIC, 0, 0, 6], [TOPIC, 0, 3, 10], [TOPIC, 0, 2, 4]])
    assert reply["committed"] == [[TOPIC, 0, 10]]
    assert consumer.committed(TOPIC, 0) == 10


def test_ack_range_above_maximum(consumer: Consumer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(server_module, "MAX_ACK_RANGE", 6)
    _fetch(consumer, 10)
    with pytest.raises(RemoteError, match="MAX_ACK_RANGE=6") as error:
        _ack(consumer, ranges=[[TOPIC, 0, 0, 7]])
    assert error.value.code == "ack_range_too_long"
    assert consumer.committed(TOPIC, 0) == 0
    # The cap is on all ranges of a request together, not on each one.
    with pytest.raises(RemoteError) as total:
        _ack(consumer, ranges=[[TOPIC, 0, 0, 4], [TOPIC, 0, 4, 8]])
    assert total.value.code == "ack_range_too_long"
    assert _ack(consumer, ranges=[[TOPIC, 0, 0, 6]])["committed"] == [[TOPIC, 0, 6]]


def test_ack_range_unknown_partition(consumer: Consumer):
    _fetch(consumer, 10)
    with pytest.raises(RemoteError, match="partition 9") as error:
        _ack(consumer, ranges=[[TOPIC, 0, 0, 5], [TOPIC, 9, 0, 1]])
    assert error.value.code == "unknown_partition"
    # The request changed nothing, not even its valid first range.
    assert consumer.committed(TOPIC, 0) == 0


def test_nack_range_unknown_partition(consumer: Consumer):
    first = _fetch(consumer, 10)
    with pytest.raises(RemoteError) as error:
        consumer.request({"op": "nack", "group": "g", "ranges": [[TOPIC, 0, 0, 5], ["x", 0, 0, 1]]})
    assert error.value.code == "unknown_topic"
    # Nothing went back for redelivery: a poll finds no records.
    assert consumer.poll(timeout_s=0.0) == []
    consumer.ack(*first)


def test_ack_never_delivered_offset(consumer: Consumer):
    _fetch(consumer, 10)
    with pytest.raises(RemoteError, match="never delivered") as error:
        _ack(consumer, ranges=[[TOPIC, 0, 0, 11]])
    assert error.value.code == "invalid_request"
    # The offsets before the bad one stay acknowledged.
    assert consumer.committed(TOPIC, 0) == 10


@pytest.mark.parametrize(
    "fields",
    [
        {"ranges": [[TOPIC, True, 0, 1]]},
        {"ranges": [[TOPIC, 0, False, True]]},
        {"ranges": [[TOPIC, 0, 0, 1.5]]},
        {"ranges": [[TOPIC, 0, 5, 2]]},
        {"ranges": [[TOPIC, 0, 0]]},
        {"ranges": [TOPIC, 0, 0, 1]},
        {"ranges": {"topic": TOPIC}},
        {"acks": [[TOPIC, 0, True]]},
        {"acks": [[TOPIC, "0", 1]]},
        {"acks": [[0, 0, 1]]},
        {"acks": [[TOPIC, 0, -1]]},
    ],
)
def test_invalid_ack_items_rejected(consumer: Consumer, fields: dict[str, Any]):
    _fetch(consumer, 10)
    with pytest.raises(RemoteError) as error:
        _ack(consumer, **fields)
    assert error.value.code == "invalid_request"
    assert consumer.committed(TOPIC, 0) == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"op": "read", "topic": TOPIC, "partition": 0, "offset": 0, "max_records": True},
        {"op": "read", "topic": TOPIC, "partition": True, "offset": 0},
        {"op": "read", "topic": TOPIC, "partition": 0, "offset": False},
        {"op": "produce", "topic": TOPIC, "partition": True, "records": [[-1, 1]]},
        {"op": "produce", "topic": TOPIC, "partition": None, "records": [[-1, True]]},
    ],
)
def test_boolean_sizes_rejected(server: BrokerServer, fields: dict[str, Any]):
    with Admin(port=server.port) as admin, pytest.raises(RemoteError) as error:
        admin.request(fields, b"x")
    assert error.value.code == "invalid_request"


def test_read_missing_partition(server: BrokerServer):
    with Admin(port=server.port) as admin, pytest.raises(RemoteError, match="missing") as error:
        admin.request({"op": "read", "topic": TOPIC, "offset": 0})
    assert error.value.code == "invalid_request"
