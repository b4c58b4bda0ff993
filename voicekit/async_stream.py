"""AsyncSpeechStream: the SpeechStream API as coroutines.

The work happens on the stream's own threads. Waiting is bridged to the
event loop by :meth:`SpeechStream.add_finished_callback`: the thread that
finishes the stream wakes the loop once, so a hundred waiting streams cost
the loop nothing while they play, and no executor thread is borrowed.
``interrupt()`` and the end of ``close()`` run on an executor thread: they
silence the sink (PortAudio's abort takes milliseconds) and release the
stream's worker thread, which must not hold up the loop.
"""

from __future__ import annotations

import asyncio
import contextlib

from .stream import SpeechStream

__all__ = ["AsyncSpeechStream"]


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
        # the sync call that does not wait raises what the wait would: done() missing, the stream's error
        if self.sync.wait_until_done(timeout=0):
            return True
        if not await self._finished(timeout):
            return False
        return self.sync.wait_until_done(timeout=0)

    async def close(self) -> None:
        """Like :meth:`SpeechStream.close`: an error already reported is not raised again.

        Cancelling ``close()`` stops the stream (as ``interrupt()`` does) and is
        honoured at once.
        """
        self.sync.done()
        try:
            await self._finished(None)
        except asyncio.CancelledError:
            self.sync.interrupt()
            raise
        finally:
            # finished or interrupted: this neither waits for audio nor for the network
            await asyncio.to_thread(self.sync.close)

    async def interrupt(self, played: float | None = None) -> str:
        return await asyncio.to_thread(self.sync.interrupt, played)

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
            await self.interrupt()
        await self.close()

    async def _finished(self, timeout: float | None) -> bool:
        """Wait until the stream is finished (``done()`` called first); False on timeout."""
        loop = asyncio.get_running_loop()
        finished = loop.create_future()

        def settle() -> None:
            if not finished.done():
                finished.set_result(None)

        def wake() -> None:  # on a voicekit thread
            with contextlib.suppress(RuntimeError):  # the loop was closed meanwhile: nobody waits
                loop.call_soon_threadsafe(settle)

        self.sync.add_finished_callback(wake)
        try:
            await asyncio.wait_for(finished, timeout)
        except asyncio.TimeoutError:  # not yet the builtin on Python 3.10
            return False
        finally:
            self.sync.remove_finished_callback(wake)
        return True
