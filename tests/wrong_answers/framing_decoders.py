"""Plausible wrong answers to exercise ``frame-decoder``, kept to prove the checker fails them.

Each class makes one mistake that learners make, named in its docstring, and is
otherwise correct. ``WRONG_DECODERS`` lists each class with the name of the
check that rejects it first.
"""

from __future__ import annotations

from msgpass.errors import FrameTooLarge, IncompleteFrame


class OneRecvIsOneFrame:
    """Assumes each feed() contains exactly one whole frame."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes

    def feed(self, data: bytes) -> list[bytes]:
        if len(data) < 4:
            return []
        length = int.from_bytes(data[:4], "big")
        if length > self.max_frame_bytes:
            raise FrameTooLarge(length, self.max_frame_bytes)
        return [bytes(data[4 : 4 + length])]

    def close(self) -> None:
        pass


class DropsLeftoverBytes:
    """Buffers partial frames, but throws away the bytes after a completed frame."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        if len(self.buffer) < 4:
            return []
        length = int.from_bytes(self.buffer[:4], "big")
        if length > self.max_frame_bytes:
            raise FrameTooLarge(length, self.max_frame_bytes)
        if len(self.buffer) < 4 + length:
            return []
        payload = bytes(self.buffer[4 : 4 + length])
        self.buffer.clear()  # the mistake: the next frame may already have started
        return [payload]

    def close(self) -> None:
        if self.buffer:
            raise IncompleteFrame(len(self.buffer), None)


class ChecksSizeAfterBody:
    """Checks max_frame_bytes only once the whole body has been buffered."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        frames = []
        while len(self.buffer) >= 4:
            length = int.from_bytes(self.buffer[:4], "big")
            if len(self.buffer) < 4 + length:
                break  # the mistake: waits (and buffers) up to 4 GiB before checking
            if length > self.max_frame_bytes:
                raise FrameTooLarge(length, self.max_frame_bytes)
            frames.append(bytes(self.buffer[4 : 4 + length]))
            del self.buffer[: 4 + length]
        return frames

    def close(self) -> None:
        if self.buffer:
            raise IncompleteFrame(len(self.buffer), None)


class IgnoresTruncation:
    """Treats the end of the stream as a clean end, even inside a frame."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        frames = []
        while len(self.buffer) >= 4:
            length = int.from_bytes(self.buffer[:4], "big")
            if length > self.max_frame_bytes:
                raise FrameTooLarge(length, self.max_frame_bytes)
            if len(self.buffer) < 4 + length:
                break
            frames.append(bytes(self.buffer[4 : 4 + length]))
            del self.buffer[: 4 + length]
        return frames

    def close(self) -> None:
        self.buffer.clear()  # the mistake: the partial frame vanishes without an error


class LittleEndianHeader:
    """Reads the length prefix as little-endian instead of network byte order."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        frames = []
        while len(self.buffer) >= 4:
            length = int.from_bytes(self.buffer[:4], "little")  # the mistake
            if length > self.max_frame_bytes:
                raise FrameTooLarge(length, self.max_frame_bytes)
            if len(self.buffer) < 4 + length:
                break
            frames.append(bytes(self.buffer[4 : 4 + length]))
            del self.buffer[: 4 + length]
        return frames

    def close(self) -> None:
        if self.buffer:
            raise IncompleteFrame(len(self.buffer), None)


class RebuildsBufferEveryFeed:
    """Correct output, but copies the whole buffer on every feed(): quadratic time."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer = self.buffer + data  # the mistake: a new copy of everything so far
        frames = []
        while len(self.buffer) >= 4:
            length = int.from_bytes(self.buffer[:4], "big")
            if length > self.max_frame_bytes:
                raise FrameTooLarge(length, self.max_frame_bytes)
            if len(self.buffer) < 4 + length:
                break
            frames.append(self.buffer[4 : 4 + length])
            self.buffer = self.buffer[4 + length :]
        return frames

    def close(self) -> None:
        if self.buffer:
            raise IncompleteFrame(len(self.buffer), None)


class DoesNothing:
    """Returns no frames and raises nothing: the answer the liveness checks exist for."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes

    def feed(self, data: bytes) -> list[bytes]:
        return []

    def close(self) -> None:
        pass


# Each wrong decoder, with the check that rejects it first.
WRONG_DECODERS: list[tuple[type, str]] = [
    (OneRecvIsOneFrame, "empty payload"),
    (DropsLeftoverBytes, "empty payload"),
    (ChecksSizeAfterBody, "oversized header"),
    (IgnoresTruncation, "truncated stream"),
    (LittleEndianHeader, "single frame"),
    (RebuildsBufferEveryFeed, "large frame in small pieces"),
    (DoesNothing, "single frame"),
]
