"""A fake Amazon Polly speaking Polly's REST protocol, for the real boto3 client.

``POST /v1/speech`` streams PCM (``OutputFormat=pcm``) or serves word speech
marks as JSON lines (``OutputFormat=json``), both exact to the sample: the
speech is ``voicekit.testing.ToneEngine``'s tones (see :mod:`tests.fakes.speech`).
``GET /v1/voices`` lists a few voices over two pages. Faults (see
:class:`FakeServer`) apply to audio requests only: ``throttle`` is Polly's 400
ThrottlingException, ``429`` a TooManyRequestsException with
``Retry-After: <retry_after>`` when that is set, ``500`` a
ServiceFailureException; the others cut or replace the body.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import numpy as np

from voicekit.testing import ToneWord

from .http import Exchange, FakeServer
from .speech import speech_audio, speech_pcm, speech_plan, spoken_text, word_marks

__all__ = ["FakePolly", "VOICES"]

VOICES = [
    {"Id": "Joanna", "Name": "Joanna", "LanguageCode": "en-US", "LanguageName": "US English", "Gender": "Female",
     "SupportedEngines": ["neural", "standard"]},
    {"Id": "Matthew", "Name": "Matthew", "LanguageCode": "en-US", "LanguageName": "US English", "Gender": "Male",
     "SupportedEngines": ["neural", "standard"]},
    {"Id": "Aditi", "Name": "Aditi", "LanguageCode": "en-IN", "LanguageName": "Indian English", "Gender": "Female",
     "SupportedEngines": ["standard"], "AdditionalLanguageCodes": ["hi-IN"]},
]


class FakePolly(FakeServer):
    name = "fake-polly"

    def __init__(self) -> None:
        super().__init__()
        #: extra seconds before the speech marks answer, to make them arrive after the audio.
        self.marks_delay = 0.0
        #: the ``Retry-After`` header of a ``429`` fault (None: no header)
        self.retry_after: str | None = None

    def speech_requests(self, output_format: str = "pcm") -> list[Exchange]:
        return [e for e in self.exchanges if e.path == "/v1/speech" and e.body.get("OutputFormat") == output_format]

    @staticmethod
    def _speech(exchange: Exchange) -> tuple[str, int, bool]:
        body = exchange.body
        return body.get("Text", ""), int(body.get("SampleRate", "16000")), body.get("TextType") == "ssml"

    def audio_of(self, exchange: Exchange) -> np.ndarray:
        """The whole audio of a speech request (float32, as the client decodes it), faults aside."""
        text, rate, ssml = self._speech(exchange)
        return speech_audio(text, rate, ssml=ssml)

    def plan_of(self, exchange: Exchange) -> list[ToneWord]:
        """Where each word of a speech request's text plays in its audio (samples at its ``SampleRate``)."""
        text, rate, ssml = self._speech(exchange)
        return speech_plan(text, rate, ssml=ssml)

    def sent_audio(self) -> np.ndarray:
        """The audio of every ``pcm`` request so far, one after another: what a stream that played them all holds."""
        return np.concatenate([np.zeros(0, np.float32), *map(self.audio_of, self.speech_requests("pcm"))])

    def respond(self, handler: BaseHTTPRequestHandler, exchange: Exchange) -> None:
        if exchange.method == "GET" and exchange.path == "/v1/voices":
            page = 1 if exchange.query.get("NextToken") == ["page2"] else 0
            voices = VOICES[2:] if page else VOICES[:2]
            self.send_json(handler, 200, {"Voices": voices, **({} if page else {"NextToken": "page2"})})
            return
        if exchange.method != "POST" or exchange.path != "/v1/speech":
            self._error(handler, 404, "UnknownOperationException", "no such operation")
            return
        text, rate, ssml = self._speech(exchange)
        if exchange.body.get("OutputFormat") == "json":
            lines = "".join(json.dumps(m) + "\n" for m in word_marks(text, ssml, rate))
            self.stream(handler, exchange, lines.encode(), "application/x-json-stream", delay=self.marks_delay)
            return
        fault = self.take_fault()
        if fault == "throttle":
            self._error(handler, 400, "ThrottlingException", "Rate exceeded")
        elif fault == "429":
            retry = {} if self.retry_after is None else {"Retry-After": self.retry_after}
            self._error(handler, 429, "TooManyRequestsException", "Too many requests", retry)
        elif fault == "500":
            self._error(handler, 500, "ServiceFailureException", "Internal failure")
        else:
            self.send_audio(handler, exchange, speech_pcm(spoken_text(text, ssml), rate), fault)

    def _error(self, handler: BaseHTTPRequestHandler, status: int, code: str, message: str,
               headers: dict[str, str] | None = None) -> None:
        error_type = f"{code}:http://internal.amazon.com/"
        self.send_json(handler, status, {"message": message}, {"x-amzn-ErrorType": error_type, **(headers or {})})
