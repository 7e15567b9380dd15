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
the start of the file. The first bad record is one whose length runs past the
end of the file, whose body fails its CRC, or whose offset is not the next
one. Everything from there on is the torn tail, and recovery cuts
the file at that point. Everything before it is kept, because each earlier
record passed its own checks.

Left out on purpose: compression, record batches with one header for many
records (Kafka's v2 format), and schema ids.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "LENGTH",
    "CRC",
    "BODY_FIXED",
    "RECORD_OVERHEAD_BYTES",
    "MAX_RECORD_BYTES",
    "Record",
    "encode_record",
    "encode_records",
    "DecodeResult",
    "decode_records",
    "RecordFields",
    "decode_record_fields",
]

LENGTH = struct.Struct("!I")
CRC = struct.Struct("!I")
_PREFIX = struct.Struct("!II")  # length and CRC together, packed and unpacked in one call
# offset, timestamp_ms, key_length (-1 for no key), value_length, headers_length
BODY_FIXED = struct.Struct("!QqiII")
RECORD_OVERHEAD_BYTES = LENGTH.size + CRC.size + BODY_FIXED.size  # 36
RECORD_PREFIX_BYTES = LENGTH.size + CRC.size  # the length and CRC before the body
# A length above this is treated as corruption, never as a record to allocate.
MAX_RECORD_BYTES = 64 * 1024 * 1024
EMPTY_HEADERS = b"{}"  # the JSON of no headers, written and recognised without the json module


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
    data, _ = encode_records(offset, timestamp_ms, [(key, value, headers)])
    return data


def encode_records(
    first_offset: int,
    timestamp_ms: int,
    items: Iterable[tuple[bytes | None, bytes, Mapping[str, str] | None]],
) -> tuple[bytes, list[int]]:
    """Encode (key, value, headers) items as consecutive records from ``first_offset``.

    Returns the records joined into one bytes object, ready for one write, and
    the size of each record. The bytes are the same as ``encode_record``
    gives for each item in turn, so a batch and single records mix freely in
    a segment. Raises like ``encode_record``.
    """
    chunks: list[bytes] = []
    sizes: list[int] = []
    pack_fixed = BODY_FIXED.pack
    pack_prefix = _PREFIX.pack
    crc32 = zlib.crc32
    offset = first_offset
    for key, value, headers in items:
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"a record value must be bytes, got {type(value).__name__}")
        if headers:
            headers_bytes = json.dumps(dict(headers), sort_keys=True).encode("utf-8")
        else:
            headers_bytes = EMPTY_HEADERS
        if key is None:
            fixed = pack_fixed(offset, timestamp_ms, -1, len(value), len(headers_bytes))
            body = b"".join((fixed, value, headers_bytes))
        elif isinstance(key, (bytes, bytearray)):
            fixed = pack_fixed(offset, timestamp_ms, len(key), len(value), len(headers_bytes))
            body = b"".join((fixed, key, value, headers_bytes))
        else:
            raise TypeError(f"a record key must be bytes or None, got {type(key).__name__}")
        length = CRC.size + len(body)
        if length > MAX_RECORD_BYTES:
            raise ValueError(
                f"record of {length} bytes exceeds MAX_RECORD_BYTES={MAX_RECORD_BYTES}; "
                f"split the value into smaller messages"
            )
        chunks.append(pack_prefix(length, crc32(body)))
        chunks.append(body)
        sizes.append(LENGTH.size + length)
        offset += 1
    return b"".join(chunks), sizes


@dataclass(frozen=True)
class DecodeResult:
    """What ``decode_records`` found in a buffer.

    ``records`` are the valid records in order and ``positions`` their start
    positions in the buffer. ``valid_bytes`` is where the last valid record
    ends. ``problem`` gives the reason decoding stopped before the end of the buffer,
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
    fields, positions, valid_bytes, problem = decode_record_fields(
        data, first_offset=first_offset, start=start, max_records=max_records
    )
    return DecodeResult([Record(*item) for item in fields], positions, valid_bytes, problem)


RecordFields = tuple[int, int, bytes | None, bytes, dict[str, str]]


def decode_record_fields(
    data: bytes | memoryview,
    *,
    first_offset: int | None = None,
    start: int = 0,
    max_records: int | None = None,
) -> tuple[list[RecordFields], list[int], int, str | None]:
    """Do what ``decode_records`` does, with each record as a plain tuple of its fields.

    Returns (fields, positions, valid_bytes, problem), where each item of
    ``fields`` is (offset, timestamp_ms, key, value, headers), in the order
    of ``Record``'s fields. A consumer that builds its own objects from the
    fields saves creating a ``Record`` for each.
    """
    buffer = data if isinstance(data, bytes) else bytes(data)
    view = memoryview(buffer)
    fields: list[RecordFields] = []
    positions: list[int] = []
    position = start
    expected = first_offset
    problem: str | None = None
    size = len(buffer)
    max_count = size if max_records is None else max_records  # a record takes at least a byte
    unpack_prefix = _PREFIX.unpack_from
    unpack_fixed = BODY_FIXED.unpack_from
    crc32 = zlib.crc32
    fixed_size = BODY_FIXED.size
    # The loop below handles good records inline, because a fetch decodes
    # thousands of them. At the first check that fails, _decode_one decodes
    # the same record again to report what is wrong with it.
    while position < size and len(fields) < max_count:
        if size - position < RECORD_OVERHEAD_BYTES:
            _, _, problem = _decode_one(view, position, expected)
            break
        length, crc = unpack_prefix(buffer, position)
        body_start = position + RECORD_PREFIX_BYTES
        end = position + LENGTH.size + length
        if length < CRC.size + fixed_size or length > MAX_RECORD_BYTES or end > size:
            _, _, problem = _decode_one(view, position, expected)
            break
        offset, timestamp_ms, key_length, value_length, headers_length = unpack_fixed(
            buffer, body_start
        )
        if (
            crc32(view[body_start:end]) != crc
            or key_length < -1
            or fixed_size + max(key_length, 0) + value_length + headers_length != end - body_start
            or (expected is not None and offset != expected)
        ):
            _, _, problem = _decode_one(view, position, expected)
            break
        cursor = body_start + fixed_size
        key: bytes | None = None
        if key_length >= 0:
            key = buffer[cursor : cursor + key_length]
            cursor += key_length
        value = buffer[cursor : cursor + value_length]
        cursor += value_length
        if headers_length == 2 and buffer[cursor:end] == EMPTY_HEADERS:
            fields.append((offset, timestamp_ms, key, value, {}))
        else:
            # Records with headers need the json module; they take the slow path.
            record, _, problem = _decode_one(view, position, expected)
            if record is None:
                break
            fields.append((offset, timestamp_ms, key, value, dict(record.headers)))
        positions.append(position)
        position = end
        expected = offset + 1
    return fields, positions, position, problem


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
