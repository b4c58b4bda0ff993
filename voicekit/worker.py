"""The synthesis worker: a stream's chunks to audio in its reply, on one thread at a time.

It has the stream's :class:`~voicekit.text.pipeline.TextPipeline` cut the
queued text into chunks for the current reply (under the stream's lock, which
it shares), then, with no lock held, calls the engine, resamples to the
stream's rate, places the word marks and pushes the audio into the reply, at
most ``lookahead`` seconds ahead of playback. An interrupt that finds it
inside the engine abandons it: a cancelled network call may take its time to
return, and the next reply must not wait for it, so that one gets a new
thread while the old one ends on its own.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

from .reply import ChunkInfo, Reply, call_safely
from .resample import Resampler

if TYPE_CHECKING:
    from .contract import AudioChunk, Engine
    from .text.pipeline import TextPipeline

__all__ = ["SynthesisWorker"]

_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class _Batch:
    """Chunks of one reply, cut in one turn."""

    reply: Reply
    #: (text, offset in the reply's spoken text)
    chunks: list[tuple[str, int]]
    #: when their text was ready (``time.perf_counter()``)
    ready: float
    #: they end the reply's text
    final: bool
    #: they are SSML documents: the engine gets ``ssml=True``
    ssml: bool


class SynthesisWorker:
    """One stream's worker.

    It shares the stream's ``lock``, under which the worker reads ``reply()``
    (the reply taking text, if any) and ``done()`` (no more text will be fed)
    and cuts ``text``, and the stream calls :meth:`abandon`.
    ``fail(reply, exc, unspoken)`` reports a reply the engine gave up on (or
    malformed SSML); ``unspoken`` is the end of its spoken text with no audio.
    """

    def __init__(
        self,
        engine: Engine,
        lock: threading.Condition,
        text: TextPipeline,
        *,
        reply: Callable[[], Reply | None],
        done: Callable[[], bool],
        fail: Callable[[Reply, Exception, str], None],
        samplerate: int,
        lookahead: float,
        chars_per_second: float,
        on_chunk: Callable[[Any], Any] | None,
    ):
        self._engine = engine
        self._lock = lock
        self._text = text
        self._reply = reply
        self._done = done
        self._fail = fail
        self._samplerate = samplerate
        self._lookahead = lookahead
        self._cps = chars_per_second
        self._on_chunk = on_chunk
        self._thread: threading.Thread | None = None
        self._busy: Reply | None = None  # the reply the thread is synthesizing, outside the lock
        self._index = itertools.count()  # on_chunk_processed's index, over the stream's life

    def wake(self) -> None:
        """Text, its end, or the current reply's admission came (any thread): there may be work.

        A waiting thread looks again; once the reply is admitted, one starts if
        none runs. It starts at admission, before any text: admission happens
        where the stream is created or on the playback thread, so ``feed()``
        (maybe on an event loop) never waits for a new thread to get going,
        which under a crowd of busy threads can take tens of milliseconds.
        """
        with self._lock:
            self._lock.notify_all()
            if self._thread is None and _open(self._reply()):
                self._thread = threading.Thread(target=self._run, name="voicekit-synth", daemon=True)
                self._thread.start()

    def abandon(self, reply: Reply) -> None:
        """``reply`` was cancelled (lock held): a thread inside the engine for it may be stuck in the network."""
        if self._busy is reply:
            self._thread = None

    def join(self) -> None:
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        me = threading.current_thread()
        resampler = Resampler(self._samplerate)
        while True:
            with self._lock:
                batch = self._next(me)
                if batch is None:
                    return
                reply = self._busy = batch.reply
            spoken = False
            try:
                spoken = self._speak(batch, resampler)
            finally:
                with self._lock:
                    if self._busy is reply:
                        self._busy = None
                    if not spoken and self._thread is me:
                        self._thread = None
            if not spoken:
                return
            if batch.final and not reply.cancelled:
                reply.end()
                with self._lock:
                    self._lock.notify_all()

    def _next(self, me: threading.Thread) -> _Batch | None:
        """Wait for this thread's next batch (lock held); None: the thread is done."""
        while self._thread is me:
            batch = self._take()
            if batch is not None:
                return batch
            if self._done():
                self._thread = None
                break
            self._lock.wait()
        return None

    def _take(self) -> _Batch | None:
        """The current reply's next chunks (lock held); None while it is not admitted or has no text."""
        reply, done = self._reply(), self._done()
        if not _open(reply) or not (self._text.queued or done):
            return None
        try:
            chunks, final = self._text.cut(done, reply.add_chunk_text)
        except ValueError as exc:  # malformed SSML: refused whole, nothing was sent
            self._fail(reply, exc, "")
            return None
        return _Batch(reply, chunks, time.perf_counter(), final, self._text.ssml_documents)

    def _speak(self, batch: _Batch, resampler: Resampler) -> bool:
        """Synthesize a batch into its reply; False if the engine failed (reported)."""
        reply, chunks = batch.reply, batch.chunks
        for index, (text, base) in enumerate(chunks):
            if reply.cancelled:
                break
            writer = _ChunkWriter(reply, resampler, text, base, batch.ready, self._engine.name)
            try:
                self._synthesize(writer, batch.ssml)
            except Exception as exc:  # noqa: BLE001 - engines fail in many ways; all are reported
                if reply.cancelled:
                    break  # an interrupted call failing is the interrupt working
                unspoken = text[writer.salvage(self._cps) :]
                self._fail(reply, exc, " ".join([unspoken, *(c for c, _ in chunks[index + 1 :])]))
                return False
        return True

    def _synthesize(self, writer: _ChunkWriter, ssml: bool) -> None:
        reply = writer.reply
        cancel = reply.cancel_signal
        # the reply's SSML decision rides with each of its chunks: engines never guess. Only
        # SSML chunks pass the keyword, so engines without SSML keep the contract's two arguments
        pieces = self._engine.synthesize(writer.text, cancel, **({"ssml": True} if ssml else {}))
        busy = 0.0  # inside the engine, not waiting for buffer room
        try:
            while True:
                asked = time.perf_counter()
                piece = next(pieces, None)
                busy += time.perf_counter() - asked
                if piece is None or cancel.is_set():
                    break
                writer.add(piece)
                reply.wait_for_room(self._lookahead)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
        if cancel.is_set():
            return
        frames = writer.finish()
        info = ChunkInfo(
            text=writer.text,
            duration=frames / self._samplerate,
            index=next(self._index),
            engine=writer.engine,
            latency=writer.latency if writer.latency is not None else 0.0,
            synthesis_time=busy,
        )
        call_safely(self._on_chunk, info)


def _open(reply: Reply | None) -> TypeGuard[Reply]:
    """``reply`` may be synthesized now: admitted by playback, and its audio not ended."""
    return reply is not None and reply.admitted and not reply.ended


class _ChunkWriter:
    """Takes one chunk's audio pieces into the reply: resampled, with its word marks."""

    def __init__(self, reply: Reply, resampler: Resampler, text: str, base: int, ready: float, engine: str):
        self.reply = reply
        self.text = text
        self.engine = engine  # a fallback chain's pieces name the member that spoke
        self.latency: float | None = None  # from the text being ready to the first audio
        self._resampler = resampler
        self._base = base
        self._ready = ready
        self._start = reply.frames_pushed
        self._marked = False
        self._marked_end = 0  # in the chunk: where the last word with a mark ends

    def add(self, piece: AudioChunk) -> None:
        if self.latency is None:
            self.latency = time.perf_counter() - self._ready
        self.engine = piece.engine or self.engine
        rate = self.reply.samplerate
        pcm = self._resampler.process(piece.pcm, piece.samplerate)
        for mark in piece.marks:
            self.reply.add_mark(self._start + round(mark.time * rate), self._base + mark.offset, mark.length)
            self._marked = True
            self._marked_end = max(self._marked_end, mark.offset + mark.length)
        self.reply.push(pcm)

    def salvage(self, chars_per_second: float) -> int:
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
        rate = reply.samplerate
        frames = reply.frames_pushed - self._start
        end = 0
        for m in _WORD.finditer(self.text):
            frame = round(m.start() / chars_per_second * rate)
            if frame >= frames:
                break
            reply.add_mark(self._start + frame, self._base + m.start(), len(m.group()))
            end = m.end()
        return end

    def finish(self) -> int:
        """The chunk's audio is all there: returns its frames."""
        reply = self.reply
        reply.push(self._resampler.flush())
        frames = reply.frames_pushed - self._start
        if not self._marked:
            reply.add_estimated_marks(self.text, self._base, self._start, frames)
        reply.mark_synthesized(self._base, self.text)
        return frames
