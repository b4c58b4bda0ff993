"""A chain of engines that loses no text when one of them fails.

Rules, per text chunk handed to :meth:`FallbackEngine.synthesize`:

1. The chunk goes to the first engine. If it fails before yielding any audio,
   the same text goes to the next engine, and so on down the list.
2. If an engine fails after yielding audio, that audio is kept (it may already
   be playing). The next engine continues the chunk from the last word whose
   start mark the failing engine yielded: that word's audio may have been cut,
   so it is spoken again. An engine without word marks (OpenAI) has no such
   point, so the next engine restarts the text that engine was given; so does
   every engine of an SSML chunk (a document can't be cut at a word).
3. Every yielded :class:`AudioChunk` names the engine that made it
   (``AudioChunk.engine``); marks are shifted so that offsets index the whole
   chunk text and times count from the start of the chunk's first audio.
   Engines may produce different samplerates; the stream resamples each piece.
4. When the last engine fails too, :class:`EngineError` is raised with
   ``unspoken_text`` set to the part of the chunk that was never produced.
5. An interrupt (``cancel`` set, or the generator closed) stops the chain; it
   never moves on to another engine.
6. An engine that failed goes to the back of the line for ``cooldown``
   seconds, so a dead primary's timeouts (connect timeout x retries) are paid
   once, not on every chunk: it is tried only if every other engine fails too.
   The first chunk after the cooldown probes it in its place (other chunks
   wait for that probe): success puts it back; another failure doubles its
   cooldown (up to ``max_cooldown``).

Capabilities are the members': ``ssml`` when any member reads SSML
(an SSML chunk goes whole, ``ssml=True``, to those members, and as its plain
text, without word marks, to the others).

``samplerate`` is the first engine's; ``max_chars`` the smallest of all, so
every engine accepts every chunk. ``voices``, ``set_voice`` and
``set_property`` go to the first engine only (voice ids differ between
providers); ``close`` closes every engine, and the chain refuses work after it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..contract import AudioChunk, Engine, EngineCapabilities, Voice, WordMark, capabilities_of, language_of
from ..errors import EngineError

__all__ = ["FallbackEngine"]

log = logging.getLogger(__name__)


@dataclass
class _Health:
    until: float = 0.0  # skipped until this monotonic time
    cooldown: float = 0.0  # the last cooldown given; 0 while healthy


class FallbackEngine:
    """Implements :class:`voicekit.contract.Engine` over ``engines``, tried in order."""

    def __init__(self, engines: Sequence[Engine], *, cooldown: float = 30.0, max_cooldown: float = 300.0) -> None:
        if not engines:
            raise ValueError("FallbackEngine needs at least one engine")
        if not 0 <= cooldown <= max_cooldown:
            raise ValueError(f"cooldown must be from 0 to max_cooldown ({max_cooldown}), got {cooldown!r}")
        self.engines = list(engines)
        self.name = "fallback(" + ", ".join(e.name for e in self.engines) + ")"
        self.samplerate = self.engines[0].samplerate
        self.max_chars = min(e.max_chars for e in self.engines)
        members = [capabilities_of(e) for e in self.engines]
        self.capabilities = EngineCapabilities(
            ssml=any(c.ssml for c in members),
            word_marks=all(c.word_marks for c in members),  # a chunk may come from any of them
            languages=members[0].languages,  # voices and languages are the first engine's
        )
        self.cooldown, self.max_cooldown = cooldown, max_cooldown
        self._health = [_Health() for _ in self.engines]
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.engines!r})"

    def synthesize(self, text: str, cancel: threading.Event, *, ssml: bool = False) -> Iterator[AudioChunk]:
        run = _Run(self, text, ssml)
        for engine in run.engines():
            text_for, ssml_for = run.request(engine)
            pieces: Iterator[AudioChunk] = iter(())
            try:
                pieces = iter(engine.synthesize(text_for, cancel, **ssml_for))
                for piece in pieces:
                    yield run.shifted(piece, engine)
                run.succeeded(engine)
                return
            except Exception as exc:  # noqa: BLE001 - any failure of one engine is the next one's turn
                if cancel.is_set():
                    return
                run.failed(engine, exc)
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()
        raise run.error()

    def voices(self) -> list[Voice]:
        return self.engines[0].voices()

    @property
    def language(self) -> str | None:
        """The first engine's voice language, when it reports one."""
        return language_of(self.engines[0])

    def set_voice(self, voice_id: str) -> None:
        self.engines[0].set_voice(voice_id)

    def set_property(self, name: str, value: float) -> None:
        self.engines[0].set_property(name, value)

    def close(self) -> None:
        self._closed = True
        for engine in self.engines:
            engine.close()

    # -- health -----------------------------------------------------------------------------

    def _order(self) -> list[int]:
        """Indices of the engines in the order one chunk tries them: those cooling down last."""
        now = time.monotonic()
        with self._lock:
            cooling = [health.until > now for health in self._health]
        return sorted(range(len(self.engines)), key=lambda i: cooling[i])

    def _attempt(self, index: int) -> None:
        """``index`` is about to be tried: a probe after its cooldown keeps other chunks off it meanwhile."""
        with self._lock:
            health = self._health[index]
            now = time.monotonic()
            if health.cooldown and health.until <= now:
                health.until = now + health.cooldown

    def _report(self, index: int, failed: bool) -> None:
        with self._lock:
            health = self._health[index]
            if not failed:
                health.until, health.cooldown = 0.0, 0.0
                return
            health.cooldown = min(health.cooldown * 2, self.max_cooldown) if health.cooldown else self.cooldown
            health.until = time.monotonic() + health.cooldown


class _Run:
    """One chunk going down the chain: what each engine is asked, and how its audio is placed."""

    def __init__(self, chain: FallbackEngine, text: str, ssml: bool) -> None:
        if chain._closed:
            raise EngineError(f"{chain.name} is closed", unspoken_text=text, engine=chain.name)
        self.chain, self.text, self.ssml = chain, text, ssml
        self.start = 0  # where in ``text`` the current engine begins
        self.resume = 0  # where the next engine would begin if this one failed now
        self.elapsed = 0.0  # seconds of audio yielded for ``text`` so far
        self.base_time = 0.0
        self.failures: list[str] = []
        self._index: dict[int, int] = {}

    def engines(self) -> Iterator[Engine]:
        for index in self.chain._order():
            engine = self.chain.engines[index]
            self.chain._attempt(index)
            self._index[id(engine)] = index
            self.base_time, self.resume = self.elapsed, self.start
            yield engine

    def request(self, engine: Engine) -> tuple[str, dict[str, bool]]:
        """What ``engine`` is asked: the text it continues from, as it can read it, and the ``ssml`` keyword."""
        if not self.ssml:
            return self.text[self.start:], {}
        if capabilities_of(engine).ssml:
            return self.text, {"ssml": True}
        return _ssml_text(self.text), {}

    def shifted(self, piece: AudioChunk, engine: Engine) -> AudioChunk:
        if self.ssml and not capabilities_of(engine).ssml:
            marks: tuple[WordMark, ...] = ()  # offsets into the plain text don't index the document
        else:
            marks = tuple(WordMark(m.offset + self.start, m.length, m.time + self.base_time) for m in piece.marks)
        if marks and not self.ssml:
            self.resume = max(marks, key=lambda m: m.time).offset
        self.elapsed += piece.duration
        return AudioChunk(piece.pcm, piece.samplerate, marks, piece.engine or engine.name)

    def succeeded(self, engine: Engine) -> None:
        self.chain._report(self._index[id(engine)], failed=False)

    def failed(self, engine: Engine, exc: Exception) -> None:
        self.chain._report(self._index[id(engine)], failed=True)
        self.failures.append(f"{engine.name}: {exc}")
        log.warning("%s failed, the next engine takes over if there is one: %s", engine.name, exc)
        self.start = self.resume

    def error(self) -> EngineError:
        return EngineError("every engine failed: " + "; ".join(self.failures),
                           unspoken_text=self.text[self.start:], engine=self.chain.name)


def _ssml_text(document: str) -> str:
    """The words of an SSML document, for an engine that reads none, read as the stream reads them."""
    from ..text.ssml import ssml_words  # only for this case, so engine modules load no text stage

    try:
        return ssml_words(document)[0]
    except ValueError:  # the stream refuses malformed SSML before this; a direct caller gets it spoken as is
        return document
