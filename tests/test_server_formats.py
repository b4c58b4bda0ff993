"""voicekit serve's speech API as the chat front ends call it: every format, SSE, discovery.

Real clients (the openai SDK, sync and async; httpx in Open WebUI's and
SillyTavern's exact request shapes) against uvicorn on 127.0.0.1 with the real
eSpeak, and the audio decoded by FFmpeg's command-line tools from Debian, not
by voicekit. ``.ci/run`` installs them (package ``ffmpeg``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import numpy as np
import openai
import pytest

from tests.fixtures.web import Recording, Running, open_http_sessions, running
from voicekit import BaseTTS
from voicekit.server import create_app
from voicekit.testing import ToneTTS

pytestmark = [
    pytest.mark.usefixtures("no_thread_leak"),
    pytest.mark.skipif(not shutil.which("ffprobe"), reason="needs ffprobe and ffmpeg: apt-get install ffmpeg"),
]

TEXT = "Hello from the server. This is the second sentence, and it runs a little longer. A third one ends it."
LONG = " ".join(f"Sentence number {i} is here so the reply runs long enough to stream." for i in range(60))
# codec and sample rate as ffprobe names them (Opus always decodes at 48 kHz)
EXPECTED = {
    "mp3": ("mp3", 24000, "audio/mpeg"),
    "opus": ("opus", 48000, "audio/ogg"),
    "aac": ("aac", 24000, "audio/aac"),
    "flac": ("flac", 24000, "audio/flac"),
    "wav": ("pcm_s16le", 24000, "audio/wav"),
    "pcm": ("pcm_s16le", 24000, "audio/pcm"),  # no header: read as what it is documented to be
}
# the raw pcm body as FFmpeg is told to read it
RAW = ["-f", "s16le", "-ar", "24000", "-ac", "1"]


def probe(data: bytes, *, raw: bool = False) -> tuple[str, int, float, np.ndarray]:
    """(codec, sample rate, seconds, samples at 24 kHz) of an encoded file (``raw``: a pcm body), by ffprobe and ffmpeg."""
    source = [*RAW, "-i"] if raw else ["-i"]
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        info = json.loads(
            subprocess.run(
                ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,sample_rate,channels", "-of", "json", *source, f.name],
                capture_output=True, check=True, timeout=30,
            ).stdout
        )  # fmt: skip
        decoded = subprocess.run(
            ["ffmpeg", "-v", "error", *source, f.name, "-f", "s16le", "-ac", "1", "-ar", "24000", "-"],
            capture_output=True, check=True, timeout=30,
        )  # fmt: skip
    assert not decoded.stderr, decoded.stderr.decode()  # FFmpeg found the file well-formed
    (stream,) = info["streams"]
    assert stream["channels"] == 1
    samples = np.frombuffer(decoded.stdout, "<i2")
    return stream["codec_name"], int(stream["sample_rate"]), len(samples) / 24000, samples


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with running(create_app("espeak", token="s3cret")) as srv:
        yield srv


@pytest.fixture
def client(server: Running) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="s3cret", max_retries=0) as c:
        yield c


@pytest.fixture(scope="module")
def pcm_seconds(server: Running) -> float:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="s3cret", max_retries=0) as c:
        return len(c.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format="pcm").content) / 2 / 24000


def _check(data: bytes, fmt: str, pcm_seconds: float) -> np.ndarray:
    codec, rate, seconds, samples = probe(data, raw=fmt == "pcm")
    assert (codec, rate) == EXPECTED[fmt][:2]
    assert seconds == pytest.approx(pcm_seconds, rel=0.1), (fmt, seconds, pcm_seconds)
    assert np.sqrt(np.mean(samples.astype(float) ** 2)) > 300, "silence"
    return samples


@pytest.mark.parametrize("fmt", list(EXPECTED))
def test_every_format_through_the_sdk(client: openai.OpenAI, server: Running, pcm_seconds: float, fmt: str) -> None:
    whole = client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format=fmt)  # type: ignore[arg-type]
    assert whole.response.headers["content-type"] == EXPECTED[fmt][2]
    _check(whole.content, fmt, pcm_seconds)
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="alloy", input=TEXT, response_format=fmt  # type: ignore[arg-type]
    ) as streamed:
        pieces = list(streamed.iter_bytes())
    _check(b"".join(pieces), fmt, pcm_seconds)

    async def read_async() -> tuple[bytes, bytes]:
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="s3cret", max_retries=0) as ac:
            whole = await ac.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format=fmt)  # type: ignore[arg-type]
            async with ac.audio.speech.with_streaming_response.create(
                model="tts-1", voice="alloy", input=TEXT, response_format=fmt  # type: ignore[arg-type]
            ) as response:
                return whole.content, b"".join([piece async for piece in response.iter_bytes()])

    for data in asyncio.run(read_async()):
        _check(data, fmt, pcm_seconds)


@pytest.mark.parametrize("fmt", list(EXPECTED))
def test_every_format_streams_before_synthesis_ends(fmt: str) -> None:
    engines: list[Recording] = []

    def make_tts() -> BaseTTS:
        engines.append(Recording())
        return BaseTTS(engines[-1])

    with (
        running(create_app(make_tts=make_tts)) as srv,
        openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0) as c,
        c.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input=LONG, response_format=fmt) as response,  # type: ignore[arg-type]
    ):
        assert response.headers["content-type"] == EXPECTED[fmt][2]
        pieces = response.iter_bytes()
        first = next(pieces)
        made_by_then = engines[-1].synthesized_seconds
        data = first + b"".join(pieces)
    assert first, "no audio"
    # causal, not timed: the client held the first bytes while the engine still had audio to make
    assert made_by_then < engines[-1].synthesized_seconds, "the first bytes came only after synthesis ended"
    codec, rate, seconds, samples = probe(data, raw=fmt == "pcm")
    assert (codec, rate) == EXPECTED[fmt][:2]
    assert seconds > 60, seconds  # all of it: 60 sentences
    assert np.abs(samples).max() > 1000


@pytest.fixture(scope="module")
def tones() -> Iterator[openai.OpenAI]:
    """The SDK on a server speaking voicekit's tone engine: a text is the same samples every time, so lengths compare exactly."""
    with running(create_app(make_tts=ToneTTS)) as srv, openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0) as c:
        yield c


_MPEG2_LAYER3_KBPS = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)


def _one_id3_tag_then_mp3_frames(data: bytes) -> None:
    """One ID3v2 tag, then MPEG-2 layer III frames at 24 kHz back to back to the last byte: nothing else."""
    assert data[:3] == b"ID3"
    pos = 10 + (data[6] << 21 | data[7] << 14 | data[8] << 7 | data[9])  # the tag's size is syncsafe
    while pos < len(data):
        header = int.from_bytes(data[pos : pos + 4], "big")
        version, layer, rate = header >> 19 & 3, header >> 17 & 3, header >> 10 & 3
        assert header >> 21 == 0x7FF and (version, layer, rate) == (2, 1, 1), f"no MP3 frame at byte {pos}"
        kbps = _MPEG2_LAYER3_KBPS[header >> 12 & 15]
        assert kbps, "free-format frame"
        pos += 72 * kbps * 1000 // 24000 + (header >> 9 & 1)
    assert pos == len(data)


def _adts_frames(data: bytes) -> None:
    """ADTS frames of 24 kHz mono AAC back to back to the last byte."""
    pos = 0
    while pos < len(data):
        head = data[pos : pos + 7]
        assert head[0] == 0xFF and head[1] & 0xF6 == 0xF0, f"no ADTS frame at byte {pos}"
        assert (head[2] >> 2 & 15, (head[2] & 1) << 2 | head[3] >> 6) == (6, 1)  # 24 kHz, one channel
        length = (head[3] & 3) << 11 | head[4] << 3 | head[5] >> 5
        assert length > 7
        pos += length
    assert pos == len(data)


def _one_ogg_stream(data: bytes) -> None:
    """Ogg pages back to back, all of one stream, numbered in turn, begun by the first page and ended by the last."""
    flags, serials, numbers, pos = [], set(), [], 0
    while pos < len(data):
        assert data[pos : pos + 4] == b"OggS", f"no Ogg page at byte {pos}"
        flags.append(data[pos + 5] & 6)  # 2: beginning of a stream, 4: its end
        serials.add(data[pos + 14 : pos + 18])
        numbers.append(int.from_bytes(data[pos + 18 : pos + 22], "little"))
        segments = data[pos + 26]
        pos += 27 + segments + sum(data[pos + 27 : pos + 27 + segments])
    assert pos == len(data) and len(serials) == 1 and numbers == list(range(len(numbers)))
    assert flags == [2] + [0] * (len(flags) - 2) + [4] and data.count(b"OpusHead") == 1


def _one_flac_header(data: bytes) -> None:
    assert data[:4] == b"fLaC" and data.count(b"fLaC") == 1


def _one_riff_header(data: bytes) -> None:
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE" and data.count(b"RIFF") == 1


STRUCTURE = {
    "mp3": _one_id3_tag_then_mp3_frames,
    "aac": _adts_frames,
    "opus": _one_ogg_stream,
    "flac": _one_flac_header,
    "wav": _one_riff_header,
}
# samples decoded beyond the pcm response's: one encoder's priming and padding at most (LAME: 1105 of
# delay and up to one 576-sample frame; AAC: 1024 of priming and up to one 1024-sample frame), where a
# file per sentence would add them at every sentence. Opus' header tells the decoder to trim both.
EXTRA_SAMPLES = {"mp3": (0, 1105 + 576), "aac": (0, 1024 + 1024), "opus": (-24, 24), "flac": (0, 0), "wav": (0, 0)}


@pytest.mark.parametrize("fmt", list(STRUCTURE))
def test_one_container_across_sentences(tones: openai.OpenAI, fmt: str) -> None:
    """Ten sentences make one gapless file with one header: a player would stop at a second one."""
    text = " ".join(f"Sentence {i} of the reply." for i in range(10))
    pcm = np.frombuffer(tones.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="pcm").content, "<i2")
    data = tones.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format=fmt).content  # type: ignore[arg-type]
    STRUCTURE[fmt](data)
    samples = probe(data)[3]
    low, high = EXTRA_SAMPLES[fmt]
    assert low <= len(samples) - len(pcm) <= high, (len(samples), len(pcm))
    if fmt in ("flac", "wav"):
        assert np.array_equal(samples, pcm)  # lossless: the very samples


def test_mp3_is_the_default_as_in_openais_api(server: Running, pcm_seconds: float) -> None:
    # Open WebUI's request: {input, voice, model}, a Bearer key, and the body stored as .mp3
    r = httpx.post(
        server.url + "/v1/audio/speech",
        json={"input": TEXT, "voice": "alloy", "model": "tts-1"},
        headers={"Authorization": "Bearer s3cret", "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 200 and r.headers["content-type"] == "audio/mpeg"
    _check(r.content, "mp3", pcm_seconds)


def test_sillytavern_request_shape(server: Running, pcm_seconds: float) -> None:
    # SillyTavern's server side (src/endpoints/openai.js, custom generate-voice): full URL, these five fields
    body = {"input": TEXT, "response_format": "mp3", "voice": "nova", "speed": 1, "model": "tts-1"}
    r = httpx.post(server.url + "/v1/audio/speech", json=body, headers={"Authorization": "Bearer s3cret"}, timeout=30)
    assert r.status_code == 200
    codec, _, seconds, _ = probe(r.content)
    assert codec == "mp3" and seconds > 0.5 * pcm_seconds  # nova is another voice: its own length


def test_librechat_and_home_assistant_request_shapes(pcm_seconds: float) -> None:
    with running(create_app("espeak")) as srv:
        # LibreChat (TTSService.js): {input, model, voice}, read as a stream; with no key it sends this header
        with httpx.stream(
            "POST", srv.url + "/v1/audio/speech", json={"input": TEXT, "model": "tts-1", "voice": "alloy"},
            headers={"Authorization": "undefined"},
        ) as r:  # fmt: skip
            assert r.status_code == 200 and r.headers["content-type"] == "audio/mpeg"
            _check(r.read(), "mp3", pcm_seconds)
        # Home Assistant's openai_tts integration, streaming: opus, speed and instructions
        body = {"model": "tts-1", "input": TEXT, "voice": "alloy", "response_format": "opus", "speed": 1.0, "instructions": "Calm."}
        with httpx.stream("POST", srv.url + "/v1/audio/speech", json=body) as r:
            data = b"".join(r.iter_bytes(4096))
        _check(data, "opus", pcm_seconds)


def test_discovery_without_the_token(server: Running) -> None:
    # Open WebUI's discovery: plain GETs, no Authorization header
    voices = httpx.get(server.url + "/v1/audio/voices")
    assert voices.status_code == 200
    entries = voices.json()["voices"]
    assert all(isinstance(v["id"], str) and isinstance(v["name"], str) for v in entries)
    ids = [v["id"] for v in entries]
    assert {"alloy", "nova", "gmw/en-US"} <= set(ids)
    models = httpx.get(server.url + "/v1/audio/models")
    assert models.status_code == 200 and {"tts-1", "voicekit-espeak"} <= {m["id"] for m in models.json()["models"]}
    # the rest stays behind the token
    assert httpx.post(server.url + "/v1/audio/speech", json={"input": "Hi.", "voice": "alloy"}).status_code == 401
    assert httpx.get(server.url + "/health").status_code == 401


def test_private_discovery_puts_the_lists_behind_the_token() -> None:
    with running(create_app("espeak", token="t", private_discovery=True)) as srv:
        assert httpx.get(srv.url + "/v1/audio/voices").status_code == 401
        assert httpx.get(srv.url + "/v1/audio/models").status_code == 401
        assert httpx.get(srv.url + "/v1/audio/models", headers={"Authorization": "Bearer t"}).status_code == 200


def test_openai_voice_names_map_to_distinct_engine_voices(client: openai.OpenAI, server: Running) -> None:
    entries = {v["id"]: v for v in httpx.get(server.url + "/v1/audio/voices").json()["voices"]}
    assert entries["alloy"]["alias_of"] == "default"
    # the documented rule: the other names take the engine's English voices, sorted by id, in turn
    english = sorted(i for i, v in entries.items() if "alias_of" not in v and v["language"].startswith("en"))
    assert entries["ash"]["alias_of"] == english[0] and entries["ballad"]["alias_of"] == english[1]

    def spectrum(voice: object) -> np.ndarray:
        """The voice's average log spectrum: eSpeak's output jitters run to run, a voice's timbre does not."""
        text = "Can you dance on the grass after bath time? Hello there, how are you?"
        pcm = client.audio.speech.create(model="m", voice=voice, input=text, response_format="pcm").content  # type: ignore[arg-type]
        frames = np.frombuffer(pcm, "<i2").astype(float)
        frames = frames[: len(frames) // 512 * 512].reshape(-1, 512) * np.hanning(512)
        level = np.log(np.abs(np.fft.rfft(frames, axis=1)).mean(axis=0) + 1e-3)
        return level - level.mean()

    def distance(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a - b).mean())

    ballad = spectrum("ballad")
    assert english[1] == "gmw/en-029"  # Caribbean English: far from the default American voice
    # the same voice by id (the current SDK's voice object) is much nearer than the default voice
    # (measured: 0.02-0.06 against 0.14)
    assert distance(ballad, spectrum({"id": "gmw/en-029"})) < 0.5 * distance(ballad, spectrum("alloy"))


def test_sse_through_the_sdk(client: openai.OpenAI, pcm_seconds: float) -> None:
    events = []
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="alloy", input=TEXT, response_format="mp3", stream_format="sse"
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "speech.audio.done" and kinds.count("speech.audio.done") == 1
    assert set(kinds[:-1]) == {"speech.audio.delta"} and len(kinds) > 3
    usage = events[-1]["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    _check(audio, "mp3", pcm_seconds)


def test_sse_word_timestamps_through_the_sdk(client: openai.OpenAI, pcm_seconds: float) -> None:
    events = []
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="alloy", input=TEXT, response_format="pcm", stream_format="sse",
        extra_body={"word_timestamps": True},  # voicekit's extension: the SDK has no parameter for it
    ) as response:  # fmt: skip
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    words = [e for e in events if e["type"] == "speech.audio.word"]
    # in the text's order; eSpeak itself marks "from the" as one word, so not every word has a mark
    said = iter(TEXT.replace(",", "").replace(".", "").split())
    assert all(w["word"] in said for w in words)
    assert len(words) >= 0.9 * len(TEXT.split())
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and all(w["start"] < w["end"] for w in words)
    audio = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    _, _, seconds, _ = probe(audio, raw=True)
    # inside this response's own audio, to its rounding (3 decimals) and a few samples of resampling
    assert all(w["end"] <= seconds + 0.002 for w in words), (words[-1], seconds)
    # in time: when a word's event arrives, the audio sent so far has not passed its start by more
    # than the endpoint's block (100 ms), which is the grain of the playback thread's word reports
    sent = 0.0
    for event in events:
        if event["type"] == "speech.audio.delta":
            sent += len(base64.b64decode(event["audio"])) / 2 / 24000
        elif event["type"] == "speech.audio.word":
            assert sent <= event["start"] + 0.1, (event, sent)
    assert sent == pytest.approx(pcm_seconds, rel=0.02)  # eSpeak's timing jitters a little run to run


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "ogg"}, "response_format"),
        ({"response_format": ["pcm"]}, "response_format"),
        ({"stream_format": "chunks"}, "stream_format"),
        ({"voice": {"name": "x"}}, "voice"),
        ({"voice": "../../etc/passwd"}, "voice"),
        ({"model": 5}, "model"),
        ({"speed": 0.1}, "speed"),
        ({"word_timestamps": True}, "word_timestamps"),  # only with SSE
        ({"word_timestamps": "yes", "stream_format": "sse"}, "word_timestamps"),
    ],
)
def test_bad_fields_get_openai_errors(client: openai.OpenAI, fields: dict, param: str) -> None:
    fields = dict(fields)
    extra = {k: fields.pop(k) for k in list(fields) if k == "word_timestamps"}  # voicekit's extension
    args = {"model": "tts-1", "voice": "alloy", "input": "Hello.", **fields}
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(**args, extra_body=extra)
    body = caught.value.response.json()
    assert body["error"]["param"] == param and body["error"]["type"] == "invalid_request_error"


def test_instructions_and_any_model_are_accepted(tones: openai.OpenAI) -> None:
    plain = tones.audio.speech.create(model="tts-1", voice="alloy", input="Hello there.", response_format="pcm").content
    instructed = tones.audio.speech.create(
        model="my-own-model", voice="alloy", input="Hello there.", instructions="Speak cheerfully.", response_format="pcm"
    ).content
    # an engine without instructions ignores them: the very samples it speaks without
    assert len(plain) > 24000 // 2 and instructed == plain


@pytest.mark.parametrize(
    "body", [b'{"a": 1}', b'{"input": "Hi", "response_format": ["pcm"]}', b"[" * 100_000 + b"]" * 100_000, b"[1, 2]", b'"text"']
)
def test_malformed_bodies_are_4xx_in_openais_shape(server: Running, body: bytes) -> None:
    r = httpx.post(server.url + "/v1/audio/speech", content=body, headers={"Authorization": "Bearer s3cret"}, timeout=30)
    assert 400 <= r.status_code < 500, r.text
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_input_past_the_limit_is_413() -> None:
    with running(create_app("espeak", max_input_chars=1000)) as srv:
        r = httpx.post(srv.url + "/v1/audio/speech", json={"input": "a" * 1001, "voice": "alloy"})
    assert r.status_code == 413 and r.json()["error"]["param"] == "input"


def test_a_client_that_stops_reading_frees_its_slot(tmp_path: Path) -> None:
    long = " ".join(f"Sentence number {i} makes the reply run long enough to fill every buffer." for i in range(400))
    with running(create_app("espeak", send_timeout=1.0, max_sessions=1)) as srv, httpx.Client(base_url=srv.url) as http:
        with http.stream("POST", "/v1/audio/speech", json={"input": long, "response_format": "pcm"}) as r:
            assert r.status_code == 200
            # read nothing more: the server's socket buffer fills, then its send waits
            deadline = 20.0
            for _ in range(int(deadline / 0.1)):
                if http.get("/health").json()["sessions"] == 0:
                    break
                time.sleep(0.1)
            assert http.get("/health").json()["sessions"] == 0, "the stalled reader still holds its slot"
        assert http.post("/v1/audio/speech", json={"input": "Free again.", "response_format": "pcm"}).status_code == 200
    assert open_http_sessions(srv.app) == (0, 0)  # given back once: the send timeout's cleanup did not give it again
