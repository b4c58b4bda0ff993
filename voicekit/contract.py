"""The engine contract: text in, audio chunks with word marks out.

An engine knows nothing of streams, queues, sinks or threads. It turns one text
chunk (at most ``max_chars`` characters, already cut at a sentence boundary by
the chunker) into an iterator of :class:`AudioChunk`. To add an engine, write a
class with these members and wrap it in :class:`voicekit.tts.BaseTTS`.

Cancellation: when the user interrupts, the stream sets ``cancel`` and then
closes the iterator (``iterator.close()``). Engines must release what they
hold in ``finally`` (stop the C synthesizer, close the HTTP response) and stop
promptly. An engine that blocks in I/O should register the close with
``cancel.call_on_set(...)`` when ``cancel`` is a :class:`Cancel` (the stream
always passes one), so the interrupt cuts the transfer at once.

What an engine can do it declares in ``capabilities`` (an
:class:`EngineCapabilities`); nothing in voicekit guesses from other members.

SSML: an engine that reads SSML declares ``EngineCapabilities(ssml=True)`` and takes a
keyword ``ssml`` (``synthesize(text, cancel, *, ssml=False)``). The stream
decides once per reply whether it is SSML and passes ``ssml=True`` with every
chunk of an SSML reply, each one well-formed ``<speak>`` document of at most
``max_chars`` characters; every other chunk is plain text and must be spoken as
text, whatever it looks like. Engines without ``ssml`` are never passed the
keyword (the stream speaks an SSML reply's text through them).
"""

from __future__ import annotations

import atexit
import logging
import numbers
import re
import threading
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import EngineError

__all__ = ["WordMark", "AudioChunk", "Voice", "Engine", "EngineCapabilities", "Cancel", "capabilities_of", "language_of", "PROPERTY_RANGES", "at_exit", "check_property",
           "check_voice_id", "run_exit_hooks", "speakable"]

# Letters, digits and _ . + - only, starting with a letter or digit: no path separator, no
# "..", nothing absolute, so an id can never name a file outside the engine's voice folder.
_VOICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")


def check_voice_id(voice_id: object, known: Collection[str] = ()) -> str:
    """Return ``voice_id`` if it is a voice id, else raise ``ValueError``.

    Voice ids are ids, never paths: an id is accepted if it is one of ``known``
    (the engine's own voice list, e.g. eSpeak's ``"gmw/en-US"``) or matches a
    strict pattern (letters, digits, ``_ . + -``, at most 100 characters, no
    ``..``). Every engine calls this before an id reaches its library or a file.
    """
    if isinstance(voice_id, str) and (voice_id in known or _VOICE_ID.fullmatch(voice_id) and ".." not in voice_id):
        return voice_id
    raise ValueError(
        f"invalid voice id {voice_id!r}: use an id from voices() (letters, digits, '_', '.', '+', '-'; not a path)"
    )


# What no engine library can take: NUL and lone surrogates break eSpeak's C string, other
# control characters glue words. Replaced by spaces, so offsets in the text stay the caller's.
_UNSPEAKABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def speakable(text: object, *, engine: str, closed: bool) -> str:
    """What every engine's ``synthesize`` checks first: ``text`` with unspeakable characters
    replaced by spaces; ``TypeError`` if it is no str, ``EngineError`` (all of it unspoken)
    if the engine is ``closed``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    if closed:
        raise EngineError(f"the {engine} engine is closed", unspoken_text=text, engine=engine)
    return _UNSPEAKABLE.sub(" ", text)


# The contract's scales: rate is a speed factor (1.0 normal), volume and pitch 0-100 (pitch 50 normal).
PROPERTY_RANGES = {"rate": (0.1, 10.0), "volume": (0.0, 100.0), "pitch": (0.0, 100.0)}


def check_property(name: str, value: object, *, rate: tuple[float, float] | None = None) -> float:
    """``value`` as a float if it is a number within ``name``'s range, else ``ValueError``.

    Every engine's ``set_property`` and ``config.normalize_property`` check with
    this; ``rate`` narrows the speed range to what an engine's API takes.
    """
    if name not in PROPERTY_RANGES:
        raise ValueError(f"unknown property {name!r}; use 'rate', 'volume' or 'pitch'")
    low, high = rate if name == "rate" and rate is not None else PROPERTY_RANGES[name]
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and low <= float(value) <= high:
        return float(value)  # NaN fails the comparison, infinities the bounds
    raise ValueError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}")


class Cancel(threading.Event):
    """The ``cancel`` event the stream passes to engines.

    A plain ``threading.Event`` that can also run callbacks when set, so an
    engine blocked in a network read can have the interrupting thread close
    the response at once (``cancel.call_on_set(response.close)``) instead of
    noticing only when the next bytes arrive.
    """

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list = []
        self._guard = threading.Lock()

    def call_on_set(self, callback) -> None:
        with self._guard:
            if not self.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def set(self) -> None:
        with self._guard:
            super().set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - closing an already broken transfer may fail; it is over anyway
                logging.getLogger("voicekit").debug("cancel callback %r raised", callback, exc_info=True)


@dataclass(frozen=True, slots=True)
class WordMark:
    """A word of the chunk text and when it starts in the chunk's audio.

    ``offset`` and ``length`` index the text passed to ``synthesize`` (Python
    ``str`` indices). ``time`` is seconds from the start of that text's audio,
    counted across all of its ``AudioChunk``s.
    """

    offset: int
    length: int
    time: float


@dataclass(slots=True)
class AudioChunk:
    """A piece of mono audio: float32 samples in [-1, 1] at ``samplerate``.

    ``marks`` are the words that start inside this piece (may be empty).
    ``engine`` names the engine that produced it when that differs from the
    engine called (a fallback chain); empty means the called engine.
    """

    pcm: np.ndarray
    samplerate: int
    marks: tuple[WordMark, ...] = field(default=())
    engine: str = ""

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.samplerate


@dataclass(frozen=True, slots=True)
class Voice:
    id: str
    name: str
    language: str = ""
    gender: str = ""


@dataclass(frozen=True)
class EngineCapabilities:
    """What an engine declares it can do, as its ``capabilities``."""

    ssml: bool = False  # synthesize(text, cancel, *, ssml=True) takes one <speak> document
    word_marks: bool = False  # its chunks carry WordMarks; without them the stream estimates each word's time
    languages: tuple[str, ...] = ()  # the language tags its voices speak; empty: not listed (a service's many)
    streaming_input: bool = False  # takes text as it arrives; voicekit's engines each get whole sentences


def capabilities_of(engine: object) -> EngineCapabilities:
    """``engine.capabilities``; an engine that declares none can do none of these."""
    declared = getattr(engine, "capabilities", None)  # optional in the contract: one reader, here
    if declared is None:
        return EngineCapabilities()
    if not isinstance(declared, EngineCapabilities):
        raise TypeError(f"{type(engine).__name__}.capabilities must be an EngineCapabilities, got {declared!r}")
    return declared


def language_of(engine: object) -> str | None:
    """``engine.language``, the current voice's language tag, if the engine tells it (optional, like
    ``capabilities``): the text stages pick their sentence rules by it."""
    language = getattr(engine, "language", None)
    return language if isinstance(language, str) and language else None


@runtime_checkable
class Engine(Protocol):
    """What a TTS client must provide.

    Optionally an engine has ``language``: the language tag of its current voice ("de",
    "en-US", "cmn"), read by :func:`language_of`. A stream picks its sentence rules from it
    unless the stream setting ``language`` is given; without it the rules are English.
    """

    #: short name used in reports (``on_chunk_processed``'s ``engine``).
    name: str
    #: the rate of the audio it produces; other rates are resampled by the stream.
    samplerate: int
    #: longest text chunk it accepts (e.g. Polly's 3000 billed characters).
    max_chars: int

    def synthesize(self, text: str, cancel: threading.Event) -> Iterator[AudioChunk]:
        """Yield the audio of ``text`` as it is produced.

        Raise :class:`voicekit.errors.EngineError` on failure. ``cancel`` is set
        when the audio is no longer wanted.
        """
        ...

    def voices(self) -> list[Voice]: ...

    def set_voice(self, voice_id: str) -> None: ...

    def set_property(self, name: str, value: float) -> None:
        """Set an already-normalized property.

        ``rate`` is a speed factor (1.0 normal, 0.5 half, 2.0 double),
        ``volume`` 0-100 (100 full) and ``pitch`` 0-100 (50 normal).
        """
        ...

    def close(self) -> None:
        """Release clients, sessions and libraries; idempotent."""
        ...


_exit_hooks: list[Callable[[], None]] = []
_exit_lock = threading.Lock()


def at_exit(hook: Callable[[], None]) -> None:
    """Run ``hook`` as the interpreter exits, after every stream has finished speaking.

    For engines whose threads must not be inside native code when Python
    finalizes (Piper's onnxruntime): a plain ``atexit`` hook of an engine
    could run before the streams' own one and cut a script's last words.
    """
    with _exit_lock:
        _exit_hooks.append(hook)


@atexit.register  # registered before any stream exists, so it runs after theirs
def run_exit_hooks() -> None:
    """The engines' exit hooks, last registered first, each once."""
    while True:
        with _exit_lock:
            if not _exit_hooks:
                return
            hook = _exit_hooks.pop()
        hook()

