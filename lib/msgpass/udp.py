"""Datagrams: what UDP gives a program, and what it leaves to the program.

A UDP datagram keeps its boundaries: one ``sendto`` of 100 bytes arrives as one
``recv`` of 100 bytes, or not at all. Nothing is retransmitted, nothing is put
back in order, and a receiver that drains too slowly loses whatever no longer
fits in its socket receive buffer. This module makes those facts visible:

- ``UdpEndpoint`` sends and receives whole datagrams on loopback, rejects a
  payload above the size limit instead of letting it be cut, reports a received
  datagram that did not fit the buffer, and puts a timeout on every blocking call.
- ``encode_datagram`` / ``decode_datagram`` add and remove a sequence header, and
  ``SequenceTracker`` counts what the sequence numbers reveal: datagrams
  received, lost, duplicated and reordered. They live in
  ``msgpass.udp_sequence``, with the header's layout, and are imported from here.

The size limits, in bytes of UDP payload:

- The IPv4 total-length field is 16 bits, so an IPv4 packet is at most 65,535
  bytes. Minus a 20-byte IP header and an 8-byte UDP header, that leaves 65,507.
- The IPv6 payload-length field excludes the 40-byte IPv6 header, so the limit
  is 65,535 - 8 = 65,527 (jumbograms aside).
- A datagram above the path MTU is split into IP fragments, and losing any one
  fragment loses the whole datagram. On a 1,500-byte Ethernet MTU the largest
  unfragmented payload is 1,472 bytes over IPv4 and 1,452 over IPv6. Protocols
  that run on the Internet (DNS, QUIC) therefore keep datagrams within the path MTU.

Left out on purpose: retransmission and acknowledgements (reliable delivery
is built on top of this module), congestion control, path MTU discovery,
checksums beyond UDP's own, and multicast.
"""

from __future__ import annotations

import importlib
import logging
import math
import socket
from typing import TYPE_CHECKING, Any

from .errors import (
    DatagramTruncated,
    EndpointClosed,
    MessagingTimeout,
    PayloadTooLarge,
    translate_os_error,
)

if TYPE_CHECKING:
    from .udp_sequence import (
        DEFAULT_MAX_PAYLOAD_BYTES,
        SEQUENCE_HEADER,
        SEQUENCE_HEADER_BYTES,
        SequencedDatagram,
        SequencedReceiver,
        SequencedSender,
        SequenceTracker,
        decode_datagram,
        encode_datagram,
    )

__all__ = [
    "IPV4_MAX_PAYLOAD_BYTES",
    "IPV6_MAX_PAYLOAD_BYTES",
    "IPV4_ETHERNET_PAYLOAD_BYTES",
    "IPV6_ETHERNET_PAYLOAD_BYTES",
    "SEQUENCE_HEADER",
    "SEQUENCE_HEADER_BYTES",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "Address",
    "SequencedDatagram",
    "UdpEndpoint",
    "SequenceTracker",
    "SequencedSender",
    "SequencedReceiver",
    "encode_datagram",
    "decode_datagram",
]

log = logging.getLogger(__name__)

IPV4_MAX_PAYLOAD_BYTES = 65_535 - 20 - 8  # 65,507: 16-bit total length minus IP and UDP headers
IPV6_MAX_PAYLOAD_BYTES = 65_535 - 8  # 65,527: the IPv6 payload length excludes its own header
IPV4_ETHERNET_PAYLOAD_BYTES = 1_500 - 20 - 8  # 1,472: fits one 1,500-byte Ethernet frame
IPV6_ETHERNET_PAYLOAD_BYTES = 1_500 - 40 - 8  # 1,452

Address = tuple[str, int]


def _check_timeout(timeout_s: float) -> float:
    if not (timeout_s > 0 and math.isfinite(timeout_s)):
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    return timeout_s


def _payload_size(payload: object) -> int:
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"a datagram payload must be bytes, got {type(payload).__name__}; "
            f"encode text first, for example with str.encode('utf-8')"
        )
    return memoryview(payload).nbytes


class UdpEndpoint:
    """A UDP socket bound to a local address, sending and receiving whole datagrams.

    ``port=0`` lets the OS choose a free port, and ``address`` reports it.
    ``max_datagram_bytes`` limits both directions. It defaults to the hard limit
    of the address family (65,507 for IPv4, 65,527 for IPv6). ``send_to`` rejects
    a larger payload with ``PayloadTooLarge`` before anything is sent. ``recv``
    raises ``DatagramTruncated`` for a larger incoming datagram.

    ``recv_buffer_bytes`` sets ``SO_RCVBUF``. Linux doubles the requested value to
    leave room for its own bookkeeping, caps the request at
    ``net.core.rmem_max`` and raises it to a small minimum (2,304 bytes on
    Linux 6.18). ``recv_buffer_bytes`` on the endpoint reads back what the kernel
    granted. The kernel charges each queued datagram its full memory cost
    (several hundred bytes even for a 1-byte payload), so the buffer has room
    for fewer datagrams than its size divided by the payload size.

        with UdpEndpoint() as a, UdpEndpoint() as b:
            a.send_to(b"ping", b.address)
            payload, sender = b.recv(timeout_s=1.0)   # (b"ping", a.address)
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        recv_buffer_bytes: int | None = None,
        max_datagram_bytes: int | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        family_max = IPV6_MAX_PAYLOAD_BYTES if family == socket.AF_INET6 else IPV4_MAX_PAYLOAD_BYTES

        if max_datagram_bytes is None:
            max_datagram_bytes = family_max
        if not 1 <= max_datagram_bytes <= family_max:
            raise ValueError(
                f"max_datagram_bytes must be between 1 and {family_max} for this address "
                f"family, got {max_datagram_bytes}"
            )
        if recv_buffer_bytes is not None and recv_buffer_bytes <= 0:
            raise ValueError(f"recv_buffer_bytes must be positive, got {recv_buffer_bytes}")
        self.max_datagram_bytes = max_datagram_bytes
        self.timeout_s = _check_timeout(timeout_s)

        self._sock: socket.socket | None = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if recv_buffer_bytes is not None:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer_bytes)
            self._sock.bind((host, port))
        except OSError as error:
            self._sock.close()
            raise translate_os_error(error, f"bind UDP socket to {host}:{port}") from error

        self._sock.settimeout(self.timeout_s)
        self._socket_timeout_s = self.timeout_s
        bound = self._sock.getsockname()
        self.address: Address = (bound[0], bound[1])
        self.peer: Address | None = None

        self.datagrams_sent = 0
        self.bytes_sent = 0
        self.datagrams_received = 0
        self.bytes_received = 0
        self.truncated_received = 0
        log.debug("UDP endpoint bound to %s:%d", *self.address)

    @property
    def port(self) -> int:
        """The local port the endpoint is bound to."""
        return self.address[1]

    @property
    def closed(self) -> bool:
        """True once ``close`` has run."""
        return self._sock is None

    @property
    def recv_buffer_bytes(self) -> int:
        """The effective ``SO_RCVBUF`` as granted by the kernel (see the class docstring)."""
        return self._open_socket("read SO_RCVBUF").getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    def connect(self, peer: Address) -> None:
        """Fix the peer: ``send`` goes to it and ``recv`` accepts datagrams only from it.

        UDP has no handshake, so this sends nothing. It has one visible effect
        besides filtering: if the peer's host responds to a datagram with an ICMP
        "port unreachable" because no socket is bound there, Linux reports it on
        the next ``send`` or ``recv`` of a connected socket as
        ``ConnectionRefusedError``, raised here as ``ConnectionClosed``. An
        unconnected socket never sees that error, so its datagrams vanish silently.
        """
        sock = self._open_socket(f"connect to {peer[0]}:{peer[1]}")
        try:
            sock.connect(peer)
        except OSError as error:
            raise translate_os_error(error, f"connect UDP socket to {peer[0]}:{peer[1]}") from error
        self.peer = (peer[0], peer[1])

    def send_to(self, payload: bytes | bytearray | memoryview, address: Address) -> int:
        """Send ``payload`` as one datagram to ``address`` and return its size in bytes.

        Raises ``TypeError`` for a non-bytes payload, ``PayloadTooLarge`` above
        ``max_datagram_bytes`` (nothing is sent), ``MessagingTimeout`` if the
        send buffer stays full for ``timeout_s``, ``EndpointClosed`` after ``close``.
        """
        size = self._check_size(payload)
        sock = self._open_socket(f"send to {address[0]}:{address[1]}")
        self._set_timeout(sock, self.timeout_s)
        try:
            sock.sendto(payload, address)
        except OSError as error:
            action = f"send datagram to {address[0]}:{address[1]}"
            raise translate_os_error(error, action) from error
        self._count_sent(size)
        return size

    def send(self, payload: bytes | bytearray | memoryview) -> int:
        """Send ``payload`` as one datagram to the peer set by ``connect``.

        Raises what ``send_to`` raises, and ``ConnectionClosed`` when an earlier
        datagram to the peer drew an ICMP "port unreachable".
        """
        if self.peer is None:
            raise ValueError("send() needs a peer; call connect(address) first or use send_to()")
        size = self._check_size(payload)
        sock = self._open_socket(f"send to {self.peer[0]}:{self.peer[1]}")
        self._set_timeout(sock, self.timeout_s)
        try:
            sock.send(payload)
        except OSError as error:
            action = f"send datagram to {self.peer[0]}:{self.peer[1]}"
            raise translate_os_error(error, action) from error
        self._count_sent(size)
        return size

    def recv(self, timeout_s: float | None = None) -> tuple[bytes, Address]:
        """Wait for one datagram and return ``(payload, sender_address)``.

        Waits at most ``timeout_s`` seconds (default: the endpoint's
        ``timeout_s``), then raises ``MessagingTimeout``. Raises
        ``DatagramTruncated`` for a datagram above ``max_datagram_bytes``, which
        is then lost, and ``ConnectionClosed`` on a connected endpoint whose
        peer port is unreachable.
        """
        wait_s = self.timeout_s if timeout_s is None else _check_timeout(timeout_s)
        sock = self._open_socket("receive")
        self._set_timeout(sock, wait_s)
        # One byte of headroom: a datagram of exactly max + 1 bytes fits whole and is caught
        # by the length check, anything larger sets MSG_TRUNC.
        try:
            data, _, flags, sender = sock.recvmsg(self.max_datagram_bytes + 1)
        except TimeoutError as error:
            raise MessagingTimeout(
                f"no datagram arrived at {self.address[0]}:{self.port} within {wait_s} s"
            ) from error
        except OSError as error:
            raise translate_os_error(error, f"receive on {self.address[0]}:{self.port}") from error
        sender_address: Address = (sender[0], sender[1])
        if flags & socket.MSG_TRUNC or len(data) > self.max_datagram_bytes:
            self.truncated_received += 1
            log.debug("discarded an oversized datagram from %s:%d", *sender_address)
            raise DatagramTruncated(len(data), self.max_datagram_bytes, sender_address)
        self.datagrams_received += 1
        self.bytes_received += len(data)
        return data, sender_address

    def close(self) -> None:
        """Close the socket. Closing twice is allowed. Datagrams still queued are dropped."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            log.debug("UDP endpoint %s:%d closed", *self.address)

    def __enter__(self) -> UdpEndpoint:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        """Counters for display in a notebook."""
        return {
            "port": self.port,
            "datagrams_sent": self.datagrams_sent,
            "bytes_sent": self.bytes_sent,
            "datagrams_received": self.datagrams_received,
            "bytes_received": self.bytes_received,
            "truncated_received": self.truncated_received,
        }

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        peer = "" if self.peer is None else f" peer={self.peer[0]}:{self.peer[1]}"
        return (
            f"<UdpEndpoint {state} {self.address[0]}:{self.port}{peer} "
            f"sent={self.datagrams_sent} received={self.datagrams_received}>"
        )

    def _open_socket(self, action: str) -> socket.socket:
        if self._sock is None:
            raise EndpointClosed(f"cannot {action}: UdpEndpoint on port {self.port} is closed")
        return self._sock

    def _check_size(self, payload: bytes | bytearray | memoryview) -> int:
        size = _payload_size(payload)
        if size > self.max_datagram_bytes:
            raise PayloadTooLarge(size, self.max_datagram_bytes, "UDP datagram")
        return size

    def _set_timeout(self, sock: socket.socket, timeout_s: float) -> None:
        # settimeout costs a system call, so skip it when the value is unchanged.
        if timeout_s != self._socket_timeout_s:
            sock.settimeout(timeout_s)
            self._socket_timeout_s = timeout_s

    def _count_sent(self, size: int) -> None:
        self.datagrams_sent += 1
        self.bytes_sent += size


# -- names defined in udp_sequence --------------------------------------------
# The sequencing classes use UdpEndpoint from here, so they are loaded on first
# use rather than at the top of this file, which would make the imports circular.

_SEQUENCE_NAMES = frozenset(
    {
        "SEQUENCE_HEADER",
        "SEQUENCE_HEADER_BYTES",
        "DEFAULT_MAX_PAYLOAD_BYTES",
        "SequencedDatagram",
        "SequenceTracker",
        "SequencedSender",
        "SequencedReceiver",
        "encode_datagram",
        "decode_datagram",
    }
)


def __getattr__(name: str) -> Any:
    if name not in _SEQUENCE_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(".udp_sequence", __package__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SEQUENCE_NAMES)
