"""The TTS classes the guide builds: :class:`~voicekit.tts.BaseTTS` over each engine.

Engines (``voicekit/engines/``) import only the engine contract and errors; the
runtime (streams, outputs, sinks) meets them here. A new engine adds its
client under ``voicekit/engines/`` and a one-line TTS class below.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .engines.fallback import FallbackEngine
from .tts import BaseTTS

if TYPE_CHECKING:
    from .engines.espeak import EspeakClient
    from .engines.kokoro import KokoroClient
    from .engines.piper import PiperClient

__all__ = ["EspeakTTS", "PiperTTS", "KokoroTTS", "PollyTTS", "OpenAITTS", "FallbackTTS"]


class EspeakTTS(BaseTTS):
    """Text-to-speech with the embedded eSpeak NG engine."""

    def __init__(self, client: EspeakClient | None = None) -> None:
        if client is None:
            from .engines.espeak import EspeakClient

            client = EspeakClient()
        super().__init__(client)


class PiperTTS(BaseTTS):
    """Text-to-speech with a natural offline Piper voice; ``PiperTTS()`` speaks with ``en_US-joe-medium``."""

    def __init__(self, client: PiperClient | None = None) -> None:
        if client is None:
            from .engines.piper import PiperClient

            client = PiperClient()
        super().__init__(client)


class KokoroTTS(BaseTTS):
    """Text-to-speech with Kokoro-82M's natural offline voices; ``KokoroTTS()`` speaks with ``af_heart``."""

    def __init__(self, client: KokoroClient | None = None) -> None:
        if client is None:
            from .engines.kokoro import KokoroClient

            client = KokoroClient()
        super().__init__(client)


class PollyTTS(BaseTTS):
    """The guide's ``PollyTTS(PollyClient(...))``: a TTS speaking through Amazon Polly."""


class OpenAITTS(BaseTTS):
    """A TTS speaking through OpenAI: ``OpenAITTS(OpenAIClient())``."""


class FallbackTTS(BaseTTS):
    """``FallbackTTS([primary, ..., EspeakTTS()])``: a TTS over the engines of other TTSs.

    It takes over their engines (closing it closes them); see
    :mod:`voicekit.engines.fallback` for how a failing engine hands over.
    """

    def __init__(self, tts_list: Sequence[BaseTTS], *, cooldown: float = 30.0, max_cooldown: float = 300.0) -> None:
        super().__init__(FallbackEngine([tts.client for tts in tts_list], cooldown=cooldown, max_cooldown=max_cooldown))
