"""What engines streaming raw PCM over HTTP share: decoding the body, cutting it on interrupt."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import numpy as np

from ..engine import Cancel

__all__ = ["Pcm16Decoder", "cut_on_cancel"]


class Pcm16Decoder:
    """Little-endian signed 16-bit bytes in, float32 samples in [-1, 1) out.

    A network read may end in the middle of a sample; its first byte is kept
    for the next piece instead of shifting every later sample by one byte.
    """

    def __init__(self) -> None:
        self._leftover = b""

    def decode(self, data: bytes) -> np.ndarray:
        data = self._leftover + data
        whole = len(data) - len(data) % 2
        self._leftover = data[whole:]
        return np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0


@contextlib.contextmanager
def cut_on_cancel(cancel: threading.Event, socket_of: Callable[[], socket.socket | None]) -> Iterator[None]:
    """While the block runs, setting ``cancel`` shuts the transfer's socket down.

    The shutdown wakes a read blocked in another thread at once; closing the
    response from the interrupting thread would do neither that nor do it
    safely. Once the block is left the socket may already carry another
    request from the connection pool, so the cut is disarmed, under a lock so
    it can't race with a cut in progress. Plain events (no ``call_on_set``)
    only get the checks between reads.
    """
    if not isinstance(cancel, Cancel):
        yield
        return
    lock = threading.Lock()
    armed = True

    def cut() -> None:
        with lock:
            sock = socket_of() if armed else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    cancel.call_on_set(cut)
    try:
        yield
    finally:
        with lock:
            armed = False
