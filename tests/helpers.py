"""Small helpers shared by the tests: engine output, text chunking, waiting."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from voicekit.contract import AudioChunk, Cancel
from voicekit.text import SentenceChunker


def wait_for(condition: Callable[[], Any], what: str = "condition", timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll ``condition`` until it is truthy and return its value; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def collect(chunks):
    """(chunks, monotonic time of the first one)."""
    first, out = None, []
    for chunk in chunks:
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


def fundamental(pcm: np.ndarray, samplerate: int) -> float:
    """Median pitch (Hz, 50-400) of the voiced 40 ms frames.

    A frame's period is the shortest lag whose autocorrelation peak comes within 10% of its
    highest: a period's multiples correlate about as well, so the highest alone can be an
    octave or more off.
    """
    pcm = np.asarray(pcm, dtype=np.float64)
    frame = samplerate // 25
    frames = pcm[: len(pcm) // frame * frame].reshape(-1, frame)
    level = np.sqrt(np.mean(frames**2, axis=1))
    shortest, longest = samplerate // 400, samplerate // 50
    found = []
    for f in frames[level > 0.2 * level.max()]:
        f = f - f.mean()
        corr = np.correlate(f, f, "full")[frame - 1 :][: longest + 2]
        if corr[0] <= 0:
            continue
        lags = np.arange(shortest, longest + 1)
        peaks = lags[(corr[lags] >= corr[lags - 1]) & (corr[lags] >= corr[lags + 1])]
        if len(peaks):
            best = corr[peaks].max()
            found.append(samplerate / peaks[corr[peaks] >= 0.9 * best][0])
    return float(np.median(found))


def chunk(pieces: list[str], **options) -> list[str]:
    """The chunks a SentenceChunker(**options) makes of ``pieces`` fed in turn, flush included."""
    chunker = SentenceChunker(**options)
    out: list[str] = []
    for piece in pieces:
        out += chunker.feed(piece)
    return out + chunker.flush()


def three_ways(text: str, **options) -> list[str]:
    """Chunks of ``text`` fed whole, word by word and char by char; all three must agree."""
    options.setdefault("first_fragment", False)
    whole = chunk([text], **options)
    words = text.split(" ")
    assert chunk([w + " " for w in words[:-1]] + words[-1:], **options) == whole
    assert chunk(list(text), **options) == whole
    return whole


def pieces(text: str, cuts: list[int]) -> list[str]:
    """``text`` cut at the given points (taken modulo its length)."""
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]


def timeline(engine, chunks: list[str]) -> list[tuple[str, int]]:
    """Each word of a reply spoken as ``chunks`` by a ToneEngine, with the frame of the reply where it starts.

    A reply's chunks play back to back, so a chunk's words start after all the audio before it.
    """
    out, at = [], 0
    for text in chunks:
        out += [(text[w.offset : w.offset + w.length], at + w.start) for w in engine.plan(text)]
        at += engine.frames(text)
    return out


def sigint(proc: subprocess.Popen, timeout: float = 20) -> str:
    """Presses Ctrl-C on ``proc`` (SIGINT) and returns its stderr once it has ended; a process
    still running after ``timeout`` seconds is killed (and the TimeoutExpired goes on)."""
    try:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return err.decode(errors="replace")
