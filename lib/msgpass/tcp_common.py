"""Input checks, defaults and message wording shared by the TCP endpoints.

The blocking endpoints in ``msgpass.tcp``, the asyncio ones in
``msgpass.tcp_asyncio`` and several clients built on them (the ZeroMQ helpers,
the lookup clients of ``msgpass.styles``) accept the same arguments and report
the same failures. This module keeps those rules in one place, so that a
``timeout_s`` or a ``port`` is checked the same way everywhere and a timeout
message reads the same from every endpoint:

- ``check_timeout`` and ``check_port`` reject invalid arguments with a message
  that says what to pass instead.
- ``payload_size`` accepts only bytes-like payloads, because the wire carries
  bytes.
- ``format_address``, ``format_seconds`` and ``connect_timeout_message`` word
  the error messages.

Import these names from ``msgpass.tcp``, which re-exports them. Nothing here
opens a socket.
"""

from __future__ import annotations

import math

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "check_timeout",
    "check_port",
    "payload_size",
    "format_address",
    "format_seconds",
    "connect_timeout_message",
]

DEFAULT_TIMEOUT_S = 5.0  # seconds, for connect, send, recv and accept


def check_timeout(timeout_s: float | None) -> float | None:
    """Return ``timeout_s`` if it is a positive number of seconds or None, else raise."""
    if timeout_s is None:
        return None
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)):
        raise TypeError(
            f"timeout_s must be a number of seconds or None, got {type(timeout_s).__name__}"
        )
    if not timeout_s > 0 or math.isnan(timeout_s):
        raise ValueError(
            f"timeout_s must be a positive number of seconds, or None to wait forever, "
            f"got {timeout_s!r}"
        )
    return float(timeout_s)


def check_port(port: int, *, required: bool) -> int:
    """Return ``port`` if it is a valid TCP port number, else raise ``ValueError``."""
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int, got {type(port).__name__}")
    if required and port == 0:
        raise ValueError(
            "port is required: pass the port the server reported, for example server.port"
        )
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535, got {port}")
    return port


def payload_size(payload: bytes) -> int:
    """Return the payload's length in bytes, raising ``TypeError`` for anything not bytes-like."""
    if isinstance(payload, (bytes, bytearray)):
        return len(payload)
    if isinstance(payload, memoryview):
        return payload.nbytes
    hint = ""
    if isinstance(payload, str):
        hint = " encode it first, for example payload.encode('utf-8');"
    raise TypeError(
        f"a payload must be bytes, bytearray or memoryview, got {type(payload).__name__};{hint}"
        f" the wire carries bytes only"
    )


def format_address(address: tuple[str, int] | None) -> str:
    """Return ``"host:port"`` for an address tuple, or ``"?"`` when it is unknown."""
    return "?" if address is None else f"{address[0]}:{address[1]}"


def format_seconds(timeout_s: float | None) -> str:
    """Return ``"0.3 s"`` for a timeout, as the timeout messages print it."""
    return "no time limit" if timeout_s is None else f"{timeout_s:g} s"


def connect_timeout_message(action: str, timeout_s: float | None) -> str:
    """Return the message for a connection attempt that timed out (shared with asyncio)."""
    return (
        f"{action} timed out after {format_seconds(timeout_s)}: the server did not accept "
        f"in time, usually because its listen backlog is full or the host drops the packets. "
        f"Check the address, or raise timeout_s"
    )
