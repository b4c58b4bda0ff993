"""The door: Origin, Host and token checks for every HTTP request and WebSocket.

Pure ASGI middleware, so a refused WebSocket never reaches a handler. Refusals
are answered in OpenAI's error shape; a WebSocket gets the same status as an
HTTP denial response (``websocket.http.response``) where the server supports it.

- Origin: a browser request from another site is refused unless its origin was
  named in ``allow_origins``; requests without an Origin header (SDKs, curl)
  pass, since only browsers carry ambient credentials.
- Host: without a token the server answers only to loopback names, so a DNS
  rebinding page can't reach it through a name of its own.
- Token: when set, every API route and WebSocket needs it, as
  ``Authorization: Bearer T`` or, for browsers, the WebSocket subprotocol
  ``voicekit.token.<base64url(T)>``. The page and its scripts are public.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Iterable
from contextvars import ContextVar
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from .settings import ServerSettings, is_loopback

__all__ = ["TOKEN_PROTOCOL", "Guard", "ending_on_purpose", "error_body", "quiet_spurious_handshake_errors"]

TOKEN_PROTOCOL = "voicekit.token."
_DISCOVERY = frozenset({"/v1/audio/voices", "/v1/audio/models"})
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


# uvicorn logs these after a response we ended on purpose: a denial response it sent itself
# (Kludex/uvicorn PR #3138), or a body we cut (a stalled reader, a failure mid-stream, already
# logged by us). The client got what it should, so they are noise.
_SPURIOUS = frozenset({"ASGI callable returned without completing handshake.", "ASGI callable returned without completing response."})
# set in the task that ended the exchange; uvicorn logs in that same task once the app returns
_ended_on_purpose: ContextVar[bool] = ContextVar("voicekit_ended_on_purpose", default=False)


class _PurposefulEndIsNotAnError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_ended_on_purpose.get() and record.getMessage() in _SPURIOUS)


_QUIET = _PurposefulEndIsNotAnError()


def quiet_spurious_handshake_errors() -> None:
    """Drop uvicorn's complaint after an exchange we ended on purpose, and only then."""
    logging.getLogger("uvicorn.error").addFilter(_QUIET)  # a filter already there is not added twice


def ending_on_purpose() -> None:
    """This task leaves its response unfinished on purpose (uvicorn then closes the connection)."""
    _ended_on_purpose.set(True)


def error_body(message: str, *, type: str = "invalid_request_error", param: str | None = None, code: str | None = None) -> bytes:
    """OpenAI's error JSON, which its SDKs turn into typed exceptions."""
    return json.dumps({"error": {"message": message, "type": type, "param": param, "code": code}}).encode()


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}


def _host_port(netloc: str, scheme: str) -> tuple[str, str]:
    host, _, port = netloc.lower().rpartition(":") if netloc.rsplit(":", 1)[-1].isdigit() else (netloc.lower(), "", "")
    return host, port or _DEFAULT_PORTS.get(scheme, "")


def subprotocol_tokens(protocols: Iterable[str]) -> list[str]:
    tokens = []
    for protocol in protocols:
        if protocol.startswith(TOKEN_PROTOCOL):
            encoded = protocol[len(TOKEN_PROTOCOL) :]
            try:
                tokens.append(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode())
            except (binascii.Error, UnicodeDecodeError, ValueError):
                continue
    return tokens


class Guard:
    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self.check(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        await deny(scope, send, status, message)

    def check(self, scope: Scope) -> tuple[int, str] | None:
        """None to let the request in, else (status, reason)."""
        headers = _headers(scope)
        host = headers.get("host", "")
        scheme = scope.get("scheme", "http")
        if self.settings.token is None and not is_loopback(_host_port(host, scheme)[0]):
            return 403, "this server has no token, so it only answers to localhost; start it with --token"
        origin = headers.get("origin")
        if origin is not None and not self._origin_ok(origin, host, scheme):
            return 403, f"origin {origin!r} is not allowed; start the server with --allow-origin {origin}"
        if self.settings.token is not None and not self._public(scope) and not self._token_ok(scope, headers):
            return 401, "missing or wrong token: send 'Authorization: Bearer <token>'"
        return None

    def _origin_ok(self, origin: str, host: str, scheme: str) -> bool:
        origin = origin.rstrip("/").lower()
        if origin in self.settings.allow_origins:
            return True
        parts = urlsplit(origin)
        # same origin means same scheme too: an https page is not this http server's own
        own_scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
        return parts.scheme == own_scheme and _host_port(parts.netloc, parts.scheme) == _host_port(host, own_scheme)

    def _public(self, scope: Scope) -> bool:
        """The page and its files; and, unless ``private_discovery``, the voice and model lists,
        which front ends (Open WebUI) fetch without a key and which reveal nothing but names."""
        path = scope.get("path", "")
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            return False
        if path in _DISCOVERY:
            return not self.settings.private_discovery
        return path in ("/", "/favicon.ico") or path.startswith("/static/")

    def _token_ok(self, scope: Scope, headers: dict[str, str]) -> bool:
        token = self.settings.token
        assert token is not None
        offered = []
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            offered.append(value.strip())
        if scope["type"] == "websocket":
            offered += subprotocol_tokens(scope.get("subprotocols", ()))
        return any(hmac.compare_digest(o.encode(), token.encode()) for o in offered)


async def deny(scope: Scope, send: Send, status: int, message: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """Answer ``status`` with an OpenAI-style error body, for HTTP and WebSocket alike."""
    body = error_body(message, type="authentication_error" if status == 401 else "invalid_request_error")
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})
    elif "websocket.http.response" in scope.get("extensions", {}):
        ending_on_purpose()
        await send({"type": "websocket.http.response.start", "status": status, "headers": head})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})
