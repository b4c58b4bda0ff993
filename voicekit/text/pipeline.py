"""One stream's text, from ``feed()`` to chunks: queued as fed, sanitized, filtered, cut into sentences.

``feed`` only queues, because it runs on the caller's thread (maybe an event
loop); ``cut`` runs the stages on the synthesis worker, a slice at a time.
There is no thread and no lock here: the stream calls every method under its
own lock, one reply at a time (``start`` begins the next).

The SSML policy: a reply's first text decides whether it is SSML. An SSML
reply is one document, checked whole at its end, then cut into documents for
an engine that reads SSML, or read as its words by one that does not.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from .chunker import SentenceChunker
from .sanitize import Sanitizer
from .speech_filter import SpeechFilter
from .ssml import as_document, is_ssml, split_ssml, ssml_words

__all__ = ["TextPipeline"]

# how much queued text one cut() takes; bounds how long the stream's lock is held
_SLICE = 16_384
_NON_SPACE = re.compile(r"\S")


class _RecentText:
    """Text pieces in order, keeping about the newest ``limit`` characters (whole pieces)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pieces: deque[str] = deque()
        self._chars = 0

    def append(self, text: str) -> None:
        self._pieces.append(text)
        self._chars += len(text)
        while len(self._pieces) > 1 and self._chars - len(self._pieces[0]) >= self._limit:
            self._chars -= len(self._pieces.popleft())

    def extend(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.append(text)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._pieces))

    def __bool__(self) -> bool:
        return bool(self._pieces)


class TextPipeline:
    """Sanitizer, speech filter (optional) and sentence chunker, with the reply's records.

    ``ssml_chars`` is the longest SSML document the engine takes, or None if it
    reads no SSML.
    """

    def __init__(
        self,
        *,
        max_chars: int,
        min_chars: int,
        first_fragment: bool,
        language: str,
        speech_filter: bool,
        ssml_chars: int | None,
    ) -> None:
        self._ssml_chars = ssml_chars
        self._pending: deque[str] = deque()
        self._queued = 0
        self._document: list[str] = []
        self.start(0)
        # the speech filter sanitizes its own input, so that both stages' reports keep the input's order
        self._sanitizer = Sanitizer(self._report)
        self._filter = SpeechFilter(on_filtered=self._report, sanitize=True) if speech_filter else None
        self._chunker = SentenceChunker(
            first_fragment=first_fragment, max_chars=max_chars, min_chars=min_chars, language=language
        )

    def start(self, history: int) -> None:
        """A new reply: its records (fed, filtered, seams) keep about its newest ``history`` characters."""
        self._ssml = False
        self._fed = _RecentText(history)
        self._filtered = _RecentText(history)
        self._seams = _Seams(history)

    def feed(self, text: str, ssml: bool | None) -> None:
        """Queue ``text`` as fed; the reply's first text decides whether it is SSML."""
        if not self._fed:
            self._ssml = is_ssml(text) if ssml is None else bool(ssml)
        self._fed.append(text)
        self._pending.extend(text[i : i + _SLICE] for i in range(0, len(text), _SLICE))
        self._queued += len(text)

    @property
    def queued(self) -> bool:
        return bool(self._pending)

    @property
    def queued_chars(self) -> int:
        """Text queued as fed; text the stages hold back waiting for more is not counted."""
        return self._queued

    @property
    def ssml_documents(self) -> bool:
        """The reply's chunks are SSML documents for the engine."""
        return self._ssml and self._ssml_chars is not None

    @property
    def fed_text(self) -> str:
        return "".join(self._fed)

    @property
    def filtered_text(self) -> str:
        return " ".join(self._filtered)

    def cut(self, done: bool, place: Callable[[str], int]) -> tuple[list[tuple[str, int]], bool]:
        """Take up to a slice of queued text through the stages.

        ``done``: no more text will be fed. Each chunk that is ready goes to
        ``place``, which puts it in the reply's spoken text and returns its
        offset there. Returns the chunks with their offsets, and whether the
        reply's text is complete. A malformed SSML reply raises ``ValueError``
        before any of it is placed.
        """
        taken = []
        size = 0
        while self._pending and size < _SLICE:
            piece = self._pending.popleft()
            taken.append(piece)
            size += len(piece)
        self._queued -= size
        text = "".join(taken)
        final = done and not self._pending
        chunks = self._cut_document(text, final) if self._ssml else self._chunk(self._clean(text, final), final)
        placed = []
        for chunk in chunks:
            base = place(chunk)
            self._seams.add(chunk, base)
            placed.append((chunk, base))
        return placed, final

    def drain(self) -> Callable[[str], str]:
        """Empty the stages and the queue of a reply that ends unheard (interrupted, or failed).

        Returns how to complete its unheard text: given the end of its spoken
        text that was not heard, that end without the spaces it has between
        glued chunks, then the text the stages and the queue held, stripped.
        The held text continues the reply's chunks exactly: the chunker's text
        from the end of the last chunk on, not re-cut into chunks, whose joints
        would add spaces. Queued text is returned as fed, not filtered: that is
        bounded work however much is queued, so an interrupt stays instant.
        """
        if self._ssml:
            held = "".join(self._document) + self._sanitizer.flush()
        else:
            held = self._seams.rest + self._clean("", final=True)
        self._chunker.reset()
        held += "".join(self._pending)
        self._document.clear()
        self._pending.clear()
        self._queued = 0
        seams = self._seams
        return lambda spoken: (seams.mend(spoken) + held).strip()

    def _cut_document(self, text: str, final: bool) -> list[str]:
        """An SSML reply is checked whole at its end (``ValueError`` if malformed: the
        stream refuses it before any request), then cut into documents the engine
        takes, or read as its words by an engine without SSML."""
        self._document.append(self._sanitizer.feed(text))
        if not final:
            return []
        self._document.append(self._sanitizer.flush())
        document = as_document("".join(self._document).strip())
        if self._ssml_chars is not None:
            chunks = split_ssml(document, self._ssml_chars)
        else:
            words, markup = ssml_words(document)
            self._filtered.extend(markup)
            chunks = self._chunk(words, final=True)
        self._document.clear()
        return chunks

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

    def _report(self, text: str) -> None:
        self._filtered.append(text)


class _Seams:
    """Where a reply's chunks meet with nothing between them, so the unheard text gains no space there.

    A reply's spoken text joins its chunks with a space (``Reply``), but a
    chunk cut out of a word longer than ``max_text_chunk`` (a URL, a hash, a
    long CJK sentence) continues the one before it directly. Chunks hold every
    non-space character of the chunker's input, in order, so following that
    input tells which chunks are glued to the one before.
    """

    def __init__(self, history: int) -> None:
        self._history = history
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
            del self._glued[: bisect.bisect_left(self._glued, base - self._history)]
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
