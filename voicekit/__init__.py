"""voicekit: streaming, interruptible text-to-speech for chatbots."""

from .errors import BufferError, EngineError, OutputError, StreamError, VoicekitError

__all__ = ["BufferError", "EngineError", "OutputError", "StreamError", "VoicekitError"]
