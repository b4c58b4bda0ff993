"""A reply: the unit the stream hands to playback, and the whole contract between them.

A stream's text, from its start (or an interrupt) to its end, is one reply.
The producer side (the stream and its synthesis worker) fills it: spoken
text, audio (``push``, ``end``), word marks; it drops it with ``cancel()``.
The playback line (:mod:`voicekit.playback`) reads it: ``admit()`` once the
reply is near the front of the line (synthesize ahead now), ``read`` its
audio, drive its clock (``advance``), freeze what was heard on cancel
(``stop_at``), and report exactly once (``report``) through ``outcome``, a
future holding a :class:`PlaybackReport`. The audio buffer and the signals
are the reply's own: each side goes through these methods only.

Lock order: a thread holding one of these locks takes only locks further
down the list.

1. the stream's lock (``SpeechStream._cond``, shared by its synthesis worker)
2. the playback line's lock
3. the reply's lock
4. the reply's audio buffer's lock; the sink's own lock

So nothing calls up the list with its lock held: the line admits a reply
(which may start the stream's worker) and reports it (which runs the
stream's ``_played``) after releasing its lock, and a reply fires
``on_word`` and its outcome outside its lock. The stream submits replies,
cancels them in ``interrupt()`` and runs finished-callbacks, and the worker
calls the engine and ``on_chunk_processed``, with no lock held. The one
nesting is a playback failure cancelling the stream's current reply under
the stream's lock: the line's lock comes second. A ``Cancel``'s own guard is
a leaf: it runs its callbacks after letting go.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, TypedDict

import numpy as np

from .buffer import AudioBuffer
from .contract import Cancel
from .sinks._format import AudioFormat

__all__ = ["Reply", "PlaybackReport", "WordInfo", "ChunkInfo", "OnWord", "OnChunk", "call_safely", "in_callback"]

log = logging.getLogger("voicekit")

_WORD = re.compile(r"\S+")
_PASSED_KEPT = 4096


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


# the callbacks' types; callbacks written against plain dicts (the guide's style) are accepted too
OnWord = Callable[[WordInfo], Any] | Callable[[dict[str, Any]], Any]
OnChunk = Callable[[ChunkInfo], Any] | Callable[[dict[str, Any]], Any]


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
        on_admitted: Callable[[], Any] | None = None,
    ):
        self.format = fmt
        self.samplerate = fmt.samplerate
        #: set by playback, exactly once
        self.outcome: Future[PlaybackReport] = Future()
        self._buffer = AudioBuffer(fmt.samplerate)
        self._cancel = Cancel()
        self._hold = hold  # the stream's pause: every reply of the stream shares it
        self._admitted = Cancel()
        if on_admitted is not None:
            self._admitted.call_on_set(on_admitted)
        self._frames_pushed = 0
        # the spoken text: chunks with their offsets; fully heard chunks past HISTORY_CHARS are dropped
        self._spoken: list[str] = []
        self._bases: list[int] = []
        self._spoken_len = 0
        self._synth_end = 0
        self._unsynth_chars = 0
        self._on_word = on_word
        self._lock = threading.Lock()
        # (frame in reply, offset in spoken text, length), appended in frame order;
        # fired marks are dropped so a long narration keeps memory flat
        self._marks: deque[tuple[int, int, int]] = deque()
        # (frame, end offset) of the newest words passed: a remote listener's clock lags
        # the sink's by seconds, so a few thousand words are plenty to move back over
        self._passed: deque[tuple[int, int]] = deque(maxlen=_PASSED_KEPT)
        self._unfired: list[WordInfo] = []
        self._last_mark_frame = 0
        self._heard_end = 0
        self._stopped_at: int | None = None
        self._reported = False

    # -- signals ----------------------------------------------------------------------
    def cancel(self) -> None:
        """Drop the reply now (any thread).

        The signal goes first: playback freezes what was heard and silences the
        sink (``cancel_signal``'s callbacks), and only then is the audio dropped,
        so the buffer's end cannot be mistaken for the reply's natural end.
        """
        self._cancel.set()
        self._buffer.clear()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def cancel_signal(self) -> Cancel:
        """Set by :meth:`cancel` only: engines get it as ``cancel``, playback hooks its stop on it."""
        return self._cancel

    def admit(self) -> None:
        """Playback: the reply is near the front of the line, synthesize ahead now."""
        self._admitted.set()

    @property
    def admitted(self) -> bool:
        return self._admitted.is_set()

    @property
    def held(self) -> bool:
        """The stream is paused."""
        return self._hold.is_set()

    # -- producer side (the stream and its worker) -------------------------------------
    def add_chunk_text(self, text: str) -> int:
        """Append a chunk to the spoken text; returns its offset there."""
        with self._lock:
            base = self._spoken_len + (1 if self._spoken_len else 0)
            self._spoken.append(text)
            self._bases.append(base)
            self._spoken_len = base + len(text)
            self._unsynth_chars += len(text)
            return base

    def mark_synthesized(self, base: int, text: str) -> None:
        """The chunk ``text`` at ``base`` in the spoken text has all its audio in the buffer."""
        with self._lock:
            self._synth_end = max(self._synth_end, base + len(text))
            self._unsynth_chars = max(0, self._unsynth_chars - len(text))

    @property
    def unsynthesized_chars(self) -> int:
        """Spoken text still waiting for its audio; none once the audio has ended."""
        return 0 if self._buffer.ended else self._unsynth_chars

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
        self._frames_pushed += len(pcm)
        self._buffer.push(pcm)

    def end(self) -> None:
        """No more audio will come: playback plays what is left, then reports."""
        self._buffer.end()

    def wait_for_room(self, seconds: float) -> None:
        """Block the producer while more than ``seconds`` of audio wait to be played, until cancelled."""
        self._buffer.wait_below(seconds, self._cancel)

    @property
    def frames_pushed(self) -> int:
        return self._frames_pushed

    @property
    def ended(self) -> bool:
        """No more audio will come (its end, a failure, or a cancel)."""
        return self._buffer.ended

    @property
    def queued_seconds(self) -> float:
        return self._buffer.queued_seconds

    # -- playback side ----------------------------------------------------------------
    def read(self, frames: int, timeout: float | None) -> np.ndarray | None:
        """Up to ``frames`` frames of audio; empty on timeout; None once ended and all read."""
        return self._buffer.read(frames, timeout)

    def _pass(self, played: int) -> None:
        """Marks before frame ``played`` were heard (lock held)."""
        while self._marks and self._marks[0][0] <= played:
            frame, offset, length = self._marks.popleft()
            self._heard_end = max(self._heard_end, offset + length)
            self._passed.append((frame, offset + length))
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

    def heard_until(self, played: int) -> None:
        """The listener heard only the first ``played`` frames, fewer than the sink took.

        For audio sent over a network: the sink counts it played when handed over, and the
        client reports its own clock when it interrupts, maybe after the reply was all sent.
        Words that start at or after ``played`` become unheard again; ``on_word`` already
        fired for them.
        """
        with self._lock:
            passed = self._passed
            while passed and passed[-1][0] >= played:
                passed.pop()
            end = passed[-1][1] if passed else self._first()
            self._heard_end = min(self._heard_end, end)

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
        return self.outcome.done() or self._cancel.is_set()

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
