"""SpeechStream: text in, by pieces, from any thread; speech out, gapless.

The stream keeps the API, the state and the errors, and composes the rest: ``feed`` only queues text in its
:class:`~voicekit.text.pipeline.TextPipeline`, so it never blocks; its :class:`~voicekit.worker.SynthesisWorker`
has that text cut into chunks, speaks them and fills the current reply at most ``lookahead`` seconds ahead of
playback; :class:`~voicekit.finish.Finish` tells who waits when it is over. Playback belongs to the sink's
:class:`~voicekit.playback.PlaybackLine`; the two meet only in the :class:`~voicekit.reply.Reply`, whose module
also states the lock order. Callbacks (``on_word`` on the playback thread, ``on_chunk_processed`` on the worker)
run with no voicekit lock held; ``close()``, ``interrupt()`` and ``pause()`` work from inside them.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .config import StreamConfig
from .contract import capabilities_of, language_of
from .errors import BufferError, EngineError, StreamError
from .finish import Finish
from .reply import OnChunk, OnWord, PlaybackReport, Reply, in_callback
from .text.pipeline import TextPipeline
from .text.rules import language_or_default
from .worker import SynthesisWorker

if TYPE_CHECKING:
    from .contract import Engine
    from .playback import PlaybackLine
    from .sinks._format import AudioFormat

__all__ = ["SpeechStream"]


class SpeechStream:
    def __init__(self, engine: Engine, line: PlaybackLine, fmt: AudioFormat, config: StreamConfig, *,
                 on_chunk_processed: OnChunk | None = None, on_word: OnWord | None = None):  # fmt: skip
        self._engine = engine
        self._line = line
        self._format = fmt
        self._config = config
        self._on_word = on_word
        self._cond = threading.Condition()
        self._reply: Reply | None = None  # None from interrupt() to the next feed()
        self._replies: list[Reply] = []  # submitted to the line and not yet reported back
        self._done = False  # no more text: done(), close() (which also sets _closed) or an error
        self._closed = False
        self._error: StreamError | None = None
        self._error_reported = False
        self._hold = threading.Event()  # set while paused; every reply of the stream shares it
        self._finish = Finish(self, line, self._cond, ended=lambda: self._done, settled=self._settled)
        self._text = TextPipeline(
            max_chars=min(config.max_text_chunk, engine.max_chars), min_chars=config.min_text_chunk,
            first_fragment=config.first_fragment, speech_filter=config.speech_filter,
            language=config.language or language_or_default(language_of(engine)),
            ssml_chars=engine.max_chars if capabilities_of(engine).ssml else None,
        )  # fmt: skip
        self._worker = SynthesisWorker(
            engine, self._cond, self._text, reply=lambda: self._reply, done=lambda: self._done, fail=self._fail,
            samplerate=fmt.samplerate, lookahead=config.lookahead, chars_per_second=config.chars_per_second,
            on_chunk=on_chunk_processed,
        )  # fmt: skip
        # a new stream takes its place in line now, like the guide's chatbot expects
        with self._cond:
            reply = self._start_reply()
        line.submit(reply)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "done" if self._done else "open"
        return f"<SpeechStream {state} engine={self._engine.name!r}>"

    # -- public API -----------------------------------------------------------------
    def feed(self, text: str, *, ssml: bool | None = None) -> None:
        """Queue text for speech. Never blocks; safe from any thread.

        After ``interrupt()`` the text starts a new reply, queued behind whatever else plays on the sink.
        Whether a reply is SSML is decided by its first ``feed``, once: ``ssml=True`` or ``False``, or by
        default whether its first non-space text is ``<speak``. Every chunk of the reply carries that
        decision to the engine; later text can't change it.
        """
        if not isinstance(text, str):
            raise TypeError(f"feed() takes str, not {type(text).__name__}")
        new = None
        with self._cond:
            self._raise_error()
            if self._done:
                raise StreamError("feed() after done() or close(): create a new stream for more text")
            if self._queued_chars() + len(text) > self._config.max_queued_chars:
                raise BufferError(
                    f"more than max_queued_chars={self._config.max_queued_chars} characters queued; "
                    "wait for buffer_full() to turn False, or raise the cap with set_stream_config()"
                )
            if not text:
                return
            if self._reply is None:
                new = self._start_reply()
            self._text.feed(text, ssml)
            self._worker.wake()
        if new is not None:
            self._line.submit(new)

    def done(self) -> None:
        """No more text: what is queued is still spoken."""
        with self._cond:
            self._done = True
            self._worker.wake()
        self._finish.check()

    def wait_until_done(self, timeout: float | None = None) -> bool:
        """Wait until everything fed was played (or dropped by ``interrupt()``). False on timeout.

        Raises the stream's :class:`EngineError` if some text could not be spoken.
        """
        with self._cond:
            if not self._done:
                raise StreamError("wait_until_done() needs done() first; nothing else ends the wait")
            if not self._finish.wait(timeout):
                return False
            self._raise_error()
        self._worker.join()
        return True

    @property
    def finished(self) -> bool:
        """True once ``done()`` was called and everything fed was played or dropped."""
        with self._cond:
            return self._finish.over

    def add_finished_callback(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` once the stream is :attr:`finished` (at once if it is).

        It runs on whichever thread finished the stream (often the playback thread), with no voicekit lock
        held, so it must not block: hand the news on, e.g. with ``loop.call_soon_threadsafe``. This is how
        :class:`~voicekit.AsyncSpeechStream` waits without polling.
        """
        self._finish.add(callback)

    def remove_finished_callback(self, callback: Callable[[], Any]) -> None:
        """Forget a callback given to :meth:`add_finished_callback` that has not run yet."""
        self._finish.remove(callback)

    def close(self) -> None:
        """Finish speaking what was fed, then release the stream's thread.

        On a paused stream, what was not heard is dropped (as by ``interrupt()``) rather than waiting for a
        ``resume()``. Inside a callback, ``close()`` returns at once and the rest plays out, since waiting
        there would wait for the thread running the callback. Raises the stream's :class:`EngineError` only
        if it was not already raised by ``feed`` or ``wait_until_done``: an error is reported once.
        """
        if self._hold.is_set():
            self.interrupt()
        with self._cond:
            self._done = True
            reported = self._error_reported
            self._worker.wake()
            if in_callback():
                self._closed = True
                return
        try:
            self.wait_until_done()
        except StreamError:
            if not reported:
                raise
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._worker.join()
            self._finish.check()  # close() without done(): its finish may be news only now

    def interrupt(self, played: float | None = None) -> str:
        """Stop speaking now; the stream stays usable for the next reply.

        The stream gives up its place in line at once: streams waiting behind it on the same sink start
        playing. Returns the text that was fed to this reply but not heard: spoken-form text of cut chunks,
        then text still inside the filter and chunker, then text still queued as fed. A space joins two of
        these only where the text had one: a word longer than ``max_text_chunk`` comes back whole. ``played``:
        seconds of the reply a remote listener really heard (the sink took it earlier); ``heard_text`` ends
        there, and later words come back as unheard even if the reply was all played out.
        """
        with self._cond:
            reply, self._reply = self._reply, None
            if reply is None:  # only a listener's clock can still change what was heard
                if played is not None:
                    self._last_reply.heard_until(round(played * self._last_reply.samplerate))
                return "" if played is None else self._last_reply.unheard_text()
            unheard = self._text.drain()
            self._worker.abandon(reply)
            self._cond.notify_all()
        reply.cancel()
        if played is not None:
            reply.heard_until(round(played * reply.samplerate))
        self._finish.check()
        return unheard(reply.unheard_text())

    def pause(self) -> None:
        """Hold playback where it is (the sink's buffer, ``buffer_size`` frames, still plays)."""
        self._hold.set()

    def resume(self) -> None:
        self._hold.clear()

    def buffer_full(self) -> bool:
        """True once queued audio plus queued text reach ``buffer_threshold`` of ``lookahead``."""
        with self._cond:
            if self._closed:
                return False
            cfg, reply = self._config, self._reply
            audio = reply.queued_seconds if reply is not None else 0.0
            text = self._queued_chars() / cfg.chars_per_second
        return audio + text >= cfg.buffer_threshold * cfg.lookahead

    @property
    def heard_text(self) -> str:
        """Words played in the current (or last) reply, spoken form; of an endless one its newest ~100,000 chars."""
        return self._last_reply.heard_text

    @property
    def fed_text(self) -> str:
        """Everything fed to the current (or last) reply, as given; of an endless one its newest ~100,000 chars."""
        return self._text.fed_text

    @property
    def filtered_text(self) -> str:
        """What the text stages dropped from the current (or last) reply, in order.

        Control characters, escape sequences and lone surrogates (the sanitizer); markup, emoji, code blocks
        and URLs (the speech filter). Pieces joined by spaces, a piece being what was dropped with nothing
        said in between, in input order; the same however the text was split into ``feed()`` calls. With
        ``heard_text`` and the unheard text (``interrupt()``'s result or ``EngineError.unspoken_text``),
        every character fed is accounted for.
        """
        return self._text.filtered_text

    @property
    def error(self) -> StreamError | None:
        return self._error

    def __enter__(self) -> SpeechStream:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.interrupt()
        self.close()

    # -- internals (lock held, unless a docstring says otherwise) -----------------------
    def _settled(self) -> bool:
        """Nothing left to play."""
        reply = self._reply
        return (reply is None or reply.ended) and all(r.settled for r in self._replies)

    def _raise_error(self) -> None:
        if self._error is not None:
            self._error_reported = True
            raise self._error

    def _queued_chars(self) -> int:
        """Text waiting for synthesis; not what the chunker holds back waiting for more input, or a producer
        that obeys ``buffer_full()`` would wait for itself."""
        return self._text.queued_chars + (self._reply.unsynthesized_chars if self._reply is not None else 0)

    def _start_reply(self) -> Reply:
        """Begin a new reply; the caller submits it once the lock is released."""
        reply = self._reply = self._last_reply = Reply(self._format, self._hold, self._on_word, self._worker.wake)
        reply.outcome.add_done_callback(self._played)
        self._text.start(Reply.HISTORY_CHARS)
        self._replies.append(reply)
        return reply

    def _fail(self, reply: Reply, exc: Exception, unspoken: str) -> None:
        """The worker gave up on ``reply`` (any thread): keep what was made, report the rest, take no more text."""
        with self._cond:
            if reply is not self._reply:  # interrupted meanwhile: its text went back, the next reply's is not its
                reply.end()
                return
            engine = getattr(exc, "engine", None) or self._engine.name
            unspoken_text = self._text.drain()(unspoken)
            if self._error is None:
                self._error = EngineError(f"{engine} could not speak: {exc}", unspoken_text=unspoken_text, engine=engine)
                self._error.__cause__ = exc
            self._done = True
            reply.end()
            self._cond.notify_all()

    def _played(self, outcome: concurrent.futures.Future[PlaybackReport]) -> None:
        """Playback's one report for a reply (any thread)."""
        report = outcome.result()
        with self._cond:
            self._replies = [r for r in self._replies if not r.outcome.done()]
            if report.error is not None and self._error is None:
                exc = report.error
                self._error = exc if isinstance(exc, StreamError) else StreamError(f"playback failed: {exc}")
                self._error.__cause__ = exc
                self._done = self._closed = True
                if self._reply is not None:
                    self._reply.cancel()
            self._cond.notify_all()
        self._finish.check()
