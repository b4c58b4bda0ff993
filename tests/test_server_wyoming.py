"""voicekit's Wyoming server, driven by the ``wyoming`` package's own ``AsyncTcpClient``.

In-process tests run ``WyomingServer`` over an app's sessions with the real
eSpeak; the last ones run ``voicekit serve --wyoming`` as a process, as Home
Assistant would find it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2 as httpx
import pytest
from wyoming.audio import AudioChunk
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from tests.fixtures.web import Recording, free_port, server_process, stop
from voicekit import BaseTTS, __version__
from voicekit.server import create_app
from voicekit.server.wyoming import WyomingServer

pytestmark = pytest.mark.usefixtures("no_thread_leak")

REPLY = (
    "Sure, here is the weather for today. It will be sunny in the morning, with clouds later on. "
    "Take a light jacket if you go out tonight."
)


@asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[tuple[WyomingServer, Any]]:
    app = create_app("espeak", **options)
    async with WyomingServer(app.state.voicekit, "127.0.0.1", 0) as wyoming:
        yield wyoming, app.state.voicekit


async def reply_events(client: AsyncTcpClient, until: str = "audio-stop", timeout: float = 30) -> list[tuple[float, Event]]:
    """Events with their arrival times, up to and including the first of type ``until``."""
    got = []
    while True:
        event = await asyncio.wait_for(client.read_event(), timeout)
        assert event is not None, "the server closed the connection"
        got.append((time.monotonic(), event))
        if event.type == until:
            return got


def audio_seconds(events: list[tuple[float, Event]]) -> float:
    chunks = [AudioChunk.from_event(e) for _, e in events if AudioChunk.is_type(e.type)]
    assert all((c.rate, c.width, c.channels) == (24000, 2, 1) for c in chunks)
    return sum(len(c.audio) for c in chunks) / 2 / 24000


def test_describe_lists_the_engines_voices() -> None:
    async def go() -> Info:
        async with serving() as (wyoming, _), AsyncTcpClient("127.0.0.1", wyoming.port) as client:
            await client.write_event(Describe().event())
            event = await asyncio.wait_for(client.read_event(), 10)
            assert event is not None and Info.is_type(event.type)
            return Info.from_event(event)

    info = asyncio.run(go())
    (program,) = info.tts
    assert program.supports_synthesize_streaming and program.installed and program.version == __version__
    voices = {v.name: v for v in program.voices}
    assert "gmw/en-US" in voices and voices["gmw/en-US"].languages == ["en-us"] and len(voices) > 20
    assert all(v.description for v in program.voices) and "English" in str(voices["gmw/en-US"].description)


def test_synthesize_streams_after_the_first_fragment() -> None:
    """The first audio leaves while most of the text is still unsynthesized.

    Judged by what the server had synthesized when the client held its first chunk, not by
    clocks: a CI run once stalled 0.8 s before the first chunk of a 1.2 s reply.
    """
    long = " ".join(f"Sentence number {i} of a long answer read aloud." for i in range(60))

    async def go() -> tuple[float | None, list[tuple[float, Event]]]:
        async with serving() as (wyoming, server), AsyncTcpClient("127.0.0.1", wyoming.port) as client:
            await client.write_event(Synthesize(text=long).event())
            events = [(time.monotonic(), await asyncio.wait_for(client.read_event(), 30))]
            events.append((time.monotonic(), await asyncio.wait_for(client.read_event(), 30)))
            synthesized = server.metrics.registry.get_sample_value("voicekit_characters_synthesized_total", {"engine": "espeak"})
            return synthesized, [(t, e) for t, e in events if e is not None] + await reply_events(client)

    synthesized, events = asyncio.run(go())
    kinds = [e.type for _, e in events]
    assert kinds[0] == "audio-start" and kinds[-1] == "audio-stop" and set(kinds[1:-1]) == {"audio-chunk"}
    assert audio_seconds(events) > 120
    # the counter moves after a chunk's audio is handed on, so it may not show the first one yet
    assert (synthesized or 0) < len(long) / 4, (synthesized, len(long))


def test_streaming_events_at_an_llms_pace() -> None:
    """20 words per second, as Home Assistant forwards an LLM's reply; audio must start before the stop."""
    words = REPLY.split()

    async def go() -> tuple[float, list[tuple[float, Event]]]:
        async with serving() as (wyoming, _), AsyncTcpClient("127.0.0.1", wyoming.port) as client:
            reading = asyncio.create_task(reply_events(client, until="synthesize-stopped"))
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="gmw/en-029")).event())
            for word in words:
                await client.write_event(SynthesizeChunk(text=word + " ").event())
                await asyncio.sleep(0.05)
            # streaming clients also send the whole text for servers that can't stream: it is ignored
            await client.write_event(Synthesize(text=REPLY).event())
            stopped_at = time.monotonic()
            await client.write_event(SynthesizeStop().event())
            return stopped_at, await reading

    stop_sent, events = asyncio.run(go())
    kinds = [e.type for _, e in events]
    assert kinds.count("audio-start") == 1 and kinds[-2:] == ["audio-stop", "synthesize-stopped"]
    first_chunk = next(t for t, e in events if e.type == "audio-chunk")
    assert first_chunk < stop_sent, "no audio before synthesize-stop"
    assert 5 < audio_seconds(events) < 15


def test_unknown_voice_is_an_error_and_the_connection_goes_on() -> None:
    async def go() -> tuple[Error, list[tuple[float, Event]], list[tuple[float, Event]]]:
        async with serving() as (wyoming, _), AsyncTcpClient("127.0.0.1", wyoming.port) as client:
            await client.write_event(Synthesize(text="Hello.", voice=SynthesizeVoice(name="no-such-voice")).event())
            event = await asyncio.wait_for(client.read_event(), 10)
            assert event is not None and Error.is_type(event.type)
            await client.write_event(Synthesize(text="Hello by language.", voice=SynthesizeVoice(language="en-029")).event())
            by_language = await reply_events(client)
            await client.write_event(Synthesize(text="Back to the default voice.").event())
            return Error.from_event(event), by_language, await reply_events(client)

    error, by_language, default = asyncio.run(go())
    assert error.code == "unknown-voice" and "no-such-voice" in error.text
    assert audio_seconds(by_language) > 0.5 and audio_seconds(default) > 0.5


def test_a_voice_chosen_by_name_is_the_one_that_speaks() -> None:
    """The same text by the same name twice lasts as long (within a few samples); another voice does not."""
    text = "Hello there, this is the same sentence."

    async def go() -> list[float]:
        async with serving() as (wyoming, _), AsyncTcpClient("127.0.0.1", wyoming.port) as client:
            heard = []
            for name in ("gmw/en-US", "roa/fr", "gmw/en-US"):
                await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name=name)).event())
                heard.append(audio_seconds(await reply_events(client)))
            return heard

    american, french, american_again = asyncio.run(go())
    assert american > 1 and abs(american - american_again) < 0.01 * american
    assert abs(french - american) > 0.05 * american, (american, french)


class Timed(Recording):
    """eSpeak that notes when it made each piece of audio."""

    def __init__(self) -> None:
        super().__init__()
        self.piece_times: list[float] = []

    def synthesize(self, text: str, cancel: threading.Event) -> Iterator[Any]:
        for chunk in super().synthesize(text, cancel):
            self.piece_times.append(time.monotonic())
            yield chunk


def test_a_client_that_hangs_up_stops_its_synthesis() -> None:
    engines: list[Timed] = []

    def make_tts() -> BaseTTS:
        engines.append(Timed())
        return BaseTTS(engines[-1])

    long = " ".join(f"Sentence number {i} of a reply nobody will hear to the end." for i in range(200))

    async def go() -> tuple[float, Any]:
        app = create_app(make_tts=make_tts)
        async with WyomingServer(app.state.voicekit, "127.0.0.1", 0) as wyoming:
            client = AsyncTcpClient("127.0.0.1", wyoming.port)
            await client.connect()
            await client.write_event(Synthesize(text=long).event())
            await reply_events(client, until="audio-chunk")
            await client.disconnect()
            left = time.monotonic()
            await asyncio.sleep(1.0)
            return left, app.state.voicekit

    left, server = asyncio.run(go())
    assert server.sessions == 0
    (engine,) = engines
    assert engine.piece_times, "no audio was made"
    late = [t - left for t in engine.piece_times if t > left + 0.1]
    assert not late, f"the engine kept working after the client left: {late}"


def test_twenty_streaming_clients_at_once() -> None:
    async def one(port: int, i: int) -> list[tuple[float, Event]]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            reading = asyncio.create_task(reply_events(client, until="synthesize-stopped", timeout=60))
            await client.write_event(SynthesizeStart().event())
            for word in f"Client {i} says hello, and then a little more.".split():
                await client.write_event(SynthesizeChunk(text=word + " ").event())
                await asyncio.sleep(0.05)
            await client.write_event(SynthesizeStop().event())
            return await reading

    async def go() -> list[list[tuple[float, Event]]]:
        async with serving() as (wyoming, server):
            results = await asyncio.gather(*(one(wyoming.port, i) for i in range(20)))
            await asyncio.sleep(0.2)
            assert server.sessions == 0
            return results

    for events in asyncio.run(go()):
        assert [e.type for _, e in events][-2:] == ["audio-stop", "synthesize-stopped"]
        assert audio_seconds(events) > 1


@pytest.mark.parametrize(("host", "lan"), [("127.0.0.1", []), ("0.0.0.0", ["--wyoming-allow-lan"])])
def test_serve_with_wyoming_as_a_process(host: str, lan: list[str]) -> None:
    """As Home Assistant finds it; beyond loopback, one line says anyone on the network can use it."""
    port = free_port()
    command = [sys.executable, "-m", "voicekit", "serve", "--engine", "espeak", "--wyoming", f"tcp://{host}:{port}", *lan]

    async def go() -> list[tuple[float, Event]]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize(text="Hello from the process.").event())
            return await reply_events(client)

    with server_process(command) as (url, proc):
        events = asyncio.run(go())
        assert httpx.get(url + "/health").json()["sessions"] == 0
        stop(proc)
        output = proc.stdout.read() if proc.stdout else ""
    assert audio_seconds(events) > 0.5
    warnings = [line for line in output.splitlines() if "anyone on that network can use it" in line]
    assert warnings == ([f"voicekit serve: Wyoming on {host}:{port} has no authentication: anyone on that network can use it"]
                        if lan else []), output  # fmt: skip


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--wyoming", "tcp://0.0.0.0:10200"], "--wyoming tcp://0.0.0.0:10200 is beyond loopback"),
        (["--wyoming", "http://127.0.0.1:10200"], "--wyoming takes tcp://HOST:PORT"),
        (["--wyoming", "tcp://127.0.0.1"], "--wyoming takes tcp://HOST:PORT"),
        (["--wyoming", "tcp://127.0.0.1:10200", "--workers", "2"], "--wyoming runs in one process"),
    ],
)
def test_wyoming_settings_are_checked(args: list[str], says: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voicekit", "serve", "--engine", "espeak", "--port", str(free_port()), *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith(f"voicekit serve: {says}"), done.stderr
    assert done.stderr.count("\n") == 1
