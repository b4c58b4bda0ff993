"""What every protocol handler of the server shares: the ``Server`` (settings, the TTS
factory, the session count, metrics), ``ClientError``, and reading a client's JSON.

Its own module so that the handlers (``session``, ``speech``, ``wyoming``) and the
app that routes to them all import it, and none imports another.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..backends import ChatBackend
from ..contract import Voice
from ..registry import configured
from ..tts import BaseTTS
from .guard import error_body
from .metrics import Metrics
from .outbox import SAMPLE_RATE
from .settings import ServerSettings

__all__ = ["ClientError", "Server", "json_body", "parse_json"]


class ClientError(Exception):
    """A bad request: answered with ``status`` and OpenAI's error JSON, never a traceback."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param

    def response(self) -> Response:
        return Response(error_body(str(self), param=self.param), status_code=self.status, media_type="application/json")


class Server:
    """What every route shares: the settings, the TTS factory and the session count."""

    def __init__(self, settings: ServerSettings, make_tts: Callable[[], BaseTTS], chat: ChatBackend) -> None:
        self.settings = settings
        self._make_tts = make_tts
        self.chat = chat
        self.sessions = 0
        self.metrics = Metrics()
        self._voices: list[Voice] | None = None

    def try_enter(self, protocol: str) -> bool:
        """Take a session slot (event loop only, so no lock is needed)."""
        if self.sessions >= self.settings.max_sessions:
            return False
        self.sessions += 1
        self.metrics.opened(protocol)
        return True

    def leave(self, protocol: str) -> None:
        self.sessions -= 1
        self.metrics.closed(protocol)

    def observe(self, tts: BaseTTS) -> Callable[[Any], None]:
        """An ``on_chunk_processed`` callback that feeds the synthesis metrics."""
        client = tts.client
        members = getattr(client, "engines", None)  # a fallback chain: its first member is the preferred one
        first = members[0].name if members else client.name

        def chunk(info: Any) -> None:
            self.metrics.chunk(info, first)

        return chunk

    def busy_response(self) -> Response:
        """503 at the session limit, with the ``Retry-After`` that clients back off by."""
        busy = ClientError(f"the server is at its limit of {self.settings.max_sessions} sessions; retry shortly", status=503)
        response = busy.response()
        response.headers["Retry-After"] = "1"
        return response

    async def voices(self) -> list[Voice]:
        """The engine's voices, listed once (a cloud engine's list costs a request)."""
        if self._voices is None:

            def listing() -> list[Voice]:
                tts = self._make_tts()
                try:
                    return tts.get_voices()
                finally:
                    tts.cleanup()

            self._voices = await run_in_threadpool(listing)
        return self._voices

    async def new_tts(self) -> BaseTTS:
        """A TTS of the session's own, 24 kHz int16 out (engines may do I/O when built: off the loop)."""
        return await run_in_threadpool(self._build_tts)

    def check_engine(self) -> None:
        """Build and release one TTS: a missing engine or bad voice shows up before serving."""
        self._build_tts().cleanup()

    def _build_tts(self) -> BaseTTS:
        return configured(self._make_tts(), self._configure)

    def _configure(self, tts: BaseTTS) -> None:
        if self.settings.voice:
            tts.set_voice(self.settings.voice)
        tts.setup_stream(samplerate=SAMPLE_RATE, dtype="int16")
        tts.set_stream_config({"lookahead": self.settings.lookahead / 2})


async def json_body(request: Request, limit: int) -> Any:
    """The request's JSON, read up to ``limit`` bytes (413 beyond)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ClientError(f"request body larger than {limit} bytes", status=413)
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise ClientError(f"request body larger than {limit} bytes", status=413)
    return parse_json(bytes(body))


def parse_json(data: bytes | str) -> Any:
    """JSON from a client: anything malformed, nested too deep included, is a ``ClientError``."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ClientError("the request body must be JSON") from None
    except RecursionError:
        raise ClientError("the JSON is nested too deeply") from None
