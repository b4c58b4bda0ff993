"""OpenAI text-to-speech (or any OpenAI-compatible server) as a voicekit engine.

Audio is requested as ``response_format="pcm"`` (24 kHz, 16-bit mono) through
``with_streaming_response`` and yielded piece by piece as the body arrives.
An interrupt cuts the transfer at once: from the interrupting thread
(:func:`~voicekit.engines.transfer.cut_on_cancel`), or by closing the generator.
OpenAI reports no word timings, so chunks carry no marks and the stream
estimates them.

Retries are the SDK's own (``max_retries``, default 2): 408/409/429/5xx and
connection errors are retried with exponential backoff (0.5 s doubling, capped
at 8 s, with jitter; a server's ``Retry-After`` wins). They happen before the
response body starts, so never after audio was yielded. A body that breaks off
mid-way raises ``EngineError`` at once, for a fallback engine to continue.

``asynthesize`` is the same over ``AsyncOpenAI``. It opens a client per call
and closes it when the call ends: an async client belongs to the event loop
that used it, and an engine can't know which loop calls it next.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..engine import AudioChunk, Voice, check_voice_id
from ..errors import EngineError
from .transfer import Pcm16Decoder, cut_on_cancel

__all__ = ["OpenAIClient"]

SAMPLERATE = 24000
#: bytes per read of the body: 20 ms of audio, so the first audio leaves early.
_PIECE_BYTES = 2 * SAMPLERATE // 50
_VOICES = ("alloy", "ash", "ballad", "cedar", "coral", "echo", "fable", "marin", "nova", "onyx", "sage", "shimmer",
           "verse")
_INSTALL_HINT = "OpenAI TTS needs the openai package: pip install 'voicekit[openai]'"


class OpenAIClient:
    """OpenAI's speech endpoint; implements :class:`voicekit.engine.Engine`.

    The key comes from ``api_key`` or, at first use, ``OPENAI_API_KEY``.
    ``set_property("rate", x)`` sets ``speed``; ``volume`` scales the samples
    here (the API has no volume); there is no pitch (use ``instructions``).
    """

    name = "openai"
    samplerate = SAMPLERATE
    max_chars = 4096  # the API's limit on ``input``

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        model: str = "gpt-4o-mini-tts",
        voice: str = "alloy",
        instructions: str | None = None,
        speed: float | None = None,
        *,
        max_retries: int = 2,
        timeout: float = 30.0,
    ) -> None:
        if speed is not None and not 0.25 <= speed <= 4.0:
            raise ValueError("speed must be between 0.25 and 4.0")
        self.model, self.voice, self.instructions, self.speed = model, check_voice_id(voice), instructions, speed
        self.base_url = base_url
        self._api_key = api_key
        self._max_retries, self._timeout = max_retries, timeout
        self._gain = 1.0
        self._client: Any = None
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        where = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"OpenAIClient(model={self.model!r}, voice={self.voice!r}{where})"

    # -- Engine protocol -------------------------------------------------

    def synthesize(self, text: str, cancel: threading.Event) -> Iterator[AudioChunk]:
        if not text.strip():
            return
        client = self._sync_client()
        decoder = Pcm16Decoder()
        try:
            with (client.audio.speech.with_streaming_response.create(**self._params(text)) as response,
                  cut_on_cancel(cancel, lambda: _socket_of(response))):
                for data in response.iter_bytes(_PIECE_BYTES):
                    if cancel.is_set():
                        return
                    yield AudioChunk(decoder.decode(data) * self._gain, SAMPLERATE)
        except Exception as exc:  # noqa: BLE001 - SDK, transport and socket errors alike
            if cancel.is_set():
                return
            raise EngineError(f"OpenAI speech failed: {exc}", engine=self.name) from exc

    async def asynthesize(self, text: str, cancel: threading.Event) -> AsyncIterator[AudioChunk]:
        """``synthesize`` for event loops, over ``AsyncOpenAI``."""
        if not text.strip():
            return
        options = self._client_options()
        openai = _import_openai()
        decoder = Pcm16Decoder()
        try:
            async with openai.AsyncOpenAI(**options) as client:
                async with client.audio.speech.with_streaming_response.create(**self._params(text)) as response:
                    async for data in response.iter_bytes(_PIECE_BYTES):
                        if cancel.is_set():
                            return
                        yield AudioChunk(decoder.decode(data) * self._gain, SAMPLERATE)
        except Exception as exc:  # noqa: BLE001 - SDK, transport and socket errors alike
            raise EngineError(f"OpenAI speech failed: {exc}", engine=self.name) from exc

    def voices(self) -> list[Voice]:
        # The API has no endpoint listing its built-in voices; they speak every language.
        return [Voice(v, v.capitalize()) for v in _VOICES]

    def set_voice(self, voice_id: str) -> None:
        self.voice = check_voice_id(voice_id)

    def set_property(self, name: str, value: float) -> None:
        if name == "rate":
            if not 0.25 <= value <= 4.0:
                raise ValueError("OpenAI's rate (speed) must be between 0.25 and 4.0")
            self.speed = value
        elif name == "volume":
            if not 0 <= value <= 100:
                raise ValueError("volume must be between 0 and 100")
            self._gain = value / 100
        elif name == "pitch":
            raise ValueError("OpenAI TTS has no pitch setting; describe the voice with instructions= instead")
        else:
            raise ValueError(f"unknown property {name!r}; use rate, volume or pitch")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- internals -------------------------------------------------------

    def _params(self, text: str) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "voice": self.voice, "input": text, "response_format": "pcm"}
        if self.instructions:
            params["instructions"] = self.instructions
        if self.speed is not None:
            params["speed"] = self.speed
        return params

    def _client_options(self) -> dict[str, Any]:
        key = self._api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise EngineError("OpenAI TTS needs an API key: pass api_key= or set OPENAI_API_KEY", engine=self.name)
        return {"api_key": key, "base_url": self.base_url, "max_retries": self._max_retries, "timeout": self._timeout}

    def _sync_client(self) -> Any:
        with self._lock:
            if self._closed:
                raise EngineError("OpenAIClient is closed", engine=self.name)
            if self._client is None:
                self._client = _import_openai().OpenAI(**self._client_options())
            return self._client


def _socket_of(response: Any) -> socket.socket | None:
    # the HTTP library's documented ``network_stream`` response extension
    stream = response.http_response.extensions.get("network_stream")
    return stream.get_extra_info("socket") if stream is not None else None


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise EngineError(_INSTALL_HINT, engine="openai") from exc
    return openai
