"""The broker's wire format: one JSON header and raw payload bytes per frame.

Each request and each reply is one frame of ``msgpass.tcp`` (a 4-byte length
and a body). The body is::

    +----------------------+---------------------+-------------------------+
    | header_length: u32,  | header: a JSON      | payload: the keys and   |
    | big-endian           | object, UTF-8       | values, back to back    |
    +----------------------+---------------------+-------------------------+

Keys and values are arbitrary bytes, so they travel outside the JSON, in the
payload. The header lists their sizes in order as ``[key_length,
value_length]`` pairs, with -1 as the key length of a record without a key.
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
from .records import Record

__all__ = [
    "HEADER_LENGTH",
    "encode_message",
    "decode_message",
    "pack_records",
    "unpack_records",
    "records_from_reply",
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
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(n, int) for n in pair)
            or pair[0] < -1
            or pair[1] < 0
        ):
            raise ProtocolError(f"invalid record size pair {pair!r}")
        key_length, value_length = pair
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


def records_from_reply(
    header: Mapping[str, Any], payload: bytes
) -> list[tuple[str, int, int, Record]]:
    """Rebuild the records of a fetch or read reply as (topic, partition, deliveries, record).

    The header's ``"records"`` list contains ``[topic, partition, offset,
    timestamp_ms, deliveries, headers]`` per record, and ``"sizes"`` the key
    and value lengths of the payload.
    """
    items = unpack_records(header["sizes"], payload)
    fields_list = header["records"]
    if not isinstance(fields_list, list) or len(fields_list) != len(items):
        raise ProtocolError("reply lists a different number of records than sizes")
    rebuilt = []
    for (key, value), fields in zip(items, fields_list, strict=True):
        topic, partition, offset, timestamp_ms, deliveries, headers = fields
        record = Record(int(offset), int(timestamp_ms), key, value, headers)
        rebuilt.append((str(topic), int(partition), int(deliveries), record))
    return rebuilt


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
