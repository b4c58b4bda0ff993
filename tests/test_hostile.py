"""Hostile input: voice ids that are paths, injected SSML, bad characters, mid-chunk failures."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from tests.fakes.openai import FakeOpenAI
from tests.fakes.polly import FakePolly
from voicekit.engine import check_voice_id
from voicekit.engines.openai_tts import OpenAIClient
from voicekit.engines.polly import PollyClient

PATH_IDS = [
    "../" * 20 + "etc/passwd",
    "../" * 20 + "dev/zero",
    "/etc/passwd",
    "/dev/zero",
    "..",
    "en/" + "../" * 20 + "dev/zero",
    "gmw/" + "../" * 20 + "etc/passwd",
    "en+" + "../" * 20 + "etc/passwd",
    "en\\..\\..\\x",
    "C:\\Windows\\win.ini",
    "~/voice",
    "./en",
    "en\n",
    "en\x00",
    "",
]


@pytest.mark.parametrize("voice_id", PATH_IDS)
def test_paths_are_not_voice_ids(voice_id: str) -> None:
    with pytest.raises(ValueError, match="invalid voice id"):
        check_voice_id(voice_id)


@pytest.mark.parametrize("voice_id", ["Joanna", "en-us", "en+f3", "en_US-lessac-medium", "alloy", "v2.1"])
def test_ids_are_voice_ids(voice_id: str) -> None:
    assert check_voice_id(voice_id) == voice_id


def test_an_engines_own_list_may_name_any_id() -> None:
    assert check_voice_id("gmw/en-US", known={"gmw/en-US"}) == "gmw/en-US"
    with pytest.raises(ValueError):
        check_voice_id("gmw/../en-US", known={"gmw/en-US"})


# A child process: before the fix the first id crashed the interpreter (SIGSEGV) on the
# next speech and /dev/zero never returned, blocking every eSpeak client in the process.
_ESPEAK_PROBE = """
import sys, threading, time
from voicekit.engines.espeak import EspeakClient
client = EspeakClient()
for bad in sys.argv[1:]:
    start = time.monotonic()
    try:
        client.set_voice(bad)
    except ValueError as exc:
        assert "voice" in str(exc), exc
    else:
        sys.exit(f"accepted {bad!r}")
    took = time.monotonic() - start
    assert took < 1.0, (bad, took)
print(sum(len(c.pcm) for c in client.synthesize("Still speaking after that.", threading.Event())))
"""


def test_espeak_refuses_path_voice_ids_and_keeps_speaking() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _ESPEAK_PROBE, *[v for v in PATH_IDS if "\x00" not in v]],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout) > 10_000
    assert "root:" not in result.stderr, "eSpeak read /etc/passwd"


def test_polly_refuses_path_voice_ids_and_keeps_speaking(fake_polly: FakePolly) -> None:
    with pytest.raises(ValueError, match="invalid voice id"):
        PollyClient(endpoint_url=fake_polly.url, voice="../x")
    client = PollyClient(("eu-west-1", "AKIDFAKE", "secret"), endpoint_url=fake_polly.url)
    try:
        for bad in PATH_IDS:
            with pytest.raises(ValueError, match="invalid voice id"):
                client.set_voice(bad)
        assert list(client.synthesize("Still here.", threading.Event()))
        assert {e.body["VoiceId"] for e in fake_polly.speech_requests("pcm")} == {"Joanna"}
    finally:
        client.close()


def test_openai_refuses_path_voice_ids_and_keeps_speaking(fake_openai: FakeOpenAI) -> None:
    with pytest.raises(ValueError, match="invalid voice id"):
        OpenAIClient(api_key="sk-test", base_url=fake_openai.url + "/v1", voice="/etc/passwd")
    client = OpenAIClient(api_key="sk-test", base_url=fake_openai.url + "/v1")
    try:
        for bad in PATH_IDS:
            start = time.monotonic()
            with pytest.raises(ValueError, match="invalid voice id"):
                client.set_voice(bad)
            assert time.monotonic() - start < 1.0
        assert list(client.synthesize("Still here.", threading.Event()))
        assert {e.body["voice"] for e in fake_openai.speech_requests()} == {"alloy"}
    finally:
        client.close()
