"""voicekit's exceptions.

Every failure a user can meet is one of these, so ``except StreamError`` catches
everything the guide's recovery patterns expect.
"""

from __future__ import annotations

import builtins

__all__ = ["VoicekitError", "StreamError", "BufferError", "EngineError", "OutputError", "UsageError"]


class VoicekitError(Exception):
    """Base class of all voicekit errors."""


class StreamError(VoicekitError):
    """A stream was used wrongly (fed after ``done()``/``close()``) or failed."""


class BufferError(builtins.BufferError, StreamError):  # noqa: A001 - the guide's name
    """Queued text passed the stream's hard cap (``max_queued_chars``).

    Subclasses the builtin ``BufferError`` too, so the guide's
    ``except BufferError`` catches it with or without importing ours.
    """


class EngineError(StreamError):
    """No engine could speak some text.

    ``unspoken_text`` holds, in order, the text that was fed but never spoken,
    so the caller can retry it or show it: nothing disappears silently.
    """

    def __init__(self, message: str, *, unspoken_text: str = "", engine: str | None = None):
        super().__init__(message)
        self.unspoken_text = unspoken_text
        self.engine = engine


class OutputError(VoicekitError):
    """The audio output can't be used: no PortAudio library, no device, bad format."""


class UsageError(Exception):
    """Bad command-line input: the ``voicekit`` command reports it in one line, exit code 2."""
