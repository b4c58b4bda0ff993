"""``POST /v1/audio/speech``: OpenAI's speech endpoint, streamed as it is synthesized.

The request gets its own TTS and stream. The response starts once the first
audio is ready (so an engine that fails at once still gets a proper error
status), then the body carries the audio as soon as the playback thread hands
it over, encoded into one continuous file of the requested format (or, with
``stream_format: "sse"``, as OpenAI's ``speech.audio.delta`` events). A slow
reader is paced by the transport: the sink waits for room, the stream's
``lookahead`` stops synthesis; a reader that takes nothing for
``send_timeout`` seconds is dropped and its session freed. A failure mid-body
aborts the response, so the client sees a broken transfer, never a silently
short file.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from .. import registry
from ..async_stream import AsyncSpeechStream
from ..engines.openai_tts import OPENAI_VOICES
from ..errors import StreamError, VoicekitError
from ..tts import BaseTTS
from .core import ClientError, Server, json_body
from .formats import FORMATS, AudioFormat, Encoder
from .guard import ending_on_purpose
from .outbox import SAMPLE_RATE, Item, Outbox

__all__ = ["speech"]

log = logging.getLogger("voicekit.server")

_REPLY = 1
_PIECE = 32_768  # bytes per body chunk at most, so a fast engine still streams in pieces
_BLOCK = SAMPLE_RATE // 10  # frames per playback block: 100 ms (a live session keeps voicekit's 20 ms)
_STREAM_FORMATS = ("audio", "sse")


@dataclass(frozen=True)
class SpeechRequest:
    input: str
    voice: str | None
    format: AudioFormat
    speed: float | None
    sse: bool = False
    word_timestamps: bool = False
    instructions: str | None = None


def parse(body: Any, max_chars: int) -> SpeechRequest:
    """The request's fields, OpenAI's defaults filled in; anything off is a ``ClientError``."""
    if not isinstance(body, dict):
        raise ClientError("the request body must be a JSON object")
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise ClientError("'input' must be a non-empty string", param="input")
    if len(text) > max_chars:
        raise ClientError(f"'input' is longer than {max_chars} characters", status=413, param="input")
    fmt = body.get("response_format", "mp3")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ClientError(f"response_format must be one of {', '.join(FORMATS)}", param="response_format")
    stream_format = body.get("stream_format", "audio")
    if not isinstance(stream_format, str) or stream_format not in _STREAM_FORMATS:
        raise ClientError("stream_format must be 'audio' or 'sse'", param="stream_format")
    voice = body.get("voice")
    if isinstance(voice, dict):  # the current SDK's custom-voice shape
        voice = voice.get("id", False)
    if voice is not None and (not isinstance(voice, str) or not voice.strip()):
        raise ClientError("'voice' must be a voice id string or {\"id\": ...}", param="voice")
    speed = body.get("speed")
    if speed is not None and (
        isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed) or not 0.25 <= speed <= 4.0
    ):
        raise ClientError(f"'speed' must be a number from 0.25 to 4.0, got {speed!r}", param="speed")
    for name in ("model", "instructions"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise ClientError(f"'{name}' must be a string", param=name)
    words = body.get("word_timestamps", False)
    if not isinstance(words, bool):
        raise ClientError("'word_timestamps' must be true or false", param="word_timestamps")
    if words and stream_format != "sse":
        raise ClientError("word_timestamps needs stream_format 'sse'", param="word_timestamps")
    return SpeechRequest(text, voice, FORMATS[fmt], speed, stream_format == "sse", words, body.get("instructions"))


def openai_alias(name: str, voices: list[Any], default: str | None = None) -> str | None:
    """The engine voice that OpenAI's voice ``name`` stands for; None: the default voice.

    The rule (docs/server.md): alloy is the default voice; the other names, in
    OpenAI's order, take the engine's English voices sorted by id in turn (all
    its voices if it has no English one), leaving out the ``default`` voice that
    alloy speaks with while others remain, starting again when they run out.
    """
    index = OPENAI_VOICES.index(name)
    if index == 0:
        return None
    english = sorted(v.id for v in voices if v.language.lower().startswith("en")) or sorted(v.id for v in voices)
    english = [v for v in english if v != default] or english
    return english[(index - 1) % len(english)] if english else None


def default_voice(server: Server) -> str | None:
    """The voice alloy (and "default") speaks with: the server's ``--voice``, else the engine's own."""
    return server.settings.voice or registry.default_voice(server.settings.engine)


async def configure(server: Server, tts: BaseTTS, request: SpeechRequest) -> None:
    """The request's voice, speed and instructions on its own TTS; a bad voice is the client's error."""
    engine = server.settings.engine
    voice = request.voice
    if voice in OPENAI_VOICES and engine != "openai":
        # alloy is the default voice: the most common request lists no voices
        voice = openai_alias(voice, await server.voices() if voice != OPENAI_VOICES[0] else [], default_voice(server))
    elif voice == "default":
        voice = None
    try:
        if voice:
            await run_in_threadpool(tts.set_voice, voice)
    except (VoicekitError, ValueError, KeyError) as exc:
        raise ClientError(f"unknown voice {voice!r} for the {engine} engine ({exc}); GET /v1/audio/voices lists them", param="voice") from None
    if request.speed is not None:
        try:
            await run_in_threadpool(tts.set_property, "rate", request.speed)
        except (VoicekitError, ValueError) as exc:
            raise ClientError(f"the {engine} engine can't use speed {request.speed}: {exc}", param="speed") from None
    # only OpenAI's own voices take instructions; other engines ignore them (docs/server.md)
    if request.instructions and hasattr(tts.client, "instructions"):
        tts.client.instructions = request.instructions


class _Failed(Exception):
    """Synthesis failed after the response started: the transfer is aborted."""


class _Speaking:
    """One request's TTS, stream and sink, and their release."""

    def __init__(self, server: Server, tts: BaseTTS, outbox: Outbox) -> None:
        self.server = server
        self.tts = tts
        self.outbox = outbox
        self.stream: AsyncSpeechStream | None = None
        self.finisher: asyncio.Task[None] | None = None
        self.chunk_ends: list[float] = []
        self.ended = False
        self._closed = False
        self._left = False

    async def start(self, text: str, *, words: bool) -> None:
        observe = self.server.observe(self.tts)

        # voicekit's threads call these: they only queue and count
        def on_word(info: dict[str, Any]) -> None:
            self.outbox.put("word", _REPLY, {"word": info["word"], "start": float(info["time"])})

        def on_chunk(info: Any) -> None:
            self.chunk_ends.append((self.chunk_ends[-1] if self.chunk_ends else 0.0) + float(info["duration"]))
            observe(info)

        self.outbox.start_reply(_REPLY)
        self.stream = await self.tts.create_async_stream(sink=self.outbox, on_word=on_word if words else None, on_chunk_processed=on_chunk)
        await self.stream.feed(text, ssml=False)  # OpenAI's `input` is plain text
        await self.stream.done()
        self.finisher = asyncio.create_task(self._finish(self.stream))

    async def _finish(self, stream: AsyncSpeechStream) -> None:
        event: dict[str, Any] = {"type": "end"}
        try:
            await stream.wait_until_done()
        except StreamError as exc:
            event["error"] = str(exc)
            self.server.metrics.engine_failed(getattr(exc, "engine", None) or self.server.settings.engine)
        self.outbox.finish_reply(_REPLY, event)

    async def items(self) -> AsyncIterator[Item]:
        """Audio (blocks joined up to ``_PIECE``), words with their ends known, then the end item."""
        while True:
            waiting = self.outbox.items()
            if not waiting:
                await self.outbox.changed()
                continue
            head = waiting[0]
            if head.kind == "word":
                end = self.outbox.word_end(head, waiting[1:], self.chunk_ends)
                if end is None:
                    await self.outbox.changed(0.25)
                    continue
                self.outbox.pop()
                yield Item("word", _REPLY, event={**(head.event or {}), "end": end})
            elif head.kind == "audio":
                audio = bytearray(self.outbox.pop().audio)
                for more in waiting[1:]:
                    if more.kind != "audio" or len(audio) + len(more.audio) > _PIECE:
                        break
                    audio += self.outbox.pop().audio
                yield Item("audio", _REPLY, audio=bytes(audio))
            else:
                self.outbox.pop()
                if head.kind == "end":
                    self.ended = True
                    yield head
                    return

    def free_slot(self) -> None:
        """Give the session slot back, once, however many paths end here."""
        if not self._left:
            self._left = True
            self.server.leave("http")

    async def close(self) -> None:
        """Stop and release everything; safe to call twice, and while being cancelled."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            if self.finisher is not None:
                self.finisher.cancel()
            if self.stream is not None and not self.ended:
                self.outbox.cut(_REPLY)
                await self.stream.interrupt()
            await run_in_threadpool(self.tts.cleanup)
            self.free_slot()


def _sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\n\n"


class _SpeechResponse(StreamingResponse):
    """Releases the request's TTS however the response ends (done, error, stalled or gone client)."""

    def __init__(self, speaking: _Speaking, encoder: Encoder, first: Item, request: SpeechRequest) -> None:
        self.speaking = speaking
        self.request = request
        media_type = "text/event-stream" if request.sse else request.format.content_type
        super().__init__(self._body(encoder, first), media_type=media_type, headers={"Cache-Control": "no-store"})

    async def _body(self, encoder: Encoder, first: Item) -> AsyncIterator[bytes]:
        request = self.request
        # the encoder's work (up to ~10 ms a piece) runs off the loop; PyAV lets go of the GIL meanwhile
        try:
            items = self.speaking.items()
            item: Item | None = first
            while item is not None:
                if item.kind == "end":
                    # free before the last chunk: a client that sends its next request as soon as this
                    # one ends must find the slot free, not held while the TTS is cleaned up
                    self.speaking.free_slot()
                    if "error" in (item.event or {}):
                        raise _Failed((item.event or {})["error"])
                    tail = await run_in_threadpool(encoder.finish)
                    if request.sse:
                        yield (_sse(self._delta(tail)) if tail else b"") + _sse(self._done(encoder.frames))
                    elif tail:
                        yield tail
                    return
                if item.kind == "word":
                    event = item.event or {}
                    yield _sse({"type": "speech.audio.word", "word": event["word"], "start": round(event["start"], 3), "end": round(event["end"], 3)})
                else:
                    data = await run_in_threadpool(encoder.encode, item.audio)
                    if data:
                        yield _sse(self._delta(data)) if request.sse else data
                item = await anext(items, None)
        finally:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(encoder.close)

    @staticmethod
    def _delta(data: bytes) -> dict[str, Any]:
        return {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()}

    def _done(self, frames: int) -> dict[str, Any]:
        # no tokenizer here: estimates, as documented (docs/server.md)
        input_tokens = math.ceil(len(self.request.input) / 4)
        output_tokens = math.ceil(frames / SAMPLE_RATE * 50)
        usage = {"input_tokens": input_tokens, "output_tokens": output_tokens, "total_tokens": input_tokens + output_tokens}
        return {"type": "speech.audio.done", "usage": usage}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        timeout = self.speaking.server.settings.send_timeout
        try:
            await super().__call__(scope, receive, _timed(send, timeout))
        except TimeoutError:
            ending_on_purpose()
            log.warning("voicekit.server: a client read nothing for %s s; its speech request was dropped", timeout)
        except _Failed as exc:
            ending_on_purpose()
            log.warning("voicekit.server: speech failed mid-stream: %s", exc)
        finally:
            await self.speaking.close()


def _timed(send: Send, timeout: float) -> Callable[[Message], Awaitable[None]]:
    """``send`` that gives up after ``timeout`` seconds: a client that stopped reading holds nothing for long."""

    async def timed(message: Message) -> None:
        with anyio.fail_after(timeout):
            await send(message)

    return timed


async def speech(server: Server, request: Request) -> Response:
    settings = server.settings
    try:
        # 4 bytes per character of UTF-8 at most, plus the other fields
        req = parse(await json_body(request, settings.max_input_chars * 4 + 4096), settings.max_input_chars)
    except ClientError as exc:
        return exc.response()
    if not server.try_enter("http"):
        return server.busy_response()
    speaking: _Speaking | None = None
    # made while the first fragment is synthesized: off the path to the first byte
    encoding = asyncio.ensure_future(run_in_threadpool(Encoder, req.format, SAMPLE_RATE))
    try:
        tts = await server.new_tts()
        speaking = _Speaking(server, tts, Outbox(asyncio.get_running_loop(), capacity=settings.lookahead / 2, hold_back=req.word_timestamps))
        await configure(server, tts, req)
        # nobody hears this body live, so no interrupt to be quick for: fewer, larger blocks cost less
        tts.set_stream_config({"chunk_size": _BLOCK})
        started = time.monotonic()
        await speaking.start(req.input, words=req.word_timestamps)
        first = await anext(speaking.items())
        if first.kind != "end":
            server.metrics.first_audio("http", time.monotonic() - started)
        if first.kind == "end" and "error" in (first.event or {}):
            log.warning("voicekit.server: speech failed: %s", (first.event or {})["error"])
            raise ClientError(f"the {settings.engine} engine could not speak this input", status=502)
        encoder = await encoding
    except ClientError as exc:
        await _release(server, speaking, encoding)
        return exc.response()
    except VoicekitError as exc:
        await _release(server, speaking, encoding)
        log.warning("voicekit.server: speech setup failed: %s", exc)
        return ClientError(f"the {settings.engine} engine is not available", status=502).response()
    except BaseException:
        await _release(server, speaking, encoding)
        raise
    return _SpeechResponse(speaking, encoder, first, req)


async def _release(server: Server, speaking: _Speaking | None, encoding: asyncio.Future[Encoder]) -> None:
    with anyio.CancelScope(shield=True):
        if speaking is not None:
            await speaking.close()
        else:
            server.leave("http")
        # the encoder is made in a thread that a cancel can't stop: wait for it, then free it
        encoder = await asyncio.gather(encoding, return_exceptions=True)
        if isinstance(encoder[0], Encoder):
            encoder[0].close()
