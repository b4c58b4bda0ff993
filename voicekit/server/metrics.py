"""``GET /metrics``: the server's Prometheus metrics, through ``prometheus-client``.

Each app has a registry of its own, so several apps in one process (tests, an
embedding app) don't collide. With ``--workers N`` uvicorn runs N processes:
``voicekit serve`` then points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder
before they start, every process writes its values there, and whichever
process answers ``/metrics`` reports the sum over all of them (gauges: the
live processes' sum).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "RequestCounter"]

_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0)
_RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0)


class Metrics:
    """What the server counts; every method is cheap and safe from any thread."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        from prometheus_client.multiprocess import MultiProcessCollector

        self.registry = CollectorRegistry()
        shared = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        if shared:
            # the values live in the folder's files; this registry only reads them
            MultiProcessCollector(self.registry)
        registry = None if shared else self.registry
        self.sessions = Gauge(
            "voicekit_sessions_open", "Sessions open now, by protocol", ["protocol"], registry=registry, multiprocess_mode="livesum"
        )
        self.requests = Counter("voicekit_requests", "HTTP requests answered, by route and status", ["route", "status"], registry=registry)
        self.first_audio_seconds = Histogram(
            "voicekit_time_to_first_audio_seconds", "From a reply's text to its first audio sent, by protocol",
            ["protocol"], buckets=_LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.interrupt_seconds = Histogram(
            "voicekit_interrupt_to_last_audio_seconds", "From a WebSocket interrupt to the moment its reply's audio stopped",
            buckets=_LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.real_time_factor = Histogram(
            "voicekit_synthesis_real_time_factor", "Seconds of synthesis per second of audio, per text chunk, by engine",
            ["engine"], buckets=_RTF_BUCKETS, registry=registry,
        )  # fmt: skip
        self.characters = Counter("voicekit_characters_synthesized", "Characters of text synthesized, by engine", ["engine"], registry=registry)
        self.engine_errors = Counter("voicekit_engine_errors", "Replies an engine failed to speak, by engine", ["engine"], registry=registry)
        self.fallbacks = Counter(
            "voicekit_engine_fallbacks", "Chunks a fallback chain handed to a later engine, by the engine that spoke", ["engine"], registry=registry
        )

    def opened(self, protocol: str) -> None:
        self.sessions.labels(protocol).inc()

    def closed(self, protocol: str) -> None:
        self.sessions.labels(protocol).dec()

    def first_audio(self, protocol: str, seconds: float) -> None:
        self.first_audio_seconds.labels(protocol).observe(seconds)

    def interrupted(self, seconds: float) -> None:
        self.interrupt_seconds.observe(seconds)

    def chunk(self, info: Any, first_engine: str) -> None:
        """One synthesized chunk (``on_chunk_processed``'s payload)."""
        engine = str(info["engine"])
        self.characters.labels(engine).inc(len(info["text"]))
        if info["duration"] > 0:
            self.real_time_factor.labels(engine).observe(info["synthesis_time"] / info["duration"])
        if engine != first_engine:
            self.fallbacks.labels(engine).inc()

    def engine_failed(self, engine: str) -> None:
        self.engine_errors.labels(engine).inc()

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestCounter:
    """ASGI middleware counting HTTP responses by route and status (unknown paths as 'other')."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in self.routes else "/static" if path.startswith("/static/") else "other"
        await self.app(scope, receive, self._counting(send, route))

    def _counting(self, send: Send, route: str) -> Callable[[Message], Awaitable[None]]:
        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.requests.labels(route, str(message["status"])).inc()
            await send(message)

        return counting
