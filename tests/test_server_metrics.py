"""``GET /metrics`` after real traffic, parsed by prometheus-client's own parser."""

from __future__ import annotations

import asyncio
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest
import websockets
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from tests.fixtures.web import Recording, running, server_env, server_process
from voicekit import BaseTTS, EspeakTTS, FallbackTTS
from voicekit.errors import EngineError
from voicekit.server import create_app
from voicekit.server.wyoming import WyomingServer

pytestmark = pytest.mark.usefixtures("no_thread_leak")

AUTH = {"Authorization": "Bearer m3trics"}


def scrape(url: str, headers: dict[str, str] = AUTH) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` as {(name, sorted labels): value}."""
    r = httpx.get(url + "/metrics", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class Broken(Recording):
    def __init__(self) -> None:
        super().__init__()
        self.name = "broken"

    def synthesize(self, text: str, cancel: Any) -> Any:
        raise EngineError("the engine is down", engine="broken")
        yield  # pragma: no cover - a generator


def test_metrics_move_with_real_traffic() -> None:
    app = create_app("espeak", token="m3trics")
    with running(app) as srv:
        assert httpx.get(srv.url + "/metrics").status_code == 401
        before = scrape(srv.url)
        assert value(before, "voicekit_sessions_open", protocol="http") == 0
        with openai.OpenAI(base_url=srv.url + "/v1", api_key="m3trics", max_retries=0) as client:
            for fmt in ("pcm", "mp3"):
                client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there. Counting words.", response_format=fmt)  # type: ignore[arg-type]
            with pytest.raises(openai.BadRequestError):
                client.audio.speech.create(model="tts-1", voice="alloy", input="", response_format="pcm")

        async def websocket_reply() -> None:
            async with websockets.connect(srv.ws_url + "/v1/speak", additional_headers=AUTH) as ws:
                await ws.recv()
                long = " ".join(f"Sentence {i} goes on." for i in range(40))
                await ws.send(json.dumps({"type": "text", "text": long}))
                while not isinstance(await ws.recv(), bytes):
                    pass
                await ws.send(json.dumps({"type": "interrupt", "played": 0.1}))
                while json.loads(m if isinstance(m := await ws.recv(), str) else "{}").get("type") != "interrupted":
                    pass

        asyncio.run(websocket_reply())

        async def wyoming_reply() -> None:
            async with WyomingServer(app.state.voicekit, "127.0.0.1", 0) as wyoming:
                async with AsyncTcpClient("127.0.0.1", wyoming.port) as client:
                    await client.write_event(Synthesize(text="Hello from Home Assistant.").event())
                    while (event := await client.read_event()) is not None and event.type != "audio-stop":
                        pass

        asyncio.run(wyoming_reply())
        after = scrape(srv.url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("voicekit_requests_total", route="/v1/audio/speech", status="200") == 2
    assert moved("voicekit_requests_total", route="/v1/audio/speech", status="400") == 1
    assert moved("voicekit_requests_total", route="/metrics", status="401") == 0  # counted before `before`
    assert value(after, "voicekit_requests_total", route="/metrics", status="401") == 1
    for protocol in ("http", "websocket", "wyoming"):
        assert moved("voicekit_time_to_first_audio_seconds_count", protocol=protocol) >= 1, protocol
        assert value(after, "voicekit_sessions_open", protocol=protocol) == 0
    assert moved("voicekit_interrupt_to_last_audio_seconds_count") == 1
    assert value(after, "voicekit_interrupt_to_last_audio_seconds_sum") < 1.0
    assert moved("voicekit_characters_synthesized_total", engine="espeak") > 60
    rtf = value(after, "voicekit_synthesis_real_time_factor_sum", engine="espeak") / value(
        after, "voicekit_synthesis_real_time_factor_count", engine="espeak"
    )
    assert 0 < rtf < 1, rtf


def test_engine_errors_and_fallbacks_are_counted() -> None:
    """An engine failure counts once whichever protocol asked: HTTP, WebSocket and Wyoming."""

    async def websocket_reply(srv: Any) -> dict[str, Any]:
        async with websockets.connect(srv.ws_url + "/v1/speak") as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "text", "text": "Hello."}))
            await ws.send(json.dumps({"type": "done"}))
            while (message := json.loads(await ws.recv()))["type"] != "error":
                pass
            return message

    async def wyoming_reply(app: Any) -> str:
        async with WyomingServer(app.state.voicekit, "127.0.0.1", 0) as wyoming:
            async with AsyncTcpClient("127.0.0.1", wyoming.port) as client:
                await client.write_event(Synthesize(text="Hello.").event())
                while (event := await client.read_event()) is not None and event.type != "error":
                    pass
                return event.type if event is not None else "closed"

    app = create_app(make_tts=lambda: BaseTTS(Broken()))
    with running(app) as srv:
        assert httpx.post(srv.url + "/v1/audio/speech", json={"input": "Hello.", "response_format": "pcm"}).status_code == 502
        assert value(scrape(srv.url, {}), "voicekit_engine_errors_total", engine="broken") == 1
        assert "Hello." in asyncio.run(websocket_reply(srv)).get("unspoken_text", "")
        assert asyncio.run(wyoming_reply(app)) == "error"
        assert value(scrape(srv.url, {}), "voicekit_engine_errors_total", engine="broken") == 3
    with running(create_app(make_tts=lambda: FallbackTTS([BaseTTS(Broken()), EspeakTTS()]))) as srv:
        assert httpx.post(srv.url + "/v1/audio/speech", json={"input": "Hello there.", "response_format": "pcm"}).status_code == 200
        samples = scrape(srv.url, {})
    assert value(samples, "voicekit_engine_fallbacks_total", engine="espeak") >= 1


def speech_counts_by_worker(folder: Path) -> dict[str, float]:
    """Each worker's own count of answered speech requests, read from its multiprocess file."""
    counts = {}
    for path in folder.glob("counter_*.db"):
        pid = path.stem.removeprefix("counter_")
        counts[pid] = sum(
            value
            for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))
            if json.loads(key)[1:3] == ["voicekit_requests_total", {"route": "/v1/audio/speech", "status": "200"}]
        )
    return counts


def test_workers_share_their_metrics(tmp_path: Path) -> None:
    """Two workers each answer some requests; whichever answers the scrape reports the sum of both."""
    command = [sys.executable, "-m", "voicekit", "serve", "--engine", "espeak", "--workers", "2"]
    env = server_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path))

    def speak(url: str) -> None:
        r = httpx.post(url + "/v1/audio/speech", json={"input": "Hi.", "response_format": "pcm"}, timeout=30)
        assert r.status_code == 200

    with server_process(command, env=env) as (url, _), ThreadPoolExecutor(8) as pool:
        for _ in range(10):  # the kernel hands connections to either worker: go on until both answered some
            list(pool.map(speak, [url] * 8))
            by_worker = speech_counts_by_worker(tmp_path)
            if sum(n > 0 for n in by_worker.values()) >= 2:
                break
        counts = {value(scrape(url, {}), "voicekit_requests_total", route="/v1/audio/speech", status="200") for _ in range(4)}
    assert sum(n > 0 for n in by_worker.values()) == 2, by_worker
    assert counts == {sum(by_worker.values())}, (counts, by_worker)
