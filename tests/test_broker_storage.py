"""Records, segments and partition logs of msgpass.broker, on real files in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msgpass.broker.partition_log import Durability, NewRecord, PartitionLog
from msgpass.broker.records import decode_records, encode_record
from msgpass.broker.segments import SEGMENT_SUFFIX


@settings(max_examples=50, deadline=None)
@given(
    key=st.none() | st.binary(max_size=50),
    value=st.binary(max_size=500),
    headers=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
    offset=st.integers(0, 2**40),
)
def test_record_round_trip(key: bytes | None, value: bytes, headers: dict[str, str], offset: int):
    data = encode_record(offset, 1234, key, value, headers)
    result = decode_records(data, first_offset=offset)
    assert result.problem is None
    assert result.valid_bytes == len(data)
    (record,) = result.records
    assert record.offset == offset
    assert record.key == key
    assert record.value == value
    assert record.headers == headers


def test_decode_stops_at_crc_mismatch():
    good = encode_record(0, 1, None, b"kept")
    bad = bytearray(encode_record(1, 1, None, b"flipped"))
    bad[-3] ^= 0xFF
    result = decode_records(good + bytes(bad), first_offset=0)
    assert [r.value for r in result.records] == [b"kept"]
    assert result.valid_bytes == len(good)
    assert result.problem is not None and "CRC" in result.problem


def test_decode_rejects_offset_gap():
    data = encode_record(0, 1, None, b"a") + encode_record(2, 1, None, b"c")
    result = decode_records(data, first_offset=0)
    assert len(result.records) == 1
    assert "expected 1" in str(result.problem)


def _append(log: PartitionLog, values: list[bytes]) -> list[int]:
    return log.append([NewRecord(v) for v in values], timestamp_ms=1000)


def test_offsets_dense_across_segments(tmp_path: Path):
    log = PartitionLog(tmp_path, segment_bytes=200)
    offsets: list[int] = []
    for batch in range(10):
        offsets += _append(log, [f"{batch}-{i}".encode() for i in range(3)])
    assert offsets == list(range(30))
    assert log.stats()["segments"] > 1
    assert [r.offset for r in log.read(0, 100)] == list(range(30))
    assert [r.value for r in log.read(28, 10)] == [b"9-1", b"9-2"]
    log.close()


def test_reopen_keeps_records(tmp_path: Path):
    log = PartitionLog(tmp_path, segment_bytes=100)
    _append(log, [b"v%d" % i for i in range(20)])
    log.close()
    reopened = PartitionLog(tmp_path, segment_bytes=100)
    assert reopened.end_offset == 20
    assert [r.value for r in reopened.read(0, 100)] == [b"v%d" % i for i in range(20)]
    assert _append(reopened, [b"next"]) == [20]
    reopened.close()


@pytest.mark.parametrize("cut", [1, 4, 9, 20, -1])
def test_recovery_truncates_torn_tail(tmp_path: Path, cut: int):
    log = PartitionLog(tmp_path)
    _append(log, [b"first", b"second"])
    log.close()
    (segment,) = sorted(tmp_path.glob(f"*{SEGMENT_SUFFIX}"))
    size_before = segment.stat().st_size
    partial = encode_record(2, 1000, b"k", b"torn record value")[:cut]
    with open(segment, "ab") as file:
        file.write(partial)

    recovered = PartitionLog(tmp_path)
    assert segment.stat().st_size == size_before
    assert [r.value for r in recovered.read(0, 10)] == [b"first", b"second"]
    assert _append(recovered, [b"third"]) == [2]
    assert [r.value for r in recovered.read(0, 10)] == [b"first", b"second", b"third"]
    recovered.close()


def test_recovery_truncates_garbage_after_flipped_byte(tmp_path: Path):
    log = PartitionLog(tmp_path)
    _append(log, [b"a", b"b", b"c"])
    log.close()
    (segment,) = sorted(tmp_path.glob(f"*{SEGMENT_SUFFIX}"))
    data = bytearray(segment.read_bytes())
    data[-2] ^= 0x01  # damage the last record's value
    segment.write_bytes(bytes(data))
    recovered = PartitionLog(tmp_path)
    assert [r.value for r in recovered.read(0, 10)] == [b"a", b"b"]
    assert recovered.end_offset == 2
    recovered.close()


def test_retention_by_size_deletes_old_segments(tmp_path: Path):
    log = PartitionLog(tmp_path, segment_bytes=100, retention_bytes=300)
    _append(log, [b"x" * 60])
    for _ in range(19):
        _append(log, [b"x" * 60])
        log.apply_retention(now_ms=1000)
    assert log.size_bytes <= 300 + 100
    assert log.start_offset > 0
    assert log.end_offset == 20
    assert log.read(0, 1)[0].offset == log.start_offset
    files = sorted(tmp_path.glob(f"*{SEGMENT_SUFFIX}"))
    assert len(files) == log.stats()["segments"]
    log.close()


def test_retention_by_age_keeps_active_segment(tmp_path: Path):
    log = PartitionLog(tmp_path, segment_bytes=50, retention_age_s=10)
    for _ in range(5):
        _append(log, [b"y" * 60])
    assert log.apply_retention(now_ms=1000 + 5_000) == 0
    deleted = log.apply_retention(now_ms=1000 + 60_000)
    assert deleted == 4
    assert log.start_offset == 4
    assert log.end_offset == 5
    log.close()


def test_fsync_mode_syncs_once_per_batch(tmp_path: Path):
    log = PartitionLog(tmp_path)
    _append(log, [b"a"] * 100)
    _append(log, [b"b"] * 100)
    assert log.stats()["fsyncs"] == 2
    log.close()


def test_memory_mode_writes_no_files(tmp_path: Path):
    log = PartitionLog(None, durability=Durability.MEMORY)
    assert _append(log, [b"a", b"b"]) == [0, 1]
    assert [r.value for r in log.read(0)] == [b"a", b"b"]
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="needs a directory"):
        PartitionLog(None, durability=Durability.FSYNC)
