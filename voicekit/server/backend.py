"""Where the chat page's replies come from, as in ``voicekit chat``.

The page posts the conversation to ``POST /v1/chat`` and gets the reply back
as plain text, piece by piece, which it shows and forwards to ``/v1/speak``.
The built-in offline responder needs nothing; any OpenAI-compatible chat
server (llama.cpp, Ollama, vLLM, OpenAI) is reached with ``AsyncOpenAI``.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

from starlette.concurrency import iterate_in_threadpool

from ..responder import Responder

__all__ = ["ChatBackend", "LLMChat", "ResponderChat"]

Message = Mapping[str, str]


class ChatBackend(Protocol):
    name: str

    def reply(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """The reply's text pieces; closing the iterator stops the reply."""
        ...


class ResponderChat:
    """The offline responder: markdown replies at an LLM-like pace."""

    name = "offline responder"

    def __init__(self, tokens_per_second: float | None = 30.0) -> None:
        self.tokens_per_second = tokens_per_second

    async def reply(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        # a responder per reply (sessions share nothing); its turn follows the history
        responder = Responder(tokens_per_second=self.tokens_per_second)
        for _ in range(sum(1 for m in messages if m.get("role") == "assistant")):
            responder.reply(messages)
        cancel = threading.Event()
        try:
            async for piece in iterate_in_threadpool(responder.reply(messages, cancel)):
                yield piece
        finally:
            cancel.set()


class LLMChat:
    """An OpenAI-compatible chat model, streamed with ``AsyncOpenAI``."""

    def __init__(self, client: Any, model: str) -> None:
        self.client = client
        self.model = model
        self.name = f"{model} at {client.base_url}"

    async def reply(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        response = await self.client.chat.completions.create(model=self.model, messages=list(messages), stream=True)
        try:
            async for chunk in response:
                delta = chunk.choices[0].delta if chunk.choices else None
                if delta is not None and delta.content:
                    yield delta.content
        finally:
            await response.close()
