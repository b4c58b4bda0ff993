"""What every example shares: which engine speaks and where the audio goes.

Engine: ``VOICEKIT_ENGINE=piper|espeak|polly|openai``; without it, Amazon Polly
when AWS credentials are in the environment, OpenAI when ``OPENAI_API_KEY`` is,
and otherwise the ``voicekit`` command's default, offline: Piper when it is
installed, else eSpeak NG.

Output: ``VOICEKIT_OUTPUT=reply.wav`` writes everything the example says to a
WAV file instead of the default audio device (the smoke tests use this).
Without it and without a usable audio device, the example stops at once with
one line saying so.
"""

from __future__ import annotations

import os
import sys

from voicekit import cli, registry
from voicekit.errors import OutputError
from voicekit.tts import BaseTTS


def _engine_name() -> str:
    name = os.environ.get("VOICEKIT_ENGINE")
    if name:
        return name
    if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"):
        return "polly"
    if os.environ.get("OPENAI_API_KEY"):
        return "openai"
    return registry.default_engine()


def make_tts() -> BaseTTS:
    """The TTS the guide's snippets call ``tts``, with the output chosen by the environment."""
    output = os.environ.get("VOICEKIT_OUTPUT")
    if output:
        from voicekit import WavSink

        sink = WavSink(output)
    else:
        try:
            # now, rather than as a traceback at the first sentence
            sink = cli.check_device(None, instead="or set VOICEKIT_OUTPUT=out.wav to write a WAV file instead")
        except OutputError as exc:
            raise SystemExit(f"{os.path.basename(sys.argv[0])}: {exc}") from None
    tts: BaseTTS = registry.make_tts(_engine_name())  # Polly: the standard boto3 credential chain; OpenAI: OPENAI_API_KEY
    tts.set_output(sink)
    return tts
