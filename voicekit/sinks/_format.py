"""What every sink shares: the format it was opened with, the check every
``write`` makes, and ``with sink:``.

Kept in one place so all sinks accept and reject exactly the same blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from ..errors import OutputError

__all__ = ["AudioFormat", "ClosesOnExit", "SUPPORTED_DTYPES", "require_open"]

SUPPORTED_DTYPES = ("int16", "int32", "float32")
# compared with every block written; dtype.name is computed in Python on each access, 70x slower
_DTYPES = {name: np.dtype(name) for name in SUPPORTED_DTYPES}


@dataclass(frozen=True)
class AudioFormat:
    samplerate: int
    channels: int
    dtype: str
    blocksize: int
    buffer_frames: int

    @classmethod
    def create(
        cls, samplerate: int, channels: int, dtype: str | np.dtype, blocksize: int, buffer_frames: int
    ) -> AudioFormat:
        """Validate ``open`` arguments; OutputError names the bad one."""
        try:
            name = np.dtype(dtype).name
        except TypeError as e:
            raise OutputError(f"unknown sample dtype {dtype!r}; use one of {SUPPORTED_DTYPES}") from e
        if name not in SUPPORTED_DTYPES:
            raise OutputError(f"unsupported sample dtype {name!r}; use one of {SUPPORTED_DTYPES}")
        for label, value in (
            ("samplerate", samplerate),
            ("channels", channels),
            ("blocksize", blocksize),
            ("buffer_frames", buffer_frames),
        ):
            # bool is an int subclass but never a meaningful count here
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise OutputError(f"{label} must be a positive integer, got {value!r}")
        return cls(int(samplerate), int(channels), name, int(blocksize), int(buffer_frames))

    def check(self, frames: object) -> np.ndarray:
        """Return ``frames`` if it is a (n, channels) block of this dtype, else raise OutputError."""
        if not isinstance(frames, np.ndarray):
            raise OutputError(f"write() takes a numpy array, got {type(frames).__name__}")
        if frames.ndim != 2 or frames.shape[1] != self.channels:
            raise OutputError(
                f"write() takes blocks shaped (frames, {self.channels}), got {frames.shape}"
            )
        if frames.dtype != _DTYPES[self.dtype]:
            order = "" if frames.dtype.isnative else " in non-native byte order"
            raise OutputError(f"write() takes {self.dtype} samples, got {frames.dtype.name}{order}")
        return frames


def require_open(fmt: AudioFormat | None, sink: object) -> AudioFormat:
    """The sink's format, or OutputError if it is not open."""
    if fmt is None:
        raise OutputError(f"{type(sink).__name__}.write() before open() or after close()")
    return fmt


_Sink = TypeVar("_Sink", bound="ClosesOnExit")


class ClosesOnExit:
    """``with sink:`` closes the sink when the block ends."""

    def __enter__(self: _Sink) -> _Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # type: ignore[attr-defined]
