"""Returns no frames and raises nothing: the answer the liveness checks exist for."""

from wrong_answers.framing_decoders import DoesNothing as MyFrameDecoder

__all__ = ["MyFrameDecoder"]
