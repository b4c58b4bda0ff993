"""``create_app``: the Starlette app behind ``voicekit serve``.

Routes: ``GET /`` (the chat page), ``GET /health``, ``GET /metrics``
(Prometheus), ``POST /v1/audio/speech``,
``GET /v1/audio/voices`` and ``GET /v1/audio/models`` (OpenAI-compatible, with
the discovery that Open WebUI uses), ``POST /v1/chat`` (the page's reply text),
WebSocket ``/v1/speak`` (live speech with barge-in).

Every session (a WebSocket, or one speech request) gets its own TTS object,
sink and threads: sessions share nothing but the process, so the server scales
out by running more processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from .. import __version__, registry
from ..backends import ChatBackend
from ..contract import Cancel
from ..engines.openai_tts import OPENAI_VOICES
from ..errors import VoicekitError
from ..registry import ENGINES, default_engine
from ..responder import Responder
from ..tts import BaseTTS
from .core import ClientError, Server, json_body
from .guard import Guard, error_body, quiet_spurious_handshake_errors
from .metrics import RequestCounter
from .outbox import SAMPLE_RATE
from .session import speak_socket
from .settings import ServerSettings
from .speech import default_voice, openai_alias, speech

__all__ = ["create_app"]

log = logging.getLogger("voicekit.server")

STATIC = Path(__file__).with_name("static")
_ROUTES = frozenset({"/", "/health", "/metrics", "/v1/audio/speech", "/v1/audio/voices", "/v1/audio/models", "/v1/chat", "/v1/speak"})
# the page loads only its own scripts and talks only to its own origin
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(
    engine: str | None = None,
    *,
    make_tts: Callable[[], BaseTTS] | None = None,
    chat: ChatBackend | None = None,
    **settings: Any,
) -> Starlette:
    """The voicekit server as an ASGI app.

    ``engine`` is one of ``voicekit serve --engine``'s names (default: Piper
    when installed, else eSpeak, as on the command line), or pass
    ``make_tts`` (called once per session) for any ``BaseTTS``. ``chat`` is
    the page's reply source (default: the offline responder). Other keywords
    are :class:`ServerSettings` fields: ``voice``, ``token``,
    ``allow_origins``, ``max_sessions``, ``lookahead``, the size limits.
    """
    # with make_tts the engine name is only a label (health, messages)
    config = ServerSettings(engine=engine or (default_engine() if make_tts is None else "custom"), **settings)
    if make_tts is None:
        if config.engine not in ENGINES:
            raise ValueError(f"unknown engine {config.engine!r}; choose from {', '.join(ENGINES)} or pass make_tts")

        def make_tts() -> BaseTTS:
            return registry.make_tts(config.engine)

    server = Server(config, make_tts, chat or Responder(tokens_per_second=config.chat_tokens_per_second))
    quiet_spurious_handshake_errors()

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=_PAGE_HEADERS)

    async def favicon(request: Request) -> Response:
        # asked for by browsers and tools that never read the page's <link rel="icon">
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "engine": config.engine,
                "sessions": server.sessions,
                "max_sessions": config.max_sessions,
                "sample_rate": SAMPLE_RATE,
            }
        )

    async def voices(request: Request) -> Response:
        try:
            found = await server.voices()
        except VoicekitError as exc:
            log.warning("voicekit.server: listing voices failed: %s", exc)
            return ClientError(f"the {config.engine} engine could not list its voices", status=502).response()
        by_id = {v.id: v for v in found}
        entries = [{"id": "default", "name": f"Default {config.engine} voice", "language": "", "gender": ""}]
        entries += [{"id": v.id, "name": v.name, "language": v.language, "gender": v.gender} for v in found]
        if config.engine != "openai":
            # OpenAI's names, which apps send as they are, and the engine voice each one speaks with
            for name in OPENAI_VOICES:
                target = by_id.get(openai_alias(name, found, default_voice(server)) or "")
                entries.append({"id": name, "name": f"{name} ({target.name if target else 'default voice'})",
                                "language": target.language if target else "", "gender": target.gender if target else "",
                                "alias_of": target.id if target else "default"})  # fmt: skip
        return JSONResponse({"voices": entries, "default_voice": config.voice or "default"})

    async def metrics(request: Request) -> Response:
        body, content_type = server.metrics.render()
        return Response(body, media_type=content_type)

    async def models(request: Request) -> Response:
        # any model name is accepted; these are what front ends offer in their pickers
        names = [f"voicekit-{config.engine}", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"]
        return JSONResponse({"object": "list", "models": [{"id": n, "object": "model", "owned_by": "voicekit"} for n in names]})

    async def chat_reply(request: Request) -> Response:
        try:
            # the page sends the whole conversation
            messages = _chat_messages(await json_body(request, config.max_session_chars))
        except ClientError as exc:
            return exc.response()

        async def pieces() -> Any:
            cancel = Cancel()  # set when the page goes away: the model's stream closes with it
            try:
                text = await run_in_threadpool(server.chat.reply, messages, cancel)
                async for piece in iterate_in_threadpool(text):
                    yield piece.encode()
            except Exception:
                log.exception("voicekit.server: the chat backend failed")
                yield b"\n\n(the chat backend failed; see the server log)"
            finally:
                cancel.set()

        return StreamingResponse(pieces(), media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-store"})

    async def speak(websocket: WebSocket) -> None:
        await speak_socket(server, websocket)

    async def speech_route(request: Request) -> Response:
        return await speech(server, request)

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/favicon.ico", favicon),
            Route("/health", health),
            Route("/v1/audio/speech", speech_route, methods=["POST"]),
            Route("/v1/audio/voices", voices),
            Route("/v1/audio/models", models),
            Route("/metrics", metrics),
            Route("/v1/chat", chat_reply, methods=["POST"]),
            WebSocketRoute("/v1/speak", speak),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[
            # outermost: refusals by the guard are counted too
            Middleware(RequestCounter, metrics=server.metrics, routes=_ROUTES),
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.allow_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
            ),
            Middleware(Guard, settings=config),
        ],
        exception_handlers={Exception: _internal_error},
    )
    app.state.voicekit = server
    return app


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("voicekit.server: %s %s failed", request.method, request.url.path, exc_info=exc)
    return Response(error_body("internal server error", type="server_error"), status_code=500, media_type="application/json")


def _chat_messages(body: Any) -> list[dict[str, str]]:
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        raise ClientError("'messages' must be a non-empty list", param="messages")
    out = []
    for message in messages:
        if (
            not isinstance(message, dict)
            or message.get("role") not in ("user", "assistant", "system")
            or not isinstance(message.get("content"), str)
        ):
            raise ClientError("each message needs a role (user, assistant, system) and string content", param="messages")
        out.append({"role": message["role"], "content": message["content"]})
    return out

