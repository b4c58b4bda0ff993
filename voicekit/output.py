"""Playback: one sink, one voice at a time.

An :class:`Output` owns one sink and one playback thread. Streams queue up in
creation order and their replies play back to back without a gap; the thread
exists only while something is queued, so an idle TTS holds no thread and no
open device. Only the first two streams in line synthesize ahead (see
``_activate_front``), so a thousand ``speak_streamed(..., wait=False)`` calls
cost a thousand strings, not a thousand threads.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .reply import Reply
    from .sinks.base import Sink
    from .stream import SpeechStream

__all__ = ["Output", "OutputFormat"]

log = logging.getLogger("voicekit")

_POLL = 0.02
_SCALE = {"int16": 32767.0, "int32": 2147483647.0}


@dataclass(frozen=True)
class OutputFormat:
    samplerate: int
    channels: int
    dtype: str
    blocksize: int
    buffer_frames: int


def to_output(block: np.ndarray, fmt: OutputFormat) -> np.ndarray:
    """float32 mono to the sink's dtype and channel count, shaped (frames, channels)."""
    if fmt.dtype == "float32":
        out = block.astype(np.float32, copy=False)
    else:
        out = (np.clip(block, -1.0, 1.0) * _SCALE[fmt.dtype]).astype(fmt.dtype)
    out = out.reshape(-1, 1)
    return np.repeat(out, fmt.channels, axis=1) if fmt.channels > 1 else out


class Output:
    def __init__(self, sink: Sink, fmt: OutputFormat):
        self.sink = sink
        self.format = fmt
        self._queue: deque[SpeechStream] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._current: Reply | None = None
        self._tracking: list[Reply] = []
        self._written = 0
        self._opened = False

    @property
    def idle(self) -> bool:
        with self._cond:
            return not self._queue and self._thread is None

    def enqueue(self, stream: SpeechStream) -> None:
        with self._cond:
            self._queue.append(stream)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="voicekit-playback", daemon=True)
                self._thread.start()
            self._activate_front()
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def interrupt(self, reply: Reply) -> None:
        """Silence ``reply`` now, from any thread, freezing what was heard."""
        with self._cond:
            if reply is self._current:
                reply.advance(self._played())
                self.sink.abort()
            reply.frozen = True

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- the playback thread ----------------------------------------------------------
    def _activate_front(self) -> None:
        for stream in list(self._queue)[:2]:
            stream._activate()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._queue and self._queue[0]._exhausted():
                        self._queue.popleft()
                        self._activate_front()
                    if not self._queue:
                        if self._release():
                            return
                        continue
                    stream = self._queue[0]
                    reply = stream._next_reply()
                    if reply is None:
                        self._cond.wait(_POLL)
                if reply is None:
                    if self._tracking:
                        # nothing to write: let the sink know the audio ended here,
                        # so the pause is not an underrun and waiters learn it was played
                        self._drain()
                    else:
                        self._tick()
                    continue
                self._play(stream, reply)
        except BaseException as exc:  # noqa: BLE001 - hand the failure to every waiting stream
            log.exception("voicekit: playback failed")
            self._fail(exc)

    def _release(self) -> bool:
        """Queue empty: let the tail play, close the sink, end the thread (lock held)."""
        if self._opened:
            self._cond.release()
            try:
                self._drain()
            finally:
                self._cond.acquire()
            if self._queue:
                return False
            self.sink.close()
            self._opened = False
        self._thread = None
        return True

    def _drain(self) -> None:
        """Wait until the sink played everything, then every played reply is finished."""
        if self._opened:
            self.sink.drain()
        self._tick()
        with self._cond:
            tracking, self._tracking = self._tracking, []
        for reply in tracking:
            reply.finish(completed=True)

    def _play(self, stream: SpeechStream, reply: Reply) -> None:
        fmt = self.format
        if not self._opened:
            self.sink.open(fmt.samplerate, fmt.channels, fmt.dtype, blocksize=fmt.blocksize, buffer_frames=fmt.buffer_frames)
            self._opened = True
        with self._cond:
            reply.start_total = self._written
            self._current = reply
            self._tracking.append(reply)
        try:
            while True:
                if reply.cancel.is_set():
                    break
                if stream._paused.is_set():
                    self._tick()
                    stream._resumed.wait(_POLL)
                    continue
                block = reply.buffer.read(fmt.blocksize, _POLL)
                if block is None:
                    break
                if len(block):
                    self.sink.write(to_output(block, fmt))
                    with self._cond:
                        self._written += len(block)
                        if reply.cancel.is_set():
                            self.sink.abort()
                self._tick()
        finally:
            with self._cond:
                self._current = None
                if reply.cancel.is_set():
                    self._tracking.remove(reply)
                    reply.finish(completed=False)
                else:
                    reply.end_total = self._written
            self._tick()

    def _played(self) -> int:
        """Frames that reached the speaker: written, less what the sink still holds
        and its own output latency (a DeviceSink's ``latency``; 0 for the others)."""
        latency = round(getattr(self.sink, "latency", 0.0) * self.format.samplerate)
        return self._written - self.sink.pending_frames - latency

    def _tick(self) -> None:
        with self._cond:
            played = self._played()
            tracking = list(self._tracking)
        for reply in tracking:
            reply.advance(played)
            if reply.finished.is_set():
                with self._cond:
                    if reply in self._tracking:
                        self._tracking.remove(reply)

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            streams = list(self._queue)
            self._queue.clear()
            self._thread = None
            tracking, self._tracking = self._tracking, []
        for reply in tracking:
            reply.finish(completed=False)
        for stream in streams:
            stream._output_failed(exc)
        try:
            self.sink.close()
        except Exception:  # noqa: BLE001 - already failing; the first error is the one reported
            log.debug("voicekit: sink close after failure raised", exc_info=True)
        self._opened = False
