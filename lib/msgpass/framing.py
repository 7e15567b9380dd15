"""Length-prefixed frames: how to carry messages over a byte stream.

TCP delivers a stream of bytes, not a sequence of messages. One ``send`` of
100 bytes may arrive as two ``recv`` results of 60 and 40 bytes, and two sends
may arrive as one ``recv``. To get messages back, the sender marks where each
one ends. This module uses the simplest robust scheme, a length prefix::

    +----------------------+---------------------------+
    | length: 4 bytes,     | payload: ``length`` bytes |
    | unsigned, big-endian |                           |
    +----------------------+---------------------------+

The receiver feeds whatever bytes arrive into a ``FrameDecoder``, which keeps a
partial frame between calls and hands back only whole payloads.

Two rules protect the receiver:

- A declared length above ``max_frame_bytes`` is rejected as soon as the 4
  header bytes are in, before any memory is reserved for the body. Without
  this check a peer could send ``ff ff ff ff`` and make the receiver wait for,
  and buffer, 4 GiB.
- A stream that ends inside a frame is an error (``IncompleteFrame``), never a
  short message delivered as if it were whole.

Left out on purpose: checksums (TCP already has one), message types and
versioning (a real protocol adds a type byte or a schema), and compression.
"""

from __future__ import annotations

import struct

from .errors import FrameTooLarge, IncompleteFrame

__all__ = [
    "HEADER",
    "HEADER_BYTES",
    "DEFAULT_MAX_FRAME_BYTES",
    "MAX_ENCODABLE_BYTES",
    "check_max_frame_bytes",
    "encode_frame",
    "frame_header",
    "parse_header",
    "FrameDecoder",
]

HEADER = struct.Struct("!I")
HEADER_BYTES = HEADER.size  # 4
MAX_ENCODABLE_BYTES = 2**32 - 1  # the largest length a 4-byte header can declare
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024  # 16 MiB; raise it per endpoint when needed


def check_max_frame_bytes(max_frame_bytes: int) -> int:
    """Return ``max_frame_bytes`` if a 4-byte header can declare it, else raise.

    Raises ``TypeError`` for anything but an ``int`` (``bool`` and ``float``
    included, because a byte count is whole) and ``ValueError`` outside
    0 to ``MAX_ENCODABLE_BYTES``.
    """
    if isinstance(max_frame_bytes, bool) or not isinstance(max_frame_bytes, int):
        raise TypeError(
            f"max_frame_bytes must be an int number of bytes, got "
            f"{type(max_frame_bytes).__name__} {max_frame_bytes!r}"
        )
    if not 0 <= max_frame_bytes <= MAX_ENCODABLE_BYTES:
        raise ValueError(
            f"max_frame_bytes must be between 0 and {MAX_ENCODABLE_BYTES}, got {max_frame_bytes}"
        )
    return max_frame_bytes


def frame_header(payload_bytes: int, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Return the 4-byte header for a payload of ``payload_bytes`` bytes.

    Raises ``FrameTooLarge`` (with ``side="sender"``) if the payload exceeds
    ``max_frame_bytes``: a sender should fail loudly rather than emit a frame
    its peer will reject.
    """
    if payload_bytes > check_max_frame_bytes(max_frame_bytes):
        raise FrameTooLarge(payload_bytes, max_frame_bytes, side="sender")
    return HEADER.pack(payload_bytes)


def encode_frame(payload: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Return ``payload`` with its length prefix, ready for one ``sendall``.

    >>> encode_frame(b"hi")
    b'\\x00\\x00\\x00\\x02hi'
    """
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"a frame payload must be bytes, got {type(payload).__name__}; "
            f"encode text first, for example with str.encode('utf-8')"
        )
    # Copy first: len() of a memoryview counts items, not bytes, for wider formats.
    data = bytes(payload)
    return frame_header(len(data), max_frame_bytes) + data


def parse_header(header: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> int:
    """Return the payload length declared by a 4-byte header.

    Raises ``FrameTooLarge`` when the declared length exceeds
    ``max_frame_bytes``; the caller has allocated nothing for the body yet.
    """
    if len(header) != HEADER_BYTES:
        raise ValueError(f"a frame header is {HEADER_BYTES} bytes, got {len(header)}")
    length: int = HEADER.unpack(header)[0]
    if length > check_max_frame_bytes(max_frame_bytes):
        raise FrameTooLarge(length, max_frame_bytes)
    return length


class FrameDecoder:
    """Turn bytes arriving in arbitrary pieces into whole frame payloads.

    Feed it every chunk ``recv`` returns; it returns the payloads completed
    by that chunk, in order, and keeps the rest for the next call::

        decoder = FrameDecoder()
        decoder.feed(b"\\x00\\x00\\x00\\x05hel")   # -> []
        decoder.feed(b"lo\\x00\\x00")             # -> [b'hello']
        decoder.close()                        # raises IncompleteFrame

    Guarantees: payloads come out exactly as they went into ``encode_frame``,
    in order, whatever the split points; a header declaring more than
    ``max_frame_bytes`` raises ``FrameTooLarge`` before the body is buffered;
    once an error is raised the decoder stays failed, because the position of
    the next frame in the stream is no longer known.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = check_max_frame_bytes(max_frame_bytes)
        self._buffer = bytearray()
        # Body length of the frame in progress, once its header is read.
        self._needed: int | None = None
        self._failed: Exception | None = None
        self.frames_decoded = 0
        self.bytes_fed = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data`` to the stream and return every payload it completes.

        Raises ``TypeError`` for anything but bytes, bytearray or memoryview,
        before any counter or buffer changes.
        """
        if isinstance(data, memoryview):
            size = data.nbytes  # len() counts items, not bytes, for wider formats
        elif isinstance(data, (bytes, bytearray)):
            size = len(data)
        else:
            raise TypeError(
                f"feed() takes bytes, bytearray or memoryview, got {type(data).__name__}; "
                f"pass the bytes that recv() returned, and encode text first, for example "
                f"with str.encode('utf-8')"
            )
        if self._failed is not None:
            raise ValueError(
                "this FrameDecoder failed earlier and cannot resynchronise; "
                "close the connection and start a new decoder"
            ) from self._failed
        self.bytes_fed += size
        self._buffer += data
        frames: list[bytes] = []
        position = 0
        buffered = len(self._buffer)
        while True:
            if self._needed is None:
                if buffered - position < HEADER_BYTES:
                    break
                header = bytes(self._buffer[position : position + HEADER_BYTES])
                try:
                    self._needed = parse_header(header, self.max_frame_bytes)
                except FrameTooLarge as error:
                    self._failed = error
                    self._buffer.clear()
                    raise
                position += HEADER_BYTES
            if buffered - position < self._needed:
                break
            end = position + self._needed
            frames.append(bytes(self._buffer[position:end]))
            position = end
            self._needed = None
        # One memmove per call, not per frame, keeps many small frames per chunk cheap.
        del self._buffer[:position]
        self.frames_decoded += len(frames)
        return frames

    @property
    def buffered_bytes(self) -> int:
        """Bytes received that do not yet form a whole frame."""
        return len(self._buffer)

    @property
    def in_frame(self) -> bool:
        """True while part of a frame (header or body) is waiting for more bytes."""
        return bool(self._buffer) or self._needed is not None

    def close(self) -> None:
        """Declare the end of the stream.

        Raises ``IncompleteFrame`` if the stream ended inside a frame, so a
        truncated message is reported instead of silently dropped.
        """
        if self._failed is not None:
            return
        if self._needed is not None:
            error = IncompleteFrame(HEADER_BYTES + len(self._buffer), HEADER_BYTES + self._needed)
        elif self._buffer:
            error = IncompleteFrame(len(self._buffer), None)
        else:
            return
        self._failed = error
        raise error

    def stats(self) -> dict[str, int]:
        """Counters for display in a notebook."""
        return {
            "bytes_fed": self.bytes_fed,
            "frames_decoded": self.frames_decoded,
            "buffered_bytes": self.buffered_bytes,
        }

    def __repr__(self) -> str:
        if self._failed is not None:
            state = "failed"
        elif self._needed is not None:
            state = f"in body, {len(self._buffer)}/{self._needed} bytes"
        elif self._buffer:
            state = f"in header, {len(self._buffer)}/{HEADER_BYTES} bytes"
        else:
            state = "between frames"
        return f"<FrameDecoder {state}, {self.frames_decoded} frames decoded>"
