"""Speak an OpenAI chat completion while it streams in.

Works with ``openai.OpenAI``/``openai.AsyncOpenAI`` and so with any
OpenAI-compatible server (llama.cpp, Ollama, vLLM) through the client's
``base_url``. Only ``choices[0].delta.content`` is spoken: role-only, empty,
tool-call and usage chunks carry no speech and are skipped.

The openai package is not imported here: the client (or a response the caller
already created with ``stream=True``) is all these functions touch.

History: ``reply.as_message()`` gives the assistant entry to append. When the
user barged in (``reply.interrupt()``), it holds only what was heard, ending in
``" [interrupted]"``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from .feed import AsyncSpokenText, SpokenText, _Stream

__all__ = ["completion_text", "stream_chat", "astream_chat"]


def _delta_text(chunk: Any) -> str:
    if not chunk.choices:
        return ""  # usage chunks (stream_options include_usage) have no choices
    delta = chunk.choices[0].delta
    return (delta.content or "") if delta is not None else ""


def _request(client: Any, messages: Any, response: Any, model: str | None, create_kwargs: dict) -> dict | None:
    """The ``create`` arguments, or None when the caller brought a response."""
    if response is not None:
        if messages is not None or model is not None or create_kwargs:
            raise ValueError("pass either messages (and model) or an existing response=, not both")
        return None
    if client is None or messages is None:
        raise ValueError("stream_chat needs a client and messages, or response= (a stream=True completion)")
    if not model:
        raise ValueError("model= is required when stream_chat creates the request")
    return {"model": model, "messages": messages, "stream": True, **create_kwargs}


def completion_text(response: Any) -> Iterator[str]:
    """The text of a ``stream=True`` chat completion, piece by piece; closes the response at the end."""
    try:
        for chunk in response:
            text = _delta_text(chunk)
            if text:
                yield text
    finally:
        response.close()


def stream_chat(
    client: Any,
    messages: Any = None,
    *,
    stream: _Stream,
    response: Any = None,
    model: str | None = None,
    **create_kwargs: Any,
) -> SpokenText:
    """Speak an OpenAI chat reply on ``stream`` as it streams in; iterate the result for the text.

    ``client.chat.completions.create(model=model, messages=messages, stream=True,
    **create_kwargs)`` is sent now (so errors such as a bad key raise here), or
    pass ``response=`` (an already created ``stream=True`` completion) with
    ``client=None``. ``reply.interrupt()``, from any thread, silences the stream
    and closes the HTTP response at once. Does not call ``stream.done()``.

    >>> reply = stream_chat(client, history, stream=speech, model="gpt-4o-mini")
    >>> for piece in reply: print(piece, end="", flush=True)
    >>> history.append(reply.as_message())
    """
    request = _request(client, messages, response, model, create_kwargs)
    if request is not None:
        response = client.chat.completions.create(**request)
    return SpokenText(stream, completion_text(response), abort=response.close)


async def _acontents(client: Any, request: dict | None, response: Any) -> AsyncIterator[str]:
    if request is not None:
        response = await client.chat.completions.create(**request)
    try:
        async for chunk in response:
            text = _delta_text(chunk)
            if text:
                yield text
    finally:
        await response.close()


def astream_chat(
    client: Any,
    messages: Any = None,
    *,
    stream: _Stream,
    response: Any = None,
    model: str | None = None,
    **create_kwargs: Any,
) -> AsyncSpokenText:
    """``stream_chat`` for ``openai.AsyncOpenAI``: ``async for piece in astream_chat(...)``.

    The request is sent when iteration starts. ``stream`` may be an
    ``AsyncSpeechStream`` or a ``SpeechStream``; ``await reply.interrupt()``
    cancels the pending HTTP read at once.
    """
    request = _request(client, messages, response, model, create_kwargs)
    return AsyncSpokenText(stream, _acontents(client, request, response))
