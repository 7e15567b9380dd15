"""The lookup service's wire format: one JSON object per ``msgpass.framing`` frame.

Every style in ``msgpass.styles`` talks to the same ``LookupServer``, so they
share these four functions. Each request and reply is one JSON object in one
frame::

    request  {"op": "get", "key": "user:alice", "id": 7}
    reply    {"ok": true, "value": "42", "id": 7}
    reply    {"ok": false, "code": "not_found", "error": "not found: user:zed", "id": 7}

``id`` is the request id. The client chooses it and the server copies it into
the reply, so a client can tell a late reply to an earlier, timed-out request
from the reply it is waiting for. Requests without an ``id`` get replies
without one. Error codes are ``not_found``, ``bad_request`` and
``unavailable``, and ``decode_reply`` turns an error reply into a
``msgpass.errors.RemoteError`` with that code.

The decoders accept only JSON and check every field they read, raising
``ProtocolError`` for anything else, so a hostile peer cannot make them run
code. Left out on purpose: versioning and any operation besides ``get``.
Import these names from ``msgpass.styles.lookup``.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import ProtocolError, RemoteError

__all__ = [
    "encode_request",
    "decode_request",
    "encode_reply",
    "decode_reply",
]


def encode_request(key: str, request_id: int | None = None) -> bytes:
    """Return the frame payload of a ``get`` request for ``key``."""
    if not isinstance(key, str):
        raise TypeError(f"a lookup key must be a str, got {type(key).__name__}")
    request: dict[str, Any] = {"op": "get", "key": key}
    if request_id is not None:
        request["id"] = request_id
    return json.dumps(request).encode()


def decode_request(payload: bytes) -> tuple[str, int | None]:
    """Return ``(key, request_id)`` from a request payload.

    Raises ``ProtocolError`` when the payload is not a JSON ``get`` request.
    Nothing but JSON is ever decoded, so a hostile client cannot run code.
    """
    message = _load_object(payload, "request")
    request_id = message.get("id")
    if request_id is not None and (isinstance(request_id, bool) or not isinstance(request_id, int)):
        raise ProtocolError(f"request id must be an integer, got {request_id!r}")
    if message.get("op") != "get":
        raise ProtocolError(f"unknown op {message.get('op')!r}; the only op is 'get'")
    key = message.get("key")
    if not isinstance(key, str):
        raise ProtocolError(f"request key must be a string, got {key!r}")
    return key, request_id


def encode_reply(
    request_id: int | None,
    *,
    value: str | None = None,
    code: str | None = None,
    error: str | None = None,
) -> bytes:
    """Return a reply payload: a ``value``, or an error ``code`` with its ``error`` text."""
    reply: dict[str, Any]
    if code is None:
        reply = {"ok": True, "value": value}
    else:
        reply = {"ok": False, "code": code, "error": error or code}
    if request_id is not None:
        reply["id"] = request_id
    return json.dumps(reply).encode()


def decode_reply(payload: bytes) -> tuple[int | None, str | RemoteError]:
    """Return ``(request_id, outcome)`` from a reply payload.

    The outcome is the value on success, or a ``RemoteError`` carrying the
    server's code and message on failure. It is returned, not raised, so that
    a client can first check that the reply belongs to its request. Raises
    ``ProtocolError`` when the payload is not a reply.
    """
    message = _load_object(payload, "reply")
    request_id = message.get("id")
    if request_id is not None and (isinstance(request_id, bool) or not isinstance(request_id, int)):
        raise ProtocolError(f"reply id must be an integer, got {request_id!r}")
    if message.get("ok") is True:
        value = message.get("value")
        if not isinstance(value, str):
            raise ProtocolError(f"reply value must be a string, got {value!r}")
        return request_id, value
    if message.get("ok") is False:
        code = str(message.get("code", "failed"))
        return request_id, RemoteError(f"server replied: {message.get('error', code)}", code=code)
    raise ProtocolError(f"reply has no boolean 'ok' field: {message!r}")


def _load_object(payload: bytes, what: str) -> dict[str, Any]:
    try:
        message = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"{what} is not valid JSON: {error}") from error
    if not isinstance(message, dict):
        raise ProtocolError(f"{what} must be a JSON object, got {type(message).__name__}")
    return message
