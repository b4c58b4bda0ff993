"""A threaded HTTP server on 127.0.0.1 that streams bodies slowly and records what it saw.

Subclasses answer requests in :meth:`FakeServer.respond`. Every request becomes an
:class:`Exchange`, so tests can prove streaming (``last_byte_at`` is later than the
client's first audio) and cancellation (``hung_up`` is set when the client closed
the connection before the end).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = ["Exchange", "FakeServer"]

#: what a fault string in ``FakeServer.faults`` makes the next audio request do: ``throttle``,
#: ``429`` (Polly only) and ``500`` are error answers (each fake says which), ``disconnect`` ends
#: the connection halfway through the body and ``reset`` aborts it there (a TCP RST), ``html`` is a
#: 200 with an HTML page and ``noise`` a 200 "audio" body of random bytes, an odd number of them.
FAULTS = ("throttle", "429", "500", "disconnect", "reset", "html", "noise")
_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><p>Please sign in to continue.</p></body></html>"


@dataclass
class Exchange:
    method: str
    path: str
    query: dict[str, list[str]]
    body: dict
    headers: dict[str, str]  # names lower-cased
    #: the client's TCP port: requests with the same port came over one kept-alive connection
    client_port: int = 0
    received_at: float = field(default_factory=time.monotonic)
    total: int = 0
    sent: int = 0
    #: monotonic time the last body byte was written (None if it never was).
    last_byte_at: float | None = None
    hung_up: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)


class FakeServer:
    """Base of the fake Polly and OpenAI servers.

    Knobs: ``first_byte_delay`` (seconds before the status line of an audio
    body), ``piece_bytes`` and ``piece_interval`` (how the body trickles out),
    and ``faults``: one entry of :data:`FAULTS` (or None) is consumed per audio
    request, in order.
    """

    name = "fake"

    def __init__(self) -> None:
        self.first_byte_delay = 0.0
        self.piece_bytes = 3200
        self.piece_interval = 0.01
        self.faults: list[str | None] = []
        self.exchanges: list[Exchange] = []
        self._hold_over = threading.Event()  # ends every first-byte hold: release() or the server stopping
        self._stopping = False
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=f"{self.name}-server",
                                        daemon=True)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        self._hold_over.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def release(self) -> None:
        """End every first-byte hold now: held answers are sent (and later ones not held)."""
        self._hold_over.set()

    def take_fault(self) -> str | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def respond(self, handler: BaseHTTPRequestHandler, exchange: Exchange) -> None:
        raise NotImplementedError

    @staticmethod
    def send_json(handler: BaseHTTPRequestHandler, status: int, payload: object,
                  headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def send_audio(self, handler: BaseHTTPRequestHandler, exchange: Exchange, pcm: bytes, fault: str | None) -> None:
        """Stream ``pcm`` as ``audio/pcm``, or what the fault ``html``, ``noise``, ``disconnect`` or ``reset`` sends."""
        if fault == "html":
            self.stream(handler, exchange, _PAGE, "text/html; charset=utf-8", delay=self.first_byte_delay)
        elif fault == "noise":
            self.stream(handler, exchange, os.urandom(len(pcm) | 1), "audio/pcm", delay=self.first_byte_delay)
        else:
            self.stream(handler, exchange, pcm, "audio/pcm", delay=self.first_byte_delay,
                        cut=fault if fault in ("disconnect", "reset") else None)

    def stream(self, handler: BaseHTTPRequestHandler, exchange: Exchange, data: bytes, content_type: str,
               *, delay: float, cut: str | None = None) -> None:
        """Send ``data`` chunked, slowly, after ``delay`` s; ``cut`` ("disconnect" or "reset") ends it halfway."""
        exchange.total = len(data)
        if self._hold_over.wait(delay) and self._stopping:
            handler.close_connection = True
            return
        end = len(data) // 2 if cut else len(data)
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            for start in range(0, end, self.piece_bytes):
                piece = data[start:min(start + self.piece_bytes, end)]
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                handler.wfile.flush()
                exchange.sent += len(piece)
                if exchange.sent < end:
                    time.sleep(self.piece_interval)
            if cut:
                handler.close_connection = True
                if cut == "reset":  # closing with a zero linger time sends RST instead of FIN
                    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    handler.connection.close()
                else:
                    handler.connection.shutdown(socket.SHUT_RDWR)
                return
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
            exchange.last_byte_at = time.monotonic()
        except OSError:  # BrokenPipe / ConnectionReset: the client hung up
            exchange.hung_up.set()
            handler.close_connection = True

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # like real servers: the headers don't hold back the first audio

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
                pass  # keep test output clean

            def _exchange(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                url = urlsplit(self.path)
                exchange = Exchange(self.command, url.path, parse_qs(url.query),
                                    json.loads(raw) if raw else {}, {k.lower(): v for k, v in self.headers.items()},
                                    client_port=self.client_address[1])
                with fake._lock:
                    fake.exchanges.append(exchange)
                try:
                    fake.respond(self, exchange)
                finally:
                    exchange.finished.set()

            do_GET = do_POST = _exchange  # noqa: N815 - stdlib's names

        return Handler
