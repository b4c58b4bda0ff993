"""The embedded default engine: eSpeak NG through ctypes.

libespeak-ng holds one synthesizer per process (one voice, one parameter set,
one callback), so every call into it takes ``_LOCK`` and each synthesis first
re-applies the calling client's own voice and parameters.

``espeak_Synth`` (synchronous mode) blocks in C for the whole text while it
calls back with ~60 ms buffers at several hundred times real time. To yield
those buffers as they are made, each text runs in a short-lived
``voicekit-espeak`` thread that passes them to the generator through a queue.
The queue is unbounded so the thread never waits for a slow consumer while it
holds ``_LOCK`` (which would stall every other stream); text longer than
``max_chars`` is synthesized piece by piece, which bounds that queue.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..contract import AudioChunk, EngineCapabilities, Voice, WordMark, check_property, check_voice_id, speakable
from ..errors import EngineError

__all__ = ["EspeakClient"]

_INSTALL_HINT = "pip install 'voicekit[espeak]' (or on Debian/Ubuntu: apt-get install libespeak-ng1)"

# Values from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of exit() when the data is missing
_BUFFER_MS = 60
_POS_CHARACTER = 1
_CHARS_UTF8 = 1  # and no espeakSSML flag: "<", "&" and quotes are read as plain text
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH = 1, 2, 3
_NORMAL_WPM, _MIN_WPM, _MAX_WPM = 175, 80, 450
_GENDERS = {1: "male", 2: "female"}



class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters (code points) even for UTF-8
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms from the start of this espeak_Synth call
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _VoiceStruct(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, NUL-terminated code)*, then a 0 byte
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class _Settings:
    voice: str = "en"
    rate: int = _NORMAL_WPM
    volume: int = 100
    pitch: int = 50


class _Job:
    """One espeak_Synth call: where its audio goes and when it must stop."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel
        self.abort = threading.Event()  # the generator was closed
        self.out: queue.SimpleQueue[tuple[np.ndarray, list[tuple[int, int, int]]] | None] = queue.SimpleQueue()
        self.marks: list[tuple[int, int, int]] = []  # events waiting for the next buffer with audio
        self.error: BaseException | None = None

    def stopped(self) -> bool:
        return self.abort.is_set() or self.cancel.is_set()


_LOCK = threading.Lock()
_active_job: _Job | None = None  # the job espeak is synthesizing; only changed under _LOCK


def _on_synth(wav: Any, numsamples: int, events: Any) -> int:
    """espeak's callback: queue the buffer with its word events; 1 aborts."""
    job = _active_job
    if job is None:
        return 1
    try:
        i = 0
        while events and events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_WORD:
                job.marks.append((event.text_position - 1, event.length, event.audio_position))
            i += 1
        if numsamples > 0 and wav:
            pcm = np.ctypeslib.as_array(wav, shape=(numsamples,)).astype(np.float32) / np.float32(32768)
            job.out.put((pcm, job.marks))
            job.marks = []
    except BaseException as exc:  # noqa: BLE001 - an exception must not unwind through C
        job.error = exc
        return 1
    return 1 if job.stopped() else 0


_callback = _SynthCallback(_on_synth)  # C keeps this pointer, so it must live as long as the process


class _Espeak:
    """The process-wide library; every method takes ``_LOCK``."""

    def __init__(self) -> None:
        lib, data_path = _open_library()
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_VoiceStruct))
        path = data_path.encode() if data_path else None
        self.samplerate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, path, _INITIALIZE_DONT_EXIT)
        if self.samplerate <= 0:
            raise EngineError(
                f"eSpeak NG could not load its data ({data_path or 'default location'}); reinstall: {_INSTALL_HINT}",
                engine="espeak",
            )
        lib.espeak_SetSynthCallback(_callback)
        self._lib = lib
        self._applied: _Settings | None = None

    def synthesize(self, data: bytes, settings: _Settings, job: _Job) -> None:
        global _active_job
        with _LOCK:
            if job.stopped():
                return
            self._apply(settings)
            _active_job = job
            try:
                status = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            finally:
                _active_job = None
        if status != 0 and job.error is None:
            job.error = EngineError(f"espeak_Synth failed with status {status}", engine="espeak")

    def check_voice(self, voice_id: str) -> None:
        with _LOCK:
            self._applied = None  # the probe below changes espeak's current voice
            if self._lib.espeak_SetVoiceByName(voice_id.encode()) != 0:
                raise ValueError(
                    f"unknown eSpeak voice {voice_id!r}; use an id from voices() or a language code like 'en-us'"
                )

    def voices(self) -> list[Voice]:
        with _LOCK:
            table = self._lib.espeak_ListVoices(None)
            found = []
            i = 0
            while table[i]:
                v = table[i].contents
                found.append(
                    Voice(
                        id=v.identifier.decode(),
                        name=v.name.decode(),
                        language=_first_language(v.languages),
                        gender=_GENDERS.get(v.gender, ""),
                    )
                )
                i += 1
            return found

    def _apply(self, settings: _Settings) -> None:
        if settings == self._applied:
            return
        if self._applied is None or settings.voice != self._applied.voice:
            if self._lib.espeak_SetVoiceByName(settings.voice.encode()) != 0:
                raise EngineError(f"eSpeak voice {settings.voice!r} could not be loaded", engine="espeak")
        for param, value in ((_PARAM_RATE, settings.rate), (_PARAM_VOLUME, settings.volume), (_PARAM_PITCH, settings.pitch)):
            self._lib.espeak_SetParameter(param, value, 0)
        self._applied = settings


def _first_language(languages: int | None) -> str:
    if not languages or not ctypes.c_ubyte.from_address(languages).value:
        return ""
    return ctypes.string_at(languages + 1).decode()


def _open_library() -> tuple[ctypes.CDLL, str | None]:
    """The wheel's library and data, else the system's library with its own data."""
    problems = []
    try:
        import espeakng_loader

        return ctypes.CDLL(espeakng_loader.get_library_path()), espeakng_loader.get_data_path()
    except (ImportError, OSError, RuntimeError) as exc:
        problems.append(f"espeakng-loader: {exc}")
    for name in filter(None, (ctypes.util.find_library("espeak-ng"), "libespeak-ng.so.1")):
        try:
            return ctypes.CDLL(name), None
        except OSError as exc:
            problems.append(str(exc))
    raise EngineError(f"eSpeak NG is not available ({'; '.join(problems)}). Fix: {_INSTALL_HINT}", engine="espeak")


_espeak: _Espeak | None = None


def _library() -> _Espeak:
    global _espeak
    with _LOCK:
        if _espeak is None:
            _espeak = _Espeak()
        return _espeak


def _pieces(text: str, limit: int) -> Iterator[tuple[int, str]]:
    """Cut ``text`` into (offset, piece) of at most ``limit`` characters, at whitespace when possible."""
    start = 0
    while start < len(text):
        end = min(start + limit, len(text))
        if end < len(text):
            cut = max(text.rfind(space, start + 1, end) for space in " \n\t")
            end = cut if cut > start else end
        yield start, text[start:end]
        start = end


class _WordMarks:
    """Turns espeak's word events for one piece of text into clean ``WordMark``s.

    Marks are trimmed to non-blank text, in order and never overlapping. espeak
    sometimes reports extra events: on the blank after an emoji whose name is
    two words, several at one number it reads digit by digit, and one inside
    "déjà" for the "vu" of "déjà vu". Those are dropped.
    """

    def __init__(self, piece: str, offset: int, time: float) -> None:
        self._piece = piece
        self._offset = offset  # of the piece in the caller's text
        self._time = time  # of the piece's audio in the whole text's audio
        self._free = 0  # first piece index a new mark may start at

    def __call__(self, events: list[tuple[int, int, int]]) -> tuple[WordMark, ...]:
        marks = []
        for position, length, ms in events:
            begin = max(position, 0)
            word = self._piece[begin : position + length]
            start = begin + len(word) - len(word.lstrip())
            word = word.strip()
            if word and start >= self._free:
                marks.append(WordMark(self._offset + start, len(word), self._time + ms / 1000))
                self._free = start + len(word)
        return tuple(marks)


class EspeakClient:
    """eSpeak NG as a voicekit engine (22050 Hz mono, word marks, cancellable mid-text).

    Several clients may exist, each with its own voice and properties; they
    share the one process-wide synthesizer, which they use one at a time.
    """

    name = "espeak"
    max_chars = 1000
    capabilities = EngineCapabilities(word_marks=True)  # its 100+ languages: voices() lists them

    def __init__(self, voice: str = "en") -> None:
        self._espeak = _library()
        self.samplerate: int = self._espeak.samplerate
        self._settings = _Settings()
        self._closed = False
        if voice != self._settings.voice:
            self.set_voice(voice)

    def __repr__(self) -> str:
        s = self._settings
        state = ", closed" if self._closed else ""
        return f"EspeakClient(voice={s.voice!r}, rate={s.rate}wpm, volume={s.volume}, pitch={s.pitch}{state})"

    def synthesize(self, text: str, cancel: threading.Event) -> Iterator[AudioChunk]:
        text = speakable(text, engine=self.name, closed=self._closed)
        settings = self._settings  # one text is spoken with one voice, even if it changes meanwhile
        produced = 0  # samples yielded so far: where the current piece's audio starts
        for start, piece in _pieces(text, self.max_chars):
            if cancel.is_set():
                return
            if not piece.strip():
                continue
            word_marks = _WordMarks(piece, start, produced / self.samplerate)
            for pcm, events in self._synthesize_piece(piece, settings, cancel):
                yield AudioChunk(pcm, self.samplerate, word_marks(events))
                produced += len(pcm)

    def _synthesize_piece(
        self, piece: str, settings: _Settings, cancel: threading.Event
    ) -> Iterator[tuple[np.ndarray, list[tuple[int, int, int]]]]:
        job = _Job(cancel)
        thread = threading.Thread(target=self._run, args=(piece.encode(), settings, job), name="voicekit-espeak")
        thread.start()
        try:
            for item in iter(job.out.get, None):
                if cancel.is_set():
                    return
                yield item
        finally:
            job.abort.set()
            thread.join()
        if job.error is not None and not cancel.is_set():
            if isinstance(job.error, EngineError):
                raise job.error
            raise EngineError(f"eSpeak NG failed: {job.error!r}", engine=self.name) from job.error

    def _run(self, data: bytes, settings: _Settings, job: _Job) -> None:
        try:
            self._espeak.synthesize(data, settings, job)
        except BaseException as exc:  # noqa: BLE001 - reported by the generator, in the caller's thread
            job.error = exc
        finally:
            job.out.put(None)

    def voices(self) -> list[Voice]:
        return self._espeak.voices()

    @property
    def language(self) -> str:
        """The current voice's language as its id spells it: "de" for "de+f3", "en-US" for "gmw/en-US"."""
        return self._settings.voice.split("+")[0].rsplit("/", 1)[-1]

    def set_voice(self, voice_id: str) -> None:
        """Select a voice by id (``voices()``), name, or language code such as ``"en-us"`` or ``"en+f3"``."""
        # espeak reads the id as a file path under its voices folder: only ids, never paths
        known = {name for v in self.voices() for name in (v.id, v.name)}
        self._espeak.check_voice(check_voice_id(voice_id, known))
        with _LOCK:
            self._settings = replace(self._settings, voice=voice_id)

    def set_property(self, name: str, value: float) -> None:
        """Set ``rate`` (speed factor, 1.0 = 175 words/min), ``volume`` (0-100) or ``pitch`` (0-100, 50 normal)."""
        number = check_property(name, value)
        if name == "rate":
            change: dict[str, Any] = {"rate": min(max(round(_NORMAL_WPM * number), _MIN_WPM), _MAX_WPM)}
        else:
            change = {name: round(number)}
        with _LOCK:
            self._settings = replace(self._settings, **change)

    def close(self) -> None:
        # The library itself stays loaded: it is shared by every client in the process.
        self._closed = True
