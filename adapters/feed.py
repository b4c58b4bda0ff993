"""Speak text pieces as an iterator hands them over, and yield them back.

``speak_iter(stream, pieces)`` wraps any iterable of ``str`` (LLM tokens, a
generator, lines of a log) so that iterating it feeds each piece into
``stream.feed`` the moment it arrives and yields the same piece back, for a UI
to print while it is spoken. ``speak_aiter`` does the same over an async
iterable.

Neither calls ``stream.done()``: where a reply ends is the caller's business
(the guide's ``ChatBot.finish_response``), so the caller may add text of its
own to the same stream before or after.

Barge-in goes through the wrapper: ``reply.interrupt()`` stops the audio
(``stream.interrupt()``), stops feeding and stops the source, and keeps what
was heard. Calling ``stream.interrupt()`` directly stops the audio, but the
wrapper would feed the source's next piece as the start of a new reply.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Protocol

__all__ = ["INTERRUPTED_MARK", "SpokenText", "AsyncSpokenText", "speak_iter", "speak_aiter"]

#: appended to the heard text in :meth:`SpokenText.as_message` after an interrupt,
#: so the model sees in its history that the user cut the reply short.
INTERRUPTED_MARK = " [interrupted]"


class _Stream(Protocol):
    """The part of ``SpeechStream``/``AsyncSpeechStream`` the adapters use."""

    def feed(self, text: str) -> Any: ...

    def interrupt(self) -> Any: ...

    @property
    def heard_text(self) -> str: ...


def _check_piece(piece: object) -> str:
    if not isinstance(piece, str):
        raise TypeError(f"text pieces must be str, got {type(piece).__name__}")
    return piece


class _Reply:
    """What both wrappers share: the text fed, what was heard, the history entry."""

    def __init__(self, stream: _Stream) -> None:
        self._stream = stream
        self._parts: list[str] = []
        self._stopped = False
        self._heard_at_interrupt: str | None = None

    @property
    def text(self) -> str:
        """Every piece fed so far: the whole reply once iteration has ended."""
        return "".join(self._parts)

    @property
    def interrupted(self) -> bool:
        return self._heard_at_interrupt is not None

    @property
    def heard_text(self) -> str:
        """Words actually played (after speech filtering).

        Frozen at the interrupt; otherwise read live from the stream, so read it
        before the stream's next reply starts.
        """
        if self._heard_at_interrupt is not None:
            return self._heard_at_interrupt
        return self._stream.heard_text

    def as_message(self) -> dict[str, str]:
        """The chat-history entry for this reply.

        Not interrupted: the full reply text. Interrupted: only what was heard,
        followed by :data:`INTERRUPTED_MARK` (``" [interrupted]"``).
        """
        if not self.interrupted:
            return {"role": "assistant", "content": self.text}
        return {"role": "assistant", "content": (self.heard_text + INTERRUPTED_MARK).lstrip()}


class SpokenText(_Reply, Iterator[str]):
    """Iterator that speaks each piece of ``pieces`` on ``stream`` and yields it back.

    Thread-safe in the ways barge-in needs: the consumer thread iterates while
    another thread may call :meth:`interrupt` or :meth:`close`. ``abort``, when
    given, must stop the source from any thread (e.g. close an HTTP response);
    without it a blocked source is closed once its pending piece arrives.
    """

    def __init__(
        self, stream: _Stream, pieces: Iterable[str], *, abort: Callable[[], None] | None = None
    ) -> None:
        super().__init__(stream)
        self._source = iter(pieces)
        self._abort = abort
        # Guards the stop flags against the consumer: a piece is either fed
        # before an interrupt (and silenced by it) or not fed at all.
        self._lock = threading.Lock()
        self._pulling = False
        self._source_closed = False

    def __iter__(self) -> SpokenText:
        return self

    def __next__(self) -> str:
        with self._lock:
            stopped = self._stopped
            self._pulling = not stopped
        if stopped:
            self._stop_source()
            raise StopIteration
        try:
            piece = next(self._source)
        except StopIteration:
            self._end_pull()
            self._stop_source()
            raise
        except BaseException as exc:  # Ctrl-C inside the source too: never leave it marked as being read
            stopped = self._end_pull()
            self._stop_source()
            if stopped and isinstance(exc, Exception):
                raise StopIteration from None  # an abort broke the read: that is the interrupt
            raise
        error = None
        with self._lock:
            self._pulling = False
            if not self._stopped:
                try:
                    self._stream.feed(_check_piece(piece))
                except Exception as exc:  # noqa: BLE001 - re-raised below, once the source is closed
                    error = exc
                else:
                    self._parts.append(piece)
                    return piece
        self._stop_source()
        if error is not None:
            raise error
        raise StopIteration

    def _end_pull(self) -> bool:
        """The consumer's read returned; True if the reply was stopped meanwhile."""
        with self._lock:
            self._pulling = False
            return self._stopped

    def _stop_source(self) -> None:
        """Stop feeding and close the source, unless the consumer is inside it.

        In that case the consumer closes it when its read returns: a generator
        can't be closed from another thread while it runs.
        """
        with self._lock:
            self._stopped = True
            if self._source_closed or self._pulling:
                return
            self._source_closed = True
        close = getattr(self._source, "close", None)
        if close is not None:
            close()

    def run(self) -> SpokenText:
        """Feed the whole source (blocking until it ends or is stopped); returns self."""
        for _ in self:
            pass
        return self

    def interrupt(self) -> str:
        """Barge-in, from any thread: silence the stream and stop the source.

        Returns the text that was fed but not heard (``stream.interrupt()``'s result).
        """
        with self._lock:
            self._stopped = True
        unheard = self._stream.interrupt()
        self._heard_at_interrupt = self._stream.heard_text
        self.close()
        return unheard

    def close(self) -> None:
        """Stop feeding and close the source; the stream itself is left as it is."""
        self._stop_source()
        if self._abort is not None:
            self._abort()

    def __enter__(self) -> SpokenText:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


async def _resolve(value: Any) -> Any:
    # The async wrapper accepts an AsyncSpeechStream or a plain SpeechStream.
    return await value if inspect.isawaitable(value) else value


class AsyncSpokenText(_Reply, AsyncIterator[str]):
    """Async iterator that speaks each piece of ``pieces`` on ``stream`` and yields it back.

    A pending read of the source runs as its own task, so :meth:`interrupt` or
    :meth:`aclose` from another task cancels it at once (an HTTP read included)
    instead of waiting for the next piece.
    """

    def __init__(self, stream: _Stream, pieces: AsyncIterable[str]) -> None:
        super().__init__(stream)
        self._source = aiter(pieces)
        self._pending: asyncio.Future[str] | None = None
        self._source_closed = False

    def __aiter__(self) -> AsyncSpokenText:
        return self

    async def __anext__(self) -> str:
        if self._stopped:
            await self._aclose_source()
            raise StopAsyncIteration
        read = self._pending = asyncio.ensure_future(anext(self._source))
        try:
            piece = await read
        except StopAsyncIteration:
            self._stopped = True
            raise
        except asyncio.CancelledError:
            # Only a cancel of our own read means "stopped"; a cancel of the
            # consumer task itself must propagate.
            if not (self._stopped and read.cancelled()):
                raise
        except Exception:
            # An aborted read is the interrupt, not an error.
            if not self._stopped:
                self._stopped = True
                raise
        finally:
            self._pending = None
        if self._stopped:
            await self._aclose_source()
            raise StopAsyncIteration
        try:
            await _resolve(self._stream.feed(_check_piece(piece)))
        except Exception:
            await self.aclose()
            raise
        self._parts.append(piece)
        return piece

    async def _aclose_source(self) -> None:
        if self._source_closed or self._pending is not None:
            return  # the consumer closes it once its cancelled read returns
        self._source_closed = True
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()

    async def run(self) -> AsyncSpokenText:
        """Feed the whole source (until it ends or is stopped); returns self."""
        async for _ in self:
            pass
        return self

    async def interrupt(self) -> str:
        """Barge-in: silence the stream and stop the source (from any task of this loop)."""
        self._stopped = True
        unheard = await _resolve(self._stream.interrupt())
        self._heard_at_interrupt = self._stream.heard_text
        await self.aclose()
        return unheard

    async def aclose(self) -> None:
        """Stop feeding and close the source; the stream itself is left as it is."""
        self._stopped = True
        if self._pending is not None:
            self._pending.cancel()
        await self._aclose_source()

    async def __aenter__(self) -> AsyncSpokenText:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def speak_iter(stream: _Stream, iterable: Iterable[str]) -> SpokenText:
    """Speak ``iterable``'s pieces on ``stream`` as they arrive; iterate the result to drive it.

    ``for piece in speak_iter(stream, tokens): print(piece, end="")``. Does not
    call ``stream.done()``: the reply boundary is the caller's.
    """
    return SpokenText(stream, iterable)


def speak_aiter(stream: _Stream, async_iterable: AsyncIterable[str]) -> AsyncSpokenText:
    """``speak_iter`` for async sources: ``async for piece in speak_aiter(stream, tokens)``.

    ``stream`` may be an ``AsyncSpeechStream`` or a ``SpeechStream``. Does not
    call ``done()``.
    """
    return AsyncSpokenText(stream, async_iterable)
