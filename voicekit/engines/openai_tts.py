"""OpenAI text-to-speech (or any OpenAI-compatible server) as a voicekit engine.

Audio is requested as ``response_format="pcm"`` (24 kHz, 16-bit mono) through
``with_streaming_response`` and yielded piece by piece as the body arrives: a
piece is what one network read delivered, so the first audio leaves at once and
a fast body costs few hand-overs.
OpenAI reports no word timings, so chunks carry no marks and the stream
estimates them.

One ``AsyncOpenAI`` client per engine does every request on the engine's own
event loop thread (:class:`~voicekit.engines.transfer.AsyncBridge`): an async
client belongs to the loop it was used on, and building one costs ~28 ms, so a
client per call would cost that each time. ``synthesize`` (on the stream's
worker thread) only waits for finished pieces. An interrupt (``cancel`` set, or the iterator closed) cancels
the request task at once, whatever it waits for: the connection, the first
byte, the body or the SDK's retry back-off. So nothing is retried after an
interrupt, and after ``close()`` nothing more is sent.

Retries are the SDK's own (``max_retries``, default 2): 408/409/429/5xx and
connection errors are retried with exponential backoff (0.5 s doubling, capped
at 8 s, with jitter; a server's ``Retry-After`` wins). They happen before the
response body starts, so never after audio was yielded. A body that breaks off
mid-way raises ``EngineError`` at once, for a fallback engine to continue, and
so does one that is not PCM (another ``Content-Type``, or half a sample at its
end).
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Iterator
from typing import Any

from ..contract import AudioChunk, EngineCapabilities, Voice, check_property, check_voice_id, speakable
from ..errors import EngineError
from .transfer import AsyncBridge, Pcm16Decoder, check_audio_type

__all__ = ["OPENAI_VOICES", "OpenAIClient"]

SAMPLERATE = 24000
#: OpenAI's built-in voices, in the order of its API reference (voicekit serve maps them onto other engines in this order)
OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin",
                 "cedar")
_INSTALL_HINT = "OpenAI TTS needs the openai package: pip install 'voicekit[openai]'"


class OpenAIClient:
    """OpenAI's speech endpoint; implements :class:`voicekit.contract.Engine`.

    The key comes from ``api_key`` or, at first use, ``OPENAI_API_KEY``.
    ``set_property("rate", x)`` sets ``speed``; ``volume`` scales the samples
    here (the API has no volume); there is no pitch (use ``instructions``).
    """

    name = "openai"
    samplerate = SAMPLERATE
    max_chars = 4096  # the API's limit on ``input``
    capabilities = EngineCapabilities()  # plain text only, no word timings; every voice speaks every language

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
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or not 0 <= max_retries <= 10:
            raise ValueError(f"max_retries must be a whole number from 0 to 10, got {max_retries!r}")
        if not 0 < timeout <= 600:  # also refuses NaN
            raise ValueError(f"timeout must be above 0 and at most 600 seconds, got {timeout!r}")
        self.model, self.voice, self.instructions, self.speed = model, check_voice_id(voice), instructions, speed
        self.base_url = base_url
        self._api_key = api_key
        self._max_retries, self._timeout = max_retries, timeout
        self._gain = 1.0
        self._client: Any = None  # the AsyncOpenAI, made and used on the bridge's loop only
        self._bridge = AsyncBridge("openai")
        # a client dropped without close() still stops its loop thread
        weakref.finalize(self, self._bridge.close)

    def __repr__(self) -> str:
        where = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"OpenAIClient(model={self.model!r}, voice={self.voice!r}{where})"

    # -- Engine protocol -------------------------------------------------

    def synthesize(self, text: str, cancel: threading.Event) -> Iterator[AudioChunk]:
        text = speakable(text, engine=self.name, closed=self._bridge.closed)
        if not text.strip():
            return
        yield from self._bridge.iterate(self._speech(text), cancel)

    def voices(self) -> list[Voice]:
        # The API has no endpoint listing its built-in voices; they speak every language.
        return [Voice(v, v.capitalize()) for v in OPENAI_VOICES]

    def set_voice(self, voice_id: str) -> None:
        self.voice = check_voice_id(voice_id)

    def set_property(self, name: str, value: float) -> None:
        if name == "pitch":
            raise ValueError("OpenAI TTS has no pitch setting; describe the voice with instructions= instead")
        value = check_property(name, value, rate=(0.25, 4.0))  # the API's speed range
        if name == "rate":
            self.speed = value
        else:
            self._gain = value / 100

    def close(self) -> None:
        """Cancel every request in flight and close the client; later calls raise ``EngineError``."""

        async def close_client() -> None:
            if self._client is not None:
                await self._client.close()

        self._bridge.close(close_client)

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

    def _speech(self, text: str) -> AsyncGenerator[AudioChunk, None]:
        """The request for ``text`` with the settings of now, as pieces, to run on the bridge."""
        if self._bridge.closed:
            raise EngineError("OpenAIClient is closed", engine=self.name)
        return self._stream(self._client_options(), self._params(text), self._gain)

    async def _stream(self, options: dict[str, Any], params: dict[str, Any],
                      gain: float) -> AsyncGenerator[AudioChunk, None]:
        if self._client is None:
            # here, on the engine's thread: importing the SDK and building a client take 0.1-1 s of CPU
            self._client = _import_openai().AsyncOpenAI(**options)
        decoder = Pcm16Decoder(self.name)
        body_started = False
        try:
            async with self._client.audio.speech.with_streaming_response.create(**params) as response:
                check_audio_type(response.headers.get("content-type"), self.name)
                body_started = True
                async for data in response.iter_bytes():
                    yield AudioChunk(decoder.decode(data) * gain, SAMPLERATE)
                decoder.finish()
        except (asyncio.CancelledError, EngineError):
            raise
        except Exception as exc:  # noqa: BLE001 - SDK, transport and socket errors alike
            if body_started:
                raise EngineError(f"the OpenAI response ended early after {decoder.received} bytes: {_reason(exc)}",
                                  engine=self.name) from exc
            raise EngineError(f"OpenAI speech failed: {_reason(exc)}", engine=self.name) from exc


def _reason(exc: BaseException) -> str:
    """What went wrong, never empty: a connection reset is an httpx ``ReadError('')``."""
    causes: list[str] = []
    cause: BaseException | None = exc
    while cause is not None and len(causes) < 5:  # a cycle of causes must not loop forever
        if str(cause):
            return str(cause)
        causes.append(type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    return " from ".join(causes)


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise EngineError(_INSTALL_HINT, engine="openai") from exc
    return openai
