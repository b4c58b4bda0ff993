"""Every script in examples/ runs as a user would run it, and produces real speech.

Each runs in a subprocess with offline eSpeak and ``VOICEKIT_OUTPUT`` pointing
at a WAV file (see examples/_common.py); the test reads that file back.
tests/test_guide.py runs the scripts of the guide's snippets against the fake
Polly, whose tones make every assertion exact.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("espeakng_loader", reason="needs eSpeak NG: pip install 'voicekit[espeak]'")

from .test_cli import NO_DEVICE, fake_sounddevice_env  # noqa: E402
from .test_guide import as_wav  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# script -> (least seconds of speech, about 75% of what all its text takes with eSpeak's
# default voice, so a lost sentence fails; then texts its stdout must show)
CASES = {
    "simple_streaming.py": (2.0,),
    "streaming_callbacks.py": (3.0, "Processed chunk: "),
    "custom_stream_config.py": (3.4,),
    "stream_control.py": (2.0,),
    "async_streaming.py": (1.1,),
    "efficient_chunking.py": (7.5,),
    "memory_efficient.py": (5.7,),
    "chat_bot.py": (2.8,),
    "live_text_processing.py": (3.3,),
    "error_handling.py": (3.2, "Streaming error: feed() after done()", "Buffer error: more than max_queued_chars"),
    "robust_streaming.py": (2.4,),
    "resource_cleanup.py": (1.45,),
    "stream_manager.py": (3.0,),
    "generator_narration.py": (4.3, "Build finished."),
    "llm_chatbot.py": (4.8, "You asked: **Why stream speech?**"),
}


def example_env(tmp_path: Path, env: dict[str, str] | None) -> dict[str, str]:
    # offline and deterministic: no cloud credentials reach the example unless a test passes them
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENAI_", "VOICEKIT_"))}
    clean.update({"VOICEKIT_ENGINE": "espeak", "VOICEKIT_OUTPUT": str(tmp_path / "out.wav"), **(env or {})})
    return clean


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """The first channel as int16, and the sample rate."""
    with wave.open(str(path)) as wav:
        assert wav.getsampwidth() == 2
        audio = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
        return audio.reshape(-1, wav.getnchannels())[:, 0], wav.getframerate()


def run_example(script: str, tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    """Runs an example; returns its stdout, its audio (int16 mono) and its sample rate."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        env=example_env(tmp_path, env), cwd=tmp_path, capture_output=True, text=True, timeout=90,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return (proc.stdout, *read_wav(tmp_path / "out.wav"))


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def assert_speech(audio: np.ndarray, samplerate: int, min_seconds: float) -> None:
    seconds = len(audio) / samplerate
    assert min_seconds <= seconds <= 4 * min_seconds + 3, f"{seconds:.2f} s of audio"
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    assert rms > 300, f"near silence (rms {rms:.0f})"


def test_every_example_has_a_smoke_test():
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_speaks(script, tmp_path):
    min_seconds, *shown = CASES[script]
    args = ("Why stream speech?",) if script == "llm_chatbot.py" else ()
    stdout, audio, samplerate = run_example(script, tmp_path, *args)
    for text in shown:
        assert text in stdout
    assert_speech(audio, samplerate, min_seconds)
    if script == "custom_stream_config.py":
        assert samplerate == 44100


def test_llm_chatbot_talks_to_an_openai_compatible_server(tmp_path, fake_llm):
    pytest.importorskip("openai", reason="needs the openai SDK: pip install 'voicekit[openai]'")
    fake_llm.delay = 0.01
    env = {"OPENAI_BASE_URL": fake_llm.base_url, "OPENAI_API_KEY": "test-key", "VOICEKIT_LLM_MODEL": "fake-model"}
    stdout, audio, samplerate = run_example("llm_chatbot.py", tmp_path, "Hi", "And then?", env=env)
    reply = "".join(fake_llm.pieces)
    assert stdout.count(reply) == 2
    assert_speech(audio, samplerate, 3.3)  # both replies: one is about 2 s
    first, second = fake_llm.requests
    assert first["model"] == "fake-model" and first["stream"] is True
    # the second request carries the first exchange in its history
    assert second["messages"][1:] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": reply},
        {"role": "user", "content": "And then?"},
    ]


def test_llm_chatbot_ctrl_c_barges_in_and_history_keeps_what_was_heard(tmp_path, fake_llm):
    pytest.importorskip("openai", reason="needs the openai SDK: pip install 'voicekit[openai]'")
    fake_llm.pieces = [f" Sentence {i} is here." for i in range(30)]
    fake_llm.delay = 0.05
    env = {"OPENAI_BASE_URL": fake_llm.base_url, "OPENAI_API_KEY": "test-key"}
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "llm_chatbot.py"), "Talk.", "Again."],
        env=example_env(tmp_path, env), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        shown = ""
        while "Sentence 3 " not in shown:
            char = proc.stdout.read(1)
            assert char, f"the chatbot ended early: {proc.stderr.read()}"
            shown += char
        proc.send_signal(signal.SIGINT)  # Ctrl-C while the first reply streams
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert fake_llm.disconnected.wait(timeout=5)  # the first reply's HTTP stream was closed early
    first_reply = (shown + out).split("bot> ")[1]
    assert first_reply.rstrip().endswith("[interrupted]")
    entry = fake_llm.requests[1]["messages"][2]
    assert entry["role"] == "assistant" and entry["content"].endswith(" [interrupted]")
    heard, full = words(entry["content"].removesuffix(" [interrupted]")), words("".join(fake_llm.pieces))
    assert heard == full[: len(heard)] and len(heard) < len(full)


def test_examples_use_openai_tts_when_an_api_key_is_set(tmp_path, fake_openai):
    env = {"VOICEKIT_ENGINE": "", "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": f"{fake_openai.url}/v1"}
    _, audio, samplerate = run_example("stream_control.py", tmp_path, env=env)
    assert samplerate == 24000  # OpenAI's PCM rate: the audio came from the fake server, all of it
    np.testing.assert_array_equal(audio, as_wav(fake_openai.sent_audio()))
    spoken = " ".join(e.body["input"] for e in fake_openai.speech_requests())
    assert spoken == "First part of the text. Second part of the text."


def test_examples_use_polly_when_aws_credentials_are_set(tmp_path, fake_polly):
    env = {
        "VOICEKIT_ENGINE": "",
        "AWS_ACCESS_KEY_ID": "AKIDTEST",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": fake_polly.url,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
    }
    _, audio, samplerate = run_example("stream_control.py", tmp_path, env=env)
    assert samplerate == 16000  # Polly's PCM rate: the audio came from the fake server, all of it
    np.testing.assert_array_equal(audio, as_wav(fake_polly.sent_audio()))
    spoken = " ".join(e.body["Text"] for e in fake_polly.speech_requests())
    assert spoken == "First part of the text. Second part of the text."


def test_without_a_sound_card_an_example_says_to_set_voicekit_output(tmp_path):
    folder = tmp_path / "fake"
    folder.mkdir()
    env = {"VOICEKIT_OUTPUT": "", "PYTHONPATH": fake_sounddevice_env(folder, NO_DEVICE)["PYTHONPATH"]}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "simple_streaming.py")],
        env=example_env(tmp_path, env), cwd=tmp_path, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("simple_streaming.py: no audio output device found")
    assert "set VOICEKIT_OUTPUT=out.wav" in proc.stderr and "--out" not in proc.stderr


def test_examples_speak_with_the_default_engine(tmp_path):
    from voicekit.registry import default_engine

    env = example_env(tmp_path, {"VOICEKIT_ENGINE": "", "PYTHONPATH": os.pathsep.join([str(EXAMPLES), *sys.path])})
    proc = subprocess.run(
        [sys.executable, "-c", "from _common import make_tts; tts = make_tts(); print(type(tts).__name__); tts.cleanup()"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == {"piper": "PiperTTS", "espeak": "EspeakTTS"}[default_engine()]
