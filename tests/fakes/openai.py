"""A fake OpenAI speech endpoint for the real ``openai`` SDK.

``POST /v1/audio/speech`` with ``response_format=pcm`` streams eSpeak PCM at
24 kHz. Faults (see :class:`FakeServer`): ``throttle`` is a 429 and ``500`` a
server error, both with a short ``retry-after-ms`` so the SDK's own retries stay
fast; the others cut or replace the body.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

from .http import Exchange, FakeServer
from .speech import speech_pcm

__all__ = ["FakeOpenAI"]


class FakeOpenAI(FakeServer):
    name = "fake-openai"

    def speech_requests(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.path == "/v1/audio/speech"]

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
            self.send_audio(handler, exchange, speech_pcm(exchange.body.get("input", ""), 24000), fault)

    def _error(self, handler: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        self.send_json(handler, status, {"error": {"message": message, "type": code, "code": code}},
                       {"retry-after-ms": "10"})
