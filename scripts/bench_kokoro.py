#!/usr/bin/env python3
"""Kokoro section of scripts/bench: Kokoro-82M against its targets (issue 22), Piper beside it in the same run.

Each engine is measured in a fresh process of its own (so its RSS is its own):

1. load: building the engine's TTS (model parts joined and hashed, graph surgery,
   onnxruntime session, one warm-up run for Kokoro; Piper's model from its cache).
2. time to first audio: a chatbot reply fed word by word, a word every 30 ms as
   an LLM streams it, into a stream whose sink notes its first block; from the
   first word fed to the first block written (the first clause, "Sure,").
3. real-time factor: sentences synthesized one by one (synthesis time / audio time).
4. words marked: the share of the sentences' words that got a WordMark.
5. RSS: the process's peak resident set after all of the above.

Run through ``scripts/bench [--quick] kokoro``; ``child ENGINE RUNS`` is what this file runs in its subprocesses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import FirstWrite, feed_words, row  # noqa: E402
from benchutil import summarize  # noqa: E402

Row = dict[str, Any]

REPLY = (
    "Sure, here is a quick summary of the plan for today. We start at nine with the budget review, "
    "then Anna presents the new design, which took her team about three weeks."
)
SENTENCES = [
    "The quick brown fox jumps over the lazy dog, and then it naps in the warm afternoon sun.",
    "Dr. Smith paid $42 for 12 apples on May 3rd, and he said they were worth every cent.",
    "After lunch, we test the release candidate on two machines and write down every problem we find.",
    "It was a nice day, really nice, and I would say it was the best one of the whole summer.",
]
TARGETS = {"ttfa": 600.0, "rtf": 0.6, "marked": 90.0}


def child(engine: str, runs: int) -> dict[str, Any]:
    import voicekit
    from voicekit import registry
    from voicekit.contract import Cancel

    started = time.perf_counter()
    tts = registry.make_tts(engine)
    load = time.perf_counter() - started
    client = tts.client
    ttfa = []
    for _ in range(runs + 1):  # the first one warms the stream machinery up, and is left out
        sink = FirstWrite(voicekit.NullSink())
        stream = tts.create_stream(sink=sink)
        arrivals = feed_words(stream, REPLY, 0.03)
        sink.wrote.wait(60)
        if sink.first_write is not None:
            ttfa.append(sink.first_write - arrivals[0])
        stream.interrupt()
        stream.close()
    ttfa = ttfa[1:]
    audio_seconds = synthesis = 0.0
    words = marked = 0
    for text in SENTENCES[: max(2, runs)]:
        words += len(re.findall(r"\S+", text))
        begun = time.perf_counter()
        for piece in client.synthesize(text, Cancel()):
            audio_seconds += piece.duration
            marked += len(piece.marks)
        synthesis += time.perf_counter() - begun
    tts.cleanup()
    with open("/proc/self/status", encoding="ascii") as f:
        peak = next((int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:")), 0.0)
    return {"load": load, "ttfa": ttfa, "rtf": synthesis / audio_seconds, "marked": 100 * marked / words,
            "audio_seconds": audio_seconds, "peak_rss_mb": peak}  # fmt: skip


def measure(engine: str, runs: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "child", engine, str(runs)], capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{engine} child failed: {done.stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(quick: bool = False) -> dict[str, Any]:
    from voicekit import registry

    runs = 3 if quick else 8
    rows: list[Row] = []
    notes: list[str] = []
    for engine in ("kokoro", "piper"):
        if not registry.installed(engine):
            notes.append(f"{engine}: skipped, not installed (pip install 'voicekit[{engine}]')")
            continue
        try:
            got = measure(engine, runs)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            notes.append(f"{engine}: failed: {exc}")
            continue
        kokoro = engine == "kokoro"
        ttfa = summarize(got["ttfa"])
        rows += [
            row(f"{engine}: load (TTS built, first run warmed up)", "ms", "", None, value=round(1000 * got["load"])),
            row(f"{engine}: time to first audio, reply fed word by word", "ms", "p50 <= 600" if kokoro else "",
                ttfa.get("p50", 1e9) <= TARGETS["ttfa"] if kokoro else None, **ttfa),
            row(f"{engine}: real-time factor", "", "<= 0.6" if kokoro else "", got["rtf"] <= TARGETS["rtf"] if kokoro
                else None, value=round(got["rtf"], 3)),
            row(f"{engine}: words marked", "%", ">= 90" if kokoro else "", got["marked"] >= TARGETS["marked"] if kokoro
                else None, value=round(got["marked"], 1)),
            row(f"{engine}: peak RSS", "MB", "", None, value=round(got["peak_rss_mb"])),
        ]  # fmt: skip
    load = os.getloadavg()
    notes += [
        f"time to first audio: {REPLY!r} fed a word every 30 ms into a stream on a NullSink, from the first word "
        f"to the first block written; {runs} replies after one left out. RTF and marks: {max(2, runs)} sentences "
        "through the client one by one (numbers and abbreviations among them).",
        f"machine load while measuring (1/5/15 min): {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} on "
        f"{os.cpu_count()} cores; onnxruntime's threads compete with everything else that runs",
    ]
    return {"section": "kokoro", "rows": rows, "notes": notes}


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]))))
    else:
        raise SystemExit(f"usage: {sys.argv[0]} child ENGINE RUNS")
