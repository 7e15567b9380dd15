"""Correct output, but copies the whole buffer on every feed(): quadratic time."""

from wrong_answers.framing_decoders import RebuildsBufferEveryFeed as MyFrameDecoder

__all__ = ["MyFrameDecoder"]
