"""Playback: one line per sink, process-wide, so one voice at a time.

Every stream playing to a sink, whichever TTS object made it, hands its
replies to that sink's :class:`PlaybackLine` (``line_for(sink)``). The line
plays them back to back without a gap, in the order they were submitted, on
one thread that exists only while something is queued: an idle sink holds no
thread and no open device.

The contract with the stream is the :class:`~voicekit.reply.Reply` and
nothing else: the stream calls ``submit(reply)`` and may cancel or hold it;
the line admits the first two replies in line (only they synthesize ahead, so
a thousand ``speak_streamed(..., wait=False)`` calls cost a thousand strings,
not a thousand threads), reads their audio, advances each reply's clock, and
reports once per reply through ``reply.report``.
The line alone decides when a reply is finished.
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from collections import deque
from dataclasses import dataclass

import numpy as np

from .errors import OutputError
from .reply import PlaybackReport, Reply
from .sinks._format import AudioFormat
from .sinks.base import Sink, missing_members

__all__ = ["PlaybackLine", "line_for", "to_output"]

log = logging.getLogger("voicekit")

_POLL = 0.02
_SCALE = {"int16": 32767.0, "int32": 2147483647.0}
# the first reply plays and the next synthesizes ahead
_ADMITTED = 2

_lines: weakref.WeakValueDictionary[int, PlaybackLine] = weakref.WeakValueDictionary()
_lines_lock = threading.Lock()


def line_for(sink: Sink) -> PlaybackLine:
    """The one playback line of ``sink`` in this process."""
    missing = missing_members(sink)
    if missing:
        raise TypeError(f"{sink!r} is not a voicekit Sink: it has no {', '.join(missing)} (see voicekit.sinks.base)")
    with _lines_lock:
        line = _lines.get(id(sink))
        if line is None:
            # a line holds its sink, so while the line lives no other sink can reuse this id
            line = _lines[id(sink)] = PlaybackLine(sink)
        return line


def to_output(block: np.ndarray, fmt: AudioFormat) -> np.ndarray:
    """float32 mono to the sink's dtype and channel count, shaped (frames, channels)."""
    if fmt.dtype == "float32":
        out = block.astype(np.float32, copy=False)
    else:
        out = (np.clip(block, -1.0, 1.0) * _SCALE[fmt.dtype]).astype(fmt.dtype)
    out = out.reshape(-1, 1)
    return np.repeat(out, fmt.channels, axis=1) if fmt.channels > 1 else out


@dataclass(eq=False)
class _Playing:
    """A reply that reached the sink: where it starts and ends in the line's frame count."""

    reply: Reply
    start: int
    end: int | None = None
    #: cancel seen and what was heard frozen
    stopped: bool = False


class PlaybackLine:
    def __init__(self, sink: Sink):
        self.sink = sink
        self._cond = threading.Condition()
        self._queue: deque[Reply] = deque()
        self._current: _Playing | None = None
        # written to the sink and maybe still sounding; finished once the clock passes their end
        self._tracking: list[_Playing] = []
        self._written = 0
        # _written at the last abort: nothing written since means nothing to drain
        self._aborted_at = -1
        self._opened: AudioFormat | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<PlaybackLine {self.sink!r} queued={len(self._queue)}>"

    def submit(self, reply: Reply) -> None:
        """Queue ``reply`` behind everything already submitted to this sink."""
        with self._cond:
            self._queue.append(reply)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="voicekit-playback", daemon=True)
                self._thread.start()
            admit = self._to_admit()
            self._cond.notify_all()
        self._admit(admit)
        reply.cancel_signal.call_on_set(lambda: self._cancelled(reply))

    def wait_released(self, timeout: float | None = None) -> bool:
        """Wait until the line has closed its sink, unless a reply still wants to play.

        For ``cleanup()`` and interpreter exit: a ``WavSink`` is complete on
        disk afterwards. Returns whether the line is idle.
        """
        with self._cond:
            if self._thread is threading.current_thread():
                return False
            return self._cond.wait_for(lambda: self._thread is None or self._wanted(), timeout) and self._thread is None

    def _wanted(self) -> bool:
        """Some reply still has something to play (lock held)."""
        return any(not r.settled for r in self._queue) or any(not p.reply.settled for p in self._tracking)

    # -- signals from the stream ------------------------------------------------------
    def _cancelled(self, reply: Reply) -> None:
        """``reply`` was cancelled (any thread): freeze what was heard, silence it now."""
        with self._cond:
            playing = next((p for p in self._tracking if p.reply is reply), None)
            if playing is not None:
                self._stop(playing)
                self._cond.notify_all()
                return  # the playback thread reports it
            if reply not in self._queue:
                return
            self._queue.remove(reply)
            admit = self._to_admit()
        self._admit(admit)
        reply.report(PlaybackReport(0, interrupted=True))

    def _stop(self, playing: _Playing) -> int:
        """Freeze what was heard of a cancelled reply and silence it (lock held); frames heard."""
        if not playing.stopped:
            playing.stopped = True
            playing.reply.stop_at(self._played() - playing.start)
            if playing is self._current and self._opened is not None:
                self._abort()
        return playing.reply.stop_at(0)  # already frozen: returns the frames heard

    def _abort(self) -> None:
        """Silence the sink now (lock held)."""
        self.sink.abort()
        self._aborted_at = self._written

    def _to_admit(self) -> list[Reply]:
        """Replies that may now synthesize ahead (lock held)."""
        room = _ADMITTED - (self._current is not None)
        return [r for r in itertools.islice(self._queue, max(0, room)) if not r.admitted]

    @staticmethod
    def _admit(replies: list[Reply]) -> None:
        for reply in replies:  # no lock held: this starts the streams' workers
            reply.admit()

    # -- the playback thread ----------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    if not self._queue:
                        if self._release():
                            return
                        continue
                    reply = self._queue.popleft()
                    playing = self._current = _Playing(reply, self._written)
                    self._tracking.append(playing)
                    admit = self._to_admit()
                self._admit(admit)
                self._play(playing)
        except BaseException as exc:  # noqa: BLE001 - hand the failure to every waiting reply
            # every stream raises it too; a traceback only helps when it is a bug, not a device error
            log.error("voicekit: playback failed: %s", exc, exc_info=not isinstance(exc, OutputError))
            self._fail(exc)

    def _play(self, playing: _Playing) -> None:
        reply, fmt = playing.reply, playing.reply.format
        started = False
        try:
            while not reply.cancelled:
                if reply.held:
                    self._tick()
                    reply.cancel_signal.wait(_POLL)
                    continue
                block = reply.read(fmt.blocksize, self._read_timeout())
                if block is None:
                    break
                if not len(block):
                    if not started and len(self._tracking) > 1:
                        # nothing to play yet: let the previous reply end here, so the
                        # gap is not an underrun and its waiters learn it was heard
                        self._drain()
                    self._tick()
                    continue
                if not started:
                    self._open(fmt)
                    started = True
                self.sink.write(to_output(block, fmt))
                with self._cond:
                    self._written += len(block)
                    if reply.cancelled:
                        # cancelled while this block was on its way in: silence it too
                        self._abort()
                self._tick()
        finally:
            with self._cond:
                cancelled = reply.cancelled
                if cancelled:
                    heard = self._stop(playing)
                    self._tracking.remove(playing)
                else:
                    playing.end = self._written
                self._current = None
        if cancelled:
            reply.advance(0)  # words heard before the interrupt, in order, on this thread
            reply.report(PlaybackReport(heard, interrupted=True))
        self._tick()

    def _read_timeout(self) -> float | None:
        """Tick while written audio still sounds (its words come due); else sleep until the buffer changes.

        A hundred idle lines polling would keep a hundred threads fighting an
        event loop for the GIL.
        """
        with self._cond:
            return _POLL if self._played() < self._written else None

    def _open(self, fmt: AudioFormat) -> None:
        if self._opened == fmt:
            return
        if self._opened is not None:
            self._drain()
            self.sink.close()
        self._opened = None
        self.sink.open(fmt.samplerate, fmt.channels, fmt.dtype, blocksize=fmt.blocksize, buffer_frames=fmt.buffer_frames)
        with self._cond:
            self._opened = fmt

    def _release(self) -> bool:
        """Queue empty: let the tail play, close the sink, end the thread (lock held)."""
        if self._opened is not None:
            self._cond.release()
            try:
                self._drain()
            finally:
                self._cond.acquire()
            if self._queue:
                return False
            self.sink.close()
            self._opened = None
        self._thread = None
        self._cond.notify_all()
        return True

    def _drain(self) -> None:
        """Wait until the sink played everything: every reply written is then finished."""
        if self._opened is not None and self._written != self._aborted_at:
            self.sink.drain()
        self._tick(drained=True)

    def _played(self) -> int:
        """Frames that reached the speaker (lock held): written, less what the sink still
        holds and its own output latency."""
        if self._opened is None:
            return self._written
        latency = round(self.sink.latency * self._opened.samplerate)
        return self._written - self.sink.pending_frames - latency

    def _tick(self, drained: bool = False) -> None:
        """Move every written reply's clock; report those that are over."""
        with self._cond:
            played = self._played()
            tracking = list(self._tracking)
            over = []
            for p in tracking:
                if p is self._current:
                    continue
                if p.reply.cancelled:
                    over.append((p, self._stop(p), True))
                elif p.end is not None and (drained or played >= p.end):
                    over.append((p, p.end - p.start, False))
            for p, _, _ in over:
                self._tracking.remove(p)
        for p in tracking:
            p.reply.advance(played - p.start)
        for p, heard, interrupted in over:
            p.reply.advance(heard)
            p.reply.report(PlaybackReport(heard, interrupted=interrupted))

    def _fail(self, exc: BaseException) -> None:
        try:
            self.sink.close()
        except Exception:  # noqa: BLE001 - already failing; the first error is the one reported
            log.debug("voicekit: sink close after failure raised", exc_info=True)
        with self._cond:
            replies = [p.reply for p in self._tracking] + list(self._queue)
            self._queue.clear()
            self._tracking.clear()
            self._current = None
            self._opened = None
            self._thread = None
            self._cond.notify_all()
        for reply in replies:
            reply.report(PlaybackReport(0, interrupted=True, error=exc))
