"""A chain of engines that loses no text when one of them fails.

Rules, per text chunk handed to :meth:`FallbackEngine.synthesize`:

1. The chunk goes to the first engine. If it fails before yielding any audio,
   the same text goes to the next engine, and so on down the list.
2. If an engine fails after yielding audio, that audio is kept (it may already
   be playing). The next engine continues the chunk from the last word whose
   start mark the failing engine yielded: that word's audio may have been cut,
   so it is spoken again. An engine without word marks (OpenAI) has no such
   point, so the next engine restarts the text that engine was given.
3. Every yielded :class:`AudioChunk` names the engine that made it
   (``AudioChunk.engine``); marks are shifted so that offsets index the whole
   chunk text and times count from the start of the chunk's first audio.
   Engines may produce different samplerates; the stream resamples each piece.
4. When the last engine fails too, :class:`EngineError` is raised with
   ``unspoken_text`` set to the part of the chunk that was never produced.
5. An interrupt (``cancel`` set, or the generator closed) stops the chain; it
   never moves on to another engine.

``samplerate`` is the first engine's; ``max_chars`` the smallest of all, so
every engine accepts every chunk. ``voices``, ``set_voice`` and
``set_property`` go to the first engine only (voice ids differ between
providers); ``close`` closes every engine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence

from ..engine import AudioChunk, Engine, Voice, WordMark
from ..errors import EngineError

__all__ = ["FallbackEngine"]

log = logging.getLogger(__name__)


class FallbackEngine:
    """Implements :class:`voicekit.engine.Engine` over ``engines``, tried in order."""

    def __init__(self, engines: Sequence[Engine]) -> None:
        if not engines:
            raise ValueError("FallbackEngine needs at least one engine")
        self.engines = list(engines)
        self.name = "fallback(" + ", ".join(e.name for e in self.engines) + ")"
        self.samplerate = self.engines[0].samplerate
        self.max_chars = min(e.max_chars for e in self.engines)

    def __repr__(self) -> str:
        return f"FallbackEngine({self.engines!r})"

    def synthesize(self, text: str, cancel: threading.Event) -> Iterator[AudioChunk]:
        start = 0  # where in ``text`` the current engine begins
        elapsed = 0.0  # seconds of audio yielded for ``text`` so far
        failures = []
        for engine in self.engines:
            base_time = elapsed
            resume = start
            pieces = iter(engine.synthesize(text[start:], cancel))
            try:
                for piece in pieces:
                    marks = tuple(WordMark(m.offset + start, m.length, m.time + base_time) for m in piece.marks)
                    if marks:
                        resume = max(marks, key=lambda m: m.time).offset
                    elapsed += piece.duration
                    yield AudioChunk(piece.pcm, piece.samplerate, marks, piece.engine or engine.name)
                return
            except Exception as exc:  # noqa: BLE001 - any failure of one engine is the next one's turn
                if cancel.is_set():
                    return
                failures.append(f"{engine.name}: {exc}")
                next_step = "no engine left" if engine is self.engines[-1] else "falling back"
                log.warning("%s failed (%s): %s", engine.name, next_step, exc)
                start = resume
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()
        raise EngineError("every engine failed: " + "; ".join(failures), unspoken_text=text[start:], engine=self.name)

    def voices(self) -> list[Voice]:
        return self.engines[0].voices()

    def set_voice(self, voice_id: str) -> None:
        self.engines[0].set_voice(voice_id)

    def set_property(self, name: str, value: float) -> None:
        self.engines[0].set_property(name, value)

    def close(self) -> None:
        for engine in self.engines:
            engine.close()

