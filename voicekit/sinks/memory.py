"""Sinks that need no device: MemorySink keeps the audio, NullSink drops it."""

from __future__ import annotations

import threading
import time

import numpy as np

from ..errors import OutputError
from ._format import AudioFormat, ClosesOnExit, require_open

__all__ = ["MemorySink", "NullSink"]


class MemorySink(ClosesOnExit):
    """Keeps every frame written, as a numpy array: for tests, post-processing, or a UI.

    ``audio`` is everything kept so far, shaped ``(n,)`` for mono or
    ``(n, channels)``, in the dtype given to ``open``; ``samplerate``,
    ``channels`` and ``seconds`` describe it (None/0 before the first ``open``).
    Opening again (same rate, channels and dtype) appends, so one sink can
    collect several streams; ``clear()`` forgets the audio.

    With ``realtime=False`` (default) writes never block and nothing is ever
    pending. With ``realtime=True`` the sink behaves like a sound card: a
    virtual clock consumes the written frames at ``samplerate`` frames per second of wall
    time, ``write`` blocks while the unplayed frames would exceed ``buffer_frames``,
    and ``abort()``/``close()`` drop the unplayed part, so ``audio`` holds only what
    was "heard". A ``write`` blocked when ``abort()`` is called is dropped too.
    """

    preferred_samplerate: int | None = None
    latency = 0.0

    def __init__(self, realtime: bool = False) -> None:
        self.realtime = realtime
        self._cond = threading.Condition()
        self._format: AudioFormat | None = None
        self._last_format: AudioFormat | None = None
        self._chunks: list[np.ndarray] = []
        self._frames = 0
        # realtime clock: frames consumed so far, and when that was last updated
        self._played = 0.0
        self._clock = 0.0
        self._generation = 0

    def open(
        self, samplerate: int, channels: int, dtype: str, *, blocksize: int, buffer_frames: int
    ) -> None:
        fmt = AudioFormat.create(samplerate, channels, dtype, blocksize, buffer_frames)
        with self._cond:
            old = self._last_format
            if self._frames and old is not None and _layout(old) != _layout(fmt):
                raise OutputError(
                    f"MemorySink holds {old.samplerate} Hz {old.channels}-channel {old.dtype} audio; "
                    f"call clear() before opening it for {fmt.samplerate} Hz {fmt.channels}-channel "
                    f"{fmt.dtype}"
                )
            self._format = self._last_format = fmt

    def write(self, frames: np.ndarray) -> None:
        with self._cond:
            fmt = require_open(self._format, self)
            fmt.check(frames)
            if self.realtime and not self._wait_for_room(fmt, len(frames)):
                return
            self._chunks.append(frames.copy())
            self._frames += len(frames)

    def _wait_for_room(self, fmt: AudioFormat, count: int) -> bool:
        """Block until ``count`` more frames fit; False if aborted/closed meanwhile."""
        generation = self._generation
        room = max(fmt.buffer_frames, count)
        while True:
            self._advance()
            excess = self._frames - self._played + count - room
            if excess <= 0:
                return True
            self._cond.wait(excess / fmt.samplerate)
            if generation != self._generation:
                return False

    def _advance(self) -> None:
        # Idle time (nothing pending) is not "played": the clock only runs while audio is queued.
        now = time.monotonic()
        if self._format is not None and self._played < self._frames:
            elapsed = (now - self._clock) * self._format.samplerate
            self._played = min(float(self._frames), self._played + elapsed)
        self._clock = now

    @property
    def pending_frames(self) -> int:
        if not self.realtime:
            return 0
        with self._cond:
            self._advance()
            return self._frames - int(self._played)

    def abort(self) -> None:
        with self._cond:
            self._generation += 1
            if self.realtime:
                self._advance()
                self._truncate(int(self._played))
            self._cond.notify_all()

    def _truncate(self, keep: int) -> None:
        if keep < self._frames:
            self._chunks = [np.concatenate(self._chunks)[:keep]]
            self._frames = keep
        self._played = float(keep)

    def drain(self) -> None:
        with self._cond:
            generation = self._generation
            while self.realtime and self._format is not None and generation == self._generation:
                self._advance()
                left = self._frames - self._played
                if left <= 0:
                    return
                self._cond.wait(left / self._format.samplerate)

    def close(self) -> None:
        self.abort()
        with self._cond:
            self._format = None

    def clear(self) -> None:
        """Forget the audio kept so far (the sink stays open)."""
        with self._cond:
            self._chunks = []
            self._frames = 0
            self._played = 0.0

    @property
    def samplerate(self) -> int | None:
        fmt = self._last_format
        return fmt.samplerate if fmt else None

    @property
    def channels(self) -> int | None:
        fmt = self._last_format
        return fmt.channels if fmt else None

    @property
    def seconds(self) -> float:
        fmt = self._last_format
        return self._frames / fmt.samplerate if fmt else 0.0

    @property
    def audio(self) -> np.ndarray:
        """A copy of the audio kept: shape (n,) for mono, (n, channels) otherwise."""
        with self._cond:
            fmt = self._last_format
            if fmt is None:
                return np.zeros(0, np.float32)
            if len(self._chunks) > 1:
                self._chunks = [np.concatenate(self._chunks)]
            data = self._chunks[0] if self._chunks else np.zeros((0, fmt.channels), fmt.dtype)
            return (data[:, 0] if fmt.channels == 1 else data).copy()


def _layout(fmt: AudioFormat) -> tuple[int, int, str]:
    return fmt.samplerate, fmt.channels, fmt.dtype


class NullSink(ClosesOnExit):
    """Discards audio at once: for benchmarks and headless runs.

    It still checks every block like the other sinks, so format bugs surface;
    nothing is ever pending and ``write`` never blocks.
    """

    preferred_samplerate: int | None = None
    pending_frames = 0
    latency = 0.0

    def __init__(self) -> None:
        self._format: AudioFormat | None = None

    def open(
        self, samplerate: int, channels: int, dtype: str, *, blocksize: int, buffer_frames: int
    ) -> None:
        self._format = AudioFormat.create(samplerate, channels, dtype, blocksize, buffer_frames)

    def write(self, frames: np.ndarray) -> None:
        require_open(self._format, self).check(frames)

    def abort(self) -> None:
        """Nothing is pending, so nothing to drop."""

    def drain(self) -> None:
        """Nothing is pending, so nothing to wait for."""

    def close(self) -> None:
        self._format = None
