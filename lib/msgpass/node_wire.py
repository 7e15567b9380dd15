"""The wire format of the real node runtime: one message as one JSON datagram.

``msgpass.node_real`` sends each message of a ``Node`` as one UDP datagram
whose payload is this JSON envelope::

    {"type": "Ping", "fields": {"seq": 1},
     "source": "a", "message_id": 7, "sent_at_s": 0.0123}

``type`` and ``fields`` are the message: its class name and
``dataclasses.asdict``. ``source``, ``message_id`` and ``sent_at_s`` feed the
handler's ``sender`` argument and the trace. Nothing is pickled: the receiver
rebuilds a message only from the classes in a registry (class name to class)
that the program passes in, so a datagram cannot make it build anything else.

Left out on purpose: nested dataclasses (a field that is itself a message
arrives as a dict), versioning of the envelope, and a binary encoding.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from .errors import ProtocolError
from .node import message_type_name

__all__ = ["encode_message", "decode_message"]


def encode_message(
    message: object, *, source: str, message_id: int, sent_at_s: float
) -> bytes:
    """Encode ``message`` as the JSON envelope described in the module docstring.

    Raises ``TypeError`` when the message is not a dataclass instance or has
    a field that JSON cannot represent.
    """
    if not dataclasses.is_dataclass(message) or isinstance(message, type):
        raise TypeError(
            f"invalid message {message!r}: expected a dataclass instance such as Ping(seq=1)"
        )
    envelope = {
        "type": message_type_name(message),
        "fields": dataclasses.asdict(message),
        "source": source,
        "message_id": message_id,
        "sent_at_s": sent_at_s,
    }
    try:
        return json.dumps(envelope, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"message {message_type_name(message)} is not JSON-serializable ({error}); "
            f"use fields of JSON types (int, float, str, bool, None, list, dict)"
        ) from error


def decode_message(
    data: bytes, registry: dict[str, type[Any]]
) -> tuple[object, str, int, float]:
    """Decode one envelope into ``(message, source, message_id, sent_at_s)``.

    Only classes in ``registry`` (class name to class) are ever instantiated.
    Raises ``ProtocolError`` for bytes that are not a valid envelope, and for
    a type name missing from the registry.
    """
    try:
        envelope = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"invalid message envelope: not UTF-8 JSON ({error})") from error
    if not isinstance(envelope, dict):
        raise ProtocolError(f"invalid message envelope: expected a JSON object, got {envelope!r}")
    type_name = envelope.get("type")
    fields = envelope.get("fields")
    source = envelope.get("source")
    message_id = envelope.get("message_id")
    sent_at_s = envelope.get("sent_at_s")
    if not (
        isinstance(type_name, str)
        and isinstance(fields, dict)
        and isinstance(source, str)
        and isinstance(message_id, int)
        and isinstance(sent_at_s, (int, float))
    ):
        raise ProtocolError(
            "invalid message envelope: expected keys type (str), fields (object), "
            f"source (str), message_id (int) and sent_at_s (number), got {envelope!r}"
        )
    cls = registry.get(type_name)
    if cls is None:
        raise ProtocolError(
            f"unknown message type {type_name!r} from {source!r}; "
            f"registered types are {sorted(registry)}"
        )
    try:
        message = cls(**fields)
    except TypeError as error:
        raise ProtocolError(
            f"invalid fields for message type {type_name!r} from {source!r}: {error}"
        ) from error
    return message, source, message_id, float(sent_at_s)


def _build_registry(message_types: Iterable[type[Any]]) -> dict[str, type[Any]]:
    registry: dict[str, type[Any]] = {}
    for cls in message_types:
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ValueError(f"invalid message type {cls!r}: expected a dataclass class")
        existing = registry.get(cls.__name__)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"invalid message types: two classes are named {cls.__name__!r}, and the "
                f"wire carries only the class name; rename one"
            )
        registry[cls.__name__] = cls
    return registry
