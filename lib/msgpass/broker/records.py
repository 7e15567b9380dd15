"""The on-disk record format of the teaching broker, and how a torn tail is found.

A partition's log is a sequence of records written back to back. Each record
is self-describing and carries its own checksum::

    +-----------+-----------+-------------------------------------------------+
    | length    | crc32     | body (``length - 4`` bytes)                     |
    | u32, big- | u32, of   | offset u64 | timestamp_ms i64 | key_length i32  |
    | endian    | the body  | value_length u32 | headers_length u32 |           |
    |           |           | key | value | headers (a JSON object, UTF-8)    |
    +-----------+-----------+-------------------------------------------------+

``length`` counts every byte after the length field (the CRC and the body).
A ``key_length`` of -1 means "no key", which is different from an empty key.

Why a length and a CRC. A process killed in the middle of ``write`` leaves a
prefix of the last record on disk, and a crashed machine may even leave a
block of zeros or stale bytes. On restart the reader walks the records from
the start of the file: a length that runs past the end of the file, a body
whose CRC does not match, or an offset that is not the next one marks the
first bad record. Everything from there on is the torn tail, and recovery cuts
the file at that point. Everything before it is kept, because each earlier
record passed its own checks.

Left out on purpose: compression, record batches with one header for many
records (Kafka's v2 format), and schema ids.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "LENGTH",
    "CRC",
    "BODY_FIXED",
    "RECORD_OVERHEAD_BYTES",
    "MAX_RECORD_BYTES",
    "Record",
    "encode_record",
    "DecodeResult",
    "decode_records",
]

LENGTH = struct.Struct("!I")
CRC = struct.Struct("!I")
# offset, timestamp_ms, key_length (-1 for no key), value_length, headers_length
BODY_FIXED = struct.Struct("!QqiII")
RECORD_OVERHEAD_BYTES = LENGTH.size + CRC.size + BODY_FIXED.size  # 36
# A length above this is treated as corruption, never as a record to allocate.
MAX_RECORD_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Record:
    """One record of a partition, as stored and as read back."""

    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


def encode_record(
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """Return the bytes of one record in the layout above, ready to append.

    Raises ``TypeError`` when ``key`` or ``value`` is not bytes, and
    ``ValueError`` when the record would exceed ``MAX_RECORD_BYTES``.
    """
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError(f"a record value must be bytes, got {type(value).__name__}")
    if key is not None and not isinstance(key, (bytes, bytearray)):
        raise TypeError(f"a record key must be bytes or None, got {type(key).__name__}")
    headers_bytes = json.dumps(dict(headers or {}), sort_keys=True).encode("utf-8")
    key_bytes = b"" if key is None else bytes(key)
    body = (
        BODY_FIXED.pack(
            offset,
            timestamp_ms,
            -1 if key is None else len(key_bytes),
            len(value),
            len(headers_bytes),
        )
        + key_bytes
        + bytes(value)
        + headers_bytes
    )
    length = CRC.size + len(body)
    if length > MAX_RECORD_BYTES:
        raise ValueError(
            f"record of {length} bytes exceeds MAX_RECORD_BYTES={MAX_RECORD_BYTES}; "
            f"split the value into smaller messages"
        )
    return LENGTH.pack(length) + CRC.pack(zlib.crc32(body)) + body


@dataclass(frozen=True)
class DecodeResult:
    """What ``decode_records`` found in a buffer.

    ``records`` are the valid records in order and ``positions`` their start
    positions in the buffer. ``valid_bytes`` is where the last valid record
    ends. ``problem`` says why decoding stopped before the end of the buffer,
    and is None when the whole buffer was valid.
    """

    records: list[Record]
    positions: list[int]
    valid_bytes: int
    problem: str | None


def decode_records(
    data: bytes | memoryview,
    *,
    first_offset: int | None = None,
    start: int = 0,
    max_records: int | None = None,
) -> DecodeResult:
    """Decode records from ``data[start:]`` until the end, a bad record or ``max_records``.

    When ``first_offset`` is given, the records must carry consecutive offsets
    starting there, and the first one that does not is treated as corruption.
    This function never raises on bad bytes: it reports them in ``problem``.
    """
    view = memoryview(data)
    records: list[Record] = []
    positions: list[int] = []
    position = start
    expected = first_offset
    problem: str | None = None
    while position < len(view):
        if max_records is not None and len(records) >= max_records:
            break
        record, size, problem = _decode_one(view, position, expected)
        if record is None:
            break
        records.append(record)
        positions.append(position)
        position += size
        expected = record.offset + 1
    return DecodeResult(records, positions, position, problem)


def _decode_one(
    view: memoryview, position: int, expected_offset: int | None
) -> tuple[Record | None, int, str | None]:
    """Decode the record at ``position``, or return (None, 0, reason) if it is bad."""
    remaining = len(view) - position
    if remaining < LENGTH.size + CRC.size + BODY_FIXED.size:
        return None, 0, f"{remaining} bytes at position {position} are too few for a record"
    (length,) = LENGTH.unpack_from(view, position)
    if length < CRC.size + BODY_FIXED.size or length > MAX_RECORD_BYTES:
        return None, 0, f"invalid record length {length} at position {position}"
    if LENGTH.size + length > remaining:
        return (
            None,
            0,
            (
                f"record at position {position} declares {length} bytes but only "
                f"{remaining - LENGTH.size} follow"
            ),
        )
    (crc,) = CRC.unpack_from(view, position + LENGTH.size)
    body_start = position + LENGTH.size + CRC.size
    body = view[body_start : position + LENGTH.size + length]
    if zlib.crc32(body) != crc:
        return None, 0, f"CRC mismatch in the record at position {position}"
    offset, timestamp_ms, key_length, value_length, headers_length = BODY_FIXED.unpack_from(body)
    variable = BODY_FIXED.size + max(key_length, 0) + value_length + headers_length
    if key_length < -1 or variable != len(body):
        return None, 0, f"field lengths do not add up in the record at position {position}"
    if expected_offset is not None and offset != expected_offset:
        return (
            None,
            0,
            (f"record at position {position} has offset {offset}, expected {expected_offset}"),
        )
    cursor = BODY_FIXED.size
    key: bytes | None = None
    if key_length >= 0:
        key = bytes(body[cursor : cursor + key_length])
        cursor += key_length
    value = bytes(body[cursor : cursor + value_length])
    cursor += value_length
    try:
        headers = json.loads(bytes(body[cursor:]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, 0, f"headers are not a JSON object in the record at position {position}"
    if not isinstance(headers, dict):
        return None, 0, f"headers are not a JSON object in the record at position {position}"
    record = Record(offset, timestamp_ms, key, value, headers)
    return record, LENGTH.size + length, None
