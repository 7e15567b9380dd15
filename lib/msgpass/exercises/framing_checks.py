"""The checker of exercise ``frame-decoder`` in lab 3 (TCP framing).

The learner writes a class with the contract of ``msgpass.framing.FrameDecoder``:

- ``__init__(self, max_frame_bytes)``;
- ``feed(self, data: bytes) -> list[bytes]`` returns, in order, every payload
  that the new bytes complete, and keeps the rest for the next call;
- a header declaring more than ``max_frame_bytes`` raises ``FrameTooLarge`` (a
  ``ProtocolError``) as soon as its 4 bytes are in, before the body arrives;
- ``close(self) -> None`` raises ``IncompleteFrame`` if the stream ended inside
  a frame, and returns quietly otherwise.

A frame is a 4-byte unsigned big-endian length followed by that many payload
bytes, as written by ``msgpass.framing.encode_frame``.

``check_frame_decoder`` runs the sub-checks below against the class. Each
builds fresh decoders, so one failing case cannot hide behind another.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from ..errors import IncompleteFrame, ProtocolError
from ..framing import HEADER, encode_frame
from .checking import CheckFailed, CheckReport, expect_equal, short_repr
from .timed_calls import TimedCheck

__all__ = ["EXERCISE_ID", "check_frame_decoder"]

EXERCISE_ID = "frame-decoder"
CHECK_MAX_FRAME_BYTES = 1024 * 1024  # 1 MiB: the limit given to decoders in most checks
RANDOM_SPLIT_CASES = 300
# The large-frame check feeds one frame in 1 KiB pieces and times the feeds in
# windows of 256 KiB. A linear decoder spends about the same time on every
# window. A decoder that copies its whole buffer on every feed spends time in
# proportion to the bytes buffered, so its late windows are slower than its
# early ones by about the ratio of their positions (29.5 / 3.5, about 8).
# Comparing windows of one run, rather than timing the run against a fixed
# budget, keeps the check independent of the machine's speed.
LARGE_FRAME_BYTES = 8 * 1024 * 1024  # 8 MiB
LARGE_FRAME_PIECE_BYTES = 1024  # the size of one recv() result in the large-frame check
TIMING_WINDOW_BYTES = 256 * 1024
EARLY_WINDOWS = slice(1, 6)  # windows 1 to 5; window 0 also pays for warming up
LATE_WINDOWS = slice(-5, None)  # the last 5 windows
# Measured on a 2-core Linux VM (Python 3.11), late median / early median:
# 0.8-1.3 for linear decoders, including one that loops over every byte, also
# with three busy processes competing for the cores. For the decoder that
# rebuilds its buffer on every feed: 7.7 idle, 33 with the busy processes.
# The limit sits between the two.
MAX_SLOWDOWN_RATIO = 4.0
# A late window faster than this passes whatever the ratio, so that timer and
# scheduler noise on fast decoders cannot decide the check. A quadratic decoder
# cannot get under it: copying a 7 MiB buffer on each of 256 feeds moves about
# 1.9 GB, which in 5 ms takes about 380 GB/s, several times the memory
# bandwidth of a desktop machine today (an estimate).
LATE_WINDOW_FLOOR_S = 0.005


# ---------------------------------------------------------------------------
# Helpers that call the learner's code and check the shape of what it returns
# ---------------------------------------------------------------------------


def _new_decoder(decoder_class: Any, max_frame_bytes: int = CHECK_MAX_FRAME_BYTES) -> Any:
    return decoder_class(max_frame_bytes)


def _feed(decoder: Any, data: bytes) -> list[bytes]:
    """Call ``decoder.feed(data)`` and check that it returned a list of bytes."""
    result = decoder.feed(data)
    if not isinstance(result, list):
        raise CheckFailed(
            expected="feed() to return a list of payloads (an empty list when none is complete)",
            actual=f"{type(result).__name__} {short_repr(result)}",
            hint="end feed() with 'return frames', where frames is a list",
        )
    for payload in result:
        if not isinstance(payload, bytes):
            raise CheckFailed(
                expected="every payload to be bytes",
                actual=f"a {type(payload).__name__}: {short_repr(payload)}",
                hint="convert each payload with bytes(...), which also copies it out "
                "of your buffer",
            )
    return result


def _feed_pieces(decoder: Any, pieces: list[bytes]) -> list[bytes]:
    payloads: list[bytes] = []
    for piece in pieces:
        payloads.extend(_feed(decoder, piece))
    return payloads


def _stream(payloads: list[bytes]) -> bytes:
    return b"".join(encode_frame(payload) for payload in payloads)


def _random_payloads(rng: random.Random, max_count: int, max_size: int) -> list[bytes]:
    # Sizes start at 0 on purpose: empty payloads are legal frames.
    return [rng.randbytes(rng.randint(0, max_size)) for _ in range(rng.randint(0, max_count))]


def _expect_clean_close(decoder: Any, hint: str) -> None:
    try:
        decoder.close()
    except IncompleteFrame as error:
        raise CheckFailed(
            expected="close() to return quietly after whole frames only",
            actual=f"IncompleteFrame: {error}",
            hint=hint,
        ) from None


# ---------------------------------------------------------------------------
# The sub-checks, in the order they run
# ---------------------------------------------------------------------------


def check_single_frame(decoder_class: Any, rng: random.Random) -> None:
    decoder = _new_decoder(decoder_class)
    expect_equal(_feed(decoder, encode_frame(b"hello")), [b"hello"], "feed(<one whole frame>)")
    _expect_clean_close(decoder, "close() must raise only when bytes of a frame are left over")


def check_empty_payload(decoder_class: Any, rng: random.Random) -> None:
    decoder = _new_decoder(decoder_class)
    stream = _stream([b"", b"x", b""])
    expect_equal(_feed(decoder, stream), [b"", b"x", b""], "feed(<frames of 0, 1 and 0 bytes>)")
    _expect_clean_close(decoder, "a header declaring 0 bytes is a whole frame on its own")


def check_byte_by_byte(decoder_class: Any, rng: random.Random) -> None:
    payloads = [b"first", b"", b"third frame"]
    decoder = _new_decoder(decoder_class)
    # Each payload must come out from the very feed() that completes it: not
    # earlier (a partial payload) and not later (a stalled decoder).
    offset = 0
    for payload in payloads:
        frame = encode_frame(payload)
        for index in range(len(frame)):
            got = _feed(decoder, frame[index : index + 1])
            last_byte = index == len(frame) - 1
            expected = [payload] if last_byte else []
            where = f"feed() of stream byte {offset + index}"
            expect_equal(got, expected, where)
        offset += len(frame)
    _expect_clean_close(decoder, "after the last byte of a frame, nothing is left over")


def check_many_frames_in_one_chunk(decoder_class: Any, rng: random.Random) -> None:
    payloads = [rng.randbytes(rng.randint(0, 50)) for _ in range(100)]
    decoder = _new_decoder(decoder_class)
    got = _feed(decoder, _stream(payloads))
    expect_equal(len(got), len(payloads), "the number of payloads returned")
    expect_equal(got, payloads, "the payloads")
    _expect_clean_close(decoder, "after the last whole frame, nothing is left over")


def check_random_splits(decoder_class: Any, rng: random.Random) -> None:
    for case in range(RANDOM_SPLIT_CASES):
        payloads = _random_payloads(rng, max_count=6, max_size=40)
        stream = _stream(payloads)
        cut_count = rng.randint(0, min(8, len(stream)))
        cuts = sorted(rng.sample(range(1, len(stream)), cut_count)) if len(stream) > 1 else []
        bounds = [0, *cuts, len(stream)]
        pieces = [stream[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]

        decoder = _new_decoder(decoder_class)
        got = _feed_pieces(decoder, pieces)
        if got != payloads:
            raise CheckFailed(
                expected=f"payloads {short_repr(payloads)}",
                actual=f"{short_repr(got)} (case {case}, stream cut at {cuts})",
            )
        _expect_clean_close(decoder, "after the last whole frame, nothing is left over")


def _expect_protocol_error(decoder: Any, data: bytes, what: str) -> None:
    try:
        got = _feed(decoder, data)
    except ProtocolError:
        return
    except CheckFailed:
        raise
    except Exception as error:  # a wrong exception type is a finding, not a crash
        raise CheckFailed(
            expected=f"FrameTooLarge (a ProtocolError) from feed({what})",
            actual=f"{type(error).__name__}: {error}",
        ) from None
    raise CheckFailed(
        expected=f"FrameTooLarge (a ProtocolError) from feed({what})",
        actual=f"feed() returned {short_repr(got)} and waited for more bytes",
    )


def check_oversized_header(decoder_class: Any, rng: random.Random) -> None:
    limit = 1024
    # A frame of exactly max_frame_bytes is allowed.
    decoder = _new_decoder(decoder_class, limit)
    payload = rng.randbytes(limit)
    expect_equal(
        _feed(decoder, encode_frame(payload)),
        [payload],
        f"feed(<frame of exactly max_frame_bytes={limit} bytes>)",
        hint="a payload of exactly max_frame_bytes is allowed: reject only larger ones",
    )

    decoder = _new_decoder(decoder_class, limit)
    _expect_protocol_error(decoder, HEADER.pack(limit + 1), f"<header alone declaring {limit + 1}>")

    decoder = _new_decoder(decoder_class, limit)
    _expect_protocol_error(
        decoder, encode_frame(b"ok") + b"\xff\xff\xff\xff", "<a frame, then a header of 4 GiB>"
    )


def check_truncated_stream(decoder_class: Any, rng: random.Random) -> None:
    whole = encode_frame(b"whole")
    cases = {
        "mid-header": encode_frame(b"abc")[:2],
        "mid-body": encode_frame(b"abcdef")[:7],
        "header only": encode_frame(b"abcdef")[:4],
        "a whole frame, then part of a header": whole + b"\x00\x00",
    }
    for name, stream in cases.items():
        decoder = _new_decoder(decoder_class)
        got = _feed(decoder, stream)
        expected = [b"whole"] if stream.startswith(whole) else []
        expect_equal(
            got,
            expected,
            f"feed(<{name}>)",
            hint="never return the payload of a frame whose bytes have not all arrived",
        )
        try:
            decoder.close()
        except IncompleteFrame:
            continue
        raise CheckFailed(
            expected=f"close() to raise IncompleteFrame when the stream ended {name}",
            actual="close() returned quietly",
        )


def _feed_timed(decoder: Any, frame: bytes) -> tuple[list[bytes], list[float]]:
    """Feed ``frame`` in small pieces; return the payloads and each window's time in seconds."""
    got: list[bytes] = []
    window_times: list[float] = []
    pieces_per_window = TIMING_WINDOW_BYTES // LARGE_FRAME_PIECE_BYTES
    window_started = time.perf_counter()
    for index, start in enumerate(range(0, len(frame), LARGE_FRAME_PIECE_BYTES), start=1):
        got.extend(_feed(decoder, frame[start : start + LARGE_FRAME_PIECE_BYTES]))
        if index % pieces_per_window == 0:
            now = time.perf_counter()
            window_times.append(now - window_started)
            window_started = now
    return got, window_times


def check_large_frame(decoder_class: Any, rng: random.Random) -> None:
    payload = rng.randbytes(LARGE_FRAME_BYTES)
    frame = encode_frame(payload, max_frame_bytes=LARGE_FRAME_BYTES)
    decoder = _new_decoder(decoder_class, LARGE_FRAME_BYTES)
    got, window_times = _feed_timed(decoder, frame)

    expect_equal(len(got), 1, "the number of payloads returned")
    if got[0] != payload:
        raise CheckFailed(
            expected="the large payload returned unchanged",
            actual=f"a payload of {len(got[0])} bytes that differs",
        )

    # Medians, so that one window slowed down by the scheduler or by the
    # allocator growing the buffer does not decide the check.
    early_s = statistics.median(window_times[EARLY_WINDOWS])
    late_s = statistics.median(window_times[LATE_WINDOWS])
    if late_s <= LATE_WINDOW_FLOOR_S:
        return
    ratio = late_s / max(early_s, 1e-9)
    if ratio > MAX_SLOWDOWN_RATIO:
        window_kib = TIMING_WINDOW_BYTES // 1024
        raise CheckFailed(
            expected=(
                f"feeding {window_kib} KiB of a {LARGE_FRAME_BYTES // 2**20} MiB frame, in "
                f"{LARGE_FRAME_PIECE_BYTES}-byte pieces, to take about as long near its end "
                f"as near its start (at most {MAX_SLOWDOWN_RATIO:g} times as long)"
            ),
            actual=(
                f"{ratio:.1f} times as long near the end ({late_s * 1000:.1f} ms against "
                f"{early_s * 1000:.1f} ms, medians of 5 windows). The time of each feed() "
                f"grows with the bytes already buffered, so decoding a frame takes quadratic time"
            ),
        )


def check_frame_decoder(decoder_class: Any, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check a learner's frame decoder class against the ``FrameDecoder`` contract.

    Prints a one-line summary and returns a ``CheckReport`` when every check
    passes. Raises ``ExerciseFailed`` (an ``AssertionError``) naming the
    first failed check, what was expected, what happened, and a hint.
    """
    check = TimedCheck(EXERCISE_ID, seed=seed)
    check.add(
        "single frame",
        check_single_frame,
        hint="the header is 4 bytes, unsigned big-endian (int.from_bytes(header, 'big')), "
        "and feed() returns every payload the new bytes complete",
    )
    check.add(
        "empty payload",
        check_empty_payload,
        hint="a header declaring 0 bytes is a whole frame: return b'' for it",
    )
    check.add(
        "byte by byte",
        check_byte_by_byte,
        hint="keep the bytes of an unfinished header or body in a buffer between "
        "feed() calls; one feed() is not one frame",
    )
    check.add(
        "many frames in one chunk",
        check_many_frames_in_one_chunk,
        hint="one chunk may hold many frames: loop until fewer bytes than a whole frame "
        "are left, and keep those leftover bytes",
    )
    check.add(
        "random splits",
        check_random_splits,
        hint="after a frame, keep the bytes that follow it: they start the next frame",
    )
    check.add(
        "oversized header",
        check_oversized_header,
        hint="compare the declared length with max_frame_bytes as soon as the 4 header "
        "bytes are in, and raise FrameTooLarge(length, max_frame_bytes) before "
        "waiting for the body",
    )
    check.add(
        "truncated stream",
        check_truncated_stream,
        hint="in close(), raise IncompleteFrame(received_bytes, expected_bytes) if any "
        "bytes of a frame are still buffered",
    )
    check.add(
        "large frame in small pieces",
        check_large_frame,
        hint="append each piece to a bytearray instead of rebuilding the whole buffer on "
        "every feed(), and do not copy or scan the whole buffer until a frame is complete",
    )
    return check.run(decoder_class, quiet=quiet)
