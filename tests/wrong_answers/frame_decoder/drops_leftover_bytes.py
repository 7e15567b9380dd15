"""Buffers partial frames, but throws away the bytes after a completed frame."""

from wrong_answers.framing_decoders import DropsLeftoverBytes as MyFrameDecoder

__all__ = ["MyFrameDecoder"]
