"""``voicekit serve``: voicekit over HTTP and WebSocket, as an ASGI app.

``create_app(...)`` returns a Starlette app: mount it in your own ASGI app or
run it with any ASGI server. Needs the ``serve`` extra (Starlette, uvicorn),
imported only when an app is created, so ``voicekit``'s command line works
without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import ServerSettings

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["ServerSettings", "create_app"]


def create_app(engine: str | None = None, **options: Any) -> Starlette:
    """The voicekit server as an ASGI app; the options are in :func:`voicekit.server.app.create_app`."""
    from .app import create_app as build

    return build(engine, **options)
