"""``POST /v1/audio/speech``: OpenAI's speech endpoint, streamed as it is synthesized.

The request gets its own TTS and stream. The response starts once the first
audio is ready (so an engine that fails at once still gets a proper error
status), then the body carries each block as soon as the playback thread hands
it over. A slow reader is paced by the transport: the sink waits for room, the
stream's ``lookahead`` stops synthesis. A failure mid-body aborts the response,
so the client sees a broken transfer, never a silently short file.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..async_stream import AsyncSpeechStream
from ..errors import StreamError, VoicekitError
from ..tts import BaseTTS
from .app import ClientError, Server, _json_body
from .outbox import SAMPLE_RATE, Item, Outbox

__all__ = ["OPENAI_VOICES", "speech"]

log = logging.getLogger("voicekit.server")

#: OpenAI's voice names: apps send them as they are; any engine but OpenAI speaks them with its default voice.
OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse", "marin", "cedar", "default"}
)
FORMATS = {"pcm": "audio/pcm", "wav": "audio/wav"}
_REPLY = 1
_PIECE = 32_768  # bytes per body chunk at most, so a fast engine still streams in pieces
_BLOCK = SAMPLE_RATE // 10  # frames per playback block: 100 ms (a live session keeps voicekit's 20 ms)


@dataclass(frozen=True)
class SpeechRequest:
    input: str
    voice: str | None
    response_format: str
    speed: float | None


def parse(body: Any, max_chars: int) -> SpeechRequest:
    if not isinstance(body, dict):
        raise ClientError("the request body must be a JSON object")
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise ClientError("'input' must be a non-empty string", param="input")
    if len(text) > max_chars:
        raise ClientError(f"'input' is longer than {max_chars} characters", param="input")
    fmt = body.get("response_format", "wav")
    if fmt not in FORMATS:
        raise ClientError(f"response_format {fmt!r} is not supported; use 'pcm' or 'wav'", param="response_format")
    if body.get("stream_format", "audio") != "audio":
        raise ClientError("only stream_format 'audio' is supported", param="stream_format")
    voice = body.get("voice")
    if voice is not None and (not isinstance(voice, str) or not voice.strip()):
        raise ClientError("'voice' must be a voice id string", param="voice")
    speed = body.get("speed")
    if speed is not None and (
        isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed) or not 0.25 <= speed <= 4.0
    ):
        raise ClientError(f"'speed' must be a number from 0.25 to 4.0, got {speed!r}", param="speed")
    return SpeechRequest(text, voice, fmt, speed)


def wav_header(samplerate: int) -> bytes:
    """A 16-bit mono WAV header for a stream of unknown length (sizes at their maximum)."""
    unknown = 0xFFFFFFFF
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", unknown, b"WAVE", b"fmt ", 16, 1, 1, samplerate, samplerate * 2, 2, 16, b"data", unknown,
    )  # fmt: skip


def configure(tts: BaseTTS, request: SpeechRequest, engine: str) -> None:
    """The request's voice and speed on its own TTS; a bad voice is the client's error."""
    voice = request.voice
    if voice and not (voice in OPENAI_VOICES and engine != "openai"):
        try:
            tts.set_voice(voice)
        except (VoicekitError, ValueError, KeyError) as exc:
            raise ClientError(f"unknown voice {voice!r} for the {engine} engine ({exc}); GET /v1/audio/voices lists them", param="voice") from None
    if request.speed is not None:
        try:
            tts.set_property("rate", request.speed)
        except (VoicekitError, ValueError) as exc:
            raise ClientError(f"the {engine} engine can't use speed {request.speed}: {exc}", param="speed") from None


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
        self.ended = False
        self._closed = False

    async def start(self, text: str) -> None:
        self.stream = await self.tts.create_async_stream(sink=self.outbox)
        self.outbox.start_reply(_REPLY)
        self.stream.sync.feed(text, ssml=False)  # OpenAI's `input` is plain text
        self.stream.sync.done()
        self.finisher = asyncio.create_task(self._finish(self.stream))

    async def _finish(self, stream: AsyncSpeechStream) -> None:
        event: dict[str, Any] = {"type": "end"}
        try:
            await stream.wait_until_done()
        except StreamError as exc:
            event["error"] = str(exc)
        self.outbox.finish_reply(_REPLY, event)

    async def items(self) -> AsyncIterator[Item]:
        """Audio (blocks joined up to ``_PIECE``) then the end item."""
        while True:
            waiting = self.outbox.items()
            if not waiting:
                await self.outbox.changed()
                continue
            item = self.outbox.pop()
            if item.kind == "end":
                self.ended = True
                yield item
                return
            if item.kind == "audio":
                audio = bytearray(item.audio)
                for more in waiting[1:]:
                    if more.kind != "audio" or len(audio) + len(more.audio) > _PIECE:
                        break
                    audio += self.outbox.pop().audio
                yield Item("audio", item.reply, audio=bytes(audio))

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
                await run_in_threadpool(self.stream.sync.interrupt)
            await run_in_threadpool(self.tts.cleanup)
            self.server.leave()


class _SpeechResponse(StreamingResponse):
    """Releases the request's TTS however the response ends (done, error, client gone)."""

    def __init__(self, speaking: _Speaking, first: Item, fmt: str) -> None:
        self.speaking = speaking
        super().__init__(self._body(first, fmt), media_type=FORMATS[fmt], headers={"Cache-Control": "no-store"})

    async def _body(self, first: Item, fmt: str) -> AsyncIterator[bytes]:
        if fmt == "wav":
            yield wav_header(SAMPLE_RATE)
        item: Item | None = first
        items = self.speaking.items()
        while item is not None:
            if item.kind == "end":
                if "error" in (item.event or {}):
                    log.warning("voicekit.server: speech failed mid-stream: %s", item.event["error"])  # type: ignore[index]
                    raise _Failed(item.event["error"])  # type: ignore[index]
                return
            yield item.audio
            item = await anext(items, None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.speaking.close()


async def speech(server: Server, request: Request) -> Response:
    settings = server.settings
    try:
        # 4 bytes per character of UTF-8 at most, plus the other fields
        req = parse(await _json_body(request, settings.max_input_chars * 4 + 4096), settings.max_input_chars)
    except ClientError as exc:
        return exc.response()
    if not server.try_enter():
        busy = ClientError(f"the server is at its limit of {settings.max_sessions} sessions; retry shortly", status=503)
        response = busy.response()
        response.headers["Retry-After"] = "1"
        return response
    speaking: _Speaking | None = None
    try:
        tts = await server.new_tts()
        speaking = _Speaking(server, tts, Outbox(asyncio.get_running_loop(), capacity=settings.lookahead / 2, hold_back=False))
        await run_in_threadpool(configure, tts, req, settings.engine)
        # nobody hears this body live, so no interrupt to be quick for: fewer, larger blocks cost less
        tts.set_stream_config({"chunk_size": _BLOCK})
        await speaking.start(req.input)
        first = await anext(speaking.items())
        if first.kind == "end" and "error" in (first.event or {}):
            log.warning("voicekit.server: speech failed: %s", first.event["error"])  # type: ignore[index]
            raise ClientError(f"the {settings.engine} engine could not speak this input", status=502)
    except ClientError as exc:
        await _release(server, speaking)
        return exc.response()
    except VoicekitError as exc:
        await _release(server, speaking)
        log.warning("voicekit.server: speech setup failed: %s", exc)
        return ClientError(f"the {settings.engine} engine is not available", status=502).response()
    except BaseException:
        await _release(server, speaking)
        raise
    return _SpeechResponse(speaking, first, req.response_format)


async def _release(server: Server, speaking: _Speaking | None) -> None:
    if speaking is not None:
        await speaking.close()
    else:
        server.leave()
