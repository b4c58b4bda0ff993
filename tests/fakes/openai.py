"""A fake OpenAI speech endpoint for the real ``openai`` SDK.

``POST /v1/audio/speech`` with ``response_format=pcm`` streams PCM at 24 kHz:
``voicekit.testing.ToneEngine``'s tones, exact to the sample (see
:mod:`tests.fakes.speech`). Faults (see :class:`FakeServer`): ``throttle`` is a
429 and ``500`` a server error, both with a short ``retry-after-ms`` so the
SDK's own retries stay fast; the others cut or replace the body.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

import numpy as np

from voicekit.testing import ToneWord

from .http import Exchange, FakeServer
from .speech import speech_audio, speech_pcm, speech_plan

__all__ = ["FakeOpenAI", "SAMPLERATE"]

#: OpenAI's ``pcm``: 24 kHz 16-bit mono
SAMPLERATE = 24000


class FakeOpenAI(FakeServer):
    name = "fake-openai"

    def speech_requests(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.path == "/v1/audio/speech"]

    def audio_of(self, exchange: Exchange) -> np.ndarray:
        """The whole audio of a speech request (float32 at 24 kHz, as the client decodes it), faults aside."""
        return speech_audio(exchange.body.get("input", ""), SAMPLERATE)

    def plan_of(self, exchange: Exchange) -> list[ToneWord]:
        """Where each word of a speech request's input plays in its audio (samples at 24 kHz)."""
        return speech_plan(exchange.body.get("input", ""), SAMPLERATE)

    def sent_audio(self) -> np.ndarray:
        """The audio of every speech request so far, one after another: what a stream that played them all holds."""
        return np.concatenate([np.zeros(0, np.float32), *map(self.audio_of, self.speech_requests())])

    def respond(self, handler: BaseHTTPRequestHandler, exchange: Exchange) -> None:
        if exchange.method != "POST" or exchange.path != "/v1/audio/speech":
            self._error(handler, 404, "not_found", "Unknown route")
            return
        if exchange.body.get("response_format") != "pcm":
            self._error(handler, 400, "invalid_request_error", "this fake only serves pcm")
            return
        fault = self.take_fault()
        if fault == "throttle":
            self._error(handler, 429, "rate_limit_exceeded", "Rate limit reached")
        elif fault == "500":
            self._error(handler, 500, "server_error", "The server had an error")
        else:
            self.send_audio(handler, exchange, speech_pcm(exchange.body.get("input", ""), SAMPLERATE), fault)

    def _error(self, handler: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        self.send_json(handler, status, {"error": {"message": message, "type": code, "code": code}},
                       {"retry-after-ms": "10"})
