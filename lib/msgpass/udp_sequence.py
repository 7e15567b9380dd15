"""Sequence numbers on UDP: what they reveal about loss, duplication and reordering.

UDP delivers each datagram whole or not at all, but it says nothing about the
ones that never arrived, arrived twice or arrived out of order. A receiver can
learn those facts only if the sender numbers its datagrams. This module puts
a small header in front of every payload and counts what the numbers show:

- ``encode_datagram`` / ``decode_datagram`` add and remove the header.
- ``SequencedSender`` numbers the datagrams it sends through a
  ``msgpass.udp.UdpEndpoint``, starting at 0.
- ``SequencedReceiver`` decodes what arrives and keeps one
  ``SequenceTracker`` per sender, which counts datagrams received, lost,
  duplicated and reordered.

The sequence header, in network byte order, in front of every payload::

    +-------------------------+-------------------------------+-----------+
    | sender id: 4 bytes, u32 | sequence number: 8 bytes, u64 | payload   |
    +-------------------------+-------------------------------+-----------+

Left out on purpose: acting on what the numbers show. Nothing here
retransmits, acknowledges or reorders; reliable delivery is built on top of
this module. Import these names from ``msgpass.udp``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import PayloadTooLarge, ProtocolError
from .udp import IPV4_MAX_PAYLOAD_BYTES, Address, UdpEndpoint, _payload_size

__all__ = [
    "SEQUENCE_HEADER",
    "SEQUENCE_HEADER_BYTES",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "SequencedDatagram",
    "SequenceTracker",
    "SequencedSender",
    "SequencedReceiver",
    "encode_datagram",
    "decode_datagram",
]

SEQUENCE_HEADER = struct.Struct("!IQ")  # sender id (u32), sequence number (u64)
SEQUENCE_HEADER_BYTES = SEQUENCE_HEADER.size  # 12
DEFAULT_MAX_PAYLOAD_BYTES = IPV4_MAX_PAYLOAD_BYTES - SEQUENCE_HEADER_BYTES  # 65,495


@dataclass(frozen=True)
class SequencedDatagram:
    """One decoded datagram: who sent it, its place in that sender's order, its bytes."""

    sender_id: int
    sequence: int
    payload: bytes


def encode_datagram(sequence: int, payload: bytes, sender_id: int = 0) -> bytes:
    """Return ``payload`` behind the 12-byte sequence header.

    >>> encode_datagram(1, b"hi")
    b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x01hi'
    """
    _payload_size(payload)
    if not 0 <= sequence < 2**64:
        raise ValueError(f"sequence must fit in an unsigned 64-bit integer, got {sequence}")
    if not 0 <= sender_id < 2**32:
        raise ValueError(f"sender_id must fit in an unsigned 32-bit integer, got {sender_id}")
    return SEQUENCE_HEADER.pack(sender_id, sequence) + bytes(payload)


def decode_datagram(data: bytes) -> SequencedDatagram:
    """Split a received datagram into its header fields and payload.

    Raises ``ProtocolError`` if the datagram is shorter than the 12-byte header.
    """
    if len(data) < SEQUENCE_HEADER_BYTES:
        raise ProtocolError(
            f"datagram of {len(data)} bytes is shorter than the {SEQUENCE_HEADER_BYTES}-byte "
            f"sequence header; the sender does not use this format"
        )
    sender_id, sequence = SEQUENCE_HEADER.unpack_from(data)
    return SequencedDatagram(sender_id, sequence, bytes(data[SEQUENCE_HEADER_BYTES:]))


class SequenceTracker:
    """Count what the sequence numbers of one sender reveal about delivery.

    The sender numbers its datagrams 0, 1, 2, ... Each call to ``observe``
    records one arrival. The counts mean:

    - ``received``: distinct sequence numbers seen.
    - ``duplicates``: arrivals of a number already seen (not counted in ``received``).
    - ``reordered``: first arrivals of a number lower than the highest seen
      before it, that is, datagrams overtaken by a later one.
    - ``lost``: numbers below the highest seen that have not arrived yet. A late
      arrival fills its gap, so ``lost`` can go down. Datagrams sent after the
      highest one seen are invisible here. ``lost_if_sent(sent_count)`` counts them
      when the sender's total is known.

    So ``received + lost == highest + 1`` always holds.

    NOTE: the tracker remembers every number it has seen, so memory grows with
    the stream. Production protocols (IPsec, DTLS, QUIC) keep a fixed-size
    window of recent numbers as a bitmap instead.
    """

    def __init__(self) -> None:
        self._seen: set[int] = set()
        self.highest: int | None = None
        self.duplicates = 0
        self.reordered = 0

    def observe(self, sequence: int) -> None:
        """Record one arrival of ``sequence``."""
        if sequence < 0:
            raise ValueError(f"sequence numbers start at 0, got {sequence}")
        if sequence in self._seen:
            self.duplicates += 1
            return
        self._seen.add(sequence)
        if self.highest is None or sequence > self.highest:
            self.highest = sequence
        else:
            self.reordered += 1

    @property
    def received(self) -> int:
        """Distinct sequence numbers seen."""
        return len(self._seen)

    @property
    def lost(self) -> int:
        """Numbers below the highest seen that have not arrived (see the class docstring)."""
        return 0 if self.highest is None else self.highest + 1 - self.received

    def lost_if_sent(self, sent_count: int) -> int:
        """Return how many of ``sent_count`` datagrams, numbered 0 upward, never arrived."""
        expected_min = 0 if self.highest is None else self.highest + 1
        if sent_count < expected_min:
            raise ValueError(
                f"sent_count={sent_count} is below the highest sequence number seen plus one "
                f"({expected_min}); the sender's count or the numbering is wrong"
            )
        return sent_count - self.received

    def stats(self) -> dict[str, int]:
        """Counters for display in a notebook; ``highest`` is -1 before any arrival."""
        return {
            "received": self.received,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "reordered": self.reordered,
            "highest": -1 if self.highest is None else self.highest,
        }

    def __repr__(self) -> str:
        return (
            f"<SequenceTracker received={self.received} lost={self.lost} "
            f"duplicates={self.duplicates} reordered={self.reordered} highest={self.highest}>"
        )


class SequencedSender:
    """Number the datagrams sent from ``endpoint`` to ``address``, starting at 0.

    ``max_payload_bytes`` defaults to the endpoint's ``max_datagram_bytes`` minus
    the 12-byte header, which is 65,495 on IPv4. Pass
    ``IPV4_ETHERNET_PAYLOAD_BYTES - SEQUENCE_HEADER_BYTES`` to stay within one
    Ethernet frame.
    """

    def __init__(
        self,
        endpoint: UdpEndpoint,
        address: Address,
        *,
        sender_id: int = 0,
        max_payload_bytes: int | None = None,
    ) -> None:
        limit = endpoint.max_datagram_bytes - SEQUENCE_HEADER_BYTES
        if max_payload_bytes is None:
            max_payload_bytes = limit
        if not 0 <= max_payload_bytes <= limit:
            raise ValueError(
                f"max_payload_bytes must be between 0 and {limit} (the endpoint's "
                f"max_datagram_bytes minus the header), got {max_payload_bytes}"
            )
        self.endpoint = endpoint
        self.address = address
        self.sender_id = sender_id
        self.max_payload_bytes = max_payload_bytes
        self.next_sequence = 0

    def send(self, payload: bytes) -> int:
        """Send ``payload`` with the next sequence number and return that number.

        Raises ``PayloadTooLarge`` above ``max_payload_bytes``. The number is then
        not used, so the rejected payload leaves no gap in the numbering.
        """
        size = _payload_size(payload)
        if size > self.max_payload_bytes:
            raise PayloadTooLarge(size, self.max_payload_bytes, "sequenced payload")
        sequence = self.next_sequence
        self.endpoint.send_to(encode_datagram(sequence, payload, self.sender_id), self.address)
        self.next_sequence += 1
        return sequence

    def __repr__(self) -> str:
        return (
            f"<SequencedSender id={self.sender_id} to {self.address[0]}:{self.address[1]} "
            f"next_sequence={self.next_sequence}>"
        )


class SequencedReceiver:
    """Receive sequenced datagrams on ``endpoint`` and track each sender separately."""

    def __init__(self, endpoint: UdpEndpoint) -> None:
        self.endpoint = endpoint
        self.trackers: dict[int, SequenceTracker] = {}

    def recv(self, timeout_s: float | None = None) -> SequencedDatagram:
        """Wait for one datagram, record its number, and return it decoded.

        Raises what ``UdpEndpoint.recv`` raises, and ``ProtocolError`` for a
        datagram shorter than the header.
        """
        data, _ = self.endpoint.recv(timeout_s)
        datagram = decode_datagram(data)
        self.tracker(datagram.sender_id).observe(datagram.sequence)
        return datagram

    def tracker(self, sender_id: int = 0) -> SequenceTracker:
        """Return the tracker of ``sender_id``, creating an empty one on first use."""
        return self.trackers.setdefault(sender_id, SequenceTracker())

    def stats(self) -> dict[int, dict[str, int]]:
        """Return each sender's tracker counts, keyed by sender id, for display in a notebook."""
        return {sender_id: tracker.stats() for sender_id, tracker in self.trackers.items()}

    def __repr__(self) -> str:
        return f"<SequencedReceiver on port {self.endpoint.port}, {len(self.trackers)} senders>"
