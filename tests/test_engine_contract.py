"""Engines import only the engine contract and errors, never the TTS runtime."""

from __future__ import annotations

import subprocess
import sys

import voicekit
from voicekit.engines.polly import PollyClient
from voicekit.voices import EspeakTTS, FallbackTTS, OpenAITTS, PollyTTS


def test_engine_modules_load_no_runtime_module() -> None:
    code = (
        "import sys\n"
        "import voicekit.engines.espeak, voicekit.engines.polly, voicekit.engines.openai_tts\n"
        "import voicekit.engines.fallback, voicekit.engines.transfer\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('voicekit'))))\n"
    )
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                timeout=60).stdout.split())
    allowed = {"voicekit", "voicekit.engine", "voicekit.errors", "voicekit.engines"}
    assert {m for m in loaded if not m.startswith("voicekit.engines.")} <= allowed, loaded


def test_tts_classes_stay_importable_from_the_package() -> None:
    assert (voicekit.EspeakTTS, voicekit.PollyTTS, voicekit.OpenAITTS, voicekit.FallbackTTS) == (
        EspeakTTS, PollyTTS, OpenAITTS, FallbackTTS)
    assert voicekit.PollyClient is PollyClient
