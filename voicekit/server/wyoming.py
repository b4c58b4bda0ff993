"""Wyoming, Home Assistant's speech protocol, served beside the HTTP API on the same engine.

Uses the ``wyoming`` package (OHF-Voice) for the events and their framing.
Per connection:

- ``describe`` → ``info``: one TTS program with the engine's voices and
  ``supports_synthesize_streaming``.
- ``synthesize`` → ``audio-start``, ``audio-chunk``..., ``audio-stop``, audio
  flowing after the first fragment, not after the whole text.
- ``synthesize-start``, ``synthesize-chunk``... (an LLM's reply as it comes),
  ``synthesize-stop`` → the same audio events, starting before the stop
  arrives, then ``synthesize-stopped``. The ``synthesize`` that streaming
  clients also send, for servers that can't stream, is ignored meanwhile.

The receiving loop never waits for audio: a sender task per reply writes it,
so a client that hangs up is seen at once and its synthesis stopped. Wyoming
has no authentication: ``voicekit serve`` binds it to loopback unless told
``--wyoming-allow-lan``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped, SynthesizeVoice

from .. import __version__
from ..async_stream import AsyncSpeechStream
from ..errors import StreamError, VoicekitError
from ..tts import BaseTTS
from .core import Server
from .outbox import SAMPLE_RATE, Outbox

__all__ = ["WyomingServer", "WyomingSpeech"]

log = logging.getLogger("voicekit.server")

_AUDIO = {"rate": SAMPLE_RATE, "width": 2, "channels": 1}
_CHUNK_BYTES = SAMPLE_RATE // 10 * 2  # 100 ms per audio-chunk event, as wyoming-piper sends


class _Refused(Exception):
    """A request this connection can't serve: answered with an ``error`` event, the connection goes on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class WyomingSpeech(AsyncEventHandler):
    """One Wyoming connection: its own TTS (made at its first request), one reply at a time."""

    def __init__(self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self.server = server
        self._tts: BaseTTS | None = None
        self._voice: str | None = None  # the voice the TTS speaks with; None: the server's default
        self._stream: AsyncSpeechStream | None = None
        self._outbox: Outbox | None = None
        self._sender: asyncio.Task[None] | None = None
        self._finisher: asyncio.Task[None] | None = None
        self._streaming = False  # between synthesize-start and the end of its reply
        self._write_lock = asyncio.Lock()

    async def write_event(self, event: Event) -> None:
        async with self._write_lock:
            await super().write_event(event)

    async def handle_event(self, event: Event) -> bool:
        try:
            if Describe.is_type(event.type):
                await self.write_event((await self._info()).event())
            elif SynthesizeStart.is_type(event.type):
                await self._start(SynthesizeStart.from_event(event).voice, streaming=True)
            elif SynthesizeChunk.is_type(event.type):
                if self._streaming and self._stream is not None:
                    await self._stream.feed(SynthesizeChunk.from_event(event).text, ssml=False)
            elif SynthesizeStop.is_type(event.type):
                if self._streaming and self._stream is not None:
                    await self._end_text()
            elif Synthesize.is_type(event.type) and not self._streaming:
                request = Synthesize.from_event(event)
                await self._start(request.voice, streaming=False)
                assert self._stream is not None
                await self._stream.feed(request.text, ssml=False)  # Home Assistant's text is plain text
                await self._end_text()
        except _Refused as exc:
            await self.write_event(Error(text=str(exc), code=exc.code).event())
        except (StreamError, KeyError, TypeError, ValueError) as exc:  # a malformed event
            await self.write_event(Error(text=f"bad {event.type} event: {exc}", code="bad-request").event())
        return True

    async def disconnect(self) -> None:
        """The client left (or the server stops): silence and release at once."""
        with anyio.CancelScope(shield=True):
            await self._stop_reply()
            if self._tts is not None:
                tts, self._tts = self._tts, None
                await run_in_threadpool(tts.cleanup)
                self.server.leave("wyoming")

    # -- replies ------------------------------------------------------------------------------
    async def _start(self, voice: SynthesizeVoice | None, *, streaming: bool) -> None:
        if self._sender is not None and not self._sender.done():
            raise _Refused("busy", "a reply is still being spoken on this connection; wait for audio-stop")
        await self._prepare(await self._voice_id(voice))
        assert self._tts is not None
        self._outbox = outbox = Outbox(asyncio.get_running_loop(), capacity=self.server.settings.lookahead / 2, hold_back=False)
        outbox.start_reply(1)
        self._stream = stream = await self._tts.create_async_stream(sink=outbox, on_chunk_processed=self.server.observe(self._tts))
        self._streaming = streaming
        self._sender = asyncio.create_task(self._send(stream, outbox, streaming, time.monotonic()))

    async def _prepare(self, voice: str | None) -> None:
        """This connection's TTS, speaking ``voice``."""
        tts = self._tts
        if tts is None:
            if not self.server.try_enter("wyoming"):
                raise _Refused("busy", f"the server is at its limit of {self.server.settings.max_sessions} sessions")
            try:
                with anyio.CancelScope(shield=True):  # a TTS made is a TTS that disconnect() releases
                    tts = self._tts = await self.server.new_tts()
            except VoicekitError as exc:
                self.server.leave("wyoming")
                log.warning("voicekit.server: Wyoming session setup failed: %s", exc)
                raise _Refused("engine-unavailable", "the speech engine is not available") from None
            self._voice = None
        assert tts is not None
        if voice == self._voice:
            return
        if voice is None:  # back to the default: a fresh TTS has it
            with anyio.CancelScope(shield=True):
                self._tts = await self.server.new_tts()
                await run_in_threadpool(tts.cleanup)
        else:
            try:
                await run_in_threadpool(tts.set_voice, voice)
            except (VoicekitError, ValueError, KeyError) as exc:
                raise _Refused("unknown-voice", f"unknown voice {voice!r} ({exc}); describe lists the voices") from None
        self._voice = voice

    async def _voice_id(self, voice: SynthesizeVoice | None) -> str | None:
        """The engine voice a request names (by name, else by language), or None for the default."""
        if voice is None or not (voice.name or voice.language):
            return None
        if voice.name:
            return voice.name
        wanted = str(voice.language).lower().replace("_", "-")
        voices = await self.server.voices()
        for v in voices:
            if v.language.lower().replace("_", "-") == wanted:
                return v.id
        for v in voices:
            if v.language.lower().replace("_", "-").startswith(wanted.split("-")[0]):
                return v.id
        raise _Refused("unknown-language", f"no voice for language {voice.language!r}; describe lists the voices")

    async def _end_text(self) -> None:
        """The reply's text is complete: its end event follows its audio."""
        stream, outbox = self._stream, self._outbox
        assert stream is not None and outbox is not None
        await stream.done()
        self._finisher = asyncio.create_task(self._finish(stream, outbox))

    async def _send(self, stream: AsyncSpeechStream, outbox: Outbox, streaming: bool, started: float) -> None:
        """The reply's audio events, in order, as the audio comes; then its end."""
        try:
            began = False
            while True:
                if not outbox.items():
                    await outbox.changed()
                    continue
                item = outbox.pop()
                if item.kind == "end":
                    break
                if not began:
                    began = True
                    self.server.metrics.first_audio("wyoming", time.monotonic() - started)
                    await self.write_event(AudioStart(**_AUDIO).event())
                for i in range(0, len(item.audio), _CHUNK_BYTES):
                    await self.write_event(AudioChunk(audio=item.audio[i : i + _CHUNK_BYTES], **_AUDIO).event())
            if not began:
                await self.write_event(AudioStart(**_AUDIO).event())
            await self.write_event(AudioStop().event())
            if streaming:
                await self.write_event(SynthesizeStopped().event())
        except (ConnectionError, OSError):
            pass  # the client left; disconnect() releases the rest
        finally:
            self._streaming = False

    async def _finish(self, stream: AsyncSpeechStream, outbox: Outbox) -> None:
        try:
            await stream.wait_until_done()
        except StreamError as exc:
            log.warning("voicekit.server: Wyoming synthesis failed: %s", exc)
            self.server.metrics.engine_failed(getattr(exc, "engine", None) or self.server.settings.engine)
            await self.write_event(Error(text="the speech engine could not speak this text", code="engine-failed").event())
        await stream.close()
        outbox.finish_reply(1, {"type": "end"})

    async def _stop_reply(self) -> None:
        stream, sender, outbox, finisher = self._stream, self._sender, self._outbox, self._finisher
        self._stream = self._sender = self._outbox = self._finisher = None
        if outbox is not None:
            outbox.cut(1)
        tasks = [task for task in (sender, finisher) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if stream is not None:
            await stream.interrupt()
            await stream.close()

    async def _info(self) -> Info:
        engine = self.server.settings.engine
        attribution = Attribution(name=f"voicekit ({engine})", url="")
        voices = [
            TtsVoice(
                name=v.id, description=v.name, attribution=attribution, installed=True, version=None,
                languages=[v.language] if v.language else [],
            )  # fmt: skip
            for v in await self.server.voices()
        ]
        program = TtsProgram(
            name="voicekit", description=f"voicekit streaming speech ({engine})", attribution=attribution,
            installed=True, version=__version__, voices=voices, supports_synthesize_streaming=True,
        )  # fmt: skip
        return Info(tts=[program])


class WyomingServer:
    """Wyoming on ``host:port`` for as long as the ``async with`` lasts; leaving it ends every connection.

    ``port`` 0 takes a free port, then ``port`` tells which.
    """

    def __init__(self, server: Server, host: str, port: int) -> None:
        self.server = server
        self.host = host
        self.port = port
        self._listener: asyncio.AbstractServer | None = None
        self._connections: dict[asyncio.Task[Any], WyomingSpeech] = {}

    async def __aenter__(self) -> WyomingServer:
        self._listener = await asyncio.start_server(self._connected, host=self.host, port=self.port)
        self.port = self._listener.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._listener is not None
        self._listener.close()
        # each connection sees the end of its input and leaves through disconnect(), as if its client left
        await asyncio.gather(*(handler.stop() for handler in self._connections.values()), return_exceptions=True)
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._listener.wait_closed()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handler = self._connections[task] = WyomingSpeech(self.server, reader, writer)
        try:
            # run() calls disconnect() however it ends, which frees the connection's synthesis
            await handler.run()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass  # the client left mid-event
        finally:
            del self._connections[task]
