"""The broker's wire format: one JSON header and raw payload bytes per frame.

Each request and each reply is one frame of ``msgpass.tcp`` (a 4-byte length
and a body). The body is::

    +----------------------+---------------------+-------------------------+
    | header_length: u32,  | header: a JSON      | payload: the keys and   |
    | big-endian           | object, UTF-8       | values, back to back    |
    +----------------------+---------------------+-------------------------+

Keys and values are arbitrary bytes, so they travel outside the JSON, in the
payload. A produce request's header lists their sizes in order as
``[key_length, value_length]`` pairs, with -1 as the key length of a record
without a key. Records going the other way, in fetch and read replies, are
sent in the broker's stored layout (see ``records``), exactly as they sit in
the segment, so the broker never decodes them and the consumer checks each
record's CRC. The header's ``"runs"`` list gives where each partition's run
of records starts and ends (see ``pack_runs``).
Nothing on the wire is pickled, so a broken or hostile peer can at worst send
an invalid request, which the broker rejects with an error reply.

A request header has an ``"op"`` field (``"produce"``, ``"fetch"``, ``"ack"``
and so on, see ``server``). A reply header has ``"ok": true`` and the
operation's fields, or ``"ok": false`` with an error ``"code"`` and a
``"message"``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ProtocolError, RemoteError
from .records import Record, RecordFields, decode_record_fields

__all__ = [
    "HEADER_LENGTH",
    "encode_message",
    "decode_message",
    "pack_records",
    "unpack_records",
    "pack_runs",
    "records_from_reply",
    "decode_runs",
    "error_reply",
    "check_reply",
]

HEADER_LENGTH = struct.Struct("!I")


def encode_message(header: Mapping[str, Any], payload: bytes = b"") -> bytes:
    """Return the frame body for ``header`` (JSON-serialisable) and ``payload``."""
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return HEADER_LENGTH.pack(len(encoded)) + encoded + payload


def decode_message(body: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a frame body into its JSON header and its payload.

    Raises ``ProtocolError`` when the header length runs past the body or the
    header is not a JSON object.
    """
    if len(body) < HEADER_LENGTH.size:
        raise ProtocolError(f"message of {len(body)} bytes is too short for its header length")
    (length,) = HEADER_LENGTH.unpack_from(body)
    end = HEADER_LENGTH.size + length
    if end > len(body):
        raise ProtocolError(
            f"message declares a {length}-byte header but has only "
            f"{len(body) - HEADER_LENGTH.size} bytes after the length"
        )
    try:
        header = json.loads(body[HEADER_LENGTH.size : end].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"message header is not valid JSON: {error}") from error
    if not isinstance(header, dict):
        raise ProtocolError(f"message header must be a JSON object, got {type(header).__name__}")
    return header, body[end:]


def pack_records(items: Iterable[tuple[bytes | None, bytes]]) -> tuple[list[list[int]], bytes]:
    """Return the ``[key_length, value_length]`` list and the joined payload for records."""
    sizes: list[list[int]] = []
    chunks: list[bytes] = []
    for key, value in items:
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"a message value must be bytes, got {type(value).__name__}")
        if key is not None and not isinstance(key, (bytes, bytearray)):
            raise TypeError(f"a message key must be bytes or None, got {type(key).__name__}")
        sizes.append([-1 if key is None else len(key), len(value)])
        if key is not None:
            chunks.append(bytes(key))
        chunks.append(bytes(value))
    return sizes, b"".join(chunks)


def unpack_records(sizes: Any, payload: bytes) -> list[tuple[bytes | None, bytes]]:
    """Cut ``payload`` back into (key, value) pairs; raise ``ProtocolError`` if sizes mismatch."""
    if not isinstance(sizes, list):
        raise ProtocolError("record sizes must be a list of [key_length, value_length] pairs")
    items: list[tuple[bytes | None, bytes]] = []
    position = 0
    for pair in sizes:
        if type(pair) is not list or len(pair) != 2:
            raise ProtocolError(f"invalid record size pair {pair!r}")
        key_length, value_length = pair
        if type(key_length) is not int or type(value_length) is not int:
            raise ProtocolError(f"invalid record size pair {pair!r}")
        if key_length < -1 or value_length < 0:
            raise ProtocolError(f"invalid record size pair {pair!r}")
        key = None
        if key_length >= 0:
            key = payload[position : position + key_length]
            position += key_length
        value = payload[position : position + value_length]
        position += value_length
        if position > len(payload):
            raise ProtocolError(f"record sizes add up to more than the {len(payload)}-byte payload")
        items.append((key, value))
    if position != len(payload):
        raise ProtocolError(
            f"record sizes add up to {position} bytes but the payload has {len(payload)}"
        )
    return items


def pack_runs(
    runs: Iterable[tuple[str, int, int, bytes, list[int]]],
) -> tuple[list[list[Any]], bytes]:
    """Return the ``"runs"`` header list and the payload for runs of stored records.

    Each run is (topic, partition, first_offset, data, deliveries): ``data``
    contains consecutive records in the layout of ``records``, exactly as the
    broker stored them, and ``deliveries`` gives per record how often it has
    been delivered. The header entry of a run is ``[topic, partition,
    first_offset, byte_length, deliveries]``.
    """
    fields: list[list[Any]] = []
    chunks: list[bytes] = []
    for topic, partition, first_offset, data, deliveries in runs:
        fields.append([topic, partition, first_offset, len(data), deliveries])
        chunks.append(data)
    return fields, b"".join(chunks)


def records_from_reply(
    header: Mapping[str, Any], payload: bytes
) -> list[tuple[str, int, int, Record]]:
    """Rebuild the records of a fetch or read reply as (topic, partition, deliveries, record).

    See ``decode_runs`` for the checks and the errors.
    """
    rebuilt: list[tuple[str, int, int, Record]] = []
    for topic, partition, deliveries, fields in decode_runs(header, payload):
        for count, item in zip(deliveries, fields, strict=True):
            rebuilt.append((topic, partition, count, Record(*item)))
    return rebuilt


def decode_runs(
    header: Mapping[str, Any], payload: bytes
) -> list[tuple[str, int, list[int], list[RecordFields]]]:
    """Decode the runs of a fetch or read reply as (topic, partition, deliveries, fields).

    The header's ``"runs"`` list is described in ``pack_runs``, and each item
    of ``fields`` is a record as ``decode_record_fields`` returns it. Every
    record's length, CRC and offset are checked here, on the consumer's side,
    as Kafka consumers can with ``check.crcs``. Raises ``ProtocolError``
    when the runs do not match the payload or a record is damaged.
    """
    runs = header.get("runs")
    if not isinstance(runs, list):
        raise ProtocolError("reply has no list of record runs")
    decoded: list[tuple[str, int, list[int], list[RecordFields]]] = []
    position = 0
    for run in runs:
        if type(run) is not list or len(run) != 5:
            raise ProtocolError(f"invalid record run {run!r}: expected a list of 5 fields")
        topic, partition, first_offset, byte_length, deliveries = run
        # type() rather than isinstance(), because a JSON true would pass as the int 1.
        if (
            not isinstance(topic, str)
            or any(type(n) is not int or n < 0 for n in (partition, first_offset, byte_length))
            or type(deliveries) is not list
            or any(type(count) is not int for count in deliveries)
        ):
            raise ProtocolError(
                f"invalid record run {run[:4]!r}: expected [topic, partition, first_offset, "
                f"byte_length, deliveries] with non-negative ints and a list of ints"
            )
        end = position + byte_length
        if end > len(payload):
            raise ProtocolError(
                f"record run {run[:4]!r} needs bytes {position}..{end} but the payload has "
                f"{len(payload)}"
            )
        fields, _, _, problem = decode_record_fields(
            payload[position:end], first_offset=first_offset
        )
        if problem is not None:
            raise ProtocolError(
                f"{topic}/{partition}: damaged record at offset {first_offset + len(fields)} "
                f"in the run from offset {first_offset}: {problem}"
            )
        if len(fields) != len(deliveries):
            raise ProtocolError(
                f"{topic}/{partition}: the run from offset {first_offset} has {len(fields)} "
                f"records but {len(deliveries)} delivery counts"
            )
        decoded.append((topic, partition, deliveries, fields))
        position = end
    if position != len(payload):
        raise ProtocolError(f"record runs cover {position} of the {len(payload)}-byte payload")
    return decoded


def error_reply(code: str, message: str) -> bytes:
    """Return the frame body of an error reply."""
    return encode_message({"ok": False, "code": code, "message": message})


def check_reply(header: Mapping[str, Any]) -> None:
    """Raise ``RemoteError`` with the broker's code and message if ``header`` is an error reply."""
    if header.get("ok") is not True:
        raise RemoteError(
            str(header.get("message", "the broker replied with an error")),
            code=str(header.get("code", "failed")),
        )
