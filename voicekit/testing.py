"""Test doubles: an engine whose audio and word marks are known to the sample.

:class:`ToneEngine` is a real engine client (the :mod:`voicekit.contract`
contract) that "speaks" each word of a text as a sine tone, and
:class:`ToneTTS` is the TTS class over it, built like the others::

    from voicekit import MemorySink
    from voicekit.testing import ToneTTS

    tts = ToneTTS()
    stream = tts.create_stream(sink=MemorySink())

It needs no speech engine, no network and no sound card, and nothing about it
varies from run to run, so tests of code built on voicekit can assert exact
values: where each word starts (:meth:`ToneEngine.plan`), how long a text
plays (:meth:`ToneEngine.frames`), which words were heard when a stream was
interrupted at a given frame. Latency before the first audio and failures at
a chosen point are options; every text the engine was asked to speak is kept
in :attr:`ToneEngine.texts`.

How a text sounds: every run of non-space characters is a word; word ``i`` is
a tone of ``frequencies[i % len(frequencies)]`` Hz lasting ``char_seconds``
per character, and words are ``gap_seconds`` of silence apart (none before the
first word, none after the last). Each word's :class:`~voicekit.contract.WordMark`
is at the first sample of its tone. ``set_property("rate", 2.0)`` halves every
duration, ``volume`` scales the amplitude (0.5 at 100) and ``pitch`` moves every
tone (50 is the frequencies as given; 0 an octave down, 100 an octave up).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeAlias

import numpy as np

from .config import normalize_property
from .contract import AudioChunk, EngineCapabilities, Voice, WordMark, check_voice_id, speakable
from .errors import EngineError
from .tts import BaseTTS

__all__ = ["ToneEngine", "ToneTTS", "ToneWord", "ToneSettings", "Failure"]

_WORD = re.compile(r"\S+")  # the stream's own notion of a word (voicekit.reply)

#: where a text breaks off: markers (a text containing one breaks at its first
#: occurrence) or a function of the text giving the offset, None for no failure
Failure: TypeAlias = str | Collection[str] | Callable[[str], int | None] | None


@dataclass(frozen=True, slots=True)
class ToneWord:
    """One word of a text as :class:`ToneEngine` plays it; positions in samples."""

    #: where the word is in the text (``str`` index) and its length
    offset: int
    length: int
    #: first sample of its tone, counted from the start of the text's audio
    start: int
    #: samples of tone
    frames: int
    frequency: float

    @property
    def end(self) -> int:
        """The sample after its tone."""
        return self.start + self.frames


@dataclass(frozen=True)
class ToneSettings:
    """A :class:`ToneEngine`'s voice and properties (``set_voice``, ``set_property``)."""

    voice: str
    rate: float = 1.0
    volume: float = 100.0
    pitch: float = 50.0


class ToneEngine:
    """An engine that plays each word of a text as a tone, with exact word marks.

    ``samplerate``: Hz of its audio. ``char_seconds`` / ``gap_seconds``: tone per
    character of a word, and silence between words, at rate 1.0 (the defaults
    speak about as fast as a person: some 16 characters a second). ``chunk_seconds``:
    audio per yielded :class:`~voicekit.contract.AudioChunk` (the last one of a
    text may be shorter). ``latency``: seconds each ``synthesize`` call waits
    before its first chunk, as a network engine would; setting ``cancel`` ends
    the wait at once. No other waiting: audio is made as fast as it is asked for.

    ``fail`` makes texts break off, like an engine whose connection drops: a
    marker string (or a collection of them), or a function of the text returning
    the character offset to break at (None: no failure). The audio stops where
    that character would start (inside a word: part of its tone plays, with its
    mark), then :class:`~voicekit.errors.EngineError` is raised with
    ``unspoken_text`` from the start of the word at the break to the text's end.
    The attribute ``fail`` may be changed between calls.

    ``voices``: what ``voices()`` lists and ``set_voice`` accepts (default: two
    voices, English and German, which set ``language``). ``name`` and ``max_chars``
    as in the contract; give two engines different names to tell them apart in
    a :class:`~voicekit.engines.fallback.FallbackEngine`.
    """

    #: Hz of word 0, 1, 2, ...; then again from the first
    frequencies: tuple[float, ...] = (220.0, 275.0, 330.0, 385.0, 440.0)

    def __init__(
        self,
        *,
        samplerate: int = 24000,
        char_seconds: float = 0.06,
        gap_seconds: float = 0.04,
        chunk_seconds: float = 0.05,
        latency: float = 0.0,
        fail: Failure = None,
        voices: Sequence[Voice] | None = None,
        max_chars: int = 1000,
        name: str = "tone",
    ) -> None:
        for option, count in (("samplerate", samplerate), ("max_chars", max_chars)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"{option} must be a whole number from 1, got {count!r}")
        for option, seconds, zero in (("char_seconds", char_seconds, False), ("chunk_seconds", chunk_seconds, False),
                                      ("gap_seconds", gap_seconds, True), ("latency", latency, True)):
            if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and (seconds > 0 or zero and seconds == 0)):
                raise ValueError(f"{option} must be a finite number of seconds, {'0 or more' if zero else 'above 0'}, "
                                 f"got {seconds!r}")
        self.name = name
        self.samplerate = samplerate
        self.max_chars = max_chars
        self.char_seconds = float(char_seconds)
        self.gap_seconds = float(gap_seconds)
        self.chunk_seconds = float(chunk_seconds)
        self.latency = float(latency)
        self.fail = fail
        self._voices = list(voices) if voices is not None else [
            Voice("tone-en", "Tones, English sentence rules", "en"),
            Voice("tone-de", "Tones, German sentence rules", "de"),
        ]
        if not self._voices:
            raise ValueError("voices must list at least one Voice")
        languages = tuple(dict.fromkeys(v.language for v in self._voices if v.language))
        self.capabilities = EngineCapabilities(word_marks=True, languages=languages)  # marks exact to the sample
        #: every text ``synthesize`` was called with, in call order
        self.texts: list[str] = []
        self._settings = ToneSettings(self._voices[0].id)
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        s = self._settings
        state = ", closed" if self._closed else ""
        return (f"ToneEngine(name={self.name!r}, samplerate={self.samplerate}, voice={s.voice!r}, "
                f"rate={s.rate:g}, volume={s.volume:g}, pitch={s.pitch:g}{state})")

    # -- the layout, for tests to assert against -----------------------------------------

    def plan(self, text: str) -> list[ToneWord]:
        """Where each word of ``text`` plays, at the current settings: what ``synthesize`` yields."""
        return self._plan(text, self._settings)

    def frames(self, text: str) -> int:
        """Samples of the whole audio of ``text`` (at ``samplerate``)."""
        words = self.plan(text)
        return words[-1].end if words else 0

    def _plan(self, text: str, settings: ToneSettings) -> list[ToneWord]:
        char_frames, gap_frames = self._frames_per(settings)
        shift = 2.0 ** ((settings.pitch - 50.0) / 50.0)
        words, at = [], 0
        for i, match in enumerate(_WORD.finditer(text)):
            frames = len(match.group()) * char_frames
            frequency = self.frequencies[i % len(self.frequencies)] * shift
            words.append(ToneWord(match.start(), len(match.group()), at, frames, frequency))
            at += frames + gap_frames
        return words

    def _frames_per(self, settings: ToneSettings) -> tuple[int, int]:
        """(samples of tone per character, samples of silence between words)."""
        scale = self.samplerate / settings.rate
        # whole samples per character, so a word's tone and a break inside it are exact
        return max(1, round(self.char_seconds * scale)), round(self.gap_seconds * scale)

    # -- the engine contract -------------------------------------------------------------

    def synthesize(self, text: str, cancel: threading.Event) -> Iterator[AudioChunk]:
        # the checks every engine makes; tones need no library, so the text is spoken as given
        speakable(text, engine=self.name, closed=self._closed)
        with self._lock:
            settings, fail = self._settings, self.fail  # one text, one voice: later changes wait for the next
            self.texts.append(text)
        words = self._plan(text, settings)
        stop = words[-1].end if words else 0
        unspoken: str | None = None
        at = self._break_at(text, fail)
        if at is not None:
            stop, unspoken = self._cut(text, words, at, settings)
        yield from self._run(words, stop, unspoken, settings, cancel)

    def _run(self, words: list[ToneWord], stop: int, unspoken: str | None, settings: ToneSettings,
             cancel: threading.Event) -> Iterator[AudioChunk]:
        if self.latency and cancel.wait(self.latency):
            return
        amplitude = np.float32(0.5 * settings.volume / 100.0)
        step = max(1, round(self.chunk_seconds * self.samplerate))
        first = 0  # the first word that may still sound
        for begin in range(0, stop, step):
            if cancel.is_set():
                return
            end = min(begin + step, stop)
            while first < len(words) and words[first].end <= begin:
                first += 1
            pcm = np.zeros(end - begin, np.float32)
            marks = []
            for word in words[first:]:
                if word.start >= end:
                    break
                lo, hi = max(word.start, begin), min(word.end, end)
                n = np.arange(lo - word.start, hi - word.start, dtype=np.float64)
                pcm[lo - begin : hi - begin] = amplitude * np.sin(2 * np.pi * word.frequency / self.samplerate * n)
                if word.start >= begin:
                    marks.append(WordMark(word.offset, word.length, word.start / self.samplerate))
            yield AudioChunk(pcm, self.samplerate, tuple(marks))
        if unspoken is not None and not cancel.is_set():
            raise EngineError(f"{self.name} broke off (ToneEngine fail=...)", unspoken_text=unspoken,
                              engine=self.name)

    @staticmethod
    def _break_at(text: str, fail: Failure) -> int | None:
        if fail is None:
            return None
        if callable(fail):
            at = fail(text)
            return None if at is None else min(max(int(at), 0), len(text))
        markers = [fail] if isinstance(fail, str) else list(fail)
        found = [i for i in (text.find(m) for m in markers if m) if i >= 0]
        return min(found) if found else None

    def _cut(self, text: str, words: list[ToneWord], at: int, settings: ToneSettings) -> tuple[int, str]:
        """(samples played before the break at character ``at``, the unspoken text)."""
        for word in words:
            if word.offset + word.length > at:
                char_frames, _ = self._frames_per(settings)
                return word.start + max(0, at - word.offset) * char_frames, text[word.offset :]
        return (words[-1].end if words else 0), ""

    def voices(self) -> list[Voice]:
        return list(self._voices)

    @property
    def language(self) -> str:
        """The current voice's language: the stream's sentence rules follow it."""
        return next(v.language for v in self._voices if v.id == self._settings.voice)

    @property
    def settings(self) -> ToneSettings:
        """The voice and properties the next ``synthesize`` call speaks with."""
        return self._settings

    def set_voice(self, voice_id: str) -> None:
        known = [v.id for v in self._voices]
        if check_voice_id(voice_id, known) not in known:
            raise ValueError(f"unknown voice {voice_id!r}; ToneEngine has {known}")
        with self._lock:
            self._settings = replace(self._settings, voice=voice_id)

    def set_property(self, name: str, value: float) -> None:
        """``rate`` (speed factor), ``volume`` or ``pitch`` (0-100), checked as ``BaseTTS.set_property`` checks them."""
        change: dict[str, Any] = {name: normalize_property(name, value)}
        with self._lock:
            self._settings = replace(self._settings, **change)

    def close(self) -> None:
        self._closed = True


class ToneTTS(BaseTTS):
    """A TTS over a :class:`ToneEngine`: ``ToneTTS(latency=0.2, fail={"Boom"})``.

    Keywords are :class:`ToneEngine`'s options; ``ToneTTS(engine)`` takes an
    engine made beforehand instead. The engine is ``tts.client``.
    """

    client: ToneEngine

    def __init__(self, client: ToneEngine | None = None, **options: Any) -> None:
        if client is not None and options:
            raise TypeError("give ToneTTS either an engine or ToneEngine options, not both")
        super().__init__(client if client is not None else ToneEngine(**options))
