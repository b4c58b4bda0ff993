"""voicekit.adapters: feed generator and LLM output straight into a stream.

``speak_iter``/``speak_aiter`` speak any (async) iterable of text pieces and
yield them back; ``stream_chat``/``astream_chat`` do it for OpenAI-compatible
chat completions. See :mod:`voicekit.adapters.feed` for barge-in and history.
"""

from .feed import INTERRUPTED_MARK, AsyncSpokenText, SpokenText, speak_aiter, speak_iter
from .openai_chat import astream_chat, completion_text, stream_chat

__all__ = [
    "INTERRUPTED_MARK",
    "AsyncSpokenText",
    "SpokenText",
    "astream_chat",
    "completion_text",
    "speak_aiter",
    "speak_iter",
    "stream_chat",
]
