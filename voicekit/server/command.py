"""``voicekit serve``: its arguments and its run.

Imported by ``voicekit.cli`` to build the parser, so this module imports
neither Starlette nor uvicorn; ``run`` does, and says which extra to install.
With ``--workers N`` uvicorn starts N processes that each build the app from
the environment (``app_from_env``), since a worker can't be handed an object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import socket
import sys
import tempfile
from typing import Any
from urllib.parse import urlsplit

from .. import registry
from ..errors import UsageError, VoicekitError
from ..registry import ENGINES
from .settings import ServerSettings, is_loopback

__all__ = ["add_arguments", "app_from_env", "run"]

_OPTIONS_ENV = "VOICEKIT_SERVE_OPTIONS"
_TOKEN_ENV = "VOICEKIT_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    engines, default_engine = ENGINES, registry.default_engine()
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need a token)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--engine", choices=engines, default=default_engine, help=f"speech engine (default: {default_engine})")
    parser.add_argument("--voice", help="default voice id, see `voicekit voices`")
    parser.add_argument("--token", help=f"require this token on every API call and WebSocket (or set {_TOKEN_ENV})")
    parser.add_argument(
        "--allow-origin", nargs="+", default=[], metavar="URL", help="browser origins besides the server's own, e.g. https://app.example.com"
    )
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1); sessions never span processes")
    parser.add_argument("--max-sessions", type=int, default=64, help="concurrent sessions per process before 503 (default 64)")
    parser.add_argument("--lookahead", type=float, default=4.0, help="seconds of audio a session buffers ahead (default 4)")
    parser.add_argument("--base-url", help="the page's chat model: an OpenAI-compatible server (default: offline responder)")
    parser.add_argument("--model", help="chat model name (default with OPENAI_API_KEY: gpt-4o-mini)")
    parser.add_argument("--tokens-per-second", type=float, default=30.0, help="pace of the offline responder (default 30)")
    parser.add_argument(
        "--send-timeout", type=float, default=30.0, help="seconds a client may read nothing before its request is dropped (default 30)"
    )
    parser.add_argument(
        "--shutdown-timeout", type=float, default=5.0, help="seconds open sessions get to finish on Ctrl-C or SIGTERM (default 5)"
    )
    parser.add_argument(
        "--private-discovery", action="store_true", help="put /v1/audio/voices and /v1/audio/models behind the token too"
    )
    parser.add_argument(
        "--wyoming", metavar="tcp://HOST:PORT", help="also serve Home Assistant's Wyoming protocol there, e.g. tcp://127.0.0.1:10200"
    )
    parser.add_argument(
        "--wyoming-allow-lan", action="store_true", help="let --wyoming listen beyond loopback (Wyoming has no authentication)"
    )


def options(args: argparse.Namespace) -> dict[str, Any]:
    """The app's settings from the command line (the token travels in the environment).

    Checked here, so a bad value is one usage line, not a traceback from a worker.
    """
    if args.workers < 1 or args.max_sessions < 1:
        raise UsageError("--workers and --max-sessions must be at least 1")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be 1-65535, got {args.port}")
    if args.token is not None and not args.token.strip():
        raise UsageError("--token must not be blank")
    if not 0 <= args.shutdown_timeout < math.inf:
        raise UsageError(f"--shutdown-timeout must be a number of seconds >= 0, got {args.shutdown_timeout}")
    opts = {
        "engine": args.engine,
        "voice": args.voice,
        "allow_origins": list(args.allow_origin),
        "max_sessions": args.max_sessions,
        "lookahead": args.lookahead,
        "chat_tokens_per_second": args.tokens_per_second,
        "send_timeout": args.send_timeout,
        "private_discovery": args.private_discovery,
    }
    try:
        ServerSettings(**opts, token=_token(args))
    except ValueError as exc:
        flag, _, why = str(exc).partition(" ")
        raise UsageError(f"--{flag.replace('_', '-').replace('allow-origins', 'allow-origin')} {why}") from None
    return {**opts, "base_url": args.base_url, "model": args.model}


def _token(args: argparse.Namespace) -> str | None:
    token: str | None = args.token if args.token is not None else os.environ.get(_TOKEN_ENV) or None
    return token


def wyoming_address(args: argparse.Namespace) -> tuple[str, int] | None:
    """``--wyoming``'s host and port, checked; None without it."""
    if args.wyoming is None:
        return None
    parts = urlsplit(args.wyoming)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "tcp" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise UsageError(f"--wyoming takes tcp://HOST:PORT, e.g. tcp://127.0.0.1:10200, got {args.wyoming!r}")
    if not is_loopback(parts.hostname) and not args.wyoming_allow_lan:
        raise UsageError(
            f"--wyoming {args.wyoming} is beyond loopback and Wyoming has no authentication: add --wyoming-allow-lan to mean it"
        )
    if args.workers != 1:
        raise UsageError("--wyoming runs in one process: use --workers 1")
    return parts.hostname, port


def _check_port_free(host: str, port: int) -> None:
    """A port in use is one line now, instead of uvicorn's log lines and exit 3 later."""
    try:
        with socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET):
            pass
    except OSError as exc:
        raise VoicekitError(f"can't listen on {host}:{port}: {os.strerror(exc.errno) if exc.errno else exc}") from None


def app_from_env() -> Any:
    """The app as ``voicekit serve`` configured it (each ``--workers`` process calls this)."""
    opts = json.loads(os.environ.get(_OPTIONS_ENV, "{}"))
    app = _build(opts, os.environ.get(_TOKEN_ENV) or None)
    gc.freeze()  # see run()
    return app


def _build(opts: dict[str, Any], token: str | None) -> Any:
    from ..backends import chat_backend
    from .app import create_app

    opts = dict(opts)
    base_url, model = opts.pop("base_url", None), opts.pop("model", None)
    return create_app(opts.pop("engine"), token=token, chat=chat_backend(base_url, model, opts["chat_tokens_per_second"]), **opts)


def run(args: argparse.Namespace) -> int:
    opts = options(args)
    token = _token(args)
    if not is_loopback(args.host) and token is None:
        raise VoicekitError(
            f"refusing to serve on {args.host} without a token: pass --token T or set {_TOKEN_ENV} (or bind 127.0.0.1)"
        )
    if bool(args.base_url) != bool(args.model) and not os.environ.get("OPENAI_API_KEY"):
        raise UsageError("--base-url and --model go together (or set OPENAI_API_KEY)")
    try:
        import uvicorn
    except ImportError as exc:
        raise VoicekitError("voicekit serve needs the serve extra: pip install 'voicekit[serve]'") from exc
    wyoming = wyoming_address(args)
    _check_port_free(args.host, args.port)
    if wyoming is not None:
        _check_port_free(*wyoming)
    # build once here, so a bad engine or setting fails now, in one line, not in every worker
    app = _build(opts, token)
    try:
        app.state.voicekit.check_engine()
    except (ValueError, KeyError) as exc:  # a bad --voice: the engine's own message says which
        raise VoicekitError(f"{exc} (`voicekit voices --engine {args.engine}` lists the voices)") from exc
    # What is alive now (modules, the engine, the SDKs: ~100,000 objects) lives as long as the
    # server. Frozen, a full garbage collection no longer walks it while holding the GIL, which with
    # a hundred clients stalled the event loop ~90 ms (scripts/bench cloud) instead of ~20 ms.
    gc.freeze()
    # the protocol layer refuses frames far beyond the app's own per-message limit
    ws_max_size = 4 * app.state.voicekit.settings.max_message_chars + 1024
    # audio does not compress: per-message deflate would only burn CPU
    common: dict[str, Any] = {
        "host": args.host, "port": args.port, "ws_max_size": ws_max_size, "ws_per_message_deflate": False,
        "log_level": "info", "lifespan": "off",  # no startup hooks; and Ctrl-C then ends without a traceback
        "timeout_graceful_shutdown": args.shutdown_timeout,
    }  # fmt: skip
    if wyoming is not None:
        if not is_loopback(wyoming[0]):
            print(f"voicekit serve: Wyoming on {wyoming[0]}:{wyoming[1]} has no authentication: anyone on that network can use it",
                  file=sys.stderr)  # fmt: skip
        _serve_with_wyoming(uvicorn.Server(uvicorn.Config(app, **common)), app.state.voicekit, *wyoming)
    elif args.workers == 1:
        uvicorn.run(app, **common)
    else:
        os.environ[_OPTIONS_ENV] = json.dumps(opts)
        if token is not None:
            os.environ[_TOKEN_ENV] = token
        with tempfile.TemporaryDirectory(prefix="voicekit-metrics-") as shared:
            # every worker writes its metrics here; /metrics, whichever worker answers, adds them up
            os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", shared)
            uvicorn.run("voicekit.server.command:app_from_env", factory=True, workers=args.workers, **common)
    return 0


def _serve_with_wyoming(http: Any, server: Any, host: str, port: int) -> None:
    """uvicorn and the Wyoming listener on one event loop, over the same sessions."""
    from .wyoming import WyomingServer

    async def both() -> None:
        async with WyomingServer(server, host, port):
            await http.serve()

    try:
        asyncio.run(both())
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled; the shutdown already happened
        pass
