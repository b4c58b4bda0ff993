"""Audio buffer stage: synthesized audio waiting to be played.

One producer (the synthesis worker) and one consumer (the playback thread).
The producer is bounded in seconds, not bytes, so memory stays flat whatever
the text length; the consumer reads fixed-size blocks so that an interrupt is
silent within one block.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

__all__ = ["AudioBuffer"]


class AudioBuffer:
    def __init__(self, samplerate: int):
        self.samplerate = samplerate
        self._segments: deque[np.ndarray] = deque()
        self._frames = 0
        self._ended = False
        self._cond = threading.Condition()

    @property
    def queued_seconds(self) -> float:
        return self._frames / self.samplerate

    @property
    def ended(self) -> bool:
        return self._ended

    def push(self, pcm: np.ndarray) -> None:
        if len(pcm) == 0:
            return
        with self._cond:
            if self._ended:
                return
            self._segments.append(pcm)
            self._frames += len(pcm)
            self._cond.notify_all()

    def end(self) -> None:
        """No more audio will come; readers drain what is left, then get None."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def clear(self) -> None:
        """Drop everything queued and end the buffer (interrupt)."""
        with self._cond:
            self._segments.clear()
            self._frames = 0
            self._ended = True
            self._cond.notify_all()

    def wait_below(self, seconds: float, stop: threading.Event) -> None:
        """Block the producer while more than ``seconds`` of audio is queued."""
        limit = int(seconds * self.samplerate)
        with self._cond:
            while self._frames > limit and not stop.is_set() and not self._ended:
                self._cond.wait(0.05)

    def read(self, frames: int, timeout: float | None) -> np.ndarray | None:
        """Up to ``frames`` frames; empty on timeout; None once ended and drained.

        Returns a partial block rather than waiting for a full one: playing what
        we have beats a gap while the engine catches up.
        """
        with self._cond:
            if not self._segments and not self._ended:
                self._cond.wait(timeout)
            if not self._segments:
                return None if self._ended else np.zeros(0, np.float32)
            parts = []
            need = frames
            while need and self._segments:
                head = self._segments[0]
                if len(head) <= need:
                    parts.append(self._segments.popleft())
                    need -= len(head)
                else:
                    parts.append(head[:need])
                    self._segments[0] = head[need:]
                    need = 0
            got = frames - need
            self._frames -= got
            self._cond.notify_all()
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
