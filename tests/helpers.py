"""Small helpers shared by the engine tests."""

from __future__ import annotations

import re
import time

import numpy as np

from voicekit.engine import AudioChunk, Cancel


def collect(chunks):
    """(chunks, monotonic time of the first one)."""
    first, out = None, []
    for chunk in chunks:
        first = first or time.monotonic()
        out.append(chunk)
    return out, first


async def acollect(chunks):
    """``collect`` for async iterators."""
    first, out = None, []
    async for chunk in chunks:
        first = first or time.monotonic()
        out.append(chunk)
    return out, first


def words(text: str) -> list[str]:
    return re.findall(r"\S+", text)


def synth(client, text, cancel=None) -> list[AudioChunk]:
    """All of an engine's chunks for ``text``."""
    return list(client.synthesize(text, cancel or Cancel()))


def audio(chunks) -> np.ndarray:
    return np.concatenate([c.pcm for c in chunks]) if chunks else np.zeros(0, np.float32)


def marks(chunks):
    return [m for c in chunks for m in c.marks]


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
