"""WavPipeSink: stream a WAV to a pipe, such as standard output."""

from __future__ import annotations

import os
import stat
import sys
import threading
from typing import BinaryIO

import numpy as np

from ..errors import OutputError
from ._format import AudioFormat, ClosesOnExit, require_open
from .wav import encode, rewrite_header, same_layout, wav_header

__all__ = ["WavPipeSink"]

# A pipe can't be rewound to fill in the length, so the header states the
# largest one a WAV can hold, as sox and ffmpeg do; players read to the end.
_UNKNOWN_LENGTH = 0xFFFFFFFF - 36


class WavPipeSink(ClosesOnExit):
    """Writes 16-bit PCM WAV to an open binary file that can't seek (``sys.stdout.buffer``).

    The header goes out at the first ``open``, the samples as they are played,
    so ``voicekit say -o - ... | aplay`` starts at once. Later opens append
    (same rate and channels). ``close`` flushes but leaves the file open: it
    belongs to the caller. A closed pipe raises ``OutputError``.

    When the file is a regular file written from its start (``voicekit say -o
    - > out.wav``), ``drain`` and ``close`` also put the real length in the
    header, as ``WavSink`` does.
    """

    preferred_samplerate: int | None = None
    pending_frames = 0
    latency = 0.0

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self._lock = threading.Lock()
        self._format: AudioFormat | None = None
        self._layout: tuple[int, int] | None = None
        self._rewindable = False
        self._data_bytes = 0

    def open(
        self, samplerate: int, channels: int, dtype: str, *, blocksize: int, buffer_frames: int
    ) -> None:
        fmt = AudioFormat.create(samplerate, channels, dtype, blocksize, buffer_frames)
        with self._lock:
            layout = same_layout(self._layout, fmt, "the WAV stream", "WavPipeSink")
            if self._layout is None:
                self._rewindable = _rewindable(self.file)
                self._out(wav_header(*layout, "int16", _UNKNOWN_LENGTH))
                self._layout = layout
            self._format = fmt

    def write(self, frames: np.ndarray) -> None:
        with self._lock:
            require_open(self._format, self).check(frames)
            data = encode(frames, "int16")
            self._out(data)
            self._data_bytes += len(data)

    def abort(self) -> None:
        """Nothing is pending: every write is already in the pipe."""

    def drain(self) -> None:
        with self._lock:
            self._finish()

    def close(self) -> None:
        with self._lock:
            if self._format is not None:
                self._format = None
                self._finish()

    def _out(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except OSError as exc:
            raise OutputError(f"writing the WAV stream failed: {exc.strerror or exc}") from exc

    def _finish(self) -> None:
        try:
            if self._rewindable and self._layout is not None:
                rewrite_header(self.file, *self._layout, "int16", self._data_bytes)
            else:
                self.file.flush()
        except OSError as exc:
            raise OutputError(f"writing the WAV stream failed: {exc.strerror or exc}") from exc


def _rewindable(file: BinaryIO) -> bool:
    """A regular file written from its start, so its header can be written again with the real length.

    Not a pipe or a terminal, which can't seek, nor a file opened to append
    (``>> out.wav``), where every write lands at the end whatever the position.
    """
    try:
        fd = file.fileno()
        regular = stat.S_ISREG(os.fstat(fd).st_mode) and file.tell() == 0
    except (OSError, ValueError):  # no descriptor (io.BytesIO), or a closed file
        return False
    return regular and not _appends(fd)


def _appends(fd: int) -> bool:
    if sys.platform == "win32":
        return True  # no way to ask: keep the streaming header
    import fcntl

    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND)
