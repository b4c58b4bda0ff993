#!/usr/bin/env python3
"""Cloud engines' own latency: time to first audio minus the server's wait.

The fake Polly and OpenAI servers of the test suite (tests/fakes/) hold the
first byte of every audio body for X ms; what voicekit adds on top of X is
measured per client (first ``AudioChunk``) and through a whole stream
(``tts.create_stream()`` to the first block a MemorySink receives). Target:
p50 under 5 ms for the clients.

    .venv/bin/python scripts/bench_cloud.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.http import FakeServer  # noqa: E402 - needs ROOT on sys.path
from tests.fakes.openai import FakeOpenAI  # noqa: E402
from tests.fakes.polly import FakePolly  # noqa: E402
from voicekit.engine import Engine  # noqa: E402
from voicekit.sinks import MemorySink  # noqa: E402

TEXT = "Hello there, this is the first sentence."
TARGET_MS = 5.0


class _FirstWriteSink(MemorySink):
    """A MemorySink that notes when the first block arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.first_write = threading.Event()
        self.first_write_at = 0.0

    def write(self, frames) -> None:  # noqa: ANN001 - the Sink protocol's numpy array
        if not self.first_write.is_set():
            self.first_write_at = time.perf_counter()
            self.first_write.set()
        super().write(frames)


@contextmanager
def _offline_aws() -> Iterator[None]:
    """boto3 without real profiles, credential files or instance metadata."""
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory() as empty:
        os.environ.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=f"{empty}/config",
                          AWS_SHARED_CREDENTIALS_FILE=f"{empty}/credentials")
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _client_latency(engine: Engine) -> float:
    """Seconds from calling ``synthesize`` to holding its first chunk."""
    start = time.perf_counter()
    chunks = engine.synthesize(TEXT, threading.Event())
    try:
        next(chunks)
        return time.perf_counter() - start
    finally:
        chunks.close()


def _polly_sdk_latency(boto_client) -> float:  # noqa: ANN001 - a boto3 Polly client
    """The floor: boto3 alone, from the call to the first 20 ms of audio."""
    start = time.perf_counter()
    body = boto_client.synthesize_speech(Text=TEXT, OutputFormat="pcm", VoiceId="Joanna", SampleRate="16000",
                                         Engine="neural", TextType="text")["AudioStream"]
    try:
        body.read(640)
        return time.perf_counter() - start
    finally:
        body.close()


def _openai_sdk_latency(sdk) -> float:  # noqa: ANN001 - an openai.OpenAI client
    """The floor: the openai SDK alone, from the call to the first 20 ms of audio."""
    start = time.perf_counter()
    with sdk.audio.speech.with_streaming_response.create(model="gpt-4o-mini-tts", voice="alloy", input=TEXT,
                                                         response_format="pcm") as response:
        next(response.iter_bytes(960))
        return time.perf_counter() - start


def _stream_latency(tts) -> float:  # noqa: ANN001 - any BaseTTS
    """Seconds from ``feed`` to the first block the sink receives."""
    sink = _FirstWriteSink()
    stream = tts.create_stream(sink=sink)
    start = time.perf_counter()
    stream.feed(TEXT)
    stream.done()
    if not sink.first_write.wait(30):
        raise RuntimeError("the stream wrote no audio within 30 s")
    stream.interrupt()
    stream.close()
    return sink.first_write_at - start


def _row(name: str, delay_ms: int, samples: list[float], target: float | None) -> dict:
    extra = sorted((s * 1000 - delay_ms) for s in samples)
    p50 = statistics.median(extra)
    p95 = extra[min(len(extra) - 1, round(0.95 * (len(extra) - 1)))]
    row = {"name": name, "server_wait_ms": delay_ms, "runs": len(extra), "p50_ms": round(p50, 2),
           "p95_ms": round(p95, 2)}
    if target is not None:
        row |= {"target_p50_ms": target, "ok": p50 < target}
    return row


def _measure(server: FakeServer, name: str, delays: list[int], runs: int, measure: Callable[[], float],
             target: float | None) -> list[dict]:
    rows = []
    for delay_ms in delays:
        server.first_byte_delay = delay_ms / 1000
        measure()  # warm up: connection, eSpeak cache, imports
        rows.append(_row(name, delay_ms, [measure() for _ in range(runs)], target))
    return rows


def run(quick: bool = False) -> dict:
    import boto3
    import openai as openai_sdk

    from voicekit.engines.openai_tts import OpenAIClient, OpenAITTS
    from voicekit.engines.polly import PollyClient, PollyTTS

    delays, runs = ([50], 8) if quick else ([50, 200], 20)
    rows: list[dict] = []
    with _offline_aws(), FakePolly() as polly_server, FakeOpenAI() as openai_server:
        polly_server.piece_interval = openai_server.piece_interval = 0.005
        polly = PollyTTS(PollyClient(("eu-west-1", "AKIDBENCH", "bench-secret"), endpoint_url=polly_server.url))
        openai = OpenAITTS(OpenAIClient(api_key="sk-bench", base_url=f"{openai_server.url}/v1"))
        boto_client = boto3.session.Session(aws_access_key_id="AKIDBENCH", aws_secret_access_key="bench-secret",
                                            region_name="eu-west-1").client("polly", endpoint_url=polly_server.url)
        sdk = openai_sdk.OpenAI(api_key="sk-bench", base_url=f"{openai_server.url}/v1")
        floors = {"polly": lambda: _polly_sdk_latency(boto_client), "openai": lambda: _openai_sdk_latency(sdk)}
        try:
            for server, tts in ((polly_server, polly), (openai_server, openai)):
                rows += _measure(server, f"{tts.client.name}: SDK alone (floor, for comparison)", delays, runs,
                                 floors[tts.client.name], None)
                rows += _measure(server, f"{tts.client.name}: first AudioChunk", delays, runs,
                                 lambda tts=tts: _client_latency(tts.client), TARGET_MS)
                rows += _measure(server, f"{tts.client.name}: create_stream to first block in MemorySink", delays,
                                 runs, lambda tts=tts: _stream_latency(tts), None)
        finally:
            polly.cleanup()
            openai.cleanup()
            boto_client.close()
            sdk.close()
    return {
        "section": "cloud",
        "rows": rows,
        "notes": [
            "Fake Polly/OpenAI servers on 127.0.0.1 hold each audio body's first byte for server_wait_ms; "
            "the figures are time to first audio minus that wait (p50/p95 over the runs).",
            "The 'SDK alone' rows are boto3 / the openai SDK called directly: request signing and parsing that any "
            "client pays; the gap between them and the voicekit rows is voicekit's own cost.",
            "Polly's speech marks are requested concurrently (another thread), so they never wait for the audio; "
            "on a busy 2-core machine that thread's request signing competes for the GIL with the audio request.",
            "Stream rows include the sentence chunker, resampling to the sink rate and the audio buffer.",
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one server wait, fewer runs")
    print(json.dumps(run(quick=parser.parse_args().quick), indent=2))


if __name__ == "__main__":
    main()
