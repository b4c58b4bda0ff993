#!/usr/bin/env python3
"""Core section of scripts/bench: the streaming core's "Speed" table (issue 3).

Measures, with real eSpeak synthesis and, where jackd is installed, real
PortAudio playback on a private JACK server (dummy driver, 48 kHz):

1. voicekit's own overhead to first audio: text fed word by word; overhead =
   (first sink write - the feed that completed the first chunk) - (the
   engine's time from its synthesize() call to its first AudioChunk).
2. barge-in at the speaker: interrupt() to the end of the last audible JACK
   cycle, recorded by the rig's JACK "speaker" (tests/fixtures/audio.py), for
   voicekit and for RealtimeTTS's stop() on the same device in the same run;
   also interrupt() to the last non-silent sample DeviceSink handed to
   PortAudio, and how fast the next reply restarts the device.
3. DeviceSink underruns while narrating for minutes.
4. peak RSS growth while narrating a 10 MB text file into a real-time sink
   (in a fresh subprocess, so earlier measures don't skew the baseline), and
   RSS over an accelerated narration of hours of speech into an unpaced sink.
5. time to first audio against RealtimeTTS (SystemEngine: pyttsx3 over the
   same libespeak-ng) on the same device, run from its own venv.

Run through ``scripts/bench [--quick] core``. Subcommands ``rss``, ``hours``,
``rtts`` and ``rtts-stop`` are what this file runs in its subprocesses.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import PeakRSS, jack_env, jack_server, summarize  # noqa: E402

Row = dict[str, Any]

# An LLM-like reply, streamed at 50 tokens/s (one word per token).
REPLY = "Sure, here is a quick summary of the plan for today. We start at nine, then review the budget together."
TOKEN_GAP = 0.02
RTTS_VENV = Path(os.environ.get("VOICEKIT_BENCH_RTTS_VENV", Path(tempfile.gettempdir()) / "voicekit-bench-rtts"))
RTTS_MARK = "RTTS-RESULT "

_SUBJECTS = ["The old lighthouse", "A careful engineer", "Our small team", "The evening train", "My neighbour's dog",
             "The city council", "A sudden storm", "The museum guide", "This quiet valley", "The night shift"]
_VERBS = ["noticed", "described", "repaired", "ignored", "celebrated", "measured", "questioned", "followed"]
_OBJECTS = ["the broken clock", "a long list of numbers", "the northern road", "every open window",
            "the letters from home", "a map of the harbour", "the price of bread", "the first snow"]
_ENDINGS = ["before sunrise.", "without a word.", "for the third time this week.", "and then went home.",
            "while everyone else was asleep.", "as the bells rang at noon."]


def narration_lines() -> Iterator[str]:
    """Endless varied prose, one short paragraph per line."""
    for n in count():
        rng = random.Random(n)
        yield " ".join(
            f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_ENDINGS)}"
            for _ in range(3)
        ) + f" That was entry {n}.\n"


class FirstWrite:
    """A sink wrapper that notes when the first block after ``reset()`` arrived."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.first_write: float | None = None
        self.wrote = threading.Event()

    def reset(self) -> None:
        self.first_write = None
        self.wrote.clear()

    @property
    def preferred_samplerate(self) -> int | None:
        return self.sink.preferred_samplerate

    @property
    def pending_frames(self) -> int:
        return self.sink.pending_frames

    @property
    def latency(self) -> float:
        return self.sink.latency

    def open(self, samplerate: int, channels: int, dtype: str, *, blocksize: int, buffer_frames: int) -> None:
        self.sink.open(samplerate, channels, dtype, blocksize=blocksize, buffer_frames=buffer_frames)

    def write(self, frames: Any) -> None:
        if self.first_write is None:
            self.first_write = time.monotonic()
            self.wrote.set()
        self.sink.write(frames)

    def abort(self) -> None:
        self.sink.abort()

    def drain(self) -> None:
        self.sink.drain()

    def close(self) -> None:
        self.sink.close()


def feed_words(stream: Any, text: str, gap: float) -> list[float]:
    """Feed ``text`` word by word as an LLM would; returns when each word arrived."""
    arrivals = []
    for i, word in enumerate(text.split(" ")):
        arrivals.append(time.monotonic())
        stream.feed(word if i == 0 else " " + word)
        time.sleep(gap)
    return arrivals


def row(measure: str, unit: str, target: str, met: bool | None, **figures: Any) -> Row:
    """One table row; every row has the same columns, so distributions and single values line up."""
    cells = {key: figures.get(key) for key in ("n", "p50", "p95", "max", "value")}
    return {"measure": measure, **cells, "unit": unit, "target": target,
            "met": "" if met is None else ("yes" if met else "NO")}


# -- 1. overhead to first audio ---------------------------------------------------------------
def measure_overhead(runs: int) -> tuple[list[Row], list[str]]:
    import voicekit
    from voicekit.tts import BaseTTS

    calls: list[tuple[str, float, float]] = []

    class TimedEspeak(voicekit.EspeakClient):
        """Notes, per synthesize() call, when it was called and when its first chunk came."""

        def synthesize(self, text: str, cancel: threading.Event) -> Iterator[Any]:
            called = time.monotonic()
            pieces = super().synthesize(text, cancel)
            try:
                for i, piece in enumerate(pieces):
                    if i == 0:
                        calls.append((text, called, time.monotonic()))
                    yield piece
            finally:
                pieces.close()

    tts = BaseTTS(TimedEspeak())
    tts.setup_stream(samplerate=48000)  # a device's rate, so resampling is part of the path
    overheads, engine_times, ttfa = [], [], []
    chunks = []
    try:
        for run in range(runs + 1):  # run 0 warms up libespeak and the resampler
            calls.clear()
            sink = FirstWrite(voicekit.MemorySink(realtime=True))
            stream = tts.create_stream(sink=sink)
            arrivals = feed_words(stream, REPLY, TOKEN_GAP)
            if not sink.wrote.wait(10):
                raise RuntimeError("no audio reached the sink within 10 s")
            stream.interrupt()
            stream.close()
            text, called, first_chunk = calls[0]
            trigger = max(t for t in arrivals if t <= called)
            if run:
                engine_times.append(first_chunk - called)
                ttfa.append(sink.first_write - trigger)
                overheads.append(ttfa[-1] - engine_times[-1])
                chunks.append(text)
    finally:
        tts.cleanup()
    direct = []
    client = voicekit.EspeakClient()
    for text in chunks:
        start = time.monotonic()
        pieces = client.synthesize(text, threading.Event())
        next(pieces)
        direct.append(time.monotonic() - start)
        pieces.close()
    over = summarize(overheads)
    rows = [
        row("overhead to first audio (above engine)", "ms", "p50 < 5", over["p50"] < 5, **over),
        row("engine first chunk, inside the stream", "ms", "", None, **summarize(engine_times)),
        row("engine first chunk, direct call", "ms", "", None, **summarize(direct)),
        row("chunk-completing word -> first sink write", "ms", "", None, **summarize(ttfa)),
    ]
    notes = [
        f"overhead: reply fed word by word every {TOKEN_GAP * 1000:.0f} ms into MemorySink(realtime=True) at "
        f"48 kHz (resampled from 22.05 kHz); overhead = (first sink write - arrival of the word that completed "
        f"the first chunk) - (engine synthesize() call to its first AudioChunk); first chunk was {chunks[0]!r}.",
    ]
    return rows, notes


# -- 2. barge-in at the speaker ----------------------------------------------------------------
def at_speaker(recorder: Any, asked: list[float], quiet: float) -> list[float]:
    """For each interrupt time: end of the last audible JACK cycle starting before ``asked + quiet``, minus ``asked``.

    0 when the speaker was already quiet (the interrupt fell in a pause between words).
    """
    out = []
    for t in asked:
        audible = [start + frames / recorder.device.samplerate
                   for start, frames in recorder.audible_cycles() if start < t + quiet]
        out.append(max(0.0, audible[-1] - t) if audible else 0.0)
    return out


def measure_interrupt(device: Any, runs: int) -> tuple[list[Row], list[str]]:
    import voicekit
    from tests.fixtures.audio import JACK_PERIOD, JackRecorder

    rng = random.Random(7)
    tts = voicekit.EspeakTTS()
    sink = voicekit.DeviceSink(device.index)
    writes = FirstWrite(sink)
    block = tts.stream_config.block_frames(device.samplerate) / device.samplerate
    handed, asked, restarts, latency = [], [], [], 0.0
    text = "".join(line for line, _ in zip(narration_lines(), range(3)))
    try:
        with JackRecorder(device) as recorder:
            for run in range(runs + 1):  # run 0 opens the device
                writes.reset()
                stream = tts.create_stream(sink=writes)
                started = time.monotonic()
                stream.feed(text)
                deadline = started + 10
                while (recorder.first_sound_time(after=started) or 0) <= started:
                    if time.monotonic() > deadline:
                        raise RuntimeError("no sound reached the rig's speaker within 10 s")
                    time.sleep(0.002)
                if run and writes.first_write is not None:
                    restarts.append(recorder.first_sound_time(after=started) - writes.first_write)
                latency = sink.latency
                time.sleep(rng.uniform(0.3, 1.5))
                asked.append(time.monotonic())
                stream.interrupt()
                time.sleep(0.3)  # more callbacks and JACK cycles: they must all be silent
                handed.append(max(0.0, (sink.last_audible_time or 0.0) - asked[-1]))
                stream.close()
            speaker = at_speaker(recorder, asked[1:], quiet=0.25)
    finally:
        tts.cleanup()
    rows = [barge_in_row("voicekit", speaker)]
    stats = summarize(handed[1:])
    rows += [
        row("interrupt -> last non-silent sample to PortAudio", "ms", "p95 < 25", stats["p95"] < 25, **stats),
        row("next reply after an interrupt: first block written -> first sound at the speaker", "ms", "", None,
            **summarize(restarts)),
    ]
    notes = [
        f"barge-in: {runs} interrupts at random points 0.3-1.5 s into speech on DeviceSink (ALSA PCM into jackd's "
        f"dummy driver, {device.samplerate} Hz, {JACK_PERIOD} frames per JACK cycle, {block * 1000:.0f} ms output "
        f"blocks, PortAudio output latency {latency * 1000:.0f} ms); 'at the speaker' = interrupt() to the end of the "
        f"last audible JACK cycle recorded by the rig's own JACK client (0 when the interrupt fell in a pause between "
        f"words); interrupt() closes the PortAudio stream, which drops ALSA's queued buffer (PortAudio's abort alone "
        f"leaves the ALSA jack plugin playing it), and reopens it at once for the next reply (last row: that "
        f"reply's first block handed to the sink -> its first sound at the speaker, ring + host buffers included)."
    ]
    python, why = rtts_python()
    if python is None:
        notes.append(f"RealtimeTTS stop(): not measured: {why}")
        return rows, notes
    with JackRecorder(device) as recorder:
        result = run_rtts(python, device, ["rtts-stop", str(device.index), str(runs)], timeout=120 + 10 * runs)
        time.sleep(0.3)
        found = [line for line in result.stdout.splitlines() if line.startswith(RTTS_MARK)]
        if result.returncode != 0 or not found:
            notes.append(f"RealtimeTTS stop(): run failed: {result.stderr.strip()[-300:]}")
            return rows, notes
        theirs = at_speaker(recorder, json.loads(found[-1][len(RTTS_MARK):]), quiet=0.45)
    rows.append(barge_in_row("RealtimeTTS stop()", theirs))
    ours, other = summarize(speaker), summarize(theirs)
    if ours.get("n") and other.get("n") and ours["p95"] > 0:
        ratio = other["p95"] / ours["p95"]
        rows.append(row("barge-in at the speaker, ratio RealtimeTTS / voicekit (p95)", "x", "> 1", ratio > 1,
                        value=round(ratio, 1)))
    notes.append(
        f"RealtimeTTS stop(): {RTTS_VENV} (SystemEngine over the same libespeak-ng), same device, same recorder, "
        f"{runs} stop() calls at random points 0.3-1.5 s after its on_audio_stream_start."
    )
    return rows, notes


def barge_in_row(who: str, figures: list[float]) -> Row:
    stats = summarize(figures)
    ours = who == "voicekit" and bool(stats["n"])
    return row(f"barge-in: interrupt -> speaker quiet, {who}", "ms", "p95 <= 15" if ours else "",
               stats["p95"] <= 15 if ours else None, **stats)


def rtts_stop_child(device: int, runs: int) -> list[float]:
    """In RealtimeTTS's venv: when each stop() was called (time.monotonic(), like the recorder's clock)."""
    from RealtimeTTS import SystemEngine, TextToAudioStream

    rng = random.Random(7)
    engine = SystemEngine(voice="en")
    text = "".join(line for line, _ in zip(narration_lines(), range(3)))
    asked = []
    for _ in range(runs):
        started = threading.Event()
        stream = TextToAudioStream(engine, on_audio_stream_start=started.set, output_device_index=device,
                                   tokenizer="rule-based")
        stream.feed(text)
        stream.play_async(fast_sentence_fragment=True)
        if not started.wait(30):
            continue
        time.sleep(rng.uniform(0.3, 1.5))
        asked.append(time.monotonic())
        try:
            stream.stop()
        except OSError as exc:  # PyAudio's "Invalid stream pointer": stop() racing its own player thread
            print(f"stop() raised {exc}", file=sys.stderr)
        time.sleep(0.6)  # silence between runs, so each stop's last sound is its own
    return asked


# -- 3. underruns over a long narration -------------------------------------------------------
def narrate(stream: Any, lines: Iterator[str], seconds: float) -> None:
    """Feed lines as `voicekit narrate --queue` does (wait while buffer_full()) for ``seconds``."""
    deadline = time.monotonic() + seconds
    line = next(lines, None)
    while time.monotonic() < deadline:
        if line is None or stream.buffer_full():
            time.sleep(0.05)
            continue
        stream.feed(line)
        line = next(lines, None)


def measure_underruns(device: Any, seconds: float) -> tuple[list[Row], list[str]]:
    import voicekit

    tts = voicekit.EspeakTTS()
    sink = voicekit.DeviceSink(device.index)
    try:
        stream = tts.create_stream(sink=sink)
        narrate(stream, narration_lines(), seconds)
        underruns, played = sink.underruns, sink.frames_played / device.samplerate
        stream.interrupt()
        stream.close()
    finally:
        tts.cleanup()
    notes = [f"underruns: narrated {seconds:.0f} s on the JACK device ({played:.1f} s of audio handed to PortAudio), "
             "lines fed while buffer_full() is False; DeviceSink.underruns counts ring run-dry and PortAudio underflows."]
    return [row(f"underruns narrating {seconds / 60:g} min", "count", "0", underruns == 0, value=underruns)], notes


# -- 4. peak RSS growth ------------------------------------------------------------------------
def rss_child(mode: str, seconds: float) -> dict[str, float]:
    """In a fresh process: narrate a 10 MB file for ``seconds`` into MemorySink(realtime=True)."""
    import voicekit

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "book.txt"
        with path.open("w", encoding="utf-8") as f:
            size = 0
            for line in narration_lines():
                if size >= 10_000_000:
                    break
                size += f.write(line)
        tts = voicekit.EspeakTTS()
        sink = voicekit.MemorySink(realtime=True)
        tts.speak("Warming up.", sink=voicekit.MemorySink())  # loads libespeak's data before the baseline
        whole = path.read_text(encoding="utf-8") if mode == "whole" else ""
        try:
            with PeakRSS() as rss, path.open(encoding="utf-8") as source:
                stream = tts.create_stream(sink=sink)
                if mode == "whole":
                    stream.feed(whole)
                    slowest = poll_buffer_full(stream, seconds)
                else:
                    narrate(stream, iter(source), seconds)
                stream.interrupt()
                stream.close()
        finally:
            tts.cleanup()
        kept = sink.audio.nbytes
    result = {"growth_mb": rss.growth / 1e6, "sink_mb": kept / 1e6, "size_mb": size / 1e6, "audio_s": sink.seconds}
    if mode == "whole":
        result["slowest_buffer_full_ms"] = slowest * 1000
    return result


def poll_buffer_full(stream: Any, seconds: float) -> float:
    """Poll buffer_full() as the guide's StreamManager does, for ``seconds``; the slowest call's duration."""
    deadline = time.monotonic() + seconds
    slowest = 0.0
    while time.monotonic() < deadline:
        start = time.monotonic()
        stream.buffer_full()
        slowest = max(slowest, time.monotonic() - start)
        time.sleep(0.02)
    return slowest


def measure_rss(seconds: float) -> tuple[list[Row], list[str]]:
    rows, notes = [], []
    for mode, label in (("lines", "lines, buffer_full() backpressure"), ("whole", "one feed() of the whole file")):
        result = subprocess.run(
            [sys.executable, __file__, "rss", mode, str(seconds)], capture_output=True, text=True, timeout=seconds + 120
        )
        if result.returncode != 0:
            raise RuntimeError(f"rss child ({mode}) failed: {result.stderr.strip()[-500:]}")
        r = json.loads(result.stdout.strip().splitlines()[-1])
        growth = r["growth_mb"]
        rows.append(row(f"peak RSS growth, 10 MB file ({label})", "MB", "< 50", growth < 50, value=round(growth, 1)))
        if "slowest_buffer_full_ms" in r:
            rows.append(row("slowest buffer_full() call during that feed", "ms", "", None,
                            value=round(r["slowest_buffer_full_ms"], 1)))
        notes.append(
            f"rss ({mode}): fresh process, {r['size_mb']:.1f} MB file, eSpeak warmed up before the baseline, psutil "
            f"RSS sampled every 10 ms while narrating {seconds:.0f} s ({r['audio_s']:.0f} s of audio) into "
            f"MemorySink(realtime=True); includes the {r['sink_mb']:.1f} MB of audio that sink keeps"
            + ("; the file's str is read before the baseline." if mode == "whole" else "; file read line by line.")
        )
    return rows, notes


def hours_child(hours: float) -> dict[str, Any]:
    """In a fresh process: narrate ``hours`` of speech as `voicekit narrate` does (one stream, a
    line at a time, buffer_full() backpressure) into an unpaced NullSink; RSS as the audio grows."""
    import psutil

    import voicekit

    process = psutil.Process()
    tts = voicekit.EspeakTTS()
    tts.speak("Warming up.", sink=voicekit.NullSink())
    target = hours * 3600
    spoken = [0.0]
    samples: list[tuple[float, float]] = []
    lines = narration_lines()
    chars = 0
    started = time.monotonic()
    try:
        with tts.create_stream(sink=voicekit.NullSink(),
                               on_chunk_processed=lambda info: spoken.__setitem__(0, spoken[0] + info["duration"])
                               ) as stream:
            next_sample = 0.0
            while spoken[0] < target:
                if spoken[0] >= next_sample:
                    samples.append((spoken[0] / 3600, process.memory_info().rss / 1e6))
                    next_sample += target / 40
                if stream.buffer_full():
                    time.sleep(0.005)
                    continue
                line = next(lines)
                chars += len(line)
                stream.feed(line.strip() + "\n\n")
            samples.append((spoken[0] / 3600, process.memory_info().rss / 1e6))
            kept = len(stream.heard_text) + len(stream.fed_text)
            stream.interrupt()
    finally:
        tts.cleanup()
    return {"samples": samples, "chars": chars, "kept_chars": kept, "wall_s": time.monotonic() - started}


def measure_hours(hours: float) -> tuple[list[Row], list[str]]:
    import numpy as np

    result = subprocess.run([sys.executable, __file__, "hours", str(hours)], capture_output=True, text=True,
                            timeout=7200)
    if result.returncode != 0:
        raise RuntimeError(f"hours child failed: {result.stderr.strip()[-500:]}")
    r = json.loads(result.stdout.strip().splitlines()[-1])
    samples = [(h, mb) for h, mb in r["samples"] if h >= 0.1 * hours]  # after the first 10%: warm
    first, last = samples[0][1], samples[-1][1]
    # the second half: heard_text and fed_text are full (HISTORY_CHARS) by then
    xs, ys = zip(*[(h, mb) for h, mb in samples if h >= hours / 2])
    slope = float(np.polyfit(xs, ys, 1)[0]) if len(xs) > 2 else 0.0
    rows = [
        row(f"RSS growth narrating {hours:g} h of speech (from 10% to the end)", "MB", "< 10",
            last - first < 10, value=round(last - first, 1)),
        row(f"RSS over the second half ({hours / 2:g} h): range / slope", "MB, MB/h", "", None,
            value=f"{max(ys) - min(ys):.1f} / {slope:+.2f}"),
    ]
    notes = [
        f"hours: fresh process; {r['chars'] / 1e6:.1f} MB of text narrated as `voicekit narrate` does (one stream, "
        f"a line at a time with buffer_full() backpressure) into an unpaced NullSink, so {hours:g} h of eSpeak speech "
        f"took {r['wall_s'] / 60:.1f} min; RSS sampled every {hours * 60 / 40:.1f} min of speech, from "
        f"{samples[0][1]:.0f} MB to {samples[-1][1]:.0f} MB; heard_text + fed_text held {r['kept_chars']:,} "
        f"characters at the end (Reply.HISTORY_CHARS each)."
    ]
    return rows, notes


# -- 5. time to first audio vs RealtimeTTS --------------------------------------------------------
def rtts_child(device: int, runs: int, gap: float) -> list[float | None]:
    """In RealtimeTTS's venv: first token to its on_audio_stream_start, per run."""
    from RealtimeTTS import SystemEngine, TextToAudioStream

    engine = SystemEngine(voice="en")
    results: list[float | None] = []
    for _ in range(runs + 1):  # run 0 warms up
        stamps: dict[str, float] = {}
        started = threading.Event()

        # both closures are used within this run only, so late binding of stamps/started is fine
        def on_start() -> None:
            stamps["audio"] = time.monotonic()  # noqa: B023
            started.set()  # noqa: B023

        def tokens() -> Iterator[str]:
            for i, word in enumerate(REPLY.split(" ")):
                stamps.setdefault("first", time.monotonic())  # noqa: B023
                yield word if i == 0 else " " + word
                time.sleep(gap)

        # rule-based: nltk's tokenizer would try to download its data
        stream = TextToAudioStream(engine, on_audio_stream_start=on_start, output_device_index=device,
                                   tokenizer="rule-based")
        stream.feed(tokens())
        stream.play_async(fast_sentence_fragment=True)
        ok = started.wait(30)
        # stop() races with its player thread here (PyAudio "Invalid stream pointer"): let it finish
        while stream.is_playing():
            time.sleep(0.02)
        results.append(stamps["audio"] - stamps["first"] if ok else None)
    return results[1:]


def run_rtts(python: Path, device: Any, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """This script's RealtimeTTS part in RealtimeTTS's venv, on ``device``.

    Its SystemEngine leaves a WAV file in the temp directory, so it gets a
    private one that goes when the run ends.
    """
    with tempfile.TemporaryDirectory(prefix="voicekit-bench-rtts-") as tmp:
        return subprocess.run([str(python), __file__, *args], capture_output=True, text=True, timeout=timeout,
                              env={**jack_env(device), "TMPDIR": tmp})


def rtts_python() -> tuple[Path | None, str]:
    """RealtimeTTS's own venv (made on first use), or None and why not."""
    python = RTTS_VENV / "bin" / "python"
    if python.exists():
        return python, ""
    import shutil

    apt = ["ffmpeg", "portaudio19-dev"]  # ffprobe for its SystemEngine; PortAudio headers to build PyAudio
    missing = shutil.which("ffprobe") is None or not Path("/usr/include/portaudio.h").exists()
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *apt], capture_output=True,
                       timeout=900, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if shutil.which("ffprobe") is None:
        return None, f"RealtimeTTS's SystemEngine needs ffprobe (apt-get install {' '.join(apt)}), which is missing"
    steps = [[sys.executable, "-m", "venv", str(RTTS_VENV)],
             [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "realtimetts[system]"]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            shutil.rmtree(RTTS_VENV, ignore_errors=True)
            return None, (f"`pip install realtimetts[system]` failed in a separate venv (building PyAudio needs "
                          f"portaudio19-dev): {done.stderr.strip()[-300:]}")
    return python, ""


def voicekit_ttfa(device: Any, runs: int) -> list[float]:
    import voicekit

    tts = voicekit.EspeakTTS()
    sink = FirstWrite(voicekit.DeviceSink(device.index))
    times = []
    try:
        for run in range(runs + 1):  # run 0 warms up
            sink.reset()
            stream = tts.create_stream(sink=sink)
            arrivals = feed_words(stream, REPLY, TOKEN_GAP)
            if not sink.wrote.wait(10):
                raise RuntimeError("no audio reached the device within 10 s")
            stream.interrupt()
            stream.close()
            if run:
                times.append(sink.first_write - arrivals[0])
    finally:
        tts.cleanup()
    return times


def naive_ttfa(runs: int) -> list[float]:
    """The peer without streaming: wait for the whole reply, synthesize it all, then play."""
    import voicekit

    client = voicekit.EspeakClient()
    reply_time = len(REPLY.split(" ")) * TOKEN_GAP
    times = []
    for _ in range(runs):
        start = time.monotonic()
        for _piece in client.synthesize(REPLY, threading.Event()):
            pass
        times.append(reply_time + time.monotonic() - start)
    return times


def measure_ttfa(device: Any, runs: int) -> tuple[list[Row], list[str]]:
    ours = summarize(voicekit_ttfa(device, runs))
    rows = [row("first word fed -> first audio, voicekit", "ms", "", None, **ours)]
    notes = [f"ttfa: the reply {REPLY!r} fed one word every {TOKEN_GAP * 1000:.0f} ms; time from the first word to "
             "the first block handed to the audio API on the same JACK device."]
    naive = summarize(naive_ttfa(runs))
    rows.append(row("first word fed -> audio ready, naive whole-reply synth", "ms", "", None, **naive))
    notes.append("naive: reply streaming time plus eSpeak synthesizing the whole reply (a lower bound: no playback).")
    python, why = rtts_python()
    if python is None:
        notes.append(f"RealtimeTTS: not measured: {why}")
        return rows, notes
    result = run_rtts(python, device, ["rtts", str(device.index), str(runs), str(TOKEN_GAP)], timeout=120 + 30 * runs)
    found = [line for line in result.stdout.splitlines() if line.startswith(RTTS_MARK)]
    if result.returncode != 0 or not found:
        notes.append(f"RealtimeTTS: run failed: {result.stderr.strip()[-300:]}")
        return rows, notes
    measured = json.loads(found[-1][len(RTTS_MARK):])
    theirs = summarize([t for t in measured if t is not None])
    rows.append(row("first word fed -> first audio, RealtimeTTS", "ms", "", None, **theirs))
    if theirs["n"]:
        ratio = theirs["p50"] / ours["p50"]
        rows.append(row("TTFA ratio RealtimeTTS / voicekit (p50)", "x", "> 1", ratio > 1, value=round(ratio, 1)))
    notes.append(
        f"RealtimeTTS: {RTTS_VENV} (realtimetts[system]; SystemEngine = pyttsx3 over the system libespeak-ng, "
        f"tokenizer='rule-based', fast_sentence_fragment=True), same words, pace and device; first token to "
        f"on_audio_stream_start; {measured.count(None)} run(s) got no audio in 30 s."
    )
    return rows, notes


# -- the section -------------------------------------------------------------------------------------
def _attempt(name: str, measure: Callable[[], tuple[list[Row], list[str]]], rows: list[Row], notes: list[str]) -> None:
    """Run one measure; a failure becomes a row and a note, and the others still run."""
    try:
        got_rows, got_notes = measure()
    except Exception as exc:  # noqa: BLE001 - report any failure and go on with the next measure
        rows.append({"measure": name, "met": "FAILED"})
        notes.append(f"{name}: failed: {type(exc).__name__}: {exc}")
        return
    rows.extend(got_rows)
    notes.extend(got_notes)


def run(quick: bool = False) -> dict[str, Any]:
    rows: list[Row] = []
    notes: list[str] = []
    _attempt("overhead to first audio", lambda: measure_overhead(10 if quick else 30), rows, notes)
    _attempt("peak RSS growth", lambda: measure_rss(10 if quick else 60), rows, notes)
    _attempt("narration for hours", lambda: measure_hours(1.0 if quick else 8.0), rows, notes)
    try:
        with jack_server() as device:
            _attempt("interrupt latency", lambda: measure_interrupt(device, 8 if quick else 20), rows, notes)
            _attempt("time to first audio", lambda: measure_ttfa(device, 3 if quick else 10), rows, notes)
            _attempt("underruns", lambda: measure_underruns(device, 30 if quick else 600), rows, notes)
    except RuntimeError as exc:  # JackUnavailable too: a package is missing
        notes.append(f"JACK measures (interrupt, underruns, TTFA) skipped: {exc}")
    return {"section": "core", "rows": rows, "notes": notes}


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "rss":
        print(json.dumps(rss_child(args[0], float(args[1]))))
    elif command == "hours":
        print(json.dumps(hours_child(float(args[0]))))
    elif command == "rtts":
        print(RTTS_MARK + json.dumps(rtts_child(int(args[0]), int(args[1]), float(args[2]))))
    elif command == "rtts-stop":
        print(RTTS_MARK + json.dumps(rtts_stop_child(int(args[0]), int(args[1]))))
    else:
        raise SystemExit(f"usage: {sys.argv[0]} rss lines|whole SECONDS | hours HOURS | rtts DEVICE RUNS GAP | "
                         "rtts-stop DEVICE RUNS")


if __name__ == "__main__":
    main(sys.argv[1:])
