"""EspeakClient against the real libespeak-ng: audio, word marks, cancellation, threads, settings."""

from __future__ import annotations

import ctypes.util
import io
import re
import subprocess
import sys
import threading
import time
import wave

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicekit.contract import AudioChunk, Engine
from voicekit.engines.espeak import EspeakClient
from voicekit.errors import EngineError
from voicekit.tts_classes import EspeakTTS

from .helpers import audio, marks, rms, synth

pytestmark = pytest.mark.usefixtures("no_thread_leak")

SENTENCE = "The quick brown fox jumps over the lazy dog, and then it naps in the warm afternoon sun."


@pytest.fixture
def client():
    c = EspeakClient()
    yield c
    c.close()


def assert_marks_are_the_words(text, found):
    """Each mark is one whole word, in order; espeak skips a few (it runs "in the" together)."""
    words = [(m.start(), m.end() - m.start()) for m in re.finditer(r"\w+", text)]
    spans = [(m.offset, m.length) for m in found]
    assert spans == sorted(set(spans))
    assert set(spans) <= set(words), [text[o : o + n] for o, n in set(spans) - set(words)]
    assert spans[0] == words[0] and spans[-1] == words[-1]
    assert len(spans) >= 0.8 * len(words)


def espeak_threads():
    return [t for t in threading.enumerate() if t.name == "voicekit-espeak"]


def test_is_an_engine_with_a_short_repr(client):
    assert isinstance(client, Engine)
    assert client.name == "espeak"
    assert client.samplerate == 22050
    assert repr(client) == "EspeakClient(voice='en', rate=175wpm, volume=100, pitch=50)"


def test_audio_is_float32_mono_non_silent(client):
    chunks = synth(client, SENTENCE)
    assert chunks
    for c in chunks:
        assert c.samplerate == 22050
        assert c.pcm.dtype == np.float32 and c.pcm.ndim == 1
    pcm = audio(chunks)
    assert 3.0 < len(pcm) / 22050 < 10.0
    assert rms(pcm) > 0.02
    assert np.abs(pcm).max() <= 1.0


def test_chunks_arrive_while_synthesis_runs(client):
    text = " ".join([SENTENCE] * 11)[: client.max_chars]  # one espeak_Synth call, ~1 min of audio
    start = time.perf_counter()
    gen = client.synthesize(text, threading.Event())
    next(gen)
    first = time.perf_counter() - start
    rest = list(gen)
    total = time.perf_counter() - start
    assert len(rest) > 100
    assert first < total / 2, f"first chunk after {first * 1000:.1f} ms of {total * 1000:.1f} ms"


def test_word_marks_follow_the_words(client):
    chunks = synth(client, SENTENCE)
    assert_marks_are_the_words(SENTENCE, marks(chunks))
    times = [m.time for m in marks(chunks)]
    assert times == sorted(times) and times[0] == 0.0
    # each word is reported with the chunk its audio starts in
    start = 0.0
    for c in chunks:
        for m in c.marks:
            assert start - 0.005 <= m.time <= start + c.duration
        start += c.duration


def test_word_marks_index_python_strings_with_non_ascii(client):
    text = "Café naïve résumé déjà vu, 😀 ok: Ærø straße."
    found = [text[m.offset : m.offset + m.length] for m in marks(synth(client, text))]
    # espeak misplaces the "vu" of its dictionary phrase "déjà vu" inside "déjà": that event is dropped
    assert found[:4] == ["Café", "naïve", "résumé", "déjà"]
    assert found[-3:] == ["ok", "Ærø", "straße"]


def test_long_text_is_spoken_piece_by_piece_with_global_offsets(client):
    text = " ".join([SENTENCE] * 30)  # about 2.6 pieces of max_chars
    chunks = synth(client, text)
    found = marks(chunks)
    assert_marks_are_the_words(text, found)
    assert found[-1].offset > 2 * client.max_chars
    times = [m.time for m in found]
    assert times == sorted(times)
    assert found[-1].time < len(audio(chunks)) / 22050


def test_cancel_stops_mid_synthesis_quickly(client):
    text = " ".join([SENTENCE] * 200)  # ~17k characters: seconds of C work when spoken in one call
    client.max_chars = len(text)
    cancel = threading.Event()
    gen = client.synthesize(text, cancel)
    first = next(gen)
    start = time.perf_counter()
    cancel.set()
    rest = list(gen)
    stopped = time.perf_counter() - start
    assert stopped < 0.5, f"took {stopped:.3f} s to stop"
    assert sum(len(c.pcm) for c in [first, *rest]) / 22050 < 60  # the whole text is ~18 minutes
    assert not espeak_threads()


def test_cancel_before_start_yields_nothing(client):
    cancel = threading.Event()
    cancel.set()
    assert synth(client, SENTENCE, cancel) == []


def test_closing_the_generator_early_ends_its_thread(client):
    gen = client.synthesize(" ".join([SENTENCE] * 11), threading.Event())
    next(gen)
    gen.close()
    assert not espeak_threads()


def test_concurrent_synthesis_matches_sequential():
    a, b = EspeakClient(), EspeakClient()
    b.set_property("rate", 1.6)
    b.set_property("pitch", 20)
    texts = {a: SENTENCE, b: "Concurrent streams must not corrupt each other's audio or words."}
    reference = {c: synth(c, t) for c, t in texts.items()}
    results: dict[tuple[EspeakClient, int], list[AudioChunk]] = {}

    def worker(c):
        for i in range(6):
            results[c, i] = synth(c, texts[c])

    threads = [threading.Thread(target=worker, args=(c,)) for c in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 12
    # espeak's output drifts by a few ms from call to call (internal state), so compare
    # what a mix-up would change: the words, their timing and the length
    for (c, _), chunks in results.items():
        assert len(audio(chunks)) == pytest.approx(len(audio(reference[c])), rel=0.01)
        got, want = marks(chunks), marks(reference[c])
        assert [(m.offset, m.length) for m in got] == [(m.offset, m.length) for m in want]
        assert [m.time for m in got] == pytest.approx([m.time for m in want], abs=0.05)
    a.close()
    b.close()


def test_rate_and_volume_change_the_audio(client):
    normal = audio(synth(client, SENTENCE))
    client.set_property("rate", 2.0)
    fast = audio(synth(client, SENTENCE))
    assert len(fast) < 0.7 * len(normal)
    client.set_property("rate", 1.0)
    client.set_property("volume", 30)
    quiet = audio(synth(client, SENTENCE))
    assert rms(quiet) < 0.5 * rms(normal)
    assert repr(client) == "EspeakClient(voice='en', rate=175wpm, volume=30, pitch=50)"


def test_properties_set_from_another_thread_apply_to_the_next_text(client):
    normal = audio(synth(client, SENTENCE))
    setter = threading.Thread(target=client.set_property, args=("rate", 2.0))
    setter.start()
    setter.join()
    assert len(audio(synth(client, SENTENCE))) < 0.7 * len(normal)


def median_f0(pcm: np.ndarray, rate: int = 22050) -> float:
    """Median pitch of the loud frames, by autocorrelation within 60-400 Hz."""
    lo, hi = rate // 400, rate // 60
    found = []
    for i in range(0, len(pcm) - 1024, 512):
        frame = pcm[i : i + 1024].astype(np.float64)
        if rms(frame) > 0.05:
            ac = np.correlate(frame, frame, "full")[1023:]
            found.append(rate / (lo + np.argmax(ac[lo:hi])))
    return float(np.median(found))


def test_pitch_moves_the_voice_up_and_down(client):
    f0 = {}
    for pitch in (10, 50, 90):
        client.set_property("pitch", pitch)
        f0[pitch] = median_f0(audio(synth(client, SENTENCE)))
    assert f0[10] < 0.85 * f0[50] and f0[90] > 1.15 * f0[50], f0


def test_rate_is_clamped_to_what_espeak_can_do(client):
    client.set_property("rate", 10.0)
    assert "rate=450wpm" in repr(client)
    client.set_property("rate", 0.1)
    assert "rate=80wpm" in repr(client)


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("volume", 150, ValueError),
        ("pitch", -1, ValueError),
        ("rate", 0, ValueError),
        ("rate", float("nan"), ValueError),
        ("rate", "fast", ValueError),
        ("speed", 1.0, ValueError),  # one rule for every engine: engine.check_property
    ],
)
def test_bad_properties_are_rejected(client, name, value, error):
    with pytest.raises(error):
        client.set_property(name, value)


def test_voices_and_set_voice(client):
    voices = client.voices()
    assert len(voices) > 50
    assert all(v.id and v.name for v in voices)
    french = next(v for v in voices if v.language.startswith("fr"))
    english = audio(synth(client, "1234567"))  # "one million two hundred..." vs "un million deux cent..."
    client.set_voice(french.id)
    assert french.id in repr(client)
    assert len(audio(synth(client, "1234567"))) < 0.8 * len(english)
    client.set_voice("en-us")  # language codes work too
    assert len(synth(client, "Hello")) > 0


def test_unknown_voice_is_a_clear_error_and_keeps_the_voice(client):
    before = audio(synth(client, "1234567"))
    with pytest.raises(ValueError, match="unknown eSpeak voice 'klingon-xx'"):
        client.set_voice("klingon-xx")
    for bad in ("", "en\x00", "en\ud800", None):
        with pytest.raises(ValueError, match="invalid voice id"):
            client.set_voice(bad)
    assert "voice='en'" in repr(client)
    assert len(audio(synth(client, "1234567"))) == pytest.approx(len(before), rel=0.02)


def test_markup_characters_are_read_as_text(client):
    plain = synth(client, "Read this.")
    marked_text = 'Read <b>&amp; "this".'
    marked = synth(client, marked_text)
    assert len(audio(marked)) > len(audio(plain)) + 22050 // 4
    words = [marked_text[m.offset : m.offset + m.length] for m in marks(marked)]
    assert words == ["Read", "b", "&", "amp", "this"]


@pytest.mark.parametrize("text", ["", " ", "\n\t  \n", "\x00\x01"])
def test_blank_text_yields_nothing(client, text):
    assert synth(client, text) == []


@pytest.mark.parametrize("text", [None, b"bytes", 42])
def test_non_text_is_a_type_error(client, text):
    with pytest.raises(TypeError, match="text must be str"):
        synth(client, text)


def test_nul_control_and_surrogate_characters_do_not_crash(client):
    text = "Hello\x00 wor\x01ld \ud800 and\x7f\x9b more."
    found = [text[m.offset : m.offset + m.length] for m in marks(synth(client, text))]
    assert found == ["Hello", "wor", "ld", "and", "more"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=80))
def test_any_text_gives_well_formed_chunks(client, text):
    free = 0
    for chunk in client.synthesize(text, threading.Event()):
        assert chunk.pcm.dtype == np.float32
        for m in chunk.marks:
            assert free <= m.offset and m.length > 0 and m.offset + m.length <= len(text)
            assert text[m.offset : m.offset + m.length].strip() == text[m.offset : m.offset + m.length]
            free = m.offset + m.length


def test_huge_text_streams_without_loading_it_all(client):
    text = "word " * 200_000  # 1 MB
    gen = client.synthesize(text, threading.Event())
    for chunk in gen:
        if any(m.offset >= 2 * client.max_chars for m in chunk.marks):
            break
    gen.close()
    unbroken = client.synthesize("x" * 5000, threading.Event())
    assert len(next(unbroken).pcm) > 0
    unbroken.close()


def test_closed_client_refuses_to_speak(client):
    client.close()
    client.close()
    assert repr(client).endswith("closed)")
    with pytest.raises(EngineError, match="closed"):
        synth(client, "Hello")


def test_espeak_tts_wraps_its_client(client):
    assert EspeakTTS(client).client is client
    tts = EspeakTTS()
    assert isinstance(tts.client, EspeakClient)
    with wave.open(io.BytesIO(tts.synth_to_bytes("Hello world."))) as wav:
        assert wav.getnchannels() == 1
        assert wav.getnframes() > wav.getframerate() // 2
    tts.cleanup()


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_missing_library_names_the_fix():
    # A fresh process, because the library is loaded once per process.
    result = _run_python(
        "import sys, ctypes, ctypes.util\n"
        "sys.modules['espeakng_loader'] = None\n"
        "real = ctypes.CDLL\n"
        "def no_espeak(name, *a, **k):\n"
        "    if 'espeak' in str(name): raise OSError(f'{name}: cannot open shared object file')\n"
        "    return real(name, *a, **k)\n"
        "ctypes.CDLL = no_espeak\n"
        "import voicekit\n"
        "from voicekit.engines.espeak import EspeakClient\n"
        "try:\n"
        "    EspeakClient()\n"
        "except voicekit.EngineError as e:\n"
        "    print(e)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'voicekit[espeak]'" in result.stdout
    assert "apt-get install libespeak-ng1" in result.stdout


def test_falls_back_to_the_system_library():
    if not ctypes.util.find_library("espeak-ng"):
        pytest.skip("system package libespeak-ng1 is not installed")
    result = _run_python(
        "import sys, threading\n"
        "sys.modules['espeakng_loader'] = None\n"
        "from voicekit.engines.espeak import EspeakClient\n"
        "c = EspeakClient()\n"
        "print(sum(len(x.pcm) for x in c.synthesize('Hello world', threading.Event())))\n"
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 10_000

