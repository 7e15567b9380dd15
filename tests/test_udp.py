"""Tests of msgpass.udp over real loopback sockets."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msgpass.errors import (
    ConnectionClosed,
    DatagramTruncated,
    EndpointClosed,
    MessagingTimeout,
    PayloadTooLarge,
    ProtocolError,
)
from msgpass.udp import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    IPV4_MAX_PAYLOAD_BYTES,
    IPV6_MAX_PAYLOAD_BYTES,
    SEQUENCE_HEADER_BYTES,
    SequencedReceiver,
    SequencedSender,
    SequenceTracker,
    UdpEndpoint,
    decode_datagram,
    encode_datagram,
)

WAIT_S = 2.0  # upper bound for a datagram that is already on its way over loopback

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="checks Linux kernel behaviour")


def _ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


# --- UdpEndpoint -----------------------------------------------------------------------


def test_round_trip_reports_sender():
    with UdpEndpoint() as a, UdpEndpoint() as b:
        assert a.send_to(b"hello", b.address) == 5
        payload, sender = b.recv(timeout_s=WAIT_S)
    assert payload == b"hello"
    assert sender == a.address


def test_binds_loopback_port_zero_by_default():
    with UdpEndpoint() as endpoint:
        assert endpoint.address[0] == "127.0.0.1"
        assert endpoint.port > 0


def test_datagrams_keep_boundaries():
    with UdpEndpoint() as a, UdpEndpoint() as b:
        for payload in (b"one", b"", b"three"):
            a.send_to(payload, b.address)
        received = [b.recv(timeout_s=WAIT_S)[0] for _ in range(3)]
    assert received == [b"one", b"", b"three"]


def test_max_payload_accepted():
    with UdpEndpoint() as a, UdpEndpoint() as b:
        assert a.max_datagram_bytes == IPV4_MAX_PAYLOAD_BYTES == 65_507
        a.send_to(bytes(IPV4_MAX_PAYLOAD_BYTES), b.address)
        payload, _ = b.recv(timeout_s=WAIT_S)
    assert len(payload) == IPV4_MAX_PAYLOAD_BYTES


def test_one_byte_over_rejected_nothing_sent():
    with UdpEndpoint() as a, UdpEndpoint() as b:
        with pytest.raises(PayloadTooLarge) as caught:
            a.send_to(bytes(IPV4_MAX_PAYLOAD_BYTES + 1), b.address)
        assert caught.value.size_bytes == IPV4_MAX_PAYLOAD_BYTES + 1
        assert caught.value.max_bytes == IPV4_MAX_PAYLOAD_BYTES
        assert a.datagrams_sent == 0
        # A marker sent afterwards must be the first thing to arrive.
        a.send_to(b"marker", b.address)
        payload, _ = b.recv(timeout_s=WAIT_S)
    assert payload == b"marker"


def test_custom_limit_rejects_above():
    with UdpEndpoint(max_datagram_bytes=1472) as a, UdpEndpoint() as b:
        a.send_to(bytes(1472), b.address)
        with pytest.raises(PayloadTooLarge):
            a.send_to(bytes(1473), b.address)
        assert a.stats()["datagrams_sent"] == 1


def test_limit_outside_family_range_rejected():
    with pytest.raises(ValueError, match="max_datagram_bytes"):
        UdpEndpoint(max_datagram_bytes=IPV4_MAX_PAYLOAD_BYTES + 1)
    with pytest.raises(ValueError, match="max_datagram_bytes"):
        UdpEndpoint(max_datagram_bytes=0)


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="no IPv6 loopback")
def test_ipv6_max_payload_accepted():
    with UdpEndpoint("::1") as a, UdpEndpoint("::1") as b:
        assert a.max_datagram_bytes == IPV6_MAX_PAYLOAD_BYTES == 65_527
        a.send_to(bytes(IPV6_MAX_PAYLOAD_BYTES), b.address)
        payload, sender = b.recv(timeout_s=WAIT_S)
    assert len(payload) == IPV6_MAX_PAYLOAD_BYTES
    assert sender == a.address


def test_str_payload_raises_type_error():
    with UdpEndpoint() as a, UdpEndpoint() as b:
        with pytest.raises(TypeError, match="encode"):
            a.send_to("text", b.address)  # type: ignore[arg-type]
        assert a.datagrams_sent == 0


def test_recv_timeout_raises():
    with UdpEndpoint() as endpoint, pytest.raises(MessagingTimeout, match="within 0.05 s"):
        endpoint.recv(timeout_s=0.05)


def test_recv_timeout_is_builtin_timeout_error():
    with UdpEndpoint(timeout_s=0.05) as endpoint, pytest.raises(TimeoutError):
        endpoint.recv()


@pytest.mark.parametrize("timeout_s", [0, -1.0, float("inf"), float("nan")])
def test_invalid_timeout_rejected(timeout_s):
    with UdpEndpoint() as endpoint, pytest.raises(ValueError, match="timeout_s"):
        endpoint.recv(timeout_s=timeout_s)


def test_truncated_datagram_reported():
    with UdpEndpoint() as a, UdpEndpoint(max_datagram_bytes=100) as b:
        a.send_to(bytes(101), b.address)
        a.send_to(bytes(500), b.address)
        a.send_to(bytes(100), b.address)
        with pytest.raises(DatagramTruncated) as first:
            b.recv(timeout_s=WAIT_S)
        with pytest.raises(DatagramTruncated) as second:
            b.recv(timeout_s=WAIT_S)
        payload, _ = b.recv(timeout_s=WAIT_S)
    assert first.value.min_size_bytes == 101
    assert second.value.min_size_bytes >= 101
    assert second.value.sender == a.address
    assert isinstance(first.value, ProtocolError)
    assert len(payload) == 100
    assert b.truncated_received == 2
    assert b.datagrams_received == 1


@linux_only
def test_recv_buffer_reads_back_doubled():
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    requested = min(65_536, rmem_max)
    with UdpEndpoint(recv_buffer_bytes=requested) as endpoint:
        assert endpoint.recv_buffer_bytes == 2 * requested


@linux_only
def test_recv_buffer_capped_at_rmem_max():
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    with UdpEndpoint(recv_buffer_bytes=rmem_max + 1_000_000) as endpoint:
        assert endpoint.recv_buffer_bytes == 2 * rmem_max


def test_recv_buffer_must_be_positive():
    with pytest.raises(ValueError, match="recv_buffer_bytes"):
        UdpEndpoint(recv_buffer_bytes=0)


def test_closed_endpoint_raises():
    endpoint = UdpEndpoint()
    endpoint.close()
    endpoint.close()
    assert endpoint.closed
    with pytest.raises(EndpointClosed):
        endpoint.send_to(b"x", ("127.0.0.1", 9))
    with pytest.raises(EndpointClosed):
        endpoint.recv(timeout_s=0.1)
    with pytest.raises(EndpointClosed):
        _ = endpoint.recv_buffer_bytes
    assert "closed" in repr(endpoint)


def test_context_manager_closes():
    with UdpEndpoint() as endpoint:
        pass
    assert endpoint.closed


@linux_only
def test_connected_send_to_unbound_port_refused():
    with UdpEndpoint() as placeholder:
        free_address = placeholder.address
    with UdpEndpoint() as endpoint:
        endpoint.connect(free_address)
        endpoint.send(b"anyone there?")
        with pytest.raises(ConnectionClosed, match="refused") as caught:
            endpoint.recv(timeout_s=WAIT_S)
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_connected_endpoint_round_trip():
    with UdpEndpoint() as a, UdpEndpoint() as b:
        a.connect(b.address)
        b.connect(a.address)
        a.send(b"ping")
        assert b.recv(timeout_s=WAIT_S) == (b"ping", a.address)
        assert f"peer=127.0.0.1:{b.port}" in repr(a)


def test_send_without_peer_rejected():
    with UdpEndpoint() as endpoint, pytest.raises(ValueError, match="connect"):
        endpoint.send(b"x")


def test_stats_and_repr_count_traffic():
    with UdpEndpoint() as a, UdpEndpoint() as b:
        a.send_to(b"abc", b.address)
        b.recv(timeout_s=WAIT_S)
        assert a.stats()["bytes_sent"] == 3
        assert b.stats()["bytes_received"] == 3
        assert b.stats()["port"] == b.port
        assert "received=1" in repr(b)


# --- the sequence header ---------------------------------------------------------------


def test_header_layout_is_documented_one():
    data = encode_datagram(sequence=258, payload=b"hi", sender_id=7)
    assert data == b"\x00\x00\x00\x07" + b"\x00" * 6 + b"\x01\x02" + b"hi"
    assert SEQUENCE_HEADER_BYTES == 12


def test_encode_decode_round_trip():
    datagram = decode_datagram(encode_datagram(2**64 - 1, b"payload", sender_id=2**32 - 1))
    assert datagram.sequence == 2**64 - 1
    assert datagram.sender_id == 2**32 - 1
    assert datagram.payload == b"payload"


def test_decode_shorter_than_header_raises():
    with pytest.raises(ProtocolError, match="shorter than"):
        decode_datagram(bytes(SEQUENCE_HEADER_BYTES - 1))


def test_decode_header_only_gives_empty_payload():
    assert decode_datagram(encode_datagram(0, b"")).payload == b""


@pytest.mark.parametrize("sequence,sender_id", [(-1, 0), (2**64, 0), (0, -1), (0, 2**32)])
def test_encode_out_of_range_rejected(sequence, sender_id):
    with pytest.raises(ValueError):
        encode_datagram(sequence, b"", sender_id=sender_id)


def test_encode_str_payload_raises_type_error():
    with pytest.raises(TypeError):
        encode_datagram(0, "text")  # type: ignore[arg-type]


# --- SequenceTracker -------------------------------------------------------------------


def test_tracker_late_arrival_reduces_loss():
    tracker = SequenceTracker()
    for sequence in (0, 1, 3):
        tracker.observe(sequence)
    assert tracker.lost == 1
    tracker.observe(2)
    assert tracker.lost == 0
    assert tracker.reordered == 1


def test_tracker_duplicate_not_received_twice():
    tracker = SequenceTracker()
    for sequence in (0, 0, 1, 0):
        tracker.observe(sequence)
    assert tracker.received == 2
    assert tracker.duplicates == 2
    assert tracker.reordered == 0


def test_tracker_empty_stats():
    tracker = SequenceTracker()
    assert tracker.stats() == {
        "received": 0,
        "lost": 0,
        "duplicates": 0,
        "reordered": 0,
        "highest": -1,
    }
    assert tracker.lost_if_sent(5) == 5


def test_tracker_lost_if_sent_counts_tail():
    tracker = SequenceTracker()
    for sequence in (0, 2):
        tracker.observe(sequence)
    assert tracker.lost == 1
    assert tracker.lost_if_sent(10) == 8
    with pytest.raises(ValueError, match="sent_count"):
        tracker.lost_if_sent(2)


def test_tracker_negative_sequence_rejected():
    with pytest.raises(ValueError):
        SequenceTracker().observe(-1)


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[int, list[int]]:
    """Draw a sender total N and an arrival order with gaps, duplicates and reordering."""
    sent = draw(st.integers(min_value=0, max_value=40))
    delivered = draw(st.lists(st.sampled_from(range(sent)), unique=True) if sent else st.just([]))
    duplicated = draw(st.lists(st.sampled_from(delivered)) if delivered else st.just([]))
    order = draw(st.permutations(delivered + duplicated))
    return sent, list(order)


@settings(max_examples=300, derandomize=True)
@given(arrivals())
def test_tracker_matches_model(case):
    sent, order = case
    tracker = SequenceTracker()
    for sequence in order:
        tracker.observe(sequence)

    distinct = set(order)
    expected_reordered = sum(
        1
        for index, sequence in enumerate(order)
        if sequence not in order[:index] and any(earlier > sequence for earlier in order[:index])
    )
    assert tracker.received == len(distinct)
    assert tracker.duplicates == len(order) - len(distinct)
    assert tracker.reordered == expected_reordered
    assert tracker.lost == (max(order) + 1 - len(distinct) if order else 0)
    assert tracker.lost_if_sent(sent) == sent - len(distinct)
    assert tracker.received + tracker.lost_if_sent(sent) == sent
    assert tracker.received + tracker.duplicates == len(order)


# --- SequencedSender and SequencedReceiver ---------------------------------------------


def test_sequenced_round_trip_numbers_from_zero():
    with UdpEndpoint() as a, UdpEndpoint() as b:
        sender = SequencedSender(a, b.address, sender_id=3)
        receiver = SequencedReceiver(b)
        assert [sender.send(payload) for payload in (b"x", b"y")] == [0, 1]
        first = receiver.recv(timeout_s=WAIT_S)
        second = receiver.recv(timeout_s=WAIT_S)
    assert (first.sequence, first.payload, first.sender_id) == (0, b"x", 3)
    assert (second.sequence, second.payload) == (1, b"y")
    assert receiver.stats()[3]["received"] == 2
    assert receiver.tracker(3).lost == 0


def test_sequenced_max_payload_default():
    with UdpEndpoint() as a, UdpEndpoint() as b:
        sender = SequencedSender(a, b.address)
        assert sender.max_payload_bytes == DEFAULT_MAX_PAYLOAD_BYTES == 65_495
        sender.send(bytes(DEFAULT_MAX_PAYLOAD_BYTES))
        with pytest.raises(PayloadTooLarge):
            sender.send(bytes(DEFAULT_MAX_PAYLOAD_BYTES + 1))
        assert sender.next_sequence == 1
        datagram = SequencedReceiver(b).recv(timeout_s=WAIT_S)
    assert len(datagram.payload) == DEFAULT_MAX_PAYLOAD_BYTES


def test_sequenced_max_payload_above_endpoint_rejected():
    with UdpEndpoint() as a, pytest.raises(ValueError, match="max_payload_bytes"):
        SequencedSender(a, a.address, max_payload_bytes=DEFAULT_MAX_PAYLOAD_BYTES + 1)


def test_receiver_tracks_senders_separately():
    with UdpEndpoint() as a, UdpEndpoint() as b, UdpEndpoint() as c:
        first = SequencedSender(a, c.address, sender_id=1)
        second = SequencedSender(b, c.address, sender_id=2)
        receiver = SequencedReceiver(c)
        first.send(b"a0")
        first.send(b"a1")
        second.send(b"b0")
        for _ in range(3):
            receiver.recv(timeout_s=WAIT_S)
    assert receiver.tracker(1).received == 2
    assert receiver.tracker(2).received == 1
    assert "2 senders" in repr(receiver)


def test_receiver_rejects_short_datagram():
    with UdpEndpoint() as a, UdpEndpoint() as b:
        a.send_to(b"short", b.address)
        with pytest.raises(ProtocolError):
            SequencedReceiver(b).recv(timeout_s=WAIT_S)
