"""The fake cloud servers' speech: ``voicekit.testing.ToneEngine`` tones and exact Polly-style word marks.

A text sounds as :class:`~voicekit.testing.ToneEngine` (default settings) plays
it at the server's rate: one tone per word, silence between words. The word
marks are at the first sample of each word's tone, so a test knows to the
sample what a fake sends for a text (:func:`speech_plan`, :func:`speech_frames`,
:func:`speech_audio`). SSML tags are blanked out before that (keeping
positions): they are not words, and a mark's offsets still point into the
SSML the client sent. Entities (``&amp;``) count as words, as written.
"""

from __future__ import annotations

import functools
import re
import threading

import numpy as np

from voicekit.testing import ToneEngine, ToneWord

__all__ = ["speech_audio", "speech_frames", "speech_pcm", "speech_plan", "spoken_text", "word_marks"]

_TAG = re.compile(r"<[^>]*>")


def spoken_text(text: str, ssml: bool) -> str:
    """What a voice would read: SSML tags blanked out (keeping positions), entities kept."""
    return _TAG.sub(lambda m: " " * len(m.group()), text) if ssml else text


@functools.lru_cache(maxsize=8)
def _engine(samplerate: int) -> ToneEngine:
    return ToneEngine(samplerate=samplerate)


def speech_plan(text: str, samplerate: int, *, ssml: bool = False) -> list[ToneWord]:
    """Where each word of ``text`` plays in a fake's audio (``start`` and ``frames`` in samples at ``samplerate``)."""
    return _engine(samplerate).plan(spoken_text(text, ssml))


def speech_frames(text: str, samplerate: int, *, ssml: bool = False) -> int:
    """Samples of a fake's audio for ``text``."""
    return _engine(samplerate).frames(spoken_text(text, ssml))


@functools.lru_cache(maxsize=256)
def speech_pcm(text: str, samplerate: int) -> bytes:
    """The tones of ``text`` (already :func:`spoken_text`) as 16-bit little-endian mono PCM at ``samplerate``."""
    chunks = list(_engine(samplerate).synthesize(text, threading.Event()))
    pcm = np.concatenate([c.pcm for c in chunks]) if chunks else np.zeros(0, np.float32)
    return np.round(np.clip(pcm, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def speech_audio(text: str, samplerate: int, *, ssml: bool = False) -> np.ndarray:
    """A fake's audio for ``text`` as a client decodes it: float32 mono in [-1, 1)."""
    return np.frombuffer(speech_pcm(spoken_text(text, ssml), samplerate), dtype="<i2").astype(np.float32) / 32768.0


def word_marks(text: str, ssml: bool, samplerate: int) -> list[dict]:
    """Polly-style word marks: UTF-8 byte ``start``/``end`` into ``text``, ``time`` in ms at the word's first sample.

    The tones' lengths are whole milliseconds at Polly's rates (16000 and 8000 Hz),
    so every ``time`` is exact.
    """
    marks = []
    for word in speech_plan(text, samplerate, ssml=ssml):
        start = len(text[: word.offset].encode())
        value = text[word.offset : word.offset + word.length]
        marks.append({"time": word.start * 1000 // samplerate, "type": "word", "start": start,
                      "end": start + len(value.encode()), "value": value})
    return marks
