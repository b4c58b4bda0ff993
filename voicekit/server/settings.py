"""The server's settings, validated once, shared read-only by every session."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field

__all__ = ["ServerSettings", "is_loopback"]


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerSettings:
    """Every knob of the server; ``create_app(**settings)`` takes the same names.

    ``lookahead`` bounds, in seconds of audio, both what a session holds in the
    server (synthesized ahead plus waiting to be sent) and how far the sent
    audio may run ahead of the client's real-time playback.
    """

    engine: str = "espeak"
    voice: str | None = None
    token: str | None = None
    allow_origins: tuple[str, ...] = field(default=())
    max_sessions: int = 64
    lookahead: float = 4.0
    max_message_chars: int = 65_536
    max_session_chars: int = 2_000_000
    max_input_chars: int = 100_000
    chat_tokens_per_second: float = 30.0
    send_timeout: float = 30.0
    private_discovery: bool = False

    def __post_init__(self) -> None:
        for name in ("max_sessions", "max_message_chars", "max_session_chars", "max_input_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("lookahead", "chat_tokens_per_second", "send_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if self.token is not None and not self.token.strip():
            raise ValueError("token must not be empty; pass None for no token")
        for origin in self.allow_origins:
            if not origin.startswith(("http://", "https://")) or origin.rstrip("/").count("/") > 2 or "*" in origin:
                raise ValueError(f"allow_origins takes origins like 'https://example.com', got {origin!r}")
        object.__setattr__(self, "allow_origins", tuple(o.rstrip("/").lower() for o in self.allow_origins))

    def __repr__(self) -> str:
        # the token is a credential: never in a repr or a log line
        token = "set" if self.token else "None"
        return f"ServerSettings(engine={self.engine!r}, voice={self.voice!r}, token={token}, allow_origins={self.allow_origins!r})"
