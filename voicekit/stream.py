"""SpeechStream: text in, by pieces, from any thread; speech out, gapless.

The stream owns the synthesis worker thread and the text queue. ``feed`` only
appends to the queue, so it never blocks; the worker runs the speech filter
and the chunker, calls the engine, resamples, and fills the current reply's
audio buffer at most ``lookahead`` seconds ahead of playback. Playback belongs
to the sink's :class:`~voicekit.playback.PlaybackLine`; the two meet only in
the :class:`~voicekit.reply.Reply` (see :mod:`voicekit.reply`).

Callbacks (``on_word`` on the playback thread, ``on_chunk_processed`` on the
worker) run with no voicekit lock held; ``close()``, ``interrupt()`` and
``pause()`` work from inside them.
"""

from __future__ import annotations

import atexit
import bisect
import concurrent.futures
import itertools
import logging
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .config import StreamConfig
from .engine import run_exit_hooks
from .errors import BufferError, EngineError, StreamError
from .reply import ChunkInfo, PlaybackReport, RecentText, Reply, WordInfo, call_safely, in_callback
from .resample import Resampler
from .text import Sanitizer, SentenceChunker, SpeechFilter
from .text.rules import language_or_default
from .text.ssml import as_document, is_ssml, split_ssml, ssml_words

if TYPE_CHECKING:
    from .engine import AudioChunk, Engine
    from .playback import PlaybackLine
    from .sinks._format import AudioFormat

__all__ = ["SpeechStream"]

log = logging.getLogger("voicekit")

# typed payloads; callbacks written against plain dicts (the guide's style) are accepted too
OnChunk = Callable[[ChunkInfo], Any] | Callable[[dict[str, Any]], Any]
OnWord = Callable[[WordInfo], Any] | Callable[[dict[str, Any]], Any]

# how much queued text the worker takes per turn; bounds how long the lock is held
_SLICE = 16_384
_WORD = re.compile(r"\S+")
_NON_SPACE = re.compile(r"\S")

_live: weakref.WeakSet[SpeechStream] = weakref.WeakSet()


@atexit.register
def _finish_at_exit() -> None:
    """A script that queued speech and reached its end still says it.

    voicekit's threads are daemons (an open stream must never keep a process
    alive), so without this, ``speak_streamed(..., wait=False)`` as a script's
    last line would be cut off. Streams that were never finished with
    ``done()`` are stopped instead; Ctrl-C stops the wait.
    """
    streams = list(_live)
    for stream in streams:
        if not stream._done:
            stream.interrupt()
    for stream in streams:
        try:
            stream.close()
        except StreamError as exc:
            log.error("voicekit: %r failed at exit: %s", stream, exc)
    for line in {id(s._line): s._line for s in streams}.values():
        line.wait_released(timeout=10.0)  # sinks closed: WAV files complete
    run_exit_hooks()  # the engines' native work stops only now that nothing speaks


class SpeechStream:
    def __init__(
        self,
        engine: Engine,
        line: PlaybackLine,
        fmt: AudioFormat,
        config: StreamConfig,
        *,
        on_chunk_processed: OnChunk | None = None,
        on_word: OnWord | None = None,
    ):
        self._engine = engine
        self._line = line
        self._format = fmt
        self._config = config
        self._on_chunk = on_chunk_processed
        self._on_word = on_word
        self._samplerate = fmt.samplerate
        self._cond = threading.Condition()
        self._pending: deque[str] = deque()
        self._pending_chars = 0
        self._unsynth_chars = 0
        self._reply: Reply | None = None
        self._last_reply: Reply | None = None
        # submitted to the line and not yet reported back
        self._replies: list[Reply] = []
        self._done = False
        self._closed = False
        self._error: StreamError | None = None
        self._error_reported = False
        self._chunk_index = itertools.count()
        self._hold = threading.Event()  # set while paused; every reply of the stream shares it
        self._finish_callbacks: list[Callable[[], Any]] = []
        self._worker: threading.Thread | None = None
        # the reply the worker is synthesizing: an interrupted one may be stuck in the network
        self._busy: Reply | None = None
        # SSML goes to engines that read it; others get an SSML reply's words
        self._ssml_ok = bool(getattr(engine, "supports_ssml", False))
        self._ssml: list[str] = []
        # what the text stages drop goes to the reply being filtered (filtered_text); the speech
        # filter sanitizes its own input, so that both stages' reports keep the input's order
        self._filtered = RecentText(0)
        self._sanitizer = Sanitizer(self._report_filtered)
        self._filter = SpeechFilter(on_filtered=self._report_filtered, sanitize=True) if config.speech_filter else None
        self._seams = _Seams()
        self._chunker = SentenceChunker(
            first_fragment=config.first_fragment,
            max_chars=min(config.max_text_chunk, engine.max_chars),
            min_chars=config.min_text_chunk,
            language=config.language or language_or_default(getattr(engine, "language", None)),
        )
        # a new stream takes its place in line now, like the guide's chatbot expects
        with self._cond:
            reply = self._start_reply()
        line.submit(reply)
        _live.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "done" if self._done else "open"
        return f"<SpeechStream {state} engine={self._engine.name!r}>"

    # -- public API -----------------------------------------------------------------
    def feed(self, text: str, *, ssml: bool | None = None) -> None:
        """Queue text for speech. Never blocks; safe from any thread.

        After ``interrupt()`` the text starts a new reply, queued behind
        whatever else plays on the sink.

        Whether a reply is SSML is decided by its first ``feed``, once: ``ssml=True``
        or ``False``, or by default whether its first non-space text is ``<speak``.
        Every chunk of the reply carries that decision to the engine; later text
        can't change it.
        """
        if not isinstance(text, str):
            raise TypeError(f"feed() takes str, not {type(text).__name__}")
        new = None
        with self._cond:
            if self._error is not None:
                self._error_reported = True
                raise self._error
            if self._closed or self._done:
                raise StreamError("feed() after done() or close(): create a new stream for more text")
            if self._queued_chars() + len(text) > self._config.max_queued_chars:
                raise BufferError(
                    f"more than max_queued_chars={self._config.max_queued_chars} characters queued; "
                    "wait for buffer_full() to turn False, or raise the cap with set_stream_config()"
                )
            if not text:
                return
            reply = self._reply
            if reply is None:
                reply = new = self._start_reply()
            if not reply.fed:
                reply.ssml = is_ssml(text) if ssml is None else bool(ssml)
            reply.fed.append(text)
            # in slices, so the worker never holds the lock over a huge piece
            self._pending.extend(text[i : i + _SLICE] for i in range(0, len(text), _SLICE))
            self._pending_chars += len(text)
            self._wake_worker()
        if new is not None:
            self._line.submit(new)

    def done(self) -> None:
        """No more text: what is queued is still spoken."""
        with self._cond:
            self._done = True
            self._wake_worker()
        self._check_finished()

    def wait_until_done(self, timeout: float | None = None) -> bool:
        """Wait until everything fed was played (or dropped by ``interrupt()``). False on timeout.

        Raises the stream's :class:`EngineError` if some text could not be spoken.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if not self._done and not self._closed:
                raise StreamError("wait_until_done() needs done() first; nothing else ends the wait")
            while not self._finished():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                if remaining is None and in_callback():
                    raise StreamError(
                        "wait_until_done() inside a voicekit callback would wait for the thread running it; "
                        "pass a timeout, or wait from another thread"
                    )
                self._cond.wait(remaining)
            if self._error is not None:
                self._error_reported = True
                raise self._error
        self._join_worker()
        return True

    @property
    def finished(self) -> bool:
        """True once ``done()`` was called and everything fed was played or dropped."""
        with self._cond:
            return self._over()

    def add_finished_callback(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` once the stream is :attr:`finished` (at once if it is).

        It runs on whichever thread finished the stream (often the playback
        thread), with no voicekit lock held, so it must not block: hand the news
        on, e.g. with ``loop.call_soon_threadsafe``. This is how
        :class:`~voicekit.AsyncSpeechStream` waits without polling.
        """
        with self._cond:
            self._finish_callbacks.append(callback)
        self._check_finished()

    def remove_finished_callback(self, callback: Callable[[], Any]) -> None:
        """Forget a callback given to :meth:`add_finished_callback` that has not run yet."""
        with self._cond:
            if callback in self._finish_callbacks:
                self._finish_callbacks.remove(callback)

    def close(self) -> None:
        """Finish speaking what was fed, then release the stream's thread.

        On a paused stream, what was not heard is dropped (as by ``interrupt()``)
        rather than waiting for a ``resume()``. Inside a callback, ``close()``
        returns at once and the rest plays out, since waiting there would wait for
        the thread running the callback.

        Raises the stream's :class:`EngineError` only if it was not already
        raised by ``feed`` or ``wait_until_done``: an error is reported once.
        """
        if self._hold.is_set():
            self.interrupt()
        with self._cond:
            self._done = True
            reported = self._error_reported
            self._wake_worker()
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
            self._join_worker()
            self._check_finished()  # close() without done(): its finish may be news only now

    def interrupt(self) -> str:
        """Stop speaking now; the stream stays usable for the next reply.

        The stream gives up its place in line at once: streams waiting behind it
        on the same sink start playing. Returns the text that was fed to this
        reply but not heard: spoken-form text of cut chunks, then text still
        inside the filter and chunker, then text still queued as fed. A space
        joins two of these only where the text had one: a word longer than
        ``max_text_chunk`` comes back whole.
        """
        with self._cond:
            reply = self._reply
            if reply is None:
                return ""
            self._reply = None
            seams = self._seams
            unheard_tail = self._drain_text_pipeline(reply)
            self._unsynth_chars = 0
            if self._busy is reply:
                # it may be stuck in a cancelled network call: a new reply gets a new worker
                self._worker = None
            self._cond.notify_all()
        # cancel first: playback freezes what was heard and silences the sink,
        # then the buffer's end cannot be mistaken for the reply's natural end
        reply.cancel.set()
        reply.buffer.clear()
        self._check_finished()
        return (seams.mend(reply.unheard_text()) + unheard_tail).strip()

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
            cfg = self._config
            reply = self._reply
            audio = reply.buffer.queued_seconds if reply is not None else 0.0
            text = self._queued_chars() / cfg.chars_per_second
        return audio + text >= cfg.buffer_threshold * cfg.lookahead

    @property
    def heard_text(self) -> str:
        """Words actually played in the current (or last) reply, in spoken form.

        An endless reply (a narration) keeps only its newest ~100,000 characters
        here (``Reply.HISTORY_CHARS``), so memory stays flat however long it runs.
        """
        reply = self._reply or self._last_reply
        return reply.heard_text if reply is not None else ""

    @property
    def fed_text(self) -> str:
        """Everything fed to the current (or last) reply, as given (the newest
        ~100,000 characters of an endless one, like ``heard_text``)."""
        reply = self._reply or self._last_reply
        return "".join(reply.fed) if reply is not None else ""

    @property
    def filtered_text(self) -> str:
        """What the text stages dropped from the current (or last) reply, in order.

        Control characters, escape sequences and lone surrogates (the
        sanitizer); markup, emoji, code blocks and URLs (the speech filter).
        Pieces joined by spaces, a piece being what was dropped with nothing
        said in between, in input order; the same however the text was split
        into ``feed()`` calls. With ``heard_text`` and the unheard text
        (``interrupt()``'s result or ``EngineError.unspoken_text``), every
        character fed is accounted for.
        """
        reply = self._reply or self._last_reply
        return " ".join(reply.filtered) if reply is not None else ""

    @property
    def error(self) -> StreamError | None:
        return self._error

    def __enter__(self) -> SpeechStream:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.interrupt()
        self.close()

    # -- internals ----------------------------------------------------------------------
    def _over(self) -> bool:
        """:attr:`finished` (lock held): ``done()`` or ``close()`` came and nothing is left to play."""
        return (self._done or self._closed) and self._finished()

    def _finished(self) -> bool:
        """Nothing left to play (lock held)."""
        reply = self._reply
        return (reply is None or reply.buffer.ended) and all(r.settled for r in self._replies)

    def _start_reply(self) -> Reply:
        """Begin a new reply (lock held); the caller submits it once the lock is released."""
        reply = Reply(self._format, self._hold, self._on_word)
        self._reply = self._last_reply = reply
        self._filtered = reply.filtered
        self._seams = _Seams()
        self._replies.append(reply)
        reply.admitted.call_on_set(self._wake)
        reply.outcome.add_done_callback(self._played)
        return reply

    def _wake(self) -> None:
        with self._cond:
            self._wake_worker()

    def _played(self, outcome: concurrent.futures.Future[PlaybackReport]) -> None:
        """Playback's one report for a reply (any thread, no lock held)."""
        report = outcome.result()
        with self._cond:
            self._replies = [r for r in self._replies if not r.outcome.done()]
            if report.error is not None and self._error is None:
                exc = report.error
                self._error = exc if isinstance(exc, StreamError) else StreamError(f"playback failed: {exc}")
                self._error.__cause__ = exc
                self._done = self._closed = True
                reply = self._reply
                if reply is not None:
                    reply.cancel.set()
                    reply.buffer.clear()
            self._cond.notify_all()
        self._check_finished()

    def _check_finished(self) -> None:
        """Run the finished-callbacks if the stream just finished (the caller holds no lock)."""
        with self._cond:
            if not self._finish_callbacks or not self._over():
                return
            callbacks, self._finish_callbacks = self._finish_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - a waiter's bug must not kill the thread that finished the stream
                log.exception("voicekit: finished-callback %r raised", callback)

    def _may_synthesize(self) -> bool:
        """The current reply is admitted and still open (lock held)."""
        reply = self._reply
        return reply is not None and reply.admitted.is_set() and not reply.buffer.ended

    def _has_work(self) -> bool:
        return self._may_synthesize() and bool(self._pending or self._done)

    def _wake_worker(self) -> None:
        """Start the worker once the reply is admitted, if none runs (lock held).

        It starts at admission, before any text: admission happens where the
        stream is created or on the playback thread, so ``feed()`` (maybe on
        an event loop) never waits for a new thread to get going, which under
        a crowd of busy threads can take tens of milliseconds.
        """
        self._cond.notify_all()
        if self._worker is None and self._may_synthesize():
            self._worker = threading.Thread(target=self._run, name="voicekit-synth", daemon=True)
            self._worker.start()

    def _join_worker(self) -> None:
        with self._cond:
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join()

    def _queued_chars(self) -> int:
        """Text waiting for synthesis (lock held).

        Text the chunker holds back is not counted: it waits for more input,
        so counting it would make a producer that obeys ``buffer_full()`` wait
        for itself.
        """
        return self._pending_chars + self._unsynth_chars

    def _report_filtered(self, text: str) -> None:
        self._filtered.append(text)

    def _drain_text_pipeline(self, reply: Reply) -> str:
        """Empty the text stages, chunker and queue; returns their text, in order and as it came (lock held).

        It continues the reply's chunks exactly: the chunker's text from the end
        of the last chunk on, not re-cut into chunks, whose joints would add
        spaces. Queued text is returned as fed, not filtered: that is bounded
        work however much is queued, so an interrupt stays instant.
        """
        if reply.ssml:
            held = "".join(self._ssml) + self._sanitizer.flush()
        else:
            held = self._seams.rest + self._clean("", final=True)
        self._chunker.reset()
        held += "".join(self._pending)
        self._ssml.clear()
        self._pending.clear()
        self._pending_chars = 0
        return held

    def _clean(self, text: str, final: bool) -> str:
        """Plain text through the sanitizer and the speech filter, which runs the sanitizer itself."""
        stage = self._filter or self._sanitizer
        text = stage.feed(text)
        return text + stage.flush() if final else text

    def _chunk(self, text: str, final: bool) -> list[str]:
        """The chunks of ``text``, the chunker's input; ``final``: the reply's text ends here."""
        self._seams.feed(text)
        chunks = self._chunker.feed(text) if text else []
        return chunks + self._chunker.flush() if final else chunks

    def _cut(self, reply: Reply) -> tuple[list[tuple[str, int, float]], bool]:
        """Take queued text through filter and chunker (lock held).

        Returns the chunks with their offset in the reply's spoken text and the
        time they were ready, and whether this reply's text is complete.
        """
        taken = []
        size = 0
        while self._pending and size < _SLICE:
            piece = self._pending.popleft()
            taken.append(piece)
            size += len(piece)
        self._pending_chars -= size
        text = "".join(taken)
        final = self._done and not self._pending
        if reply.ssml:
            # a document: checked whole (ValueError if malformed: _run refuses the reply
            # before any request), then cut into documents the engine takes, or read as
            # its words by an engine without SSML
            self._ssml.append(self._sanitizer.feed(text))
            chunks = []
            if final:
                self._ssml.append(self._sanitizer.flush())
                document = as_document("".join(self._ssml).strip())
                if self._ssml_ok:
                    chunks = split_ssml(document, self._engine.max_chars)
                else:
                    words, markup = ssml_words(document)
                    self._filtered.extend(markup)
                    chunks = self._chunk(words, final=True)
                self._ssml.clear()
        else:
            chunks = self._chunk(self._clean(text, final), final)
        now = time.perf_counter()
        out = []
        for chunk in chunks:
            self._unsynth_chars += len(chunk)
            base = reply.add_chunk_text(chunk)
            self._seams.add(chunk, base)
            out.append((chunk, base, now))
        return out, final

    def _run(self) -> None:
        me = threading.current_thread()
        resampler = Resampler(self._samplerate)
        while True:
            with self._cond:
                while not self._has_work() or self._worker is not me:
                    if self._worker is not me or self._done or self._closed:
                        if self._worker is me:
                            self._worker = None
                        return
                    self._cond.wait()
                reply = self._reply
                assert reply is not None
                try:
                    chunks, final = self._cut(reply)
                except ValueError as exc:  # malformed SSML: refused whole, nothing was sent
                    self._fail(reply, exc, "")
                    if self._worker is me:
                        self._worker = None
                    return
                self._busy = reply
            try:
                spoken = self._speak(reply, resampler, chunks)
            finally:
                with self._cond:
                    if self._busy is reply:
                        self._busy = None
                    if not spoken and self._worker is me:
                        self._worker = None
            if not spoken:
                return
            if final and not reply.cancel.is_set():
                reply.buffer.end()
                with self._cond:
                    self._cond.notify_all()

    def _speak(self, reply: Reply, resampler: Resampler, chunks: list[tuple[str, int, float]]) -> bool:
        """Synthesize chunks into the reply; False if the engine failed (reported)."""
        for index, (chunk, base, ready) in enumerate(chunks):
            if reply.cancel.is_set():
                break
            writer = _ChunkWriter(self, reply, resampler, chunk, base, ready)
            try:
                self._synthesize(writer)
            except Exception as exc:  # noqa: BLE001 - engines fail in many ways; all are reported
                if reply.cancel.is_set():
                    break  # an interrupted call failing is the interrupt working
                self._fail(reply, exc, " ".join([chunk[writer.salvage() :], *(c for c, _, _ in chunks[index + 1 :])]))
                return False
            with self._cond:
                if self._reply is reply:
                    self._unsynth_chars = max(0, self._unsynth_chars - len(chunk))
        return True

    def _synthesize(self, writer: _ChunkWriter) -> None:
        reply, text = writer.reply, writer.text
        cancel = reply.cancel
        pieces = self._engine.synthesize(text, cancel, **_ssml_keyword(reply, self._engine))
        busy = 0.0  # inside the engine, not waiting for buffer room
        try:
            while True:
                asked = time.perf_counter()
                piece = next(pieces, None)
                busy += time.perf_counter() - asked
                if piece is None or cancel.is_set():
                    break
                writer.add(piece)
                reply.buffer.wait_below(self._config.lookahead, cancel)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
        if not cancel.is_set():
            writer.finish(busy)

    def _fail(self, reply: Reply, exc: Exception, unspoken: str) -> None:
        """The engine gave up: keep what was made, report the rest, accept no more text.

        ``unspoken`` is the end of the reply's spoken text that has no audio.
        """
        with self._cond:
            engine = getattr(exc, "engine", None) or self._engine.name
            unspoken_text = (self._seams.mend(unspoken) + self._drain_text_pipeline(reply)).strip()
            if self._error is None:
                error = EngineError(f"{engine} could not speak: {exc}", unspoken_text=unspoken_text, engine=engine)
                error.__cause__ = exc
                self._error = error
            self._done = True
            self._unsynth_chars = 0
            reply.buffer.end()
            self._cond.notify_all()


class _Seams:
    """Where a reply's chunks meet with nothing between them, so the unheard text gains no space there.

    A reply's spoken text joins its chunks with a space (``Reply``), but a
    chunk cut out of a word longer than ``max_text_chunk`` (a URL, a hash, a
    long CJK sentence) continues the one before it directly. Chunks hold every
    non-space character of the chunker's input, in order, so following that
    input tells which chunks are glued to the one before.
    """

    def __init__(self) -> None:
        self._text = ""  # the chunker's input from the end of the last chunk on, from _at
        self._at = 0
        self._glued: list[int] = []  # offsets in the spoken text of chunks glued to the one before
        self._end = 0  # the end of the spoken text

    @property
    def rest(self) -> str:
        """The chunker's input that is in no chunk yet."""
        return self._text[self._at :]

    def feed(self, text: str) -> None:
        if text:
            self._text, self._at = self._text[self._at :] + text, 0

    def add(self, chunk: str, base: int) -> None:
        """``chunk`` was placed at ``base`` in the spoken text (an SSML document is in no input: never glued)."""
        text, at = self._text, self._at
        if base and text[at : at + 1].strip():
            self._glued.append(base)
            # the unheard part of a reply is a slice of text and the lookahead at most: older seams never matter
            del self._glued[: bisect.bisect_left(self._glued, base - Reply.HISTORY_CHARS)]
        first = _NON_SPACE.search(text, at)
        start = first.start() if first else len(text)
        if text.startswith(chunk, start):
            self._at = start + len(chunk)
        else:  # the chunker squeezed a long run of whitespace inside the chunk
            self._at = start
            for char in itertools.islice(_NON_SPACE.finditer(text, start), len(_NON_SPACE.findall(chunk))):
                self._at = char.end()
        self._end = base + len(chunk)

    def mend(self, spoken: str) -> str:
        """``spoken``, the end of the reply's spoken text, without the spaces it has between glued chunks."""
        start = self._end - len(spoken)
        parts, at = [], 0
        for base in self._glued[bisect.bisect_right(self._glued, start) :]:
            parts.append(spoken[at : base - 1 - start])
            at = base - start
        parts.append(spoken[at:])
        return "".join(parts)


def _ssml_keyword(reply: Reply, engine: Engine) -> dict[str, bool]:
    """The reply's SSML decision rides with each of its chunks: engines never guess.

    Only SSML chunks pass the keyword, so engines without SSML keep the
    two-argument ``synthesize`` of the contract (they get an SSML reply's words).
    """
    return {"ssml": True} if reply.ssml and getattr(engine, "supports_ssml", False) else {}


class _ChunkWriter:
    """Takes one chunk's audio pieces into the reply: resample, word marks, report."""

    def __init__(self, stream: SpeechStream, reply: Reply, resampler: Resampler, text: str, base: int, ready: float):
        self.stream = stream
        self.reply = reply
        self._resampler = resampler
        self.text = text
        self._base = base
        self._ready = ready
        self._start = reply.frames_pushed
        self._engine = stream._engine.name
        self._marked = False
        self._marked_end = 0  # in the chunk: where the last word with a mark ends
        self._latency: float | None = None

    def add(self, piece: AudioChunk) -> None:
        if self._latency is None:
            self._latency = time.perf_counter() - self._ready
        self._engine = piece.engine or self._engine
        rate = self.stream._samplerate
        pcm = self._resampler.process(piece.pcm, piece.samplerate)
        for mark in piece.marks:
            self.reply.add_mark(self._start + round(mark.time * rate), self._base + mark.offset, mark.length)
            self._marked = True
            self._marked_end = max(self._marked_end, mark.offset + mark.length)
        self.reply.push(pcm)

    def salvage(self) -> int:
        """The engine failed mid-chunk: where in the chunk the unspoken text starts.

        The audio it delivered still plays, and a word counts as heard once its
        start has played, so the chunk splits exactly at the end of the last word
        that starts in that audio: heard before, unspoken after, no overlap. Engines
        with word marks say which words those are. For engines without (OpenAI),
        words are placed by the chunk's estimated timing: a word starts at its
        character offset divided by the stream's ``chars_per_second``.
        """
        reply = self.reply
        reply.push(self._resampler.flush())
        if self._marked:
            return self._marked_end
        rate, cps = self.stream._samplerate, self.stream._config.chars_per_second
        frames = reply.frames_pushed - self._start
        end = 0
        for m in _WORD.finditer(self.text):
            frame = round(m.start() / cps * rate)
            if frame >= frames:
                break
            reply.add_mark(self._start + frame, self._base + m.start(), len(m.group()))
            end = m.end()
        return end

    def finish(self, synthesis_time: float) -> None:
        reply = self.reply
        reply.push(self._resampler.flush())
        frames = reply.frames_pushed - self._start
        if not self._marked:
            reply.add_estimated_marks(self.text, self._base, self._start, frames)
        reply.mark_synthesized(self._base + len(self.text))
        stream = self.stream
        call_safely(
            stream._on_chunk,
            ChunkInfo(
                text=self.text,
                duration=frames / stream._samplerate,
                index=next(stream._chunk_index),
                engine=self._engine,
                latency=self._latency if self._latency is not None else 0.0,
                synthesis_time=synthesis_time,
            ),
        )
