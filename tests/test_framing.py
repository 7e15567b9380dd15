"""Unit and property tests of msgpass.framing: encoding, decoding and its failure modes."""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msgpass.errors import FrameTooLarge, IncompleteFrame, ProtocolError
from msgpass.framing import (
    DEFAULT_MAX_FRAME_BYTES,
    HEADER_BYTES,
    MAX_ENCODABLE_BYTES,
    FrameDecoder,
    encode_frame,
    frame_header,
    parse_header,
)

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None)

payload_lists = st.lists(st.binary(max_size=64), max_size=8)


def _split(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(stream)]
    return [stream[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


def _feed_all(decoder: FrameDecoder, pieces: list[bytes]) -> list[bytes]:
    payloads: list[bytes] = []
    for piece in pieces:
        payloads.extend(decoder.feed(piece))
    return payloads


# ---------------------------------------------------------------------------
# Encoding and headers
# ---------------------------------------------------------------------------


def test_encode_frame_layout() -> None:
    assert encode_frame(b"hi") == b"\x00\x00\x00\x02hi"


def test_encode_frame_empty_payload() -> None:
    assert encode_frame(b"") == b"\x00\x00\x00\x00"


def test_encode_frame_accepts_bytearray_and_memoryview() -> None:
    assert encode_frame(bytearray(b"ab")) == b"\x00\x00\x00\x02ab"
    assert encode_frame(memoryview(b"ab")) == b"\x00\x00\x00\x02ab"


def test_encode_frame_counts_bytes_of_wide_memoryview() -> None:
    view = memoryview(array("H", [1, 2]))  # 2 items of 2 bytes each
    frame = encode_frame(view)
    assert parse_header(frame[:HEADER_BYTES]) == 4
    assert len(frame) == HEADER_BYTES + 4


def test_encode_frame_rejects_str() -> None:
    with pytest.raises(TypeError, match="encode text first"):
        encode_frame("hello")  # type: ignore[arg-type]


def test_encode_frame_rejects_payload_above_max() -> None:
    with pytest.raises(FrameTooLarge) as caught:
        encode_frame(b"12345", max_frame_bytes=4)
    assert caught.value.declared_bytes == 5
    assert caught.value.max_frame_bytes == 4


def test_encode_frame_allows_payload_at_max() -> None:
    assert encode_frame(b"1234", max_frame_bytes=4) == b"\x00\x00\x00\x041234"


def test_frame_header_big_endian() -> None:
    assert frame_header(0x01020304, max_frame_bytes=MAX_ENCODABLE_BYTES) == b"\x01\x02\x03\x04"


@pytest.mark.parametrize("max_frame_bytes", [-1, MAX_ENCODABLE_BYTES + 1])
def test_max_frame_bytes_out_of_range(max_frame_bytes: int) -> None:
    with pytest.raises(ValueError, match="max_frame_bytes must be between"):
        frame_header(1, max_frame_bytes)
    with pytest.raises(ValueError, match="max_frame_bytes must be between"):
        FrameDecoder(max_frame_bytes)


@pytest.mark.parametrize("max_frame_bytes", ["10", 1.5, 1024.0, True, None])
def test_max_frame_bytes_must_be_int(max_frame_bytes: object) -> None:
    with pytest.raises(TypeError, match="max_frame_bytes must be an int number of bytes"):
        FrameDecoder(max_frame_bytes)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_frame_bytes must be an int"):
        frame_header(1, max_frame_bytes)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_frame_bytes must be an int"):
        encode_frame(b"x", max_frame_bytes)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_frame_bytes must be an int"):
        parse_header(b"\x00\x00\x00\x01", max_frame_bytes)  # type: ignore[arg-type]


def test_sender_frame_too_large_message() -> None:
    with pytest.raises(FrameTooLarge) as caught:
        encode_frame(b"12345", max_frame_bytes=4)
    message = str(caught.value)
    assert caught.value.side == "sender"
    assert message.startswith("payload of 5 bytes exceeds max_frame_bytes=4 of this endpoint")
    assert "split the message" in message
    assert "raise max_frame_bytes on both ends" in message
    assert "peer" not in message


def test_frame_header_too_large_is_sender_side() -> None:
    with pytest.raises(FrameTooLarge, match="payload of 9 bytes exceeds") as caught:
        frame_header(9, max_frame_bytes=8)
    assert caught.value.side == "sender"


def test_receiver_frame_too_large_message() -> None:
    with pytest.raises(FrameTooLarge) as caught:
        FrameDecoder(max_frame_bytes=4).feed(frame_header(5, 8))
    message = str(caught.value)
    assert caught.value.side == "receiver"
    assert message.startswith("frame header declares 5 bytes, above the maximum of 4 bytes")
    assert "the peer is broken or speaks another protocol" in message


def test_frame_too_large_rejects_unknown_side() -> None:
    with pytest.raises(ValueError, match="side must be 'sender' or 'receiver'"):
        FrameTooLarge(5, 4, side="middle")


def test_max_frame_bytes_bounds_accepted() -> None:
    assert FrameDecoder(0).max_frame_bytes == 0
    assert FrameDecoder(MAX_ENCODABLE_BYTES).max_frame_bytes == MAX_ENCODABLE_BYTES
    assert FrameDecoder().max_frame_bytes == DEFAULT_MAX_FRAME_BYTES


def test_parse_header_round_trip() -> None:
    assert parse_header(frame_header(1234)) == 1234


@pytest.mark.parametrize("header", [b"", b"\x00\x00\x01", b"\x00\x00\x00\x01\x00"])
def test_parse_header_wrong_length(header: bytes) -> None:
    with pytest.raises(ValueError, match="a frame header is 4 bytes"):
        parse_header(header)


def test_parse_header_above_max() -> None:
    with pytest.raises(FrameTooLarge):
        parse_header(b"\x00\x00\x04\x01", max_frame_bytes=1024)


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------


def test_decoder_single_frame() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(b"hello")) == [b"hello"]
    decoder.close()


def test_decoder_empty_payloads() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(b"") + encode_frame(b"") + encode_frame(b"x")) == [
        b"",
        b"",
        b"x",
    ]
    decoder.close()


def test_decoder_byte_by_byte_delivers_on_last_byte() -> None:
    frame = encode_frame(b"abc")
    decoder = FrameDecoder()
    results = [decoder.feed(frame[i : i + 1]) for i in range(len(frame))]
    assert results[:-1] == [[]] * (len(frame) - 1)
    assert results[-1] == [b"abc"]


def test_decoder_keeps_leftover_after_frame() -> None:
    second = encode_frame(b"second")
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(b"first") + second[:3]) == [b"first"]
    assert decoder.buffered_bytes == 3
    assert decoder.feed(second[3:]) == [b"second"]


def test_decoder_rejects_huge_header_before_body() -> None:
    decoder = FrameDecoder(max_frame_bytes=1024)
    with pytest.raises(FrameTooLarge) as caught:
        decoder.feed(b"\xff\xff\xff\xff")
    assert caught.value.declared_bytes == MAX_ENCODABLE_BYTES
    assert caught.value.max_frame_bytes == 1024
    assert decoder.buffered_bytes == 0


def test_decoder_rejects_header_one_above_max() -> None:
    decoder = FrameDecoder(max_frame_bytes=1024)
    with pytest.raises(FrameTooLarge):
        decoder.feed(frame_header(1025, MAX_ENCODABLE_BYTES))


def test_decoder_rejects_header_split_over_feeds() -> None:
    decoder = FrameDecoder(max_frame_bytes=1024)
    assert decoder.feed(b"\x7f\xff") == []
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"\xff\xff")
    assert decoder.buffered_bytes == 0


def test_frame_too_large_is_protocol_error() -> None:
    assert issubclass(FrameTooLarge, ProtocolError)


def test_close_mid_header_counts_bytes() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x00\x00")
    with pytest.raises(IncompleteFrame) as caught:
        decoder.close()
    assert caught.value.received_bytes == 2
    assert caught.value.expected_bytes is None


def test_close_mid_body_counts_bytes() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(b"abcdef")[:7])
    with pytest.raises(IncompleteFrame) as caught:
        decoder.close()
    assert caught.value.received_bytes == 7
    assert caught.value.expected_bytes == 10


def test_close_after_header_only() -> None:
    decoder = FrameDecoder()
    decoder.feed(frame_header(3))
    with pytest.raises(IncompleteFrame) as caught:
        decoder.close()
    assert caught.value.received_bytes == HEADER_BYTES
    assert caught.value.expected_bytes == HEADER_BYTES + 3


def test_close_between_frames_is_clean() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(b"x"))
    decoder.close()
    assert not decoder.in_frame


def test_failed_decoder_rejects_feed_after_frame_too_large() -> None:
    decoder = FrameDecoder(max_frame_bytes=4)
    with pytest.raises(FrameTooLarge):
        decoder.feed(frame_header(5, 8))
    with pytest.raises(ValueError, match="cannot resynchronise") as caught:
        decoder.feed(encode_frame(b"ok"))
    assert isinstance(caught.value.__cause__, FrameTooLarge)


def test_failed_decoder_rejects_feed_after_incomplete_close() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x00")
    with pytest.raises(IncompleteFrame):
        decoder.close()
    with pytest.raises(ValueError, match="cannot resynchronise"):
        decoder.feed(b"\x00")
    decoder.close()  # closing a failed decoder again does not raise twice


@pytest.mark.parametrize("data", ["hello", None, 5, [1, 2]])
def test_feed_rejects_non_bytes_before_counting(data: object) -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x00")
    with pytest.raises(TypeError, match=r"feed\(\) takes bytes, bytearray or memoryview"):
        decoder.feed(data)  # type: ignore[arg-type]
    assert decoder.stats() == {"bytes_fed": 1, "frames_decoded": 0, "buffered_bytes": 1}
    # The decoder did not fail: the stream goes on where it was.
    assert decoder.feed(b"\x00\x00\x01x") == [b"x"]


def test_feed_text_error_says_encode() -> None:
    with pytest.raises(TypeError, match="encode text first"):
        FrameDecoder().feed("hello")  # type: ignore[arg-type]


def test_feed_counts_bytes_of_wide_memoryview() -> None:
    decoder = FrameDecoder()
    view = memoryview(b"\x00\x00\x00\x02").cast("H")  # 2 items of 2 bytes: a header of 2
    assert decoder.feed(view) == []
    assert decoder.stats()["bytes_fed"] == 4
    assert decoder.feed(b"ok") == [b"ok"]


def test_decoder_stats() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(b"ab") + encode_frame(b"c") + b"\x00")
    assert decoder.stats() == {"bytes_fed": 12, "frames_decoded": 2, "buffered_bytes": 1}


def test_decoder_in_frame_property() -> None:
    decoder = FrameDecoder()
    assert not decoder.in_frame
    decoder.feed(frame_header(2))
    assert decoder.in_frame
    decoder.feed(b"ab")
    assert not decoder.in_frame


def test_decoder_repr_states() -> None:
    decoder = FrameDecoder(max_frame_bytes=16)
    assert repr(decoder) == "<FrameDecoder between frames, 0 frames decoded>"
    decoder.feed(b"\x00\x00")
    assert repr(decoder) == "<FrameDecoder in header, 2/4 bytes, 0 frames decoded>"
    decoder.feed(b"\x00\x05ab")
    assert repr(decoder) == "<FrameDecoder in body, 2/5 bytes, 0 frames decoded>"
    decoder.feed(b"cde")
    assert repr(decoder) == "<FrameDecoder between frames, 1 frames decoded>"
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"\xff\xff\xff\xff")
    assert repr(decoder) == "<FrameDecoder failed, 1 frames decoded>"


# ---------------------------------------------------------------------------
# Properties over random streams
# ---------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(payloads=payload_lists, data=st.data())
def test_random_splits_yield_payloads_in_order(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10), label="cuts")
    decoder = FrameDecoder()
    assert _feed_all(decoder, _split(stream, cuts)) == payloads
    decoder.close()
    assert decoder.frames_decoded == len(payloads)


@PROPERTY_SETTINGS
@given(payloads=payload_lists)
def test_concatenated_frames_in_one_chunk(payloads: list[bytes]) -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"".join(encode_frame(p) for p in payloads)) == payloads
    assert decoder.buffered_bytes == 0


@PROPERTY_SETTINGS
@given(payloads=st.lists(st.binary(max_size=64), min_size=1, max_size=8), data=st.data())
def test_truncated_stream_raises_on_close(payloads: list[bytes], data: st.DataObject) -> None:
    frames = [encode_frame(p) for p in payloads]
    boundaries = {0}
    for frame in frames:
        boundaries.add(max(boundaries) + len(frame))
    stream = b"".join(frames)
    cut = data.draw(
        st.integers(1, len(stream) - 1).filter(lambda n: n not in boundaries), label="cut"
    )
    complete = sum(1 for boundary in boundaries if 0 < boundary <= cut)
    decoder = FrameDecoder()
    assert decoder.feed(stream[:cut]) == payloads[:complete]
    with pytest.raises(IncompleteFrame):
        decoder.close()


@PROPERTY_SETTINGS
@given(
    before=payload_lists,
    declared=st.integers(1025, MAX_ENCODABLE_BYTES),
    data=st.data(),
)
def test_oversized_header_at_any_position(
    before: list[bytes], declared: int, data: st.DataObject
) -> None:
    prefix = b"".join(encode_frame(p) for p in before)
    stream = prefix + frame_header(declared, MAX_ENCODABLE_BYTES) + b"body"
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=6), label="cuts")
    header_end = len(prefix) + HEADER_BYTES
    decoder = FrameDecoder(max_frame_bytes=1024)
    delivered: list[bytes] = []
    fed_bytes = 0
    with pytest.raises(FrameTooLarge):
        for piece in _split(stream, cuts):
            delivered.extend(decoder.feed(piece))
            fed_bytes += len(piece)
            assert fed_bytes < header_end, "a feed completed the bad header without raising"
    assert delivered == before[: len(delivered)]
    assert decoder.buffered_bytes == 0
