"""Real speech for the fake cloud servers: eSpeak PCM and Polly-style word marks.

eSpeak runs in a short-lived subprocess: its C library keeps global state, and
the fakes must never share it with an eSpeak engine under test in this process.
Results are cached per text, so each distinct sentence costs one ~60 ms run.
"""

from __future__ import annotations

import functools
import html
import re
import subprocess
import sys

import numpy as np

__all__ = ["speech_pcm", "spoken_text", "word_marks"]

_ESPEAK = r"""
import ctypes, os, sys
import espeakng_loader
lib = ctypes.CDLL(espeakng_loader.get_library_path())
lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
rate = lib.espeak_Initialize(2, 0, os.path.dirname(espeakng_loader.get_data_path()).encode(), 0)
lib.espeak_SetVoiceByName(b"en")
pieces = []
CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
@CALLBACK
def collect(wav, n, events):
    if wav and n > 0:
        pieces.append(ctypes.string_at(wav, n * 2))
    return 0
lib.espeak_SetSynthCallback(collect)
text = sys.argv[1].encode()
lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                             ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
lib.espeak_Synth(text, len(text) + 1, 0, 0, 0, 1, None, None)
lib.espeak_Synchronize()
sys.stderr.write(str(rate))
sys.stdout.buffer.write(b"".join(pieces))
"""

_TAG = re.compile(r"<[^>]*>")


def spoken_text(text: str, ssml: bool) -> str:
    """What a voice would read: SSML tags blanked out (keeping positions), entities kept."""
    return _TAG.sub(lambda m: " " * len(m.group()), text) if ssml else text


@functools.lru_cache(maxsize=256)
def speech_pcm(text: str, samplerate: int) -> bytes:
    """eSpeak's reading of ``text`` as 16-bit little-endian mono PCM at ``samplerate``."""
    import soxr

    words = html.unescape(text).strip() or "."
    run = subprocess.run([sys.executable, "-c", _ESPEAK, words], capture_output=True, timeout=60, check=True)
    pcm = np.frombuffer(run.stdout, dtype="<i2").astype(np.float32) / 32768.0
    pcm = soxr.resample(pcm, int(run.stderr), samplerate)
    return (np.clip(pcm, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def word_marks(text: str, ssml: bool, duration: float) -> list[dict]:
    """Polly-style word marks: UTF-8 byte ``start``/``end`` into ``text``, ``time`` in ms.

    Times spread the words over ``duration`` by length; good enough for a fake.
    """
    words = list(re.finditer(r"\S+", spoken_text(text, ssml)))
    total = sum(len(w.group()) for w in words) or 1
    marks, elapsed = [], 0
    for w in words:
        start = len(text[: w.start()].encode())
        end = start + len(w.group().encode())
        marks.append({"time": int(elapsed / total * duration * 1000), "type": "word",
                      "start": start, "end": end, "value": w.group()})
        elapsed += len(w.group())
    return marks
