"""A reply: the unit the stream hands to playback, and the whole contract between them.

A stream's text, from its start (or an interrupt) to its end, is one reply.
The stream fills it (spoken text, audio, word marks) and owns its two signals:
``cancel`` (set by ``interrupt()``) and ``hold`` (set while paused). The
playback line (:mod:`voicekit.playback`) owns the rest: it sets ``admitted``
when the reply is near the front of the line (synthesize ahead now), drives
its clock (``advance``), freezes what was heard on cancel (``stop_at``), and
reports exactly once per reply through ``outcome``, a future holding a
:class:`PlaybackReport`. Neither side touches the other's private members.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, TypedDict

import numpy as np

from .buffer import AudioBuffer
from .engine import Cancel
from .sinks._format import AudioFormat

__all__ = ["Reply", "RecentText", "PlaybackReport", "WordInfo", "ChunkInfo", "call_safely", "in_callback"]

log = logging.getLogger("voicekit")

_WORD = re.compile(r"\S+")


class WordInfo(TypedDict):
    """``on_word``'s payload: a word as it starts playing."""

    #: the word, in spoken form (after the speech filter)
    word: str
    #: its offset in the reply's spoken text
    offset: int
    #: seconds from the start of the reply's audio
    time: float


class ChunkInfo(TypedDict):
    """``on_chunk_processed``'s payload: a text chunk whose audio is ready."""

    text: str
    #: seconds of audio
    duration: float
    #: 0, 1, 2, ... over the stream's life
    index: int
    #: the engine that spoke it (a fallback chain names the member)
    engine: str
    #: seconds from the chunk's text being ready to its first audio
    latency: float
    #: seconds spent inside the engine for this chunk (its waits for a shared model included,
    #: the stream's own waits for buffer room not): ``synthesis_time / duration`` is the real-time factor
    synthesis_time: float


@dataclass(frozen=True)
class PlaybackReport:
    """What playback reports once per reply, when it is over.

    Subscriptable too (``report["interrupted"]``), like the callback payloads.
    """

    #: frames of this reply that reached the speaker
    frames_played: int
    #: cut by ``interrupt()`` (or by a playback failure) before its end
    interrupted: bool
    #: why playback failed, if it did
    error: BaseException | None = None

    def __getitem__(self, key: str) -> Any:
        if key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        return getattr(self, key)


_callback_depth = threading.local()


@contextmanager
def _calling() -> Iterator[None]:
    _callback_depth.n = getattr(_callback_depth, "n", 0) + 1
    try:
        yield
    finally:
        _callback_depth.n -= 1


def in_callback() -> bool:
    """True on a thread that is running a user callback right now.

    ``close()`` and ``wait_until_done()`` use it: waiting there would wait for
    the very thread that runs the callback.
    """
    return getattr(_callback_depth, "n", 0) > 0


def call_safely(callback: Callable[[Any], Any] | None, info: Mapping[str, Any]) -> None:
    """User callbacks must never kill a voicekit thread; callers hold no voicekit lock."""
    if callback is None:
        return
    try:
        with _calling():
            callback(info)
    except Exception:  # noqa: BLE001 - reported, not swallowed silently
        log.exception("voicekit: callback %r raised", callback)


class RecentText:
    """Text pieces in order, keeping about the newest ``limit`` characters (whole pieces)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pieces: deque[str] = deque()
        self._chars = 0

    def append(self, text: str) -> None:
        self._pieces.append(text)
        self._chars += len(text)
        while len(self._pieces) > 1 and self._chars - len(self._pieces[0]) >= self._limit:
            self._chars -= len(self._pieces.popleft())

    def extend(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.append(text)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._pieces))

    def __bool__(self) -> bool:
        return bool(self._pieces)


class Reply:
    #: how much of an endless reply ``heard_text``, ``fed_text`` and ``filtered_text``
    #: keep: about the newest this many characters (whole chunks / whole pieces), so
    #: a narration that runs for hours holds the current chunk and lookahead, not its past
    HISTORY_CHARS = 100_000

    def __init__(
        self,
        fmt: AudioFormat,
        hold: threading.Event,
        on_word: Callable[[Any], Any] | None = None,
    ):
        self.format = fmt
        self.samplerate = fmt.samplerate
        self.buffer = AudioBuffer(fmt.samplerate)
        #: set by the stream: drop this reply now
        self.cancel = Cancel()
        #: set by the stream while paused (shared by all its replies)
        self.hold = hold
        #: set by playback once this reply is near the front of the line
        self.admitted = Cancel()
        #: set by playback, exactly once
        self.outcome: Future[PlaybackReport] = Future()
        #: what was fed, as given (``SpeechStream.fed_text``)
        self.fed = RecentText(self.HISTORY_CHARS)
        #: what the text stages dropped, in order (``SpeechStream.filtered_text``)
        self.filtered = RecentText(self.HISTORY_CHARS)
        self.ssml = False
        # the spoken text: chunks with their offsets; fully heard chunks past HISTORY_CHARS are dropped
        self._spoken: list[str] = []
        self._bases: list[int] = []
        self._spoken_len = 0
        self._synth_end = 0
        self._on_word = on_word
        self._lock = threading.Lock()
        # (frame in reply, offset in spoken text, length), appended in frame order;
        # fired marks are dropped so a long narration keeps memory flat
        self._marks: deque[tuple[int, int, int]] = deque()
        self._unfired: list[WordInfo] = []
        self._last_mark_frame = 0
        self._heard_end = 0
        self._stopped_at: int | None = None
        self._reported = False
        self.frames_pushed = 0

    # -- producer side (the stream) -------------------------------------------------
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

    # -- playback side ----------------------------------------------------------------
    def _pass(self, played: int) -> None:
        """Marks before frame ``played`` were heard (lock held)."""
        while self._marks and self._marks[0][0] <= played:
            frame, offset, length = self._marks.popleft()
            self._heard_end = max(self._heard_end, offset + length)
            if self._on_word is not None:
                word = self._word_at(offset, length)
                self._unfired.append({"word": word, "offset": offset, "time": frame / self.samplerate})
        self._forget()

    def _forget(self) -> None:
        """Drop the oldest fully heard chunks beyond ``HISTORY_CHARS`` (lock held)."""
        drop = 0
        bases, spoken = self._bases, self._spoken
        while (
            drop + 1 < len(spoken)
            and bases[drop] + len(spoken[drop]) <= self._heard_end
            and self._heard_end - bases[drop + 1] >= self.HISTORY_CHARS
        ):
            drop += 1
        if drop:
            del bases[:drop], spoken[:drop]

    def advance(self, played: int) -> None:
        """The playback clock reached frame ``played`` of this reply: fire the words passed.

        Called by the playback thread only, with no lock held, so ``on_word``
        always runs there and in order.
        """
        with self._lock:
            if self._stopped_at is None:
                self._pass(played)
            fired, self._unfired = self._unfired, []
        for info in fired:
            call_safely(self._on_word, info)

    def stop_at(self, played: int) -> int:
        """Cancelled with frame ``played`` at the speaker: what was heard is final.

        Any thread; the words passed are fired by the next ``advance``.
        Returns the frames heard.
        """
        with self._lock:
            if self._stopped_at is None:
                self._pass(played)
                self._stopped_at = max(0, played)
            return self._stopped_at

    def report(self, result: PlaybackReport) -> None:
        """Playback is over for this reply; the first report wins."""
        with self._lock:
            if self._reported:
                return
            self._reported = True
            if not result.interrupted and result.error is None:
                self._heard_end = max(self._heard_end, self._synth_end)
                self._forget()
        # outside the lock: the future runs the stream's done-callback
        self.outcome.set_result(result)

    @property
    def settled(self) -> bool:
        """Nothing more will be heard: reported, or cancelled."""
        return self.outcome.done() or self.cancel.is_set()

    @property
    def heard_text(self) -> str:
        with self._lock:
            return " ".join(self._spoken)[: self._heard_end - self._first()].rstrip()

    def unheard_text(self) -> str:
        with self._lock:
            return " ".join(self._spoken)[self._heard_end - self._first() :].strip()

    def _first(self) -> int:
        """Offset of the oldest chunk still kept (lock held)."""
        return self._bases[0] if self._bases else 0
