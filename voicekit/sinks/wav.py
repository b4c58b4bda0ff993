"""WavSink: write the audio to a 16-bit PCM WAV file."""

from __future__ import annotations

import os
import threading
import wave
from typing import BinaryIO

import numpy as np

from ..errors import OutputError
from ._format import AudioFormat, ClosesOnExit, require_open

__all__ = ["WavSink", "to_int16"]


def to_int16(frames: np.ndarray) -> np.ndarray:
    """Little-endian int16 samples from int16, int32 or float (-1.0..1.0, clipped) input."""
    if frames.dtype == np.int16:
        return frames.astype("<i2", copy=False)
    if frames.dtype == np.int32:
        return (frames >> 16).astype("<i2")
    return np.rint(np.clip(frames, -1.0, 1.0) * 32767.0).astype("<i2")


class WavSink(ClosesOnExit):
    """Writes everything played to ``path`` as a 16-bit PCM WAV file.

    Float input is clipped to -1.0..1.0 and scaled; int32 keeps its top 16 bits.
    Writes are synchronous, so nothing is ever pending. ``open`` creates (or
    overwrites) the file; opening it again before ``close`` appends to the same
    file, so one sink can record several streams, as long as the sample rate and
    channel count stay the same. The file is complete once ``close()`` returns.
    """

    preferred_samplerate: int | None = None
    pending_frames = 0

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._format: AudioFormat | None = None
        self._file: wave.Wave_write | None = None
        self._raw: BinaryIO | None = None  # wave doesn't close a file it was handed

    def open(
        self, samplerate: int, channels: int, dtype: str, *, blocksize: int, buffer_frames: int
    ) -> None:
        fmt = AudioFormat.create(samplerate, channels, dtype, blocksize, buffer_frames)
        with self._lock:
            if self._file is not None:
                old = require_open(self._format, self)
                if (old.samplerate, old.channels) != (fmt.samplerate, fmt.channels):
                    raise OutputError(
                        f"{self.path} is being written at {old.samplerate} Hz, {old.channels} "
                        f"channel(s); close() the WavSink before opening it at "
                        f"{fmt.samplerate} Hz, {fmt.channels} channel(s)"
                    )
            else:
                self._file = self._create(fmt)
            self._format = fmt

    def _create(self, fmt: AudioFormat) -> wave.Wave_write:
        # Opening the file first: wave.open(path) leaves a broken object behind when that fails.
        try:
            self._raw = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        except OSError as e:
            raise OutputError(f"can't write WAV file {self.path}: {e.strerror or e}") from e
        out = wave.open(self._raw, "wb")
        out.setnchannels(fmt.channels)
        out.setsampwidth(2)
        out.setframerate(fmt.samplerate)
        return out

    def write(self, frames: np.ndarray) -> None:
        with self._lock:
            require_open(self._format, self).check(frames)
            assert self._file is not None  # open() sets both
            try:
                self._file.writeframes(to_int16(frames).tobytes())
            except OSError as e:
                raise OutputError(f"writing {self.path} failed: {e.strerror or e}") from e

    def abort(self) -> None:
        """Nothing is pending: every write is already in the file."""

    def drain(self) -> None:
        """Nothing is pending: every write is already in the file."""

    def close(self) -> None:
        with self._lock:
            out, raw = self._file, self._raw
            self._file = self._raw = self._format = None
            if out is not None and raw is not None:
                try:
                    with raw:
                        out.close()
                except OSError as e:
                    raise OutputError(f"finishing {self.path} failed: {e.strerror or e}") from e
