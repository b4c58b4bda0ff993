"""Where a chat's replies come from: one protocol for ``voicekit chat`` and ``voicekit serve``'s page.

A backend turns the conversation so far into the reply's text, piece by piece, as
an LLM streams it. It only makes text: the terminal chat speaks the pieces with
:mod:`voicekit.adapters`, the server streams them to its page. Both call it from
a worker thread. Two come with voicekit: the offline
:class:`~voicekit.responder.Responder` and :class:`LLMChat`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from .adapters import completion_text
from .contract import Cancel
from .errors import VoicekitError
from .responder import Responder

__all__ = ["ChatBackend", "LLMChat", "Message", "chat_backend"]

Message = Mapping[str, str]


class ChatBackend(Protocol):
    name: str

    def reply(self, messages: Sequence[Message], cancel: Cancel) -> Iterator[str]:
        """Start the reply to ``messages`` (a refused request raises here) and return its text pieces.

        Setting ``cancel``, from any thread, ends the pieces at once, a blocked read included.
        """
        ...


class LLMChat:
    """An OpenAI-compatible chat model (OpenAI, llama.cpp, Ollama, vLLM) through a sync ``openai.OpenAI``."""

    def __init__(self, client: Any, model: str) -> None:
        self.client = client
        self.model = model
        self.name = f"{model} at {client.base_url}"

    def reply(self, messages: Sequence[Message], cancel: Cancel) -> Iterator[str]:
        response = self.client.chat.completions.create(model=self.model, messages=list(messages), stream=True)
        cancel.call_on_set(response.close)  # closing the HTTP response ends a read blocked in it
        return completion_text(response)


def chat_backend(base_url: str | None, model: str | None, tokens_per_second: float | None) -> ChatBackend:
    """An OpenAI-compatible model when ``base_url`` or ``OPENAI_API_KEY`` is given, else the offline responder."""
    key = os.environ.get("OPENAI_API_KEY")
    if not (base_url or key):
        return Responder(tokens_per_second=tokens_per_second)
    try:
        import openai
    except ImportError as exc:
        raise VoicekitError("the LLM backend needs the openai package: pip install 'voicekit[openai]'") from exc
    # local OpenAI-compatible servers take any key; the SDK insists on one
    return LLMChat(openai.OpenAI(base_url=base_url, api_key=key or "unused"), model or "gpt-4o-mini")
