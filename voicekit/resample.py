"""Resampler stage: engine audio to the output rate.

One soxr stream per text chunk: audio inside a chunk is continuous, so the
filter state must carry across the engine's pieces; chunk boundaries are the
engine's own pauses, so starting fresh there costs nothing audible and lets a
fallback engine with another rate take over seamlessly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Resampler"]


class Resampler:
    def __init__(self, out_rate: int, quality: str = "HQ"):
        self.out_rate = out_rate
        self._quality = quality
        self._in_rate: int | None = None
        self._soxr = None

    def process(self, pcm: np.ndarray, rate: int) -> np.ndarray:
        """Resample one piece of a chunk; the filter's tail comes from ``flush``."""
        pcm = np.asarray(pcm, dtype=np.float32)
        if rate != self._in_rate:
            tail = self.flush()
            self._start(rate)
            if len(tail):
                return np.concatenate([tail, self._convert(pcm, last=False)])
        return self._convert(pcm, last=False)

    def flush(self) -> np.ndarray:
        """End the current chunk: return what the filter still holds."""
        if self._soxr is None:
            self._in_rate = None
            return np.zeros(0, np.float32)
        tail = self._soxr.resample_chunk(np.zeros(0, np.float32), last=True)
        self._soxr = None
        self._in_rate = None
        return tail.astype(np.float32, copy=False)

    def _start(self, rate: int) -> None:
        self._in_rate = rate
        if rate != self.out_rate:
            import soxr

            self._soxr = soxr.ResampleStream(rate, self.out_rate, 1, dtype="float32", quality=self._quality)

    def _convert(self, pcm: np.ndarray, last: bool) -> np.ndarray:
        if self._soxr is None:
            return pcm
        return self._soxr.resample_chunk(pcm, last=last)
