"""WebSocket ``/v1/speak``: live speech for one chat, with barge-in.

The protocol (docs/server.md has the full contract)::

    server: {"type":"ready","sample_rate":24000,"format":"s16le","channels":1}
    client: {"type":"text","text":...}  (any number)   {"type":"done"}
            {"type":"interrupt","played":S}            {"type":"config","voice":...,"rate":...,"volume":...,"pitch":...}
    server: binary audio frames, {"type":"word",...}, {"type":"chunk",...}, {"type":"error",...},
            and per reply exactly one of {"type":"reply_done","text":...} or
            {"type":"interrupted","heard_text":...,"unspoken_text":...}

Two coroutines per connection: the receiver handles client messages, the
sender is the only one that sends reply data, in the order the outbox holds it.
Audio is paced: at most ``lookahead`` seconds ahead of the client's real-time
playback (counted from the reply's first frame), so a slow client is never fed
without bound and an interrupt wastes little.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..async_stream import AsyncSpeechStream
from ..errors import StreamError, VoicekitError
from ..tts import BaseTTS
from .core import ClientError, Server, parse_json
from .guard import deny
from .outbox import SAMPLE_RATE, Item, Outbox

__all__ = ["speak_socket"]

log = logging.getLogger("voicekit.server")

READY = {"type": "ready", "sample_rate": SAMPLE_RATE, "format": "s16le", "channels": 1}
_FRAME = SAMPLE_RATE // 5  # frames per binary message at most (200 ms)


class _Closing(Exception):
    """End the session with this WebSocket close code after an error message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Reply:
    id: int
    stream: AsyncSpeechStream = field(init=False)
    chunk_ends: list[float] = field(default_factory=list)  # cumulative, on the reply's timeline
    done: bool = False  # the client sent "done"
    sent_frames: int = 0
    first_sent: float | None = None  # when its first audio left, for pacing
    started: float = field(default_factory=time.monotonic)  # its first text came
    finisher: asyncio.Task[None] | None = None


async def speak_socket(server: Server, websocket: WebSocket) -> None:
    if not server.try_enter("websocket"):
        limit = f"the server is at its limit of {server.settings.max_sessions} sessions; retry shortly"
        await deny(websocket.scope, websocket.send, 503, limit, headers=[(b"retry-after", b"1")])
        return
    try:
        protocols = websocket.scope.get("subprotocols", [])
        # a browser that offered subprotocols (the token) must get one back
        await websocket.accept(subprotocol="voicekit" if protocols and "voicekit" in protocols else None)
        tts = await server.new_tts()
        session = _Session(server, websocket, tts)
        await session.run()
    except WebSocketDisconnect:
        pass
    except VoicekitError as exc:
        log.warning("voicekit.server: session setup failed: %s", exc)
        await _close(websocket, 1011, "the speech engine is not available")
    finally:
        server.leave("websocket")


async def _close(websocket: WebSocket, code: int, message: str) -> None:
    try:
        await websocket.send_text(json.dumps({"type": "error", "message": message}))
        await websocket.close(code)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # already gone


class _Session:
    def __init__(self, server: Server, websocket: WebSocket, tts: BaseTTS) -> None:
        self.server = server
        self.settings = server.settings
        self.ws = websocket
        self.tts = tts
        self.outbox = Outbox(asyncio.get_running_loop(), capacity=self.settings.lookahead / 2, hold_back=True)
        self.reply: _Reply | None = None  # from the first text until its end event is queued
        self.replies = 0
        self.received = 0
        self.send_lock = asyncio.Lock()

    async def run(self) -> None:
        await self.send_json(READY)
        sender = asyncio.create_task(self._send_loop())
        try:
            await self._receive_loop(sender)
        except _Closing as exc:
            await self._stop()
            await _close(self.ws, exc.code, str(exc))
        except (WebSocketDisconnect, OSError):
            pass
        except Exception:
            log.exception("voicekit.server: session failed")
            await self._stop()
            await _close(self.ws, 1011, "internal server error")
        finally:
            with anyio.CancelScope(shield=True):
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
                await self._stop()
                await run_in_threadpool(self.tts.cleanup)

    # -- receiving ----------------------------------------------------------------------
    async def _receive_loop(self, sender: asyncio.Task[None]) -> None:
        while True:
            receive = asyncio.ensure_future(self.ws.receive())
            done, _ = await asyncio.wait({receive, sender}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:
                receive.cancel()
                sender.result()  # the sender failed or the client is gone: raise why
                return
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await self.error("binary frames are not accepted; send JSON text messages")
                continue
            self.received += len(text)
            if len(text) > self.settings.max_message_chars:
                raise _Closing(1009, f"message longer than {self.settings.max_message_chars} characters")
            if self.received > self.settings.max_session_chars:
                raise _Closing(1008, f"this session passed its limit of {self.settings.max_session_chars} characters")
            try:
                data = parse_json(text)
            except ClientError as exc:
                await self.error(f"messages must be JSON objects: {exc}")
                continue
            kind = data.get("type") if isinstance(data, dict) else None
            handler = self._handlers.get(kind) if isinstance(kind, str) else None
            if handler is None:
                await self.error(f"unknown message type {kind!r}; use text, done, interrupt or config")
                continue
            await handler(self, data)

    async def _on_text(self, data: dict[str, Any]) -> None:
        text = data.get("text")
        if not isinstance(text, str):
            await self.error("'text' must be a string")
            return
        reply = self.reply
        if reply is not None and reply.done:
            await self.error("text after done: wait for reply_done (or send interrupt) before the next reply")
            return
        if not text:
            return
        if reply is None:
            reply = await self._start_reply()
        try:
            # a remote client's text is never SSML, whatever it starts with
            await reply.stream.feed(text, ssml=False)
        except StreamError as exc:
            await self.error(f"could not take the text: {exc}")

    async def _on_done(self, data: dict[str, Any]) -> None:
        reply = self.reply
        if reply is None:
            self._end_empty_reply({"type": "reply_done", "text": ""})
            return
        if reply.done:
            return
        reply.done = True
        await reply.stream.done()
        reply.finisher = asyncio.create_task(self._finish(reply))

    async def _on_interrupt(self, data: dict[str, Any]) -> None:
        asked = time.monotonic()
        played = data.get("played", 0.0)
        if isinstance(played, bool) or not isinstance(played, (int, float)) or not math.isfinite(played) or played < 0:
            await self.error("'played' must be the seconds of this reply's audio played, a number >= 0")
            return
        reply = self.reply
        if reply is None:
            # no reply in progress (none yet, or its end event is on its way): this ends an empty one
            self._end_empty_reply({"type": "interrupted", "heard_text": "", "unspoken_text": ""})
            return
        self.reply = None
        self.outbox.cut(reply.id)
        async with self.send_lock:  # a frame being sent now is the reply's last
            self.server.metrics.interrupted(time.monotonic() - asked)
        if reply.finisher is not None:
            reply.finisher.cancel()
        # the client's clock, not the handover, says what was heard: it may lag by the whole reply
        unheard = await reply.stream.interrupt(played=min(float(played), reply.sent_frames / SAMPLE_RATE))
        heard = reply.stream.heard_text
        await reply.stream.close()
        self.outbox.finish_reply(reply.id, {"type": "interrupted", "heard_text": heard.strip(), "unspoken_text": unheard.strip()})

    async def _on_config(self, data: dict[str, Any]) -> None:
        if self.reply is not None:
            await self.error("config applies between replies: wait for the end event first")
            return
        try:
            if "voice" in data:
                voice = data["voice"]
                if not isinstance(voice, str) or not voice:
                    raise ValueError("'voice' must be a voice id string")
                await run_in_threadpool(self.tts.set_voice, voice)
            for name in ("rate", "volume", "pitch"):
                if name in data:
                    await run_in_threadpool(self.tts.set_property, name, data[name])
        except (VoicekitError, ValueError, KeyError) as exc:
            await self.error(f"config: {exc}")

    _handlers: ClassVar[dict[str, Any]] = {"text": _on_text, "done": _on_done, "interrupt": _on_interrupt, "config": _on_config}

    # -- replies --------------------------------------------------------------------------
    async def _start_reply(self) -> _Reply:
        self.replies += 1
        reply = _Reply(self.replies)

        # called on voicekit's threads: they only append and queue
        def on_word(info: dict[str, Any]) -> None:
            word, start = info["word"], float(info["time"])
            self.outbox.put("word", reply.id, {"type": "word", "word": word, "start": start})

        observe = self.server.observe(self.tts)

        def on_chunk(info: Any) -> None:
            observe(info)
            ends = reply.chunk_ends
            ends.append((ends[-1] if ends else 0.0) + float(info["duration"]))
            event = {"type": "chunk", "text": info["text"], "duration": round(float(info["duration"]), 3)}
            self.outbox.put("chunk", reply.id, event)

        self.outbox.start_reply(reply.id)
        reply.stream = await self.tts.create_async_stream(sink=self.outbox, on_word=on_word, on_chunk_processed=on_chunk)
        self.reply = reply
        return reply

    def _end_empty_reply(self, event: dict[str, Any]) -> None:
        """An end event for a reply with no text, queued behind whatever the client has yet to get."""
        self.replies += 1
        self.outbox.finish_reply(self.replies, event)

    async def _finish(self, reply: _Reply) -> None:
        """After done: once everything was handed over, queue reply_done behind the audio."""
        error: StreamError | None = None
        try:
            await reply.stream.wait_until_done()
        except StreamError as exc:
            error = exc
        if self.reply is not reply:
            return
        text = reply.stream.heard_text
        await reply.stream.close()
        if self.reply is not reply:
            return
        if error is not None:
            self.server.metrics.engine_failed(getattr(error, "engine", None) or self.settings.engine)
            await self.error(str(error), unspoken_text=getattr(error, "unspoken_text", ""))
        self.outbox.finish_reply(reply.id, {"type": "reply_done", "text": text})

    async def _stop(self) -> None:
        """The connection ends: silence and release the reply in progress."""
        reply, self.reply = self.reply, None
        if reply is None:
            return
        self.outbox.cut(reply.id)
        if reply.finisher is not None:
            reply.finisher.cancel()
        await reply.stream.interrupt()
        await reply.stream.close()

    # -- sending -----------------------------------------------------------------------------
    async def send_json(self, event: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(event))

    async def error(self, message: str, **extra: Any) -> None:
        await self.send_json({"type": "error", "message": message, **extra})

    async def _send_loop(self) -> None:
        while True:
            items = self.outbox.items()
            if not items:
                await self.outbox.changed()
                continue
            head = items[0]
            if head.kind == "word":
                end = self.outbox.word_end(head, items[1:], self.reply.chunk_ends if self.reply else [])
                if end is None:
                    await self.outbox.changed(0.25)
                    continue
                self.outbox.pop()
                event = head.event or {}
                await self.send_json({"type": "word", "word": event["word"], "start": round(event["start"], 3), "end": round(end, 3)})
            elif head.kind == "audio":
                await self._send_audio(head, items)
            else:
                self.outbox.pop()
                if head.kind == "end" and self.reply is not None and self.reply.id == head.reply:
                    self.reply = None
                await self.send_json(head.event or {})

    async def _send_audio(self, head: Item, items: list[Item]) -> None:
        reply = self.reply
        if reply is None or reply.id != head.reply or self.outbox.is_cut(head.reply):
            self.outbox.pop()  # a cut reply's straggler
            return
        now = time.monotonic()
        if reply.first_sent is not None:
            ahead = reply.sent_frames / SAMPLE_RATE - (now - reply.first_sent)
            if ahead > self.settings.lookahead:
                await self.outbox.changed(ahead - self.settings.lookahead)
                return
        audio = bytearray(self.outbox.pop().audio)
        for more in items[1:]:
            if more.kind != "audio" or len(audio) // 2 + more.frames > _FRAME:
                break
            audio += self.outbox.pop().audio
        if reply.first_sent is None:
            reply.first_sent = now
            self.server.metrics.first_audio("websocket", now - reply.started)
        reply.sent_frames += len(audio) // 2
        async with self.send_lock:
            await self.ws.send_bytes(bytes(audio))
