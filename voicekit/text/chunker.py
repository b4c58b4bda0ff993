"""Streaming sentence chunker: cuts text arriving token by token into speakable chunks.

Every decision depends only on the text, never on how it was split into ``feed()`` calls,
and is taken at the latest when the first non-space character after a terminator arrives
(after an abbreviation or an ordinal: once the next word is complete, as that word decides).
Each character is scanned once (regexes jump over plain text), so time is linear in the input.
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache

from . import rules
from .rules import WAIT, _Wait, parse_marker

FIRST_FRAGMENT_MIN_CHARS = 10  # a first fragment shorter than this is not worth a cut...
# ...unless it ends with a comma: an opening "Sure," or "Well," is said as a phrase of its own,
# and cutting there starts the audio one word into a streamed reply ("Hi," and "So," are too short)
FIRST_FRAGMENT_MIN_CHARS_AT_COMMA = 5
TITLE_MAX_CHARS = 60  # a line this short without a terminator, before a capital, is a title or label
_NEXT_WORD_MAX = 40  # a longer word after an abbreviation is read as not starting a sentence

_T, _S, _C = re.escape(rules.TERMINATORS), re.escape(rules.STRONG_TERMINATORS), re.escape(rules.CLOSERS)
_E, _BULLETS = rules.EMOJI, re.escape(rules.INLINE_BULLETS)
_CLAUSE_WEAK = re.escape(rules.CLAUSE_MARKS)
_CLAUSE_NOW = "—" + rules.STRONG_CLAUSE_MARKS  # clause breaks that need no space after them
_NON_SPACE = re.compile(r"\S")
_NO_CHUNK = -1  # ``_start`` while no chunk is open
_TERMINATOR_RUN = re.compile(f"[{_T}]*")
_CLOSER_RUN = re.compile(f"[{_C}]*")
_EMOJI_RUN = re.compile(f"[{_E}]*")
_EMOJI_CHAR = re.compile(f"[{_E}]")
_EMOJI_MIN = min(c for c in _E if c != "-")  # no character below this is an emoji
# Closers that never open anything: after a space they still close the cluster ("Viens ? »").
_CLOSE_ONLY = "".join(c for c in rules.CLOSERS if c not in rules.OPENERS)
_STRONG = re.compile(f"[{_S}]")
_OPENER_RUN = re.compile(f"[{re.escape(rules.OPENERS)}]*")
_WORD = re.compile(r"[^\W\d_]*")
# Characters the scanner must look at; the rest is skipped by regex.
_MARKS = f"[{_T}{_BULLETS}\n{_E}]"
_MARKS_FIRST = f"[{_T}{_BULLETS}\n{_E}{_CLAUSE_WEAK}{re.escape(_CLAUSE_NOW)}–-]"  # + first-fragment clauses
_INTERESTING = re.compile(_MARKS)
_INTERESTING_FIRST = re.compile(_MARKS_FIRST)
# What stops the fast path of feed(), which appends text without scanning: anything that may
# need a decision (a weak terminator followed by a letter or digit, as in "v2.0.1", never
# does), and whitespace to squeeze or to remember at the end.
_PLAIN = re.compile(f"[{_T}](?![^\\s{_T}{_C}])|[{_S}{_BULLETS}\n{_E}]|\\s{{9,}}|\\s\\Z")
_PLAIN_FIRST = re.compile(_PLAIN.pattern + f"|[{_CLAUSE_WEAK}–-](?!\\S)|[{re.escape(_CLAUSE_NOW)}]")
_CLAUSE = re.compile(f"[{_CLAUSE_WEAK}](?=\\s)|[{re.escape(_CLAUSE_NOW)}]|(?<=\\s)[-–](?=\\s)")
_LAST_SPACE = re.compile(r"\s(?=\S*\Z)")
_LONG_SPACE = re.compile(r"\s{9,}")
_KEEP_SPACES = 8  # longer whitespace runs are squeezed (keeping up to two newlines) to bound the buffer

_COMPACT_AFTER = 256  # drop emitted text in batches: copying on every feed() would dominate

# Scanner modes.
_START, _SCAN, _CLUSTER, _AFTER, _NEWLINE = range(5)


def _squeeze(run: str, kept: int, newlines: int) -> tuple[str, int, int]:
    """Keep the head of a whitespace run and enough newlines to still see a blank line."""
    out = []
    for c in run:
        if kept < _KEEP_SPACES or (c == "\n" and newlines < 2):
            out.append(c)
            kept += 1
            newlines += c == "\n"
    return "".join(out), kept, newlines


def _squeeze_inner(match: re.Match[str]) -> str:
    return _squeeze(match.group(), 0, 0)[0]


class SentenceChunker:
    """Incremental sentence splitter for text that arrives in pieces (e.g. LLM tokens).

    ``feed(text)`` returns the chunks that are complete, ``flush()`` the rest; after ``flush()``
    or ``reset()`` a new utterance starts. With ``first_fragment`` the first chunk of an
    utterance may end at a clause break (, ; : or a dash) so speech starts sooner.
    ``max_chars`` is a hard cap on every chunk; sentences shorter than ``min_chars`` (capped at
    ``max_chars``) are merged with the next one, but never across a blank line or list item,
    and a one-word sentence ("Sure." "Okay!" "好。") always stands alone.
    Chunks are stripped of surrounding whitespace and never empty.

    ``language`` picks the rules for periods: titles, abbreviations and ordinals ("Sr.",
    "Am 3. Oktober"); see :func:`voicekit.text.rules.languages`. The terminators of every
    language (。！？ । ؟ ...) end sentences whatever the language.
    """

    def __init__(
        self, *, first_fragment: bool = True, max_chars: int = 250, min_chars: int = 4, language: str = "en"
    ) -> None:
        for name, value in (("max_chars", max_chars), ("min_chars", min_chars)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {value!r}")
        if max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, got {max_chars}")
        if min_chars < 0:
            raise ValueError(f"min_chars must not be negative, got {min_chars}")
        self._rules = rules.language(language)
        self.language = self._rules.code
        self.first_fragment = bool(first_fragment)
        self.max_chars = max_chars
        self.min_chars = min(min_chars, max_chars)  # a tiny max_chars must not make the default invalid
        self._first_min = max(self.min_chars, FIRST_FRAGMENT_MIN_CHARS)
        self._first_min_at_comma = max(self.min_chars, FIRST_FRAGMENT_MIN_CHARS_AT_COMMA)
        self._steps = (self._start_step, self._scan_step, self._cluster_step, self._after_step, self._newline_step)
        self.reset()

    def reset(self) -> None:
        """Drop pending text and start a new utterance."""
        self._buf = ""
        self._pos = 0  # next index to scan
        self._start = _NO_CHUNK  # first non-space index of the current chunk
        self._mode = _START
        self._continued = False  # the next chunk continues a cut sentence: no list marker check
        self._first = self.first_fragment  # a clause cut is still allowed in this utterance
        self._list_next: tuple[str, str] | None = None  # the marker that would start the next item
        self._cstart = self._cend = 0  # terminator cluster, e.g. '?!"' or '. . .', or an emoji run
        self._tail = 0  # end of the emoji that follow the cluster: "Done! 🎉"
        self._emoji = False  # the cluster is an emoji run after a word
        self._closing = False  # the cluster reached its closing quotes/brackets
        self._line_begin = True  # the next chunk starts a line
        self._line_chunk = False  # the current chunk started a line: it may be a title
        self._space_kept = self._newlines_kept = 0  # whitespace run crossing feed() calls
        self._plain_room = -1  # chars feed() may append without scanning (-1: scan everything)
        self._plain = _PLAIN

    def feed(self, text: str) -> list[str]:
        """Add text; return the chunks that are now complete."""
        if not isinstance(text, str):
            raise TypeError(f"feed() takes str, got {type(text).__name__}")
        n = len(text)
        if self._plain_room >= n and not self._plain.search(text):
            # Plain text inside a sentence: nothing to decide, skip the scanner.
            self._buf += text
            self._pos += n
            self._plain_room -= n
            return []
        if not text:
            return []
        if self._space_kept or text[-1].isspace() or _LONG_SPACE.search(text):
            text = self._squeeze_spaces(text)
        self._buf += text
        out: list[str] = []
        self._scan(out, final=False)
        if self._pos > _COMPACT_AFTER:
            self._compact()
        self._arm_fast_path()
        return out

    def _arm_fast_path(self) -> None:
        """Allow plain tokens to skip the scanner while nothing is pending and the cap is far."""
        self._plain = _PLAIN_FIRST if self._first else _PLAIN
        idle = self._mode == _SCAN and self._pos == len(self._buf) and not self._space_kept
        if idle and self._list_next is None:
            self._plain_room = self._start + self.max_chars - len(self._buf)
        else:
            self._plain_room = -1

    def flush(self) -> list[str]:
        """End the utterance: return every remaining chunk and start a new utterance."""
        out: list[str] = []
        self._scan(out, final=True)
        if self._start != _NO_CHUNK:
            self._emit(out, len(self._buf))
        self.reset()
        return out

    # -- input ------------------------------------------------------------------------------

    def _squeeze_spaces(self, text: str) -> str:
        lead = len(text) - len(text.lstrip())
        if lead < len(text) and self._space_kept + lead <= _KEEP_SPACES and not _LONG_SPACE.search(text):
            # The usual token: nothing to squeeze, only the trailing run to remember.
            trail = len(text) - len(text.rstrip())
            self._space_kept = trail
            self._newlines_kept = text.count("\n", len(text) - trail) if trail else 0
            return text
        head, self._space_kept, self._newlines_kept = _squeeze(
            text[:lead], self._space_kept, self._newlines_kept
        )
        if lead == len(text):
            return head
        body = text[lead:].rstrip()
        tail, self._space_kept, self._newlines_kept = _squeeze(text[lead + len(body) :], 0, 0)
        return head + _LONG_SPACE.sub(_squeeze_inner, body) + tail

    def _compact(self) -> None:
        """Drop text that is already emitted, shifting the saved indices."""
        live = [self._pos] if self._start == _NO_CHUNK else [self._pos, self._start]
        if self._mode in (_CLUSTER, _AFTER):
            live.append(self._cstart)
        keep = min(live)
        if keep:
            self._buf = self._buf[keep:]
            self._pos -= keep
            self._cstart -= keep
            self._cend -= keep
            self._tail -= keep
            if self._start != _NO_CHUNK:
                self._start -= keep

    # -- scanner ----------------------------------------------------------------------------

    def _scan(self, out: list[str], final: bool) -> None:
        steps = self._steps
        while True:
            if self._start == _NO_CHUNK:
                m = _NON_SPACE.search(self._buf, self._pos)
                if m is None:
                    self._line_begin = self._line_begin or self._buf.find("\n", self._pos) >= 0
                    self._pos = len(self._buf)
                    return
                self._line_chunk = self._line_begin or self._buf.find("\n", self._pos, m.start()) >= 0
                self._line_begin = False
                self._start = self._pos = m.start()
            if not steps[self._mode](out, final):
                return

    def _start_step(self, out: list[str], final: bool) -> bool:
        """A chunk begins: a list marker ("2." "b)" "•") is not a sentence end."""
        if self._continued:
            self._continued = False
        else:
            marker = parse_marker(self._buf, self._start, final)
            if marker is WAIT:
                return False
            self._list_next = marker.successor if marker else None
            if marker:
                self._pos = marker.end
        self._mode = _SCAN
        return True

    def _scan_step(self, out: list[str], final: bool) -> bool:
        buf, start, pos = self._buf, self._start, self._pos
        limit = start + self.max_chars
        if pos > limit:
            self._cap_cut(out)
            return True
        end = min(len(buf), limit + 1)
        m = (_INTERESTING_FIRST if self._first else _INTERESTING).search(buf, pos, end)
        k = m.start() if m else end
        if self._list_next is not None:
            item = _next_item_pattern(self._list_next[0]).search(buf, pos, k)
            if item is not None:
                return self._inline_item(out, item.start(), final)
        if m is None:
            self._pos = end
            return end > limit
        c = buf[k]
        if c in rules.TERMINATORS:
            self._cstart = self._pos = k
            self._closing = self._emoji = False
            self._mode = _CLUSTER
        elif c == "\n":
            self._pos = k
            self._mode = _NEWLINE
        elif c in rules.INLINE_BULLETS:
            if k > start and buf[k - 1].isspace():
                self._emit(out, k)  # the bullet starts the next chunk
                self._mode = _START
                self._pos = k
            else:
                self._pos = k + 1
        elif _EMOJI_CHAR.match(c):
            # An emoji right after a word ("questions 🚀", "done🎉") may close the sentence.
            word = k - 1 if k - 1 > start and buf[k - 1] == " " else k
            if word > start and buf[word - 1].isalnum():
                self._cstart = self._pos = k
                self._emoji = True
                self._mode = _CLUSTER
            else:
                self._pos = _run_end(_EMOJI_RUN, buf, k)
        else:
            return self._clause(out, k, final)
        return True

    def _clause(self, out: list[str], k: int, final: bool) -> bool:
        """First fragment: cut after , ; : or a dash once the fragment is long enough."""
        buf = self._buf
        if buf[k] not in _CLAUSE_NOW and k + 1 == len(buf):
            if not final:
                self._pos = k
                return False
            self._pos = k + 1
            return True
        least = self._first_min_at_comma if buf[k] == "," else self._first_min
        if _CLAUSE.match(buf, k) and k + 1 - self._start >= least:
            self._emit(out, k + 1)
            self._continued = True
            self._mode = _START
        self._pos = k + 1
        return True

    def _inline_item(self, out: list[str], k: int, final: bool) -> bool:
        """Inside a list, "1. a 2. b" holds two items: cut before the expected next marker."""
        marker = parse_marker(self._buf, k, final, bullets=False)
        if marker is WAIT:
            self._pos = k
            return False
        expected = "".join(self._list_next or ())
        if marker and marker.end == k + len(expected) and self._buf.startswith(expected, k):
            self._emit(out, k)
            self._pos = k
            self._mode = _START
        else:
            self._pos = k + 1
        return True

    def _cluster_step(self, out: list[str], final: bool) -> bool:
        """Read a terminator cluster such as '?!', '...', '." ', '.)' or '。」', or an emoji run."""
        buf, n = self._buf, len(self._buf)
        pos = self._pos
        bound = max(pos, min(n, self._start + self.max_chars + 1))  # "!!!!..." must not grow forever
        if self._emoji:
            pos = _run_end(_EMOJI_RUN, buf, pos, bound)
        else:
            if not self._closing:
                pos = _run_end(_TERMINATOR_RUN, buf, pos, bound)
                if pos < n:
                    self._closing = True
            if self._closing:
                pos = _run_end(_CLOSER_RUN, buf, pos, bound)
        self._pos = pos
        if pos == n and not final:
            return False
        self._cend = self._tail = pos
        if pos == n:
            self._emit(out, pos)
            self._mode = _START
        elif buf[pos].isspace():
            self._mode = _AFTER
        elif buf[self._cstart] != "." and _STRONG.search(buf, self._cstart, pos) and self._strong_end(pos):
            self._emit(out, pos)  # "你好。我很好": no space between sentences
            self._mode = _START
        else:
            self._mode = _SCAN  # "3.14", "Jr.'s", "e.g.,": no space, no sentence end
        return True

    def _after_step(self, out: list[str], final: bool) -> bool:
        """Decide on the cluster once the next non-space character (or a blank line) arrives."""
        buf, tail = self._buf, self._tail
        m = _NON_SPACE.search(buf, tail)
        stop = m.start() if m else len(buf)
        blank_line = buf.count("\n", tail, stop) >= 2
        if blank_line or m is None:
            if not (blank_line or final):
                self._pos = stop
                return False
            cut: int | _Wait | None = tail
        else:
            c = m.group()
            cend = self._cend
            if c == "." and stop == cend + 1 and buf[cend] == " " and not buf[self._cstart : cend].strip(". "):
                self._pos = stop  # ". . ." is one cluster
                self._closing = False
                self._mode = _CLUSTER
                return True
            emoji = c >= _EMOJI_MIN and _EMOJI_CHAR.match(c)
            if emoji or c in _CLOSE_ONLY:
                # "Done! 🎉 Next" and "Tu viens ? » Oui": they belong to the sentence before.
                run = _run_end(_EMOJI_RUN if emoji else _CLOSER_RUN, buf, stop)
                if run == len(buf) and not final:
                    self._pos = stop
                    return False
                self._tail = run
                return True
            cut = self._decide(c, stop, final)
            if cut is WAIT:
                self._pos = stop
                return False
            if cut is not None and cut - self._start < self.min_chars and not self._one_word():
                cut = None
        if cut is None:
            self._pos = self._tail
            self._mode = _SCAN
            return True
        assert cut is not WAIT
        self._emit(out, cut)
        self._pos = cut
        self._mode = _START
        return True

    def _strong_end(self, pos: int) -> bool:
        """Whether a cluster of "。" or "！" with no space after it ends the sentence: "。」と" does not."""
        buf = self._buf
        if buf[pos - 1] in rules.CLOSERS and buf[pos].isalpha():
            return False  # a quoted sentence inside a sentence: 「はい。」と彼は言った。
        return pos - self._start >= self.min_chars or self._one_word()

    def _one_word(self) -> bool:
        """Whether the sentence before the cluster is one word, which stands alone whatever min_chars."""
        core = self._buf[self._start : self._cstart].strip().strip(rules.OPENERS)
        # "Ok." or "好。" is a whole reply to a question; a lone "A." or "1." is not.
        return core.isalpha() and (len(core) > 1 or core.lower() == core.upper())

    def _decide(self, following: str, at: int, final: bool) -> int | _Wait | None:
        """Where the sentence ends given the cluster and the next non-space char (at ``at``).

        None means no sentence end; WAIT that the next word must arrive first.
        """
        buf, cstart, cend, tail = self._buf, self._cstart, self._cend, self._tail
        if self._emoji:
            return tail if rules.capital_like(following) else None
        if following.islower():  # a lower-case word goes on with the sentence, unless after "。"
            return tail if buf[cstart] != "." and _STRONG.search(buf, cstart, cend) else None
        marks = buf[cstart:cend].rstrip(rules.CLOSERS)
        if marks != "." and _STRONG.search(marks):
            return tail
        if " " in marks:  # spaced ellipsis: ". . ." continues, ". . . ." ends the sentence
            if marks.count(".") < 4 or not following.isupper():
                return None
            attached = cstart > self._start and not buf[cstart - 1].isspace()
            return cstart + 1 if attached else tail  # "word. . . . Next": the ellipsis opens the next
        if "…" in marks or ".." in marks:
            return tail if following.isupper() else None
        if marks != ".":
            return tail
        token_start = self._word_start(cstart)
        token = buf[token_start:cstart].lstrip(rules.OPENERS)
        if not token:
            return tail
        before = token_start
        while before > self._start and buf[before - 1].isspace():
            before -= 1
        previous = buf[self._word_start(before) : before].lstrip(rules.OPENERS)
        ends = self._rules.period_ends_sentence(token, previous, following)
        if ends is None:
            # "Acme Inc. Then" or "am 3. Oktober": the next word decides.
            begin = _run_end(_OPENER_RUN, buf, at)
            end = _run_end(_WORD, buf, begin, begin + _NEXT_WORD_MAX)
            if end == len(buf) and not final:
                return WAIT
            ends = self._rules.starts_sentence(buf[begin:end])
        return tail if ends else None

    def _word_start(self, end: int) -> int:
        lo = max(self._start, end - 40)  # longer "words" are never abbreviations
        i = end
        while i > lo and not self._buf[i - 1].isspace():
            i -= 1
        return i

    def _newline_step(self, out: list[str], final: bool) -> bool:
        """A blank line, a new line starting with a list marker, or a title line ends the chunk."""
        buf, k = self._buf, self._pos
        m = _NON_SPACE.search(buf, k + 1)
        stop = m.start() if m else len(buf)
        if buf.count("\n", k, stop) >= 2:
            self._emit(out, k)
            self._line_begin = True
            self._pos = stop
            self._mode = _START
            return True
        if m is None:
            if final:
                self._pos = stop
            return False
        marker = parse_marker(buf, stop, final)
        if marker is WAIT:
            return False
        if marker or self._title_line(k, m.group()):
            self._emit(out, k)
            self._line_begin = True
            self._mode = _START
        else:
            self._mode = _SCAN
        self._pos = stop
        return True

    def _title_line(self, k: int, following: str) -> bool:
        """Whether the chunk is one short line without a terminator before a capital: "Summary\\nThe"."""
        start = self._start
        if not self._line_chunk or k - start > TITLE_MAX_CHARS or not rules.capital_like(following):
            return False
        line = self._buf[start:k]
        return "\n" not in line and line.rstrip()[-1] not in rules.TERMINATORS

    # -- output -----------------------------------------------------------------------------

    def _cap_cut(self, out: list[str]) -> None:
        """The chunk outgrew max_chars without a sentence end: cut it at the best break."""
        buf = self._buf
        cut = self._best_cut(self._start)
        out.append(buf[self._start : cut].rstrip())
        self._first = False
        m = _NON_SPACE.search(buf, cut, self._pos)
        if m is None:
            self._start = _NO_CHUNK
            self._continued = True
            self._mode = _START
        else:
            self._start = m.start()
            self._line_chunk = False
            self._mode = _SCAN

    def _best_cut(self, start: int) -> int:
        """Cut index for an over-long chunk: a late clause break, else a space, else hard."""
        buf = self._buf
        limit = start + self.max_chars
        if buf[limit].isspace():
            return limit
        clause = None
        for m in _CLAUSE.finditer(buf, start, limit + 1):
            if m.end() > limit:
                break
            clause = m.end()
        if clause is not None and clause - start >= self.max_chars // 2:
            return clause
        space = _LAST_SPACE.search(buf, start + 1, limit)
        if space is not None:
            return space.start()
        return clause if clause is not None else limit

    def _emit(self, out: list[str], end: int) -> None:
        """Emit buf[start:end] stripped, cutting it to max_chars; the next chunk starts after."""
        buf, start = self._buf, self._start
        while end > start and buf[end - 1].isspace():
            end -= 1
        while end - start > self.max_chars:
            cut = self._best_cut(start)
            out.append(buf[start:cut].rstrip())
            rest = _NON_SPACE.search(buf, cut, end)
            start = rest.start() if rest else end
        if end > start:
            out.append(buf[start:end])
        self._start = _NO_CHUNK
        self._first = False


def _run_end(run: re.Pattern[str], text: str, pos: int, bound: int | None = None) -> int:
    """Where ``run`` (a pattern that also matches nothing) ends when matched at ``pos``."""
    m = run.match(text, pos, len(text) if bound is None else bound)
    return m.end() if m else pos


@lru_cache(maxsize=256)
def _next_item_pattern(enumerator: str) -> re.Pattern[str]:
    return re.compile(r"(?<=\s)" + re.escape(enumerator))


def split_sentences(text: str, language: str = "en") -> list[str]:
    """Split a whole text into sentences (no first fragment, no length cap, no merging)."""
    chunker = SentenceChunker(first_fragment=False, max_chars=sys.maxsize, min_chars=0, language=language)
    return chunker.feed(text) + chunker.flush()
