"""WavSink: write the audio to a 16-bit PCM WAV file."""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import numpy as np

from ..errors import OutputError
from ._format import AudioFormat, ClosesOnExit, require_open

__all__ = ["WavSink", "to_int16"]

# The canonical 44-byte header of a PCM WAV, the samples right after it.
_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")


def _header(samplerate: int, channels: int, data_bytes: int) -> bytes:
    return _HEADER.pack(
        b"RIFF", 36 + data_bytes, b"WAVE",
        b"fmt ", 16, 1, channels, samplerate, samplerate * channels * 2, channels * 2, 16,
        b"data", data_bytes,
    )  # fmt: skip


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
    Writes are synchronous, so nothing is ever pending. The first ``open``
    creates (or overwrites) the file; later opens of the same sink, even after
    ``close``, append to it, so one WavSink records everything a TTS says
    across streams, as long as the sample rate and channel count stay the same.
    The file is a complete WAV after every ``drain()`` and ``close()``. Use a
    new WavSink for a new file.
    """

    preferred_samplerate: int | None = None
    pending_frames = 0

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._format: AudioFormat | None = None
        self._file: BinaryIO | None = None
        self._layout: tuple[int, int] | None = None  # (samplerate, channels) of the file
        self._data_bytes = 0

    @contextmanager
    def _os_errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except OSError as e:
            raise OutputError(f"{doing} WAV file {self.path} failed: {e.strerror or e}") from e

    def open(
        self, samplerate: int, channels: int, dtype: str, *, blocksize: int, buffer_frames: int
    ) -> None:
        fmt = AudioFormat.create(samplerate, channels, dtype, blocksize, buffer_frames)
        layout = (fmt.samplerate, fmt.channels)
        with self._lock:
            if self._layout is not None and self._layout != layout:
                raise OutputError(
                    f"{self.path} holds {self._layout[0]} Hz, {self._layout[1]}-channel audio; "
                    f"use a new WavSink for {fmt.samplerate} Hz, {fmt.channels}-channel audio"
                )
            if self._file is None:
                with self._os_errors("opening"):
                    out = open(self.path, "r+b" if self._layout else "wb")  # noqa: SIM115 - closed in close()
                    try:
                        if self._layout:
                            out.seek(_HEADER.size + self._data_bytes)
                        else:
                            out.write(_header(*layout, 0))
                    except OSError:
                        out.close()
                        raise
                self._file, self._layout = out, layout
            self._format = fmt

    def write(self, frames: np.ndarray) -> None:
        with self._lock:
            require_open(self._format, self).check(frames)
            assert self._file is not None  # open() sets it along with _format
            data = to_int16(frames).tobytes()
            with self._os_errors("writing"):
                self._file.write(data)
            self._data_bytes += len(data)

    def abort(self) -> None:
        """Nothing is pending: every write is already in the file."""

    def drain(self) -> None:
        """Make the file on disk a complete WAV of everything written so far."""
        with self._lock:
            if self._file is not None:
                self._finish(self._file)

    def _finish(self, out: BinaryIO) -> None:
        assert self._layout is not None  # set whenever a file is open
        with self._os_errors("finishing"):
            out.seek(0)
            out.write(_header(*self._layout, self._data_bytes))
            out.seek(_HEADER.size + self._data_bytes)
            out.flush()

    def close(self) -> None:
        with self._lock:
            out, self._file, self._format = self._file, None, None
            if out is not None:
                with out:
                    self._finish(out)
