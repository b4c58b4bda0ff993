"""What engines streaming raw PCM over HTTP share: decoding the body, cutting it on interrupt.

Two ways to stop a transfer at once. A sync SDK (boto3) blocks a thread in a
socket read: :func:`cut_on_cancel` shuts that socket down from the interrupting
thread. An async SDK (openai's ``AsyncOpenAI``) runs on an :class:`AsyncBridge`,
the engine's own event loop thread: an interrupt cancels the task, which stops
whatever it awaits (connect, headers, body, the SDK's retry back-off) and
closes the connection. Sync callers and other event loops only wait for
finished pieces, so no caller's loop ever runs SDK code.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, Generic, TypeVar

import numpy as np

from ..contract import Cancel
from ..errors import EngineError

__all__ = ["AsyncBridge", "Pcm16Decoder", "check_audio_type", "cut_on_cancel", "shut_down"]

T = TypeVar("T")
log = logging.getLogger(__name__)
#: most pieces handed over at once
_BATCH = 32
#: how long close() waits for cancelled transfers and the client to close
_CLOSE_TIMEOUT = 1.0


def check_audio_type(content_type: str | None, engine: str) -> None:
    """Refuse a 200 answer that is not audio: a proxy's or captive portal's page would play as noise.

    Polly and OpenAI send raw PCM as ``audio/*``; ``application/octet-stream``
    is what generic servers say for bytes.
    """
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if not (media_type.startswith("audio/") or media_type == "application/octet-stream"):
        raise EngineError(f"{engine} answered with {content_type or 'no Content-Type'} instead of audio", engine=engine)


class Pcm16Decoder:
    """Little-endian signed 16-bit bytes in, float32 samples in [-1, 1) out.

    A network read may end in the middle of a sample; its first byte is kept
    for the next piece instead of shifting every later sample by one byte.
    """

    def __init__(self, engine: str) -> None:
        self._engine = engine
        self._leftover = b""
        #: bytes of the body decoded so far
        self.received = 0

    def decode(self, data: bytes) -> np.ndarray:
        self.received += len(data)
        data = self._leftover + data
        whole = len(data) - len(data) % 2
        self._leftover = data[whole:]
        return np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0

    def finish(self) -> None:
        """The body is complete: a byte left over means it was never 16-bit samples."""
        if self._leftover:
            raise EngineError(f"{self._engine}'s audio ended in the middle of a sample after {self.received} bytes: "
                              "the body was not 16-bit PCM", engine=self._engine)


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
                shut_down(sock)

    cancel.call_on_set(cut)
    try:
        yield
    finally:
        with lock:
            armed = False


def shut_down(sock: socket.socket) -> None:
    """End a transfer on ``sock`` from any thread: a read blocked on it returns at once."""
    with contextlib.suppress(OSError):  # already closed: the transfer is over anyway
        sock.shutdown(socket.SHUT_RDWR)


class _Step:
    """The one pending step of a pull; an interrupt cancels it, whichever step it is."""

    def __init__(self, cancel: threading.Event) -> None:
        self._lock = threading.Lock()
        self._future: concurrent.futures.Future[Any] | None = None
        if isinstance(cancel, Cancel):
            cancel.call_on_set(self.cancel)
        self._cancel = cancel

    def start(self, future: concurrent.futures.Future[T]) -> concurrent.futures.Future[T]:
        with self._lock:
            self._future = future
        if self._cancel.is_set():  # set before the future was registered
            future.cancel()
        return future

    def cancel(self) -> None:
        with self._lock:
            future, self._future = self._future, None
        if future is not None:
            future.cancel()


class AsyncBridge:
    """An engine's private event loop on a ``voicekit-<name>`` daemon thread, started on first use.

    One async SDK client lives on it for the engine's whole life, whichever
    threads and event loops the engine is called from (an async client belongs
    to the loop it was used on). :meth:`iterate` pulls an async generator running
    there into the calling thread.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the private loop; ``EngineError`` once closed."""
        with self._lock:
            if self._closed:
                coro.close()
                raise self._closed_error()
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=_run_loop, args=(self._loop,), name=f"voicekit-{self._name}",
                                                daemon=True)
                self._thread.start()
            return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def iterate(self, agen: AsyncGenerator[T, None], cancel: threading.Event) -> Iterator[T]:
        """``agen``'s items in this thread; ``cancel`` (or closing the iterator) stops the transfer at once."""
        step, puller = _Step(cancel), _Puller(agen)
        try:
            while not cancel.is_set():
                try:
                    batch = step.start(self.submit(puller.batch())).result()
                except concurrent.futures.CancelledError:
                    if cancel.is_set():
                        return
                    raise self._closed_error() from None
                if not batch:
                    return
                yield from batch
        finally:
            step.cancel()
            self._close(puller)

    def close(self, final: Callable[[], Awaitable[None]] | None = None) -> None:
        """Cancel every transfer, await ``final()`` (closing the client) and stop the thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if final is not None:
                await final()

        done = asyncio.run_coroutine_threadsafe(shutdown(), loop)
        if threading.current_thread() is not thread:
            try:
                done.result(timeout=_CLOSE_TIMEOUT)
            except Exception:  # noqa: BLE001 - closing is best effort; the loop stops either way
                log.debug("%s: closing did not finish cleanly", self._name, exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        if threading.current_thread() is not thread:
            thread.join(timeout=_CLOSE_TIMEOUT)

    def _closed_error(self) -> EngineError:
        return EngineError(f"the {self._name} engine is closed", engine=self._name)

    def _close(self, puller: _Puller[Any]) -> None:
        # a generator left mid-body closes its response there; no need to wait for it
        with contextlib.suppress(EngineError):
            self.submit(puller.aclose())


class _Puller(Generic[T]):
    """Takes an async generator's items in batches, on the bridge's loop.

    A batch is the next item plus those already buffered, so a caller that
    falls behind a fast body is woken once per batch, not once per piece.
    The generator runs ahead by at most one pending item.
    """

    def __init__(self, agen: AsyncGenerator[T, None]) -> None:
        self._agen = agen
        self._next: asyncio.Future[T] | None = None
        self._finished = False

    async def batch(self) -> list[T]:
        """At least one item, or none once the generator is finished; its error after the items before it."""
        items: list[T] = []
        while not self._finished and len(items) < _BATCH:
            if self._next is None:
                self._next = asyncio.ensure_future(self._agen.__anext__())
            if items:
                await asyncio.sleep(0)  # an item already buffered is ready after one turn
                if not self._next.done() or self._next.cancelled() or self._next.exception() is not None:
                    break  # wait for it (or raise its error) in the next batch
            try:
                items.append(await self._next)
            except StopAsyncIteration:
                self._finished = True
            self._next = None
        return items

    async def aclose(self) -> None:
        if self._next is not None and not self._next.done():
            self._next.cancel()
            await asyncio.gather(self._next, return_exceptions=True)
        await self._agen.aclose()


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
