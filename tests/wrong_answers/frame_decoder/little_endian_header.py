"""Reads the length prefix as little-endian instead of network byte order."""

from wrong_answers.framing_decoders import LittleEndianHeader as MyFrameDecoder

__all__ = ["MyFrameDecoder"]
