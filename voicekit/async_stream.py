"""AsyncSpeechStream: the SpeechStream API as coroutines.

The work still happens on the stream's own threads; waiting is bridged to the
event loop by polling with ``asyncio.sleep``, so no call ever blocks the loop
and no executor thread is borrowed.
"""

from __future__ import annotations

import asyncio

from .stream import SpeechStream

__all__ = ["AsyncSpeechStream"]

_POLL = 0.01


class AsyncSpeechStream:
    def __init__(self, stream: SpeechStream):
        self.sync = stream

    def __repr__(self) -> str:
        return f"<AsyncSpeechStream of {self.sync!r}>"

    async def feed(self, text: str, *, ssml: bool | None = None) -> None:
        self.sync.feed(text, ssml=ssml)

    async def done(self) -> None:
        self.sync.done()

    async def wait_until_done(self, timeout: float | None = None) -> bool:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self.sync.wait_until_done(timeout=0):
            if deadline is not None and loop.time() >= deadline:
                return False
            await asyncio.sleep(_POLL)
        return True

    async def close(self) -> None:
        """Like :meth:`SpeechStream.close`: an error already reported is not raised again.

        Cancelling ``close()`` stops the stream (as ``interrupt()`` does) and is
        honoured at once.
        """
        self.sync.done()
        try:
            while not self.sync.finished:
                await asyncio.sleep(_POLL)
        except asyncio.CancelledError:
            self.sync.interrupt()
            raise
        finally:
            # finished or interrupted: this neither waits for audio nor for the network
            self.sync.close()

    async def interrupt(self) -> str:
        return self.sync.interrupt()

    async def pause(self) -> None:
        self.sync.pause()

    async def resume(self) -> None:
        self.sync.resume()

    async def buffer_full(self) -> bool:
        return self.sync.buffer_full()

    @property
    def heard_text(self) -> str:
        return self.sync.heard_text

    @property
    def fed_text(self) -> str:
        return self.sync.fed_text

    async def __aenter__(self) -> AsyncSpeechStream:
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.sync.interrupt()
        await self.close()
