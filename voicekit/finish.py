"""How a stream ends: a thread waits for it, a callback hears of it, and the interpreter's exit lets it finish.

voicekit's threads are daemons (an open stream must never keep a process alive), so without the exit hook
here, ``speak_streamed(..., wait=False)`` as a script's last line would be cut off.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .contract import run_exit_hooks
from .errors import StreamError
from .reply import in_callback

if TYPE_CHECKING:
    from .playback import PlaybackLine

__all__ = ["Finish"]

log = logging.getLogger("voicekit")

_live: weakref.WeakSet[Finish] = weakref.WeakSet()


class _Stream(Protocol):
    def interrupt(self) -> str: ...

    def close(self) -> None: ...


class Finish:
    """One stream's end, on the stream's lock.

    Under that lock, ``ended()`` tells that the stream takes no more text (``done()``, ``close()`` or an
    error) and ``settled()`` that nothing is left to play; the stream is finished when both hold.
    """

    def __init__(
        self,
        stream: _Stream,
        line: PlaybackLine,
        lock: threading.Condition,
        *,
        ended: Callable[[], bool],
        settled: Callable[[], bool],
    ):
        self._stream = stream
        self._line = line
        self._lock = lock
        self._ended = ended
        self._settled = settled
        self._callbacks: list[Callable[[], Any]] = []
        _live.add(self)

    @property
    def over(self) -> bool:
        """The stream is finished (lock held)."""
        return self._ended() and self._settled()

    def wait(self, timeout: float | None) -> bool:
        """Block until nothing is left to play (lock held); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._settled():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            if remaining is None and in_callback():
                raise StreamError(
                    "wait_until_done() inside a voicekit callback would wait for the thread running it; "
                    "pass a timeout, or wait from another thread"
                )
            self._lock.wait(remaining)
        return True

    def add(self, callback: Callable[[], Any]) -> None:
        with self._lock:
            self._callbacks.append(callback)
        self.check()

    def remove(self, callback: Callable[[], Any]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def check(self) -> None:
        """Run the finished-callbacks if the stream just finished (the caller holds no lock)."""
        with self._lock:
            if not self._callbacks or not self.over:
                return
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - a waiter's bug must not kill the thread that finished the stream
                log.exception("voicekit: finished-callback %r raised", callback)


@atexit.register
def _finish_at_exit() -> None:
    """A script that queued speech and reached its end still says it.

    Streams whose text never ended (no ``done()``) are stopped instead; Ctrl-C stops the wait.
    """
    finishes = list(_live)
    for finish in finishes:
        if not finish._ended():
            finish._stream.interrupt()
    for finish in finishes:
        try:
            finish._stream.close()
        except StreamError as exc:
            log.error("voicekit: %r failed at exit: %s", finish._stream, exc)
    for line in {id(f._line): f._line for f in finishes}.values():
        line.wait_released(timeout=10.0)  # sinks closed: WAV files complete
    run_exit_hooks()  # the engines' native work stops only now that nothing speaks
