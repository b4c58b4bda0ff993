"""What the onnxruntime engines (Piper, Kokoro) share: one process-wide record of the calls
into onnxruntime (so none is in progress when the interpreter finalizes), turns on a shared
session, and the text side of a run: aligning words to phonemes, cutting sentences into runs,
timing words from the model's durations and trimming the seams.

Engines import this module and the engine contract only.
"""

from __future__ import annotations

import contextlib
import difflib
import heapq
import itertools
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np

from ..contract import AudioChunk, WordMark, at_exit
from ..errors import EngineError

__all__ = ["PHRASE_STARTS", "Native", "Progress", "Replies", "Turns", "align", "cores", "espeak_lock", "keep_ctrl_c",
           "native", "pairs", "pitch_factor", "sentence_words", "session_options", "Settings", "speak"]  # fmt: skip

# how often a run waiting for its turn looks at a plain threading.Event cancel (a Cancel wakes it)
_CANCEL_POLL = 0.05
# eSpeak NG's voice is process-wide state: Piper's and Kokoro's phonemizers take turns on it
espeak_lock = threading.Lock()
# How long close() waits for its stopped runs: a stopped run returns at its next graph
# node, within milliseconds, so the bound only matters if onnxruntime misbehaves.
STOP_WAIT = 2.0
# How long the exit waits for onnxruntime calls: a session being loaded can't be stopped (~1 s).
_EXIT_WAIT = 5.0
# where a clause too long for one run is best cut: before these words
PHRASE_STARTS = frozenset(
    "and or but nor so yet because since although though while when where which who whom whose that "
    "if unless until after before as than then with without for from into onto in on at to of by "
    "about over under between through during".split()
)
CLAUSE_ENDS = frozenset(",;:")
_SKIP_IN_ALIGNMENT = frozenset(" ,.;:!?ˈˌ\"'()-")
_WORD = re.compile(r"\S+")

def keep_ctrl_c(exc: ImportError) -> None:
    """Ctrl-C while onnxruntime or onnx initializes comes out as their ImportError
    ("initialization failed", from pybind11): it stays a Ctrl-C, not a missing install."""
    if isinstance(exc.__cause__, KeyboardInterrupt):
        raise exc.__cause__


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_T = TypeVar("_T")


class Native:
    """The onnxruntime calls in progress (session loads and runs) of the whole process.

    A thread still inside onnxruntime when the interpreter finalizes is killed as it
    takes the GIL back, inside onnxruntime's C++ frames (pthread_exit unwinding through
    pybind11's noexcept GIL guard): "terminate called without an active exception",
    SIGABRT. So a closing client stops its runs and waits for them, and the exit stops
    every run, waits for every call and lets none start after it.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._calls: dict[object, Any] = {}  # one token per call -> the RunOptions that stop it, or None
        self._exiting = False

    @property
    def exiting(self) -> bool:
        return self._exiting

    def call(self, function: Callable[[], _T], options: Any = None) -> _T | None:
        """``function()``, a call into onnxruntime (a run stopped by ``options``); None, not
        called, once the interpreter is exiting."""
        token = object()
        with self._cond:
            if self._exiting:
                return None
            self._calls[token] = options
        try:
            return function()
        finally:
            with self._cond:
                del self._calls[token]
                self._cond.notify_all()

    def stop(self, among: Collection[Any], timeout: float) -> None:
        """Stop the runs given any of ``among`` (RunOptions), from now on, and wait up to
        ``timeout`` seconds for those in progress."""
        wanted = {id(options) for options in among}
        for options in among:
            options.terminate = True
        self._wait(lambda options: id(options) in wanted, timeout)

    def exit(self) -> None:
        """The interpreter is exiting: stop every run, wait for every call, start none."""
        with self._cond:
            self._exiting = True
            running = [options for options in self._calls.values() if options is not None]
        for options in running:
            options.terminate = True
        self._wait(lambda options: True, _EXIT_WAIT)

    def _wait(self, pending: Callable[[Any], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(pending(options) for options in self._calls.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)


native = Native()
# after the streams' exit hook: speech a script left queued (through Piper too) is still said
at_exit(native.exit)


def session_options() -> Any:
    """onnxruntime settings for one shared session of a voice model that runs one text length after another."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = cores()  # more threads than cores only contend
    options.inter_op_num_threads = 1
    # onnxruntime caches a memory plan per input shape, and every run has a length of its own:
    # the cache only grew (narration: +0.3 MB per minute of audio); planning per run costs nothing to hear
    options.enable_mem_pattern = False
    # the arena keeps the largest run's memory for good and grows as longer sentences come
    options.enable_cpu_mem_arena = False
    # spinning worker threads eat the cores that a server's other sessions (and their own
    # playback) need; on a busy 2-core machine a sentence took 18% longer with them
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class Turns:
    """The runs of one onnxruntime session, one at a time, the most urgent first.

    Each run already spreads over every core (``intra_op_num_threads``), so runs
    side by side only share the cores while each holds its own activations: ten
    replies at once took 7x the memory (580 vs 80 MB) and got their first chunk
    later (p50 1.0 vs 0.6 s), for the same total time.

    Urgency is a deadline: the moment the reply's listener would run out of
    audio. A reply with no audio yet has its deadline when it asks, so its first
    fragment goes before the later sentences of replies still playing what they
    have, and no new reply waits behind another's long paragraph; equal
    deadlines go in the order they came. A run still waiting gives up its place
    when its reply is cancelled.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: list[tuple[float, int]] = []  # a heap of (deadline, arrival)
        self._arrivals = itertools.count()
        self._busy = False

    def wake(self) -> None:
        """A reply was cancelled: its waiting run should notice now."""
        with self._cond:
            self._cond.notify_all()

    @contextlib.contextmanager
    def take(self, cancel: threading.Event | None, deadline: float) -> Iterator[bool]:
        """Wait for this run's turn; yields False (and runs nothing) if ``cancel`` is set first."""
        ticket = (deadline, next(self._arrivals))
        # a Cancel wakes us through wake(); a plain Event can only be looked at now and then
        wait = None if hasattr(cancel, "call_on_set") else _CANCEL_POLL
        with self._cond:
            heapq.heappush(self._waiting, ticket)
            while (self._busy or self._waiting[0] != ticket) and not (cancel is not None and cancel.is_set()):
                self._cond.wait(wait)
            mine = not self._busy and self._waiting[0] == ticket and not (cancel is not None and cancel.is_set())
            if mine:
                heapq.heappop(self._waiting)
                self._busy = True
            else:
                self._waiting.remove(ticket)
                heapq.heapify(self._waiting)
                self._cond.notify_all()  # the next in line may be waiting on this ticket
        try:
            yield mine
        finally:
            if mine:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


@dataclass
class Progress:
    """How far one reply's audio has got: what its deadline is computed from."""

    first_audio_at: float | None = None
    seconds: float = 0.0

    def deadline(self) -> float:
        now = time.monotonic()
        return now if self.first_audio_at is None else self.first_audio_at + self.seconds

    def made(self, seconds: float) -> None:
        if self.first_audio_at is None:
            self.first_audio_at = time.monotonic()
        self.seconds += seconds


def align(
    phonemize: Callable[[str], list[list[str]]], text: str, phonemes: Sequence[str]
) -> list[tuple[int, int, int]]:
    """(offset, length, phoneme index) for every word of ``text``, in order.

    Each word is phonemized on its own and the concatenation is matched
    against the sentence-level phonemes (which differ a little: eSpeak joins
    "was a" into "wʌzɐ" and reduces weak forms). A word starts at the phoneme
    its own first phoneme matched, or, inside an unmatched stretch, at the
    proportional point of it.
    """
    words = [(m.start(), len(m.group())) for m in _WORD.finditer(text)]
    own: list[str] = []
    word_starts = []
    for offset, length in words:
        word_starts.append(len(own))
        own += [c for group in phonemize(text[offset : offset + length]) for p in group for c in p
                if c not in _SKIP_IN_ALIGNMENT]
    joint: list[str] = []
    owner: list[int] = []  # phoneme index of each character of ``joint``
    for index, phoneme in enumerate(phonemes):
        for c in phoneme:
            if c not in _SKIP_IN_ALIGNMENT:
                joint.append(c)
                owner.append(index)
    owner.append(len(phonemes))
    blocks = difflib.SequenceMatcher(None, own, joint, autojunk=False).get_matching_blocks()
    out = []
    block = 0
    prev_a = prev_b = 0
    for (offset, length), start in zip(words, word_starts):
        while block < len(blocks) and blocks[block].a + blocks[block].size <= start and blocks[block].size:
            prev_a = blocks[block].a + blocks[block].size
            prev_b = blocks[block].b + blocks[block].size
            block += 1
        a, b, size = blocks[block] if block < len(blocks) else (len(own), len(joint), 0)
        if a <= start < a + size:
            position = b + start - a
        else:  # in a stretch the two phonemizations disagree on
            span = a - prev_a
            position = prev_b + ((start - prev_a) * (b - prev_b) // span if span > 0 else 0)
        index = owner[min(position, len(joint))]
        while index > 0 and phonemes[index - 1] in ("ˈ", "ˌ"):  # the stress mark belongs to the word
            index -= 1
        out.append((offset, length, index))
    return out


def cuts(
    phonemes: Sequence[str], word_starts: Sequence[int], phrase_starts: Sequence[int], *, most: int,
    first_most: int | None = None,
) -> list[int]:
    """Run boundaries (phoneme indices) within one sentence: each run at most ``most`` phonemes,
    and the first at most ``first_most`` when it is the reply's first.

    Prefer the last clause break that fits, then the last phrase start
    ("and", "which", ...) past the run's first third, then the last word start.
    """
    # a short sentence is not cut: each cut adds a run and lengthens the word before it
    limit = first_most if first_most is not None and len(phonemes) > 2 * first_most else most
    found = []
    start = 0
    while len(phonemes) - start > limit:
        end = start + limit
        clause = [i + 1 for i in range(start, end) if phonemes[i] in CLAUSE_ENDS]
        phrase = [i for i in phrase_starts if start + limit // 3 < i <= end]
        word = [i for i in word_starts if start < i <= end]
        cut = (clause or phrase or word or [end])[-1]
        while cut < len(phonemes) and phonemes[cut] == " ":  # the space stays with the run before
            cut += 1
        found.append(cut)
        start, limit = cut, most
    return found


def pairs(
    text: str, phonemes: Sequence[str], words: Sequence[tuple[int, int, int]], *, most: int,
    first_most: int | None = None,
) -> list[tuple[int, int]]:
    """The (start, end) phoneme ranges of one sentence's runs (``first_most``: the reply's first sentence)."""
    word_starts = [p for _, _, p in words]
    phrase_starts = [p for o, n, p in words if text[o : o + n].lower().strip(".,;:!?\"'()") in PHRASE_STARTS]
    bounds = [0, *cuts(phonemes, word_starts, phrase_starts, most=most, first_most=first_most), len(phonemes)]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def mid_clause(phonemes: Sequence[str], cut: int) -> bool:
    """Whether a run boundary at ``cut`` falls between two words of one clause."""
    if not 0 < cut < len(phonemes):
        return False
    before = cut - 1
    while before > 0 and phonemes[before] == " ":
        before -= 1
    return phonemes[before] not in CLAUSE_ENDS


def trim(audio: np.ndarray, head: int, tail: int) -> np.ndarray:
    """``audio`` without ``head`` and ``tail`` samples, faded over 3 ms where it was cut (no click)."""
    if not head and not tail:
        return audio
    kept = audio[head : len(audio) - tail].copy()
    ramp = min(64, len(kept))
    if head:
        kept[:ramp] *= np.linspace(0, 1, ramp, dtype=np.float32)
    if tail:
        kept[len(kept) - ramp :] *= np.linspace(1, 0, ramp, dtype=np.float32)
    return kept


def word_marks(
    words: Sequence[tuple[int, int, int]],
    start: int,
    end: int,
    id_starts: Sequence[int],
    samples: np.ndarray | None,
    audio_len: int,
    phonemes: Sequence[str],
    produced: int,
    samplerate: int,
) -> tuple[WordMark, ...]:
    """The marks of the words starting in phonemes ``start:end`` of a sentence (its last run takes the rest)."""
    final = end == len(phonemes)
    mine = [(o, n, p) for o, n, p in words if start <= p < end or (final and p >= end)]
    if not mine:
        return ()
    if samples is not None:
        offsets = np.concatenate(([0], np.cumsum(samples)))
        at = [int(offsets[id_starts[p - start]]) if p < end else audio_len for _, _, p in mine]
    else:  # no duration output: spread over the run by phoneme position
        at = [audio_len * (p - start) // max(1, end - start) for _, _, p in mine]
    return tuple(WordMark(o, n, (produced + s) / samplerate) for (o, n, _), s in zip(mine, at))



@dataclass(frozen=True)
class Settings:
    """A client's speech settings, replaced whole on a change: a chunk reads them once."""

    rate: float = 1.0
    volume: float = 100.0
    pitch: float = 50.0


def pitch_factor(pitch: float) -> float:
    """0-100 (50 normal) as a frequency factor: half an octave down to half an octave up."""
    return float(2 ** ((pitch - 50) / 100))


Words = list[tuple[int, int, int]]  # (offset, length, phoneme index) of the words of a text or sentence
# one run of a model: (audio, samples per id or None, where each phoneme's ids start), None if not run
RunResult = tuple[np.ndarray, "np.ndarray | None", list[int]]


def sentence_words(
    phonemize: Callable[[str], list[list[str]]], text: str, sentences: list[list[str]]
) -> Iterator[tuple[list[str], Words]]:
    """Each sentence's phonemes with the words that start in it (offset, length, phoneme index)."""
    flat = [p for sentence in sentences for p in sentence]
    aligned = align(phonemize, text, flat)
    first = 0
    for i, sentence in enumerate(sentences):
        last = first + len(sentence)
        final = i == len(sentences) - 1
        # a word past the last phoneme (a lone "--") is heard with the end of the audio
        words = [(o, n, p - first) for o, n, p in aligned if first <= p < last or (final and p >= last)]
        yield sentence, words
        first = last


class Replies:
    """One client's replies, each known by its cancel event: the RunOptions that stop its runs
    (set when the reply is cancelled or the client closes) and how far its audio has got."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._options: weakref.WeakKeyDictionary[threading.Event, Any] = weakref.WeakKeyDictionary()
        self._progress: weakref.WeakKeyDictionary[threading.Event, Progress] = weakref.WeakKeyDictionary()

    def options(self, cancel: threading.Event, new_options: Callable[[], Any], turns: Turns) -> Any:
        """One RunOptions per interruptible reply: its terminate flag stops a run in progress."""
        with self._guard:
            options = self._options.get(cancel)
            if options is None:
                options = self._options[cancel] = new_options()

                def stop(options: Any = options, turns: Turns = turns) -> None:
                    options.terminate = True
                    turns.wake()

                call_on_set = getattr(cancel, "call_on_set", None)
                if call_on_set is not None:
                    call_on_set(stop)
        return options

    def progress(self, cancel: threading.Event) -> Progress:
        with self._guard:
            return self._progress.setdefault(cancel, Progress())  # one per reply: its chunks share it

    def stop(self) -> None:
        """Stop every run of these replies and wait for those in progress (a stopped run returns within
        milliseconds)."""
        with self._guard:
            mine = list(self._options.values())
        native.stop(mine, STOP_WAIT)


def speak(
    text: str,
    clean: str,
    sentences: Iterable[tuple[list[str], Words]],
    runs: Callable[[Sequence[str], Words, bool], list[tuple[int, int]]],
    run: Callable[[Sequence[str], float], RunResult | None],
    cancel: threading.Event,
    progress: Progress,
    *,
    samplerate: int,
    gain: float,
    failed: Callable[[Exception], str],
    engine: str,
) -> Iterator[AudioChunk]:
    """A chunk's audio run by run, with its word marks, as soon as each run returns.

    ``runs(phonemes, words, first)`` cuts a sentence into runs; ``run(phonemes, deadline)``
    synthesizes one. A run stopped by the interrupt or the exit ends the chunk quietly; any
    other failure is an ``EngineError`` (``failed`` says why) whose unspoken text starts at
    the run's first word.
    """
    produced = 0  # samples yielded so far
    for phonemes, words in sentences:
        for start, end in runs(phonemes, words, progress.first_audio_at is None):
            if cancel.is_set():
                return
            try:
                ran = run(phonemes[start:end], progress.deadline())
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
                if cancel.is_set() or native.exiting:  # the interrupt or the exit stopped the run
                    return
                unspoken = [o for o, _, i in words if i >= start]
                raise EngineError(failed(exc), unspoken_text=text[unspoken[0]:] if unspoken else "",
                                  engine=engine) from exc  # fmt: skip
            if ran is None or cancel.is_set():
                return
            audio, samples, id_starts = ran
            # between two words of one clause, the silence the model puts before and after
            # every run would be a pause nobody makes there: it is cut out
            head = int(samples[0]) if samples is not None and mid_clause(phonemes, start) else 0
            tail = int(samples[-1]) if samples is not None and mid_clause(phonemes, end) else 0
            marks = word_marks(words, start, end, id_starts, samples, len(audio), phonemes, produced - head, samplerate)
            audio = trim(audio, head, tail)
            first, last = produced / samplerate, (produced + len(audio)) / samplerate
            marks = tuple(replace(m, time=min(max(m.time, first), last)) for m in marks)
            produced += len(audio)
            progress.made(len(audio) / samplerate)
            yield AudioChunk(audio * np.float32(gain), samplerate, marks)
