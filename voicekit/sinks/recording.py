"""RecordingSink: play through another sink and keep what was heard."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OutputError
from ._format import AudioFormat, ClosesOnExit
from .base import Sink
from .wav import wav_bytes

__all__ = ["Recording", "RecordingSink"]


@dataclass(frozen=True)
class Recording:
    """Audio that was played: ``audio`` shaped (frames, channels) at ``samplerate``."""

    audio: np.ndarray
    samplerate: int

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.samplerate if self.samplerate else 0.0

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write it as a 16-bit WAV file; OutputError if it is empty or the file can't be written."""
        if not len(self.audio):
            raise OutputError("nothing was played, so there is nothing to save")
        try:
            Path(path).write_bytes(wav_bytes(self.audio, self.samplerate))
        except OSError as exc:
            raise OutputError(f"writing WAV file {os.fspath(path)} failed: {exc.strerror or exc}") from exc


class RecordingSink(ClosesOnExit):
    """Passes every block on to ``sink`` and keeps a copy of what was played.

    When playback is aborted (a barge-in), the frames ``sink`` had not played
    yet (its ``pending_frames``) are cut from the recording, and so is a block
    whose ``write`` the abort cut short: ``audio`` is what reached the speaker,
    not what was synthesized. ``recording`` is what was played so far;
    ``take()`` returns it and starts a new one (e.g. one per reply).

    The recording grows with everything played until ``take()``: one reply is
    small, a day of narration is not.
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._lock = threading.Lock()
        self._format: AudioFormat | None = None
        self._chunks: list[np.ndarray] = []
        self._frames = 0
        self._aborts = 0  # bumped by abort(), so a write it cut short is not recorded

    def __repr__(self) -> str:
        return f"RecordingSink({self.sink!r})"

    # -- the Sink protocol, passed through --------------------------------------------
    @property
    def preferred_samplerate(self) -> int | None:
        return self.sink.preferred_samplerate

    @property
    def latency(self) -> float:
        """The inner sink's output latency, so the playback clock stays exact."""
        return self.sink.latency

    @property
    def pending_frames(self) -> int:
        return self.sink.pending_frames

    def open(
        self, samplerate: int, channels: int, dtype: str, *, blocksize: int, buffer_frames: int
    ) -> None:
        fmt = AudioFormat.create(samplerate, channels, dtype, blocksize, buffer_frames)
        self.sink.open(samplerate, channels, dtype, blocksize=blocksize, buffer_frames=buffer_frames)
        with self._lock:
            old = self._format
            if old is not None and (old.samplerate, old.channels, old.dtype) != (samplerate, channels, fmt.dtype):
                self._chunks, self._frames = [], 0  # a recording holds one format
            self._format = fmt

    def write(self, frames: np.ndarray) -> None:
        with self._lock:
            aborts = self._aborts
        self.sink.write(frames)
        with self._lock:
            if aborts == self._aborts:
                self._chunks.append(frames.copy())
                self._frames += len(frames)

    def abort(self) -> None:
        self._cut_unplayed()
        self.sink.abort()

    def drain(self) -> None:
        self.sink.drain()

    def close(self) -> None:
        self._cut_unplayed()  # closing drops what the inner sink still holds
        self.sink.close()

    def _cut_unplayed(self) -> None:
        with self._lock:
            self._aborts += 1
            keep = max(0, self._frames - self.sink.pending_frames)
            if keep < self._frames:
                self._chunks = [np.concatenate(self._chunks)[:keep]]
                self._frames = keep

    # -- the recording ------------------------------------------------------------------
    @property
    def recording(self) -> Recording:
        """What was played since the last ``take()``."""
        with self._lock:
            return self._snapshot()

    def take(self) -> Recording:
        """What was played since the last ``take()``; the next recording starts empty."""
        with self._lock:
            recording = self._snapshot()
            self._chunks, self._frames = [], 0
            return recording

    def _snapshot(self) -> Recording:
        fmt = self._format
        if not self._chunks:
            audio = np.zeros((0, fmt.channels if fmt else 1), fmt.dtype if fmt else np.float32)
        else:
            audio = np.concatenate(self._chunks)
            self._chunks = [audio]
        return Recording(audio, fmt.samplerate if fmt else 0)
