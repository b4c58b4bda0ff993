"""A reply: the unit of speech between a stream's start (or an interrupt) and its end.

It joins the two directions of the pipeline: the synthesis worker appends the
spoken text, audio and word marks; the playback thread reports the playback
clock back, which turns marks into ``on_word`` events and ``heard_text``.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from .buffer import AudioBuffer
from .engine import Cancel

__all__ = ["Reply"]

log = logging.getLogger("voicekit")

_WORD = re.compile(r"\S+")


def call_safely(callback: Callable[[dict[str, Any]], Any] | None, info: dict[str, Any]) -> None:
    """User callbacks must never kill a voicekit thread."""
    if callback is None:
        return
    try:
        callback(info)
    except Exception:  # noqa: BLE001 - reported, not swallowed silently
        log.exception("voicekit: callback %r raised", callback)


class Reply:
    def __init__(self, samplerate: int, on_word: Callable[[dict[str, Any]], Any] | None = None):
        self.samplerate = samplerate
        self.buffer = AudioBuffer(samplerate)
        self.cancel = Cancel()
        self.finished = threading.Event()
        self.fed: list[str] = []
        self.ssml = False
        self._spoken: list[str] = []
        self._bases: list[int] = []
        self._spoken_len = 0
        self._synth_end = 0
        self._on_word = on_word
        self._lock = threading.Lock()
        # (frame in reply, offset in spoken text, length), appended in frame order;
        # fired marks are dropped so a long narration keeps memory flat
        self._marks: deque[tuple[int, int, int]] = deque()
        self._last_mark_frame = 0
        self._heard_end = 0
        self.frames_pushed = 0
        # playback side: the sink frame index where this reply starts and ends
        self.start_total: int | None = None
        # set on interrupt once heard_text is final: later clock ticks count aborted audio
        self.frozen = False
        self.end_total: int | None = None

    # -- producer side (synthesis worker) -------------------------------------------
    def add_chunk_text(self, text: str) -> int:
        """Append a chunk to the spoken text; returns its offset there."""
        with self._lock:
            base = self._spoken_len + (1 if self._spoken_len else 0)
            self._spoken.append(text)
            self._bases.append(base)
            self._spoken_len = base + len(text)
            return base

    def mark_synthesized(self, end: int) -> None:
        """All spoken text before ``end`` has its audio in the buffer."""
        with self._lock:
            self._synth_end = max(self._synth_end, end)

    def _word_at(self, offset: int, length: int) -> str:
        i = bisect.bisect_right(self._bases, offset) - 1
        local = offset - self._bases[i]
        return self._spoken[i][local : local + length]

    def add_mark(self, frame: int, offset: int, length: int) -> None:
        with self._lock:
            frame = max(frame, self._last_mark_frame)
            self._last_mark_frame = frame
            self._marks.append((frame, offset, length))

    def add_estimated_marks(self, text: str, base: int, start_frame: int, frames: int) -> None:
        """Word marks spread by character position, for engines that give none."""
        if not text:
            return
        for m in _WORD.finditer(text):
            self.add_mark(start_frame + int(frames * m.start() / len(text)), base + m.start(), len(m.group()))

    def push(self, pcm: np.ndarray) -> None:
        self.frames_pushed += len(pcm)
        self.buffer.push(pcm)

    # -- consumer side (playback thread) --------------------------------------------
    def advance(self, played_total: int) -> None:
        """Fire the marks the playback clock has passed."""
        if self.start_total is None or self.frozen:
            return
        played = played_total - self.start_total
        fired = []
        with self._lock:
            while self._marks and self._marks[0][0] <= played:
                frame, offset, length = self._marks.popleft()
                self._heard_end = max(self._heard_end, offset + length)
                if self._on_word is not None:
                    fired.append(
                        {"word": self._word_at(offset, length), "offset": offset, "time": frame / self.samplerate}
                    )
        for info in fired:
            call_safely(self._on_word, info)
        if self.end_total is not None and played_total >= self.end_total:
            self.finish(completed=True)

    def finish(self, completed: bool) -> None:
        if completed and not self.cancel.is_set():
            with self._lock:
                self._heard_end = max(self._heard_end, self._synth_end)
        self.finished.set()

    @property
    def heard_text(self) -> str:
        with self._lock:
            return " ".join(self._spoken)[: self._heard_end].rstrip()

    def unheard_text(self) -> str:
        with self._lock:
            return " ".join(self._spoken)[self._heard_end :].strip()
