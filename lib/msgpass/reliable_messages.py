"""The messages of reliable delivery (``Data`` and ``Ack``) and the size of a transfer.

``msgpass.reliable`` builds stop-and-wait and selective repeat from these two
messages, and ``msgpass.reliable_transfer`` measures goodput with
``segment_bytes``. ``msgpass.reliable`` re-exports all four names, so labs
import them from there.

Left out on purpose: checksums and headers. The simulator never corrupts a
message, and ``message_size_bytes`` counts only the JSON encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .node import message_size_bytes

__all__ = ["Data", "Ack", "RELIABLE_MESSAGE_TYPES", "segment_bytes"]


@dataclass(frozen=True)
class Data:
    """One item of the transfer, numbered by its index in the sender's list."""

    seq: int
    payload: str


@dataclass(frozen=True)
class Ack:
    """The receiver got ``Data`` number ``seq``; every seq below ``next_expected`` is delivered."""

    seq: int
    next_expected: int


RELIABLE_MESSAGE_TYPES: tuple[type, ...] = (Data, Ack)  # the registry for RealRuntime


def segment_bytes(items: Sequence[str]) -> int:
    """Return the total wire size of the ``Data`` messages that carry ``items``, each once."""
    return sum(message_size_bytes(Data(seq, item)) for seq, item in enumerate(items))
