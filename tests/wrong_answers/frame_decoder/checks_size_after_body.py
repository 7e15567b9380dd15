"""Checks max_frame_bytes only once the whole body has been buffered."""

from wrong_answers.framing_decoders import ChecksSizeAfterBody as MyFrameDecoder

__all__ = ["MyFrameDecoder"]
