"""voicekit serve over HTTP: the real openai SDK and httpx against uvicorn on 127.0.0.1.

The speech engine is the real eSpeak (``Recording`` only notes how much audio it made).
"""

from __future__ import annotations

import io
import json
import threading
import time
import wave
from collections.abc import Callable, Iterator

import httpx2 as httpx  # the HTTP client the openai SDK ships with
import openai
import pytest

from tests.fixtures.web import Recording, Running, open_http_sessions, running
from voicekit import BaseTTS
from voicekit.errors import EngineError
from voicekit.server import create_app

pytestmark = pytest.mark.usefixtures("no_thread_leak")

LONG = " ".join(f"Sentence number {i} is here so the reply runs long enough to stream." for i in range(60))
FEW = " ".join(f"Sentence number {i} is here so the reply has more than one chunk." for i in range(4))


class Broken(Recording):
    def synthesize(self, text, cancel):
        raise EngineError("the engine is down", engine="broken")
        yield  # pragma: no cover - a generator


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with running(create_app("espeak")) as srv:
        yield srv


@pytest.fixture
def client(server: Running) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as c:
        yield c


def test_health(server: Running) -> None:
    r = httpx.get(server.url + "/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["engine"] == "espeak" and body["sessions"] == 0


def test_wav_streams_header_first_and_plays(client: openai.OpenAI) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="anything", voice="default", input="Hello from the server.", response_format="wav"
    ) as response:
        data = response.read()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        frames = w.readframes(10**9)
    assert 0.8 < len(frames) / 2 / 24000 < 3


def _seconds(client: openai.OpenAI, **kwargs) -> float:
    args = {"model": "tts-1", "voice": "alloy", "input": "One two three four five six seven.", "response_format": "pcm"}
    return len(client.audio.speech.create(**{**args, **kwargs}).content) / 2 / 24000


def test_voice_and_speed(client: openai.OpenAI) -> None:
    normal = _seconds(client)
    assert _seconds(client, speed=2.0) < 0.7 * normal
    assert _seconds(client, voice="en-us") > 0.5  # an engine voice id
    assert _seconds(client, voice="alloy") == pytest.approx(normal, rel=0.02)  # alloy: the default voice


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "ogg"}, "response_format"),
        ({"voice": "../../etc/passwd"}, "voice"),
        ({"speed": 9}, "speed"),
        ({"input": ""}, "input"),
    ],
)
def test_bad_requests_get_openai_errors(client: openai.OpenAI, fields: dict, param: str) -> None:
    args = {"model": "tts-1", "voice": "alloy", "input": "Hello.", "response_format": "pcm", **fields}
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(**args)
    body = caught.value.response.json()
    assert body["error"]["param"] == param and body["error"]["type"] == "invalid_request_error"
    assert "Traceback" not in caught.value.response.text


def test_size_limits() -> None:
    with running(create_app("espeak", max_input_chars=1000)) as srv:
        r = httpx.post(srv.url + "/v1/audio/speech", json={"input": "a" * 1001, "voice": "alloy"})
        assert r.status_code == 413 and r.json()["error"]["param"] == "input"
        r = httpx.post(srv.url + "/v1/audio/speech", content=b"{" + b" " * 10_000_000 + b"}")
        assert r.status_code == 413
        r = httpx.post(srv.url + "/v1/audio/speech", content=b"not json")
        assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]


def test_voices_in_the_kokoro_and_open_webui_shape(server: Running) -> None:
    body = httpx.get(server.url + "/v1/audio/voices").json()
    assert body["default_voice"] == "default"
    ids = [v["id"] for v in body["voices"]]
    assert "default" in ids and len(ids) > 20
    assert all(isinstance(v["name"], str) for v in body["voices"])


def test_token_on_http() -> None:
    with running(create_app("espeak", token="s3cret")) as srv:
        with openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0) as bad, pytest.raises(openai.AuthenticationError):
            bad.audio.speech.create(model="m", voice="alloy", input="Hi.", response_format="pcm")
        assert httpx.get(srv.url + "/health").status_code == 401
        # discovery is public (front ends fetch it without a key); it reveals only names
        assert httpx.get(srv.url + "/v1/audio/voices").status_code == 200
        with openai.OpenAI(base_url=srv.url + "/v1", api_key="s3cret", max_retries=0) as good:
            assert good.audio.speech.create(model="m", voice="alloy", input="Hi.", response_format="pcm").content
        # the page itself is public: it holds no data and asks for the token
        assert httpx.get(srv.url + "/").status_code == 200
        assert "s3cret" not in repr(srv.app.state.voicekit.settings)


def test_origin_and_host_checks(server: Running) -> None:
    body = {"input": "Hi.", "voice": "alloy", "response_format": "pcm"}
    evil = httpx.post(server.url + "/v1/audio/speech", json=body, headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403 and "--allow-origin" in evil.json()["error"]["message"]
    same = httpx.post(server.url + "/v1/audio/speech", json=body, headers={"Origin": server.url})
    assert same.status_code == 200
    # DNS rebinding: a foreign name pointing at 127.0.0.1, without a token
    rebound = httpx.get(server.url + "/health", headers={"Host": f"evil.example:{server.port}"})
    assert rebound.status_code == 403


def test_allowed_origin_gets_cors() -> None:
    with running(create_app("espeak", allow_origins=["https://app.example.com"])) as srv:
        r = httpx.options(
            srv.url + "/v1/audio/speech",
            headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
        )
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example.com"
        r = httpx.post(
            srv.url + "/v1/audio/speech",
            json={"input": "Hi.", "response_format": "pcm"},
            headers={"Origin": "https://app.example.com"},
        )
        assert r.status_code == 200 and r.content


class Held(Recording):
    """eSpeak that speaks its first chunk, then holds the rest until ``go`` is set (or the reply is cut)."""

    def __init__(self, go: threading.Event) -> None:
        super().__init__()
        self.go = go

    def synthesize(self, text, cancel):
        while self.synthesized_seconds and not (self.go.wait(0.05) or cancel.is_set()):
            pass
        yield from super().synthesize(text, cancel)


def test_session_cap_answers_503() -> None:
    go = threading.Event()
    body = {"input": FEW, "voice": "alloy", "response_format": "pcm"}
    with running(create_app(make_tts=lambda: BaseTTS(Held(go)), max_sessions=1)) as srv, httpx.Client(base_url=srv.url) as http:
        try:
            with http.stream("POST", "/v1/audio/speech", json=body) as first:
                assert first.status_code == 200
                busy = http.post("/v1/audio/speech", json=body)  # the first is still speaking: its engine is held
                go.set()
                first.read()
            # the first response has ended, so its slot is free for the very next request: no waiting
            assert http.post("/v1/audio/speech", json={**body, "input": "Free again."}).status_code == 200
        finally:
            go.set()
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert "limit" in busy.json()["error"]["message"]


class SlowToRelease(Recording):
    """eSpeak whose release waits for ``done``: every request's TTS is still being cleaned up when the next comes."""

    def __init__(self, done: threading.Event) -> None:
        super().__init__()
        self.done = done

    def close(self) -> None:
        self.done.wait(10)
        self.inner.close()


def test_back_to_back_requests_all_find_the_one_slot_free() -> None:
    """A client that waits for each response before sending the next is never told 503.

    A slot given back only after the TTS's cleanup would still be taken here, as
    each cleanup waits until the test ends (with eSpeak's own quick cleanup, some of the 10 were).
    """
    done = threading.Event()
    app = create_app(make_tts=lambda: BaseTTS(SlowToRelease(done)), max_sessions=1)
    with running(app) as srv, httpx.Client(base_url=srv.url) as http:
        try:
            body = {"input": "Short one.", "voice": "alloy", "response_format": "pcm"}
            statuses = [http.post("/v1/audio/speech", json=body).status_code for _ in range(10)]
            sessions = http.get("/health").json()["sessions"]
        finally:
            done.set()
    assert statuses == [200] * 10
    assert sessions == 0
    assert open_http_sessions(app) == (0, 0)  # and no slot was given back twice once the cleanups ran


def test_client_hanging_up_releases_the_session(server: Running) -> None:
    with httpx.Client(base_url=server.url) as http:
        with http.stream("POST", "/v1/audio/speech", json={"input": LONG * 3, "response_format": "pcm"}) as r:
            next(r.iter_bytes())
        deadline = time.monotonic() + 5
        while http.get("/health").json()["sessions"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert http.get("/health").json()["sessions"] == 0


def test_engine_failure_is_a_clean_error() -> None:
    with running(create_app(make_tts=lambda: BaseTTS(Broken()))) as srv:
        r = httpx.post(srv.url + "/v1/audio/speech", json={"input": "Hello there.", "response_format": "pcm"})
    assert r.status_code == 502
    assert r.json()["error"]["message"] == "the custom engine could not speak this input"
    assert "Traceback" not in r.text and "down" not in r.text


def test_chat_endpoint_streams_the_offline_responder() -> None:
    times, text = [], ""
    with running(create_app("espeak", chat_tokens_per_second=400)) as srv:
        body = {"messages": [{"role": "user", "content": "Tell me about streams"}]}
        with httpx.stream("POST", srv.url + "/v1/chat", json=body) as r:
            assert r.status_code == 200
            for piece in r.iter_text():
                times.append(time.monotonic())
                text += piece
        bad = httpx.post(srv.url + "/v1/chat", json={"messages": "hi"})
    assert "Tell me about streams" in text and "**" in text
    assert len(times) > 20 and times[-1] - times[0] > 0.1, "the reply came in one piece, not streamed"
    assert bad.status_code == 400


def test_a_page_that_leaves_mid_reply_closes_the_models_stream(fake_llm) -> None:
    from voicekit.backends import LLMChat

    fake_llm.pieces = [f" piece {i}." for i in range(40)]
    fake_llm.delay = 0.2
    chat = LLMChat(openai.OpenAI(base_url=fake_llm.base_url, api_key="test-key", max_retries=0), "fake-model")
    with running(create_app("espeak", chat=chat)) as srv:
        body = {"messages": [{"role": "user", "content": "Talk for a while"}]}
        with httpx.stream("POST", srv.url + "/v1/chat", json=body, timeout=10) as r:
            first = next(r.iter_text())
        # the page went away: the server's read of the model ends and closes its HTTP stream
        assert fake_llm.disconnected.wait(5), "the model's stream was left open"
    assert first.startswith(" piece 0.") and not fake_llm.finished.is_set()


def test_threads_end_with_the_requests(server: Running) -> None:
    before = {t.name for t in threading.enumerate()}
    with openai.OpenAI(base_url=server.url + "/v1", api_key="x") as c:
        for _ in range(3):
            c.audio.speech.create(model="m", voice="alloy", input="Short one.", response_format="pcm")
    time.sleep(0.2)
    voicekit_threads = [t.name for t in threading.enumerate() if t.name.startswith("voicekit") and t.name not in before]
    assert not voicekit_threads, json.dumps(voicekit_threads)


class FailsLater(Recording):
    """Speaks the first chunk, then the engine gives out."""

    def synthesize(self, text, cancel):
        if self.synthesized_seconds:
            raise EngineError("the engine fell over", engine="espeak")
        yield from super().synthesize(text, cancel)


def test_a_failure_mid_body_aborts_the_transfer() -> None:
    with running(create_app(make_tts=lambda: BaseTTS(FailsLater()))) as srv, httpx.Client(base_url=srv.url) as http:
        got = b""
        with pytest.raises(httpx.RemoteProtocolError), http.stream("POST", "/v1/audio/speech", json={"input": LONG, "response_format": "pcm"}) as r:
            assert r.status_code == 200
            for piece in r.iter_bytes():
                got += piece
        assert got, "the first chunk's audio came through"


def test_the_openai_engine_gets_the_requests_voice_and_instructions(fake_openai, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-key")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{fake_openai.url}/v1")
    with running(create_app("openai")) as srv, openai.OpenAI(base_url=srv.url + "/v1", api_key="x") as c:
        first = c.audio.speech.create(
            model="tts-1", voice="nova", input="Hello through two servers.", instructions="Speak like a calm pirate.", response_format="pcm"
        )
        second = c.audio.speech.create(model="tts-1", voice="onyx", input="Hello again.", response_format="pcm")
    assert len(first.content) > 24000 and second.content
    sent = [(e.body["voice"], e.body.get("instructions")) for e in fake_openai.speech_requests()]
    # each request has a TTS of its own: the second's engine never heard the first's instructions
    assert sent == [("nova", "Speak like a calm pirate."), ("onyx", None)]


@pytest.mark.parametrize("speed", [0.25, 4.0])
def test_speed_at_its_bounds_is_spoken(client: openai.OpenAI, speed: float) -> None:
    slow_or_fast = _seconds(client, speed=speed)
    assert (slow_or_fast > _seconds(client)) == (speed < 1)


@pytest.mark.parametrize("speed", [0.24, 4.01])
def test_speed_past_its_bounds_is_refused(client: openai.OpenAI, speed: float) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _seconds(client, speed=speed)
    error = caught.value.response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"]) == ("invalid_request_error", "speed") and str(speed) in error["message"]


def _hang_up(http: httpx.Client) -> None:
    with http.stream("POST", "/v1/audio/speech", json={"input": LONG, "response_format": "pcm"}) as r:
        next(r.iter_bytes())


def _cut_mid_body(http: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/v1/audio/speech", json={"input": LONG, "response_format": "pcm"})


def _answered(status: int, **fields: str) -> Callable[[httpx.Client], None]:
    def request(http: httpx.Client) -> None:
        body = {"input": "Short one.", "response_format": "pcm", **fields}
        assert http.post("/v1/audio/speech", json=body).status_code == status

    return request


@pytest.mark.parametrize(
    ("engine", "ending"),
    [
        pytest.param(Recording, _answered(200), id="completed"),
        pytest.param(Recording, _answered(400, voice="no-such-voice"), id="bad-voice"),
        pytest.param(Broken, _answered(502), id="engine-down"),
        pytest.param(FailsLater, _cut_mid_body, id="failed-mid-body"),
        pytest.param(Recording, _hang_up, id="client-hung-up"),
    ],
)
def test_every_ending_gives_the_slot_back_once(engine: type[Recording], ending: Callable[[httpx.Client], None]) -> None:
    app = create_app(make_tts=lambda: BaseTTS(engine()))
    with running(app) as srv, httpx.Client(base_url=srv.url) as http:
        ending(http)
    assert open_http_sessions(app) == (0, 0)
