"""Assumes each feed() contains exactly one whole frame."""

from wrong_answers.framing_decoders import OneRecvIsOneFrame as MyFrameDecoder

__all__ = ["MyFrameDecoder"]
