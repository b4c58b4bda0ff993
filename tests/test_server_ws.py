"""WebSocket /v1/speak with the real ``websockets`` client against uvicorn on 127.0.0.1 (real eSpeak)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import numpy as np
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.fakes.polly import FakePolly
from tests.fixtures.web import Recording, Running, running
from tests.helpers import fundamental, rms
from voicekit import BaseTTS, PollyClient, PollyTTS
from voicekit.registry import default_engine
from voicekit.server import create_app
from voicekit.server.guard import quiet_spurious_handshake_errors

pytestmark = pytest.mark.usefixtures("no_thread_leak")

RATE = 24000
REPLY = "Hello there, this is the first reply. It has a second sentence, too."
LONG = " ".join(f"This is sentence number {i} of a long answer that keeps going." for i in range(40))


@dataclass
class Reply:
    """What the client saw of one reply, in arrival order."""

    log: list[Any] = field(default_factory=list)  # bytes or event dicts
    end: dict | None = None

    @property
    def audio(self) -> bytes:
        return b"".join(m for m in self.log if isinstance(m, bytes))

    @property
    def seconds(self) -> float:
        return len(self.audio) / 2 / RATE

    def events(self, kind: str) -> list[dict]:
        return [m for m in self.log if isinstance(m, dict) and m["type"] == kind]


async def read_reply(ws, *, stop_after: float | None = None) -> Reply:
    """Messages until the end event (or until ``stop_after`` seconds of audio arrived)."""
    reply = Reply()
    while True:
        message = await asyncio.wait_for(ws.recv(), 20)
        if isinstance(message, bytes):
            reply.log.append(message)
            if stop_after is not None and reply.seconds >= stop_after:
                return reply
            continue
        event = json.loads(message)
        reply.log.append(event)
        if event["type"] in ("reply_done", "interrupted"):
            reply.end = event
            return reply


async def nothing_more(ws, wait: float = 0.3) -> list:
    extra = []
    try:
        while True:
            extra.append(await asyncio.wait_for(ws.recv(), wait))
    except asyncio.TimeoutError:
        return extra


async def say(ws, text: str, pieces: int = 1) -> None:
    step = max(1, len(text) // pieces)
    for i in range(0, len(text), step):
        await ws.send(json.dumps({"type": "text", "text": text[i : i + step]}))
    await ws.send(json.dumps({"type": "done"}))


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with running(create_app("espeak")) as srv:
        yield srv


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.fixture(scope="module")
def piper_server() -> Iterator[Running]:
    if default_engine() != "piper":
        pytest.skip("needs the piper extra (pip install 'voicekit[piper]')")
    with running(create_app("piper")) as srv:
        yield srv


@pytest.mark.parametrize("engine", ["espeak", "piper"])
def test_a_reply_streams_words_chunks_audio_then_reply_done(engine: str, request: pytest.FixtureRequest) -> None:
    server: Running = request.getfixturevalue("server" if engine == "espeak" else "piper_server")

    async def go():
        async with websockets.connect(server.ws_url + "/v1/speak") as ws:
            assert json.loads(await ws.recv()) == {"type": "ready", "sample_rate": 24000, "format": "s16le", "channels": 1}
            await say(ws, REPLY, pieces=12)  # LLM-like deltas
            reply = await read_reply(ws)
            return reply, await nothing_more(ws)

    reply, extra = run(go())
    assert reply.end == {"type": "reply_done", "text": REPLY}
    assert reply.log[-1] is reply.end and not extra
    pcm = np.frombuffer(reply.audio, "<i2")
    assert 3 < reply.seconds < 8 and np.abs(pcm).max() > 1000
    # every word arrives no later than the audio holding its start, with start <= end on the timeline
    received = 0.0
    words = []
    for message in reply.log:
        if isinstance(message, bytes):
            received += len(message) / 2 / RATE
        elif message["type"] == "word":
            assert received <= message["start"] + 1e-3, (message, received)
            assert message["start"] <= message["end"] <= reply.seconds + 1e-3
            words.append(message)
    # eSpeak's words are bare, Piper's keep their punctuation
    assert [w["word"].strip(",.") for w in words] == REPLY.replace(",", "").replace(".", "").split()
    assert all(a["start"] <= b["start"] for a, b in itertools.pairwise(words))
    chunks = reply.events("chunk")
    assert " ".join(c["text"] for c in chunks) == REPLY
    assert sum(c["duration"] for c in chunks) == pytest.approx(reply.seconds, abs=0.01)


def test_barge_in_reports_what_was_heard_and_stops_the_audio(server: Running) -> None:
    async def go():
        async with websockets.connect(server.ws_url + "/v1/speak") as ws:
            await ws.recv()
            await say(ws, LONG)
            first = await read_reply(ws, stop_after=2.0)
            await ws.send(json.dumps({"type": "interrupt", "played": 1.5}))
            rest = await read_reply(ws)
            extra = await nothing_more(ws)
            await say(ws, "And now the next reply.")
            after = await read_reply(ws)
            return first, rest, extra, after

    first, rest, extra, after = run(go())
    end = rest.end
    assert end is not None and end["type"] == "interrupted"
    assert rest.log[-1] is end and not extra, "audio or events after the end event"
    assert not rest.events("reply_done")
    words = first.events("word") + rest.events("word")
    heard = [w["word"] for w in words if w["start"] < 1.5]
    assert end["heard_text"].replace(".", "").split() == heard
    assert LONG.startswith(end["heard_text"])
    assert f"{end['heard_text']} {end['unspoken_text']}" == LONG
    # the server kept its pace: it sent little more than the client's lookahead beyond what was played
    assert first.seconds + rest.seconds < 1.5 + 4.0 + 1.0
    assert after.end == {"type": "reply_done", "text": "And now the next reply."}


def test_interrupt_before_any_audio_and_after_the_end(server: Running) -> None:
    async def go():
        async with websockets.connect(server.ws_url + "/v1/speak") as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "text", "text": "Cut me off before I say"}))
            await ws.send(json.dumps({"type": "interrupt", "played": 0}))
            cut = await read_reply(ws)
            await say(ws, "Short.")
            done = await read_reply(ws)
            # with no reply in progress, interrupt and done each end an empty one, answered in order
            await ws.send(json.dumps({"type": "interrupt", "played": 9}))
            await ws.send(json.dumps({"type": "done"}))
            late = await read_reply(ws)
            empty = await read_reply(ws)
            return cut, done, late, empty, await nothing_more(ws)

    cut, done, late, empty, extra = run(go())
    assert cut.end["type"] == "interrupted" and cut.end["heard_text"] == ""
    assert cut.end["unspoken_text"] == "Cut me off before I say"
    assert done.end == {"type": "reply_done", "text": "Short."}
    assert late.end == {"type": "interrupted", "heard_text": "", "unspoken_text": ""} and not late.audio
    assert empty.end == {"type": "reply_done", "text": ""} and not empty.audio
    assert not extra


def test_interrupt_before_any_text_and_done_after_interrupted_are_answered(server: Running) -> None:
    async def go():
        async with websockets.connect(server.ws_url + "/v1/speak") as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "interrupt", "played": 0}))
            first = await read_reply(ws)
            await ws.send(json.dumps({"type": "text", "text": "Some words that get cut off"}))
            await ws.send(json.dumps({"type": "interrupt", "played": 0}))
            cut = await read_reply(ws)
            await ws.send(json.dumps({"type": "done"}))  # as on a fresh connection
            after = await read_reply(ws)
            return first, cut, after

    first, cut, after = run(go())
    assert first.end == {"type": "interrupted", "heard_text": "", "unspoken_text": ""}
    assert cut.end["type"] == "interrupted"
    assert after.end == {"type": "reply_done", "text": ""}


def test_a_deeply_nested_message_is_an_error_and_the_session_goes_on(server: Running) -> None:
    async def go():
        async with websockets.connect(server.ws_url + "/v1/speak") as ws:
            await ws.recv()
            await ws.send("[" * 20_000 + "]" * 20_000)
            error = json.loads(await ws.recv())
            await say(ws, "Still here.")
            return error, await read_reply(ws)

    error, reply = run(go())
    assert error["type"] == "error" and "nested too deeply" in error["message"]
    assert reply.end == {"type": "reply_done", "text": "Still here."} and reply.audio


def test_bad_messages_get_errors_and_the_session_goes_on(server: Running) -> None:
    async def go():
        async with websockets.connect(server.ws_url + "/v1/speak") as ws:
            await ws.recv()
            errors = []
            for bad in ["not json", json.dumps({"type": "shout"}), json.dumps({"type": "text", "text": 5}), json.dumps([1])]:
                await ws.send(bad)
                errors.append(json.loads(await ws.recv()))
            await ws.send(b"\x00\x01")
            errors.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"type": "config", "voice": "../../etc/passwd"}))
            errors.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"type": "config", "rate": "warp"}))
            errors.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"type": "text", "text": "One."}))
            await ws.send(json.dumps({"type": "done"}))
            await ws.send(json.dumps({"type": "text", "text": "Too early."}))
            await ws.send(json.dumps({"type": "config", "rate": 2}))
            reply = await read_reply(ws)
            return errors, reply

    errors, reply = run(go())
    assert all(e["type"] == "error" and e["message"] for e in errors)
    assert "voice" in errors[5]["message"] and "rate" in errors[6]["message"]
    late = [e["message"] for e in reply.events("error")]
    assert any("text after done" in m for m in late) and any("between replies" in m for m in late)
    assert reply.end == {"type": "reply_done", "text": "One."}
    assert "Traceback" not in json.dumps(errors + reply.events("error"))


def test_an_engine_failure_is_reported_and_the_reply_still_ends() -> None:
    from tests.test_server_http import FailsLater

    with running(create_app(make_tts=lambda: BaseTTS(FailsLater()))) as srv:

        async def go():
            async with websockets.connect(srv.ws_url + "/v1/speak") as ws:
                await ws.recv()
                await say(ws, "First sentence is spoken. The second one is not. Nor the third.")
                return await read_reply(ws), await nothing_more(ws)

        reply, extra = run(go())
    assert reply.audio and not extra
    [error] = reply.events("error")
    assert "fell over" in error["message"] and "second one" in error["unspoken_text"]
    assert reply.end == {"type": "reply_done", "text": "First sentence is spoken."}


def test_config_changes_voice_rate_volume_and_pitch_between_replies(server: Running) -> None:
    async def reply(ws, config: dict | None = None) -> Reply:
        if config is not None:
            await ws.send(json.dumps({"type": "config", **config}))
        await say(ws, REPLY)
        return await read_reply(ws)

    async def go():
        async with websockets.connect(server.ws_url + "/v1/speak") as ws:
            await ws.recv()
            normal = await reply(ws)
            fast = await reply(ws, {"voice": "en-us", "rate": 2.0})
            high = await reply(ws, {"rate": 1.0, "pitch": 95})
            quiet = await reply(ws, {"pitch": 50, "volume": 30})
            refused = await reply(ws, {"pitch": 500})
            return normal, fast, high, quiet, refused

    def samples(r: Reply) -> np.ndarray:
        return np.frombuffer(r.audio, np.int16).astype(np.float64)

    normal, fast, high, quiet, refused = run(go())
    for r in (fast, high, quiet):
        assert r.end["type"] == "reply_done" and not r.events("error")
    assert fast.seconds < 0.7 * normal.seconds
    assert fundamental(samples(high), RATE) > 1.2 * fundamental(samples(normal), RATE)
    assert rms(samples(quiet)) < 0.6 * rms(samples(normal))
    [error] = refused.events("error")
    assert "pitch" in error["message"] and refused.end["type"] == "reply_done"  # the session goes on


def test_size_limits_close_the_session() -> None:
    with running(create_app("espeak", max_message_chars=1000, max_session_chars=3000)) as srv:

        async def go():
            async with websockets.connect(srv.ws_url + "/v1/speak") as ws:
                await ws.recv()
                await ws.send(json.dumps({"type": "text", "text": "x" * 2000}))
                error = json.loads(await ws.recv())
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                big = (error, closed.value.rcvd.code)
            async with websockets.connect(srv.ws_url + "/v1/speak") as ws:
                await ws.recv()
                await ws.send(json.dumps({"type": "text", "text": "Hello."}))
                for _ in range(4):
                    await ws.send(json.dumps({"type": "text", "text": "y" * 900}))
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        message = await ws.recv()
                        if isinstance(message, str) and json.loads(message)["type"] == "error":
                            error = json.loads(message)
                total = (error, closed.value.rcvd.code)
            return big, total

        (big_error, big_code), (total_error, total_code) = run(go())
        assert big_code == 1009 and "longer than 1000" in big_error["message"]
        assert total_code == 1008 and "limit of 3000" in total_error["message"]


def test_origin_token_and_session_cap_refusals() -> None:
    token = "tok-3n/+x="
    with running(create_app("espeak", token=token, allow_origins=["https://app.example.com"], max_sessions=1)) as srv, \
            _server_errors() as errors:
        url = srv.ws_url + "/v1/speak"
        auth = {"Authorization": f"Bearer {token}"}

        async def refusal(**kwargs) -> Any:
            with pytest.raises(InvalidStatus) as refused:
                async with websockets.connect(url, **kwargs):
                    pass
            return refused.value.response

        async def status(**kwargs) -> int:
            return int((await refusal(**kwargs)).status_code)

        async def go():
            assert await status() == 401
            assert await status(additional_headers={"Authorization": "Bearer nope"}) == 401
            assert await status(additional_headers=auth, origin="https://evil.example") == 403
            # the server's own host and port, but https: another origin than this http server's
            assert await status(additional_headers=auth, origin=srv.url.replace("http://", "https://")) == 403
            encoded = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
            async with websockets.connect(
                url, origin="https://app.example.com", subprotocols=["voicekit", f"voicekit.token.{encoded}"]
            ) as ws:
                assert ws.subprotocol == "voicekit"
                assert json.loads(await ws.recv())["type"] == "ready"
                busy = await refusal(additional_headers=auth)  # the one slot is taken
                assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
            await asyncio.sleep(0.2)
            async with websockets.connect(url, additional_headers=auth, origin=srv.url) as ws:  # same origin
                assert json.loads(await ws.recv())["type"] == "ready"

        run(go())
    # a refusal is not a server error: uvicorn's websockets-sansio protocol used to log one after each
    assert errors == []


def test_a_handshake_really_left_unfinished_is_still_logged() -> None:
    quiet_spurious_handshake_errors()  # what create_app installs; it must only hide our own refusals

    async def broken(scope: dict, receive: Any, send: Any) -> None:
        return None  # neither accepts nor refuses

    async def connect(url: str) -> None:
        with pytest.raises(InvalidStatus):
            async with websockets.connect(url):
                pass

    with running(broken) as srv, _server_errors() as errors:
        run(connect(srv.ws_url))
    assert "ASGI callable returned without completing handshake." in errors


@contextmanager
def _server_errors() -> Iterator[list[str]]:
    """The ERROR lines uvicorn logs meanwhile (attached after uvicorn configured its logging)."""
    errors: list[str] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: errors.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        yield errors
    finally:
        logger.removeHandler(handler)


def test_a_client_that_does_not_read_is_paced() -> None:
    engines: list[Recording] = []

    def make_tts() -> BaseTTS:
        engines.append(Recording())
        return BaseTTS(engines[-1])

    with running(create_app(make_tts=make_tts, lookahead=1.0)) as srv:

        async def go():
            async with websockets.connect(srv.ws_url + "/v1/speak", max_queue=None) as ws:
                await ws.recv()
                started = time.monotonic()
                await say(ws, LONG)
                await asyncio.sleep(2.0)  # reads nothing
                elapsed = time.monotonic() - started
                engine = engines[-1]
                return elapsed, engine.synthesized_seconds

        elapsed, seconds = run(go())
    # 40 sentences are ~2 minutes of speech; eSpeak could make them all in well under a second
    assert seconds < elapsed + 1.0 + 1.0 + 1.0, (seconds, elapsed)


def test_disconnect_mid_reply_frees_the_session(server: Running) -> None:
    async def go():
        # max_queue=None: the client's own close must not wait behind the unread audio
        async with websockets.connect(server.ws_url + "/v1/speak", max_queue=None) as ws:
            await ws.recv()
            await say(ws, LONG)
            await read_reply(ws, stop_after=0.5)

    run(go())

    deadline = time.monotonic() + 5
    while httpx2.get(server.url + "/health").json()["sessions"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert httpx2.get(server.url + "/health").json()["sessions"] == 0


def test_client_text_is_never_ssml(fake_polly: FakePolly) -> None:
    """Text that starts with ``<speak`` reaches Polly as plain text: a client never chooses SSML."""
    attack = '<speak><prosody rate="x-slow">Hi there.</prosody><break time="10s"/></speak>'

    def polly() -> BaseTTS:
        return PollyTTS(PollyClient(("eu-west-1", "AKIDEXAMPLE", "secret"), endpoint_url=fake_polly.url))

    async def go(srv: Running):
        async with websockets.connect(srv.ws_url + "/v1/speak") as ws:
            await ws.recv()
            await say(ws, attack)
            await ws.send(json.dumps({"type": "done"}))
            return await read_reply(ws)

    with running(create_app(make_tts=polly)) as srv:
        reply = run(go(srv))
        with httpx2.Client() as http:
            r = http.post(srv.url + "/v1/audio/speech", json={"input": attack, "voice": "alloy", "response_format": "pcm"})
            assert r.status_code == 200
    assert reply.end is not None and reply.end["type"] == "reply_done"
    sent = fake_polly.speech_requests()
    assert len(sent) >= 2 and all(x.body["TextType"] == "text" for x in sent)
