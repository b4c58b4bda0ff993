"""voicekit: streaming, interruptible text-to-speech for chatbots.

Everything public is importable from here. Names load on first use, so
``import voicekit`` costs little and needs neither PortAudio, eSpeak, boto3 nor
openai; each of those is needed only by the class that uses it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import BufferError, EngineError, OutputError, StreamError, VoicekitError

_LAZY = {
    "BaseTTS": ".tts",
    "set_default_output": ".tts",
    "SpeechStream": ".stream",
    "AsyncSpeechStream": ".async_stream",
    "StreamConfig": ".config",
    "AudioChunk": ".contract",
    "WordMark": ".contract",
    "Voice": ".contract",
    "Engine": ".contract",
    "Sink": ".sinks",
    "DeviceSink": ".sinks",
    "WavSink": ".sinks",
    "MemorySink": ".sinks",
    "NullSink": ".sinks",
    "Recording": ".sinks",
    "RecordingSink": ".sinks",
    "WavPipeSink": ".sinks",
    "EspeakClient": ".engines.espeak",
    "EspeakTTS": ".tts_classes",
    "PollyClient": ".engines.polly",
    "PollyTTS": ".tts_classes",
    "OpenAIClient": ".engines.openai_tts",
    "OpenAITTS": ".tts_classes",
    "PiperClient": ".engines.piper",
    "PiperTTS": ".tts_classes",
    "KokoroClient": ".engines.kokoro",
    "KokoroTTS": ".tts_classes",
    "FallbackEngine": ".engines.fallback",
    "FallbackTTS": ".tts_classes",
    "SentenceChunker": ".text",
    "SpeechFilter": ".text",
    "split_sentences": ".text",
    "clean_for_speech": ".text",
}

__all__ = ["BufferError", "EngineError", "OutputError", "StreamError", "VoicekitError", *_LAZY]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'voicekit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from .async_stream import AsyncSpeechStream
    from .config import StreamConfig
    from .contract import AudioChunk, Engine, Voice, WordMark
    from .engines.espeak import EspeakClient
    from .engines.fallback import FallbackEngine
    from .engines.kokoro import KokoroClient
    from .engines.openai_tts import OpenAIClient
    from .engines.piper import PiperClient
    from .engines.polly import PollyClient
    from .sinks import DeviceSink, MemorySink, NullSink, Recording, RecordingSink, Sink, WavPipeSink, WavSink
    from .stream import SpeechStream
    from .text import SentenceChunker, SpeechFilter, clean_for_speech, split_sentences
    from .tts import BaseTTS, set_default_output
    from .tts_classes import EspeakTTS, FallbackTTS, KokoroTTS, OpenAITTS, PiperTTS, PollyTTS
