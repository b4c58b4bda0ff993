"""The sink a server session plays into, and the ordered queue its sender reads.

voicekit's playback thread writes int16 blocks here (the :class:`voicekit.Sink`
protocol) and the stream's callbacks add word and chunk events; one coroutine
on the event loop takes them out in order and sends them to the client. Nothing
in here blocks the event loop: the loop only takes a lock for a few list
operations and is woken with ``call_soon_threadsafe``.

Backpressure: ``write`` blocks the playback thread while ``capacity`` frames
are waiting to be sent, so together with the stream's ``lookahead`` the
session holds a bounded amount of audio however slowly the client reads.

Word events and audio: voicekit fires ``on_word`` on the playback thread right
after the block holding the word's start was written. With ``hold_back`` the
sink keeps each block until the next ``write`` (or the end of the reply), so in
the queue a word always comes before the audio that contains it.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import OutputError

__all__ = ["SAMPLE_RATE", "Item", "Outbox"]

SAMPLE_RATE = 24_000  # OpenAI's pcm format: 24 kHz, 16-bit, mono, little-endian


@dataclass(slots=True)
class Item:
    kind: str  # "audio", "word", "chunk" or "end"
    reply: int
    audio: bytes = b""
    event: dict[str, Any] | None = None

    @property
    def frames(self) -> int:
        return len(self.audio) // 2


class Outbox:
    """A :class:`voicekit.Sink` for 24 kHz mono int16 that queues audio and events for one client."""

    preferred_samplerate: int | None = SAMPLE_RATE
    pending_frames = 0  # handed over is "played": the client's clock comes back as `played`
    latency = 0.0

    def __init__(self, loop: asyncio.AbstractEventLoop, *, capacity: float, hold_back: bool) -> None:
        self._loop = loop
        self._capacity = max(1, int(capacity * SAMPLE_RATE))
        self._hold_back = hold_back
        self._cond = threading.Condition()
        self._items: deque[Item] = deque()
        self._queued = 0  # audio frames held or queued
        self._held: Item | None = None
        self._reply = 0  # the reply being played; 0: none, writes are dropped
        self._cut = 0  # the last reply cut by an interrupt
        self._aborts = 0
        self._open = False
        self._changed = asyncio.Event()
        self._wake_pending = False

    # -- the session (event loop) -------------------------------------------------------
    def start_reply(self, reply: int) -> None:
        with self._cond:
            self._reply = reply

    def cut(self, reply: int) -> None:
        """Drop all that is waiting of ``reply``, its end event too (an interrupt); later writes of it are dropped."""
        with self._cond:
            self._cut = reply
            if reply == self._reply:
                self._reply = 0
                self._held = None
            self._items = deque(item for item in self._items if item.reply != reply)
            self._queued = sum(item.frames for item in self._items)
            self._cond.notify_all()
        self._wake()

    def finish_reply(self, reply: int, event: dict[str, Any]) -> None:
        """Queue ``reply``'s end event after its audio; nothing of it is queued after this."""
        with self._cond:
            if reply == self._reply:
                self._release()
                self._reply = 0
            self._items.append(Item("end", reply, event=event))
            self._cond.notify_all()
        self._wake()

    def is_cut(self, reply: int) -> bool:
        return reply == self._cut

    def put(self, kind: str, reply: int, event: dict[str, Any]) -> None:
        """Queue an event (any thread); events never wait for room."""
        with self._cond:
            if reply != self._reply:
                return
            self._items.append(Item(kind, reply, event=event))
        self._wake()

    def flush(self) -> None:
        """The reply's audio is complete: release the held block."""
        with self._cond:
            self._release()
        self._wake()

    def items(self) -> list[Item]:
        """A snapshot of what is waiting, oldest first."""
        with self._cond:
            return list(self._items)

    def pop(self) -> Item:
        """The oldest item; taking audio makes room for the playback thread."""
        with self._cond:
            item = self._items.popleft()
            if item.frames:
                self._queued -= item.frames
                self._cond.notify_all()
            return item

    @property
    def full(self) -> bool:
        with self._cond:
            return self._queued >= self._capacity

    def word_end(self, word: Item, later: list[Item], chunk_ends: list[float]) -> float | None:
        """When ``word`` ends: the next word's start, its chunk's end, or the audio's end.

        ``later`` is what waits behind the word, ``chunk_ends`` the reply's chunk
        ends so far. None while that is not known yet and more audio is coming:
        the word (and the audio behind it) waits, so a word never trails its audio.
        """
        start = float((word.event or {})["start"])
        chunk_end = next((e for e in chunk_ends if e > start + 1e-6), math.inf)
        audio_after = 0
        for item in later:
            if item.kind == "word":
                return min(float((item.event or {})["start"]), chunk_end)
            if item.kind == "end":
                break
            audio_after += item.frames
        else:
            if not self.full:
                return None
        return min(start + audio_after / SAMPLE_RATE, chunk_end)

    async def changed(self, timeout: float | None = None) -> None:
        """Wait until something was queued (or ``timeout`` seconds)."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        self._changed.clear()
        with self._cond:
            self._wake_pending = False

    # -- the Sink protocol (voicekit's playback thread) ------------------------------------
    def open(self, samplerate: int, channels: int, dtype: str, *, blocksize: int, buffer_frames: int) -> None:
        if (samplerate, channels, str(dtype)) != (SAMPLE_RATE, 1, "int16"):
            raise OutputError(
                f"the server sends {SAMPLE_RATE} Hz mono int16; got {samplerate} Hz, {channels} channels, {dtype}"
            )
        with self._cond:
            self._open = True

    def write(self, frames: np.ndarray) -> None:
        data = np.ascontiguousarray(frames, dtype="<i2").tobytes()
        with self._cond:
            if not self._open:
                raise OutputError("Outbox.write() before open() or after close()")
            aborts = self._aborts
            while self._queued >= self._capacity and aborts == self._aborts and self._reply:
                self._cond.wait(0.1)
            if aborts != self._aborts or not self._reply:
                return
            self._queued += len(data) // 2
            self._release()
            item = Item("audio", self._reply, audio=data)
            if self._hold_back:
                self._held = item
            else:
                self._items.append(item)
        self._wake()

    def abort(self) -> None:
        with self._cond:
            self._aborts += 1
            if self._held is not None:
                self._queued -= self._held.frames
                self._held = None
            self._cond.notify_all()

    def drain(self) -> None:
        self.flush()

    def close(self) -> None:
        with self._cond:
            self._release()
            self._open = False
        self._wake()

    # -- internals ------------------------------------------------------------------------
    def _release(self) -> None:
        if self._held is not None:
            self._items.append(self._held)
            self._held = None

    def _wake(self) -> None:
        with self._cond:
            if self._wake_pending:
                return
            self._wake_pending = True
        try:
            self._loop.call_soon_threadsafe(self._changed.set)
        except RuntimeError:  # the loop closed: the session is gone, nobody is waiting
            pass
