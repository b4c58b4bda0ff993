"""What every example shares: which engine speaks and where the audio goes.

Engine: ``VOICEKIT_ENGINE=espeak|polly|openai``; without it, Amazon Polly when
AWS credentials are in the environment, OpenAI when ``OPENAI_API_KEY`` is, and
otherwise eSpeak NG, offline.

Output: ``VOICEKIT_OUTPUT=reply.wav`` writes everything the example says to a
WAV file instead of the default audio device (the smoke tests use this).
"""

from __future__ import annotations

import os

from voicekit.tts import BaseTTS


def _engine_name() -> str:
    name = os.environ.get("VOICEKIT_ENGINE")
    if name:
        return name
    if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"):
        return "polly"
    if os.environ.get("OPENAI_API_KEY"):
        return "openai"
    return "espeak"


def make_tts() -> BaseTTS:
    """The TTS the guide's snippets call ``tts``, with the output chosen by the environment."""
    name = _engine_name()
    if name == "polly":
        from voicekit import PollyClient, PollyTTS

        tts: BaseTTS = PollyTTS(PollyClient())  # the standard boto3 credential chain
    elif name == "openai":
        from voicekit import OpenAIClient, OpenAITTS

        tts = OpenAITTS(OpenAIClient())  # OPENAI_API_KEY, and OPENAI_BASE_URL if set
    elif name == "espeak":
        from voicekit import EspeakTTS

        tts = EspeakTTS()
    else:
        raise ValueError(f"VOICEKIT_ENGINE={name!r}: use espeak, polly or openai")
    output = os.environ.get("VOICEKIT_OUTPUT")
    if output:
        from voicekit import WavSink

        tts.set_output(WavSink(output))
    return tts
