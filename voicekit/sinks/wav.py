"""The one WAV writer: ``WavSink`` streams to a file, ``wav_bytes`` encodes a whole buffer.

Samples are 16-bit PCM (the default, readable everywhere), 32-bit PCM or
32-bit IEEE float, interleaved, any channel count.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import numpy as np

from ..errors import OutputError
from ._format import SUPPORTED_DTYPES, AudioFormat, ClosesOnExit, require_open

__all__ = ["WavSink", "wav_bytes", "wav_header", "encode"]

_PCM, _IEEE_FLOAT = 1, 3
# numpy dtype of the samples in the file -> (WAVE format tag, bytes per sample)
_SAMPLES = {"int16": (_PCM, 2), "int32": (_PCM, 4), "float32": (_IEEE_FLOAT, 4)}


def _sample_type(dtype: str) -> tuple[int, int]:
    try:
        return _SAMPLES[dtype]
    except KeyError:
        raise OutputError(f"WAV samples must be one of {SUPPORTED_DTYPES}, got {dtype!r}") from None


def wav_header(samplerate: int, channels: int, dtype: str, data_bytes: int) -> bytes:
    """The RIFF header of a WAV whose ``data`` chunk (``data_bytes`` long) follows it directly.

    Float files carry the ``cbSize`` field and the ``fact`` chunk the format requires of non-PCM data.
    """
    tag, width = _sample_type(dtype)
    block = channels * width
    fmt = struct.pack("<HHIIHH", tag, channels, samplerate, samplerate * block, block, 8 * width)
    extra = b""
    if tag != _PCM:
        fmt += struct.pack("<H", 0)
        extra = struct.pack("<4sII", b"fact", 4, data_bytes // block)
    chunks = struct.pack("<4sI", b"fmt ", len(fmt)) + fmt + extra + struct.pack("<4sI", b"data", data_bytes)
    return struct.pack("<4sI4s", b"RIFF", 4 + len(chunks) + data_bytes, b"WAVE") + chunks


def rewrite_header(out: BinaryIO, samplerate: int, channels: int, dtype: str, data_bytes: int) -> None:
    """Put the real sizes in the header at the start of ``out``, then return to the end of its data."""
    header = wav_header(samplerate, channels, dtype, data_bytes)
    out.seek(0)
    out.write(header)
    out.seek(len(header) + data_bytes)
    out.flush()


def encode(frames: np.ndarray, dtype: str) -> bytes:
    """Little-endian ``dtype`` sample bytes from int16, int32 or float (-1.0..1.0) input.

    Integer output clips float input to -1.0..1.0; int32 input to int16 keeps its top 16 bits.
    """
    _sample_type(dtype)
    if frames.dtype.name == dtype:
        return frames.astype(np.dtype(dtype).newbyteorder("<"), copy=False).tobytes()
    if dtype == "float32":
        scale = {"int16": 32768.0, "int32": 2147483648.0}.get(frames.dtype.name, 1.0)
        return (frames.astype(np.float64) / scale).astype("<f4").tobytes()
    out = np.dtype(dtype).newbyteorder("<")
    if frames.dtype.kind == "i":
        shift = 8 * (out.itemsize - frames.dtype.itemsize)
        wide = frames.astype(np.int64)
        return (wide << shift if shift >= 0 else wide >> -shift).astype(out).tobytes()
    # float64: float32 can't hold 2**31 - 1, and the product would wrap around
    return np.rint(np.clip(frames.astype(np.float64), -1.0, 1.0) * np.iinfo(out).max).astype(out).tobytes()


def wav_bytes(frames: np.ndarray, samplerate: int, dtype: str = "int16") -> bytes:
    """A whole WAV file of ``frames``: shape (n,) for mono or (n, channels)."""
    channels = 1 if frames.ndim == 1 else frames.shape[1]
    data = encode(frames, dtype)
    return wav_header(samplerate, channels, dtype, len(data)) + data


def same_layout(held: tuple[int, int] | None, fmt: AudioFormat, holder: str, sink: str) -> tuple[int, int]:
    """``fmt``'s (rate, channels): a WAV has one header, so a sink that already wrote one keeps its layout."""
    layout = (fmt.samplerate, fmt.channels)
    if held is not None and held != layout:
        raise OutputError(
            f"{holder} holds {held[0]} Hz, {held[1]}-channel audio; "
            f"use a new {sink} for {fmt.samplerate} Hz, {fmt.channels}-channel audio"
        )
    return layout


class WavSink(ClosesOnExit):
    """Writes everything played to ``path`` as a WAV file of ``dtype`` samples.

    ``dtype`` is the file's sample type: ``int16`` (16-bit PCM, the default),
    ``int32`` (32-bit PCM) or ``float32`` (32-bit IEEE float), whatever the
    stream's. Integer files clip float input to -1.0..1.0.
    Writes are synchronous, so nothing is ever pending. The first ``open``
    creates (or overwrites) the file; later opens of the same sink, even after
    ``close``, append to it, so one WavSink records everything a TTS says
    across streams, as long as the sample rate and channel count stay the same.
    The file is a complete WAV after every ``drain()`` and ``close()``. Use a
    new WavSink for a new file.
    """

    preferred_samplerate: int | None = None
    pending_frames = 0
    latency = 0.0

    def __init__(self, path: str | os.PathLike[str], dtype: str = "int16") -> None:
        _sample_type(dtype)
        self.path = os.fspath(path)
        self.dtype = dtype
        self._header_size = len(wav_header(8000, 1, dtype, 0))
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
        with self._lock:
            layout = same_layout(self._layout, fmt, self.path, "WavSink")
            if self._file is None:
                with self._os_errors("opening"):
                    out = open(self.path, "r+b" if self._layout else "wb")  # noqa: SIM115 - closed in close()
                    try:
                        if self._layout:
                            out.seek(self._header_size + self._data_bytes)
                        else:
                            out.write(wav_header(*layout, self.dtype, 0))
                    except OSError:
                        out.close()
                        raise
                self._file, self._layout = out, layout
            self._format = fmt

    def write(self, frames: np.ndarray) -> None:
        with self._lock:
            require_open(self._format, self).check(frames)
            assert self._file is not None  # open() sets it along with _format
            data = encode(frames, self.dtype)
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
            rewrite_header(out, *self._layout, self.dtype, self._data_bytes)

    def close(self) -> None:
        with self._lock:
            out, self._file, self._format = self._file, None, None
            if out is not None:
                with out:
                    self._finish(out)
