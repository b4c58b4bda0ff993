"""Speech filter: turns LLM markdown into what should be said, incrementally.

Markup is dropped (emphasis, heading #, bullets, block quotes, rules, table pipes, HTML and
SSML tags), inline code and link texts are spoken as their content, fenced code blocks become
silence or ``code_block_phrase``, emoji are removed. Bare URLs are not read out character by
character: they become ``url_phrase`` with their host name ("link to example.com"); set
``url_phrase=""`` to drop them.

Only real markup is dropped: a tag is an HTML or SSML element name from ``TAGS`` with
well-formed attributes (``<b>``, ``<a href="x">``, ``</p>``, ``<br/>``) or a comment. Any other
``<...>`` is text and is spoken: "a<b and c>d", "Press <Enter>", "x -> y".

Every input character is spoken or reported: what the filter drops (markup, emoji, code,
URLs) goes, in order, to ``on_filtered``, one piece per stretch of input with nothing said in
between (whitespace at a piece's ends is not reported). A piece is sent once something is said
after it, or at ``flush()``. A replacement (a URL becoming "link to example.com") reports the
whole original. With ``sanitize=True`` the :class:`~voicekit.text.sanitize.Sanitizer` runs
first, in step with the filter: what it removes joins these pieces where it was in the input.

Block structure is kept for the chunker: a heading, list item or table row becomes its own
paragraph (a blank line), so it is spoken as a chunk of its own. So does the sentence an emoji
closes: an emoji right after a word, before a capital ("questions 🚀 Happy"), becomes a blank
line before the capital, the cut the chunker makes of such an emoji when it sees it.

The output, and what is reported, do not depend on how the input is split into ``feed()``
calls. Only constructs that are still ambiguous are held back, at most ``MAX_HOLD`` characters.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Any

from .rules import capital_like
from .sanitize import DroppedText, Sanitizer

MAX_HOLD = 256  # upper bound on the characters feed() keeps back

_EMOJI = (
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff\ufe00-\ufe0f\u200d\u20e3"
    "\U000e0020-\U000e007f]"
)
# A URL starts at a word boundary (same test as _URL_LEFT); at the very end of the text a
# prefix such as "htt" waits for more.
_URL_START = r"(?<![\w/.@-])(?:https?://|www\.|(?:h(?:t(?:t(?:p(?:s(?::/?)?|:/?)?)?)?)?|w(?:ww?)?)\Z)"
_SPECIAL = re.compile(r"[\n\\`*_~\[\]<!]|" + _URL_START + "|" + _EMOJI)
_SPECIAL_TABLE = re.compile(r"[\n\\`*_~\[\]<!| \t]|" + _URL_START + "|" + _EMOJI)
_SPECIAL_CODE = re.compile(r"[\n`]|" + _EMOJI)
_EMOJI_RUN = re.compile(_EMOJI + "+")  # "🙏🏽" or "👨‍👩‍👧" is dropped (and reported) whole
_TARGET = re.compile(r"[()\n]")
_NEWLINE = re.compile(r"\n")
#: element names whose tags are markup; any other "<name>" is spoken
TAGS = frozenset(
    "a abbr address article aside b bdi bdo big blockquote br caption center cite code col colgroup dd del "
    "details dfn div dl dt em figcaption figure font footer h1 h2 h3 h4 h5 h6 header hr i img ins kbd li main "
    "mark nav ol p pre q rp rt ruby s samp section small span strike strong sub summary sup table tbody td "
    "tfoot th thead tr tt u ul var wbr "
    # SSML, so a document read by an engine without SSML is spoken as its text
    "speak break prosody emphasis say-as phoneme voice lang mark audio w "
    "amazon:effect amazon:domain amazon:auto-breaths amazon:breath".split()
)
_BOOLEAN_ATTRIBUTES = r"(?:open|hidden|disabled|checked|selected|reversed|nowrap|async|defer)"
# A tag lies on one line (the filter works line by line): "<a\nhref=x>" is text.
_ATTRIBUTE = (
    r"[ \t]+(?:[A-Za-z_:][-\w:.]*[ \t]*=[ \t]*(?:\"[^\"<>\n]*\"|'[^'<>\n]*'|[^\s\"'=<>`]+)|"
    + _BOOLEAN_ATTRIBUTES
    + ")"
)
_TAG = re.compile(
    r"<(?:!--[^\n]{0,94}?--|/(?P<close>[A-Za-z][\w:-]*)[ \t]*|(?P<open>[A-Za-z][\w:-]*)(?:"
    + _ATTRIBUTE
    + r")*[ \t]*/?)>"
)
_TAG_NAME = re.compile(r"/?([A-Za-z][\w:-]*)")
_MAX_TAG = 100  # longer "<...>" is text
_HOST = re.compile(r"[\w.-]{0,100}")
_SPACE = re.compile(r"\s")
_NON_SPACE = re.compile(r"\S")
_TRAILING_PUNCT = ".,;:!?'\")]"
_NOT_PUNCT = re.compile(f"[^{re.escape(_TRAILING_PUNCT)}]")
_URL_LEFT = "/.@-_"  # "a/www.x" or "user@www.x" is no URL start

# Line-start holds are capped so the hold stays bounded; past the cap the line is plain text.
_RULE_SCAN = 80
_TABLE_RULE_SCAN = 200
_RUN_CAP = 64


def _run_length(data: str, i: int, char: str, cap: int) -> int:
    j = i
    while j < len(data) and data[j] == char and j - i < cap:
        j += 1
    return j - i


class SpeechFilter:
    """Incremental markdown-to-speech filter: ``feed(text) -> str``, ``flush() -> str``.

    ``sanitize=True`` takes raw text: it is sanitized first (see the module's docstring).
    """

    def __init__(
        self,
        *,
        code_block_phrase: str = "",
        url_phrase: str = "link to {host}",
        on_filtered: Callable[[str], object] | None = None,
        sanitize: bool = False,
    ) -> None:
        if not isinstance(code_block_phrase, str) or not isinstance(url_phrase, str):
            raise TypeError("code_block_phrase and url_phrase must be str")
        try:
            url_phrase.format(host="example.com")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"url_phrase may only use the {{host}} field: {url_phrase!r}") from e
        self.code_block_phrase = code_block_phrase
        self.url_phrase = url_phrase
        self.on_filtered = on_filtered
        self._sanitizer = Sanitizer(self._sanitized) if sanitize else None
        # what the sanitizer removed, not yet placed among this filter's reports: (where in its output, text)
        self._removed: deque[tuple[int, str]] = deque()
        self._dropped = DroppedText(self._report)  # since something was last said: the next report
        self._markers = {
            "*": self._emphasis,
            "_": self._emphasis,
            "~": self._emphasis,
            "\\": self._escape,
            "]": self._link_end,
            "!": self._bang,
            "<": self._tag,
            "|": self._pipe,
            " ": self._cell_space,
            "\t": self._cell_space,
        }
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next text starts a new document."""
        if self._sanitizer is not None:
            self._sanitizer.reset()
        self._removed.clear()
        self._dropped.clear()
        self._pending = ""
        self._offset = 0  # where the pending text starts in all the input (the sanitizer's output)
        self._last = "\n"  # ends with the input character before the pending text
        self._line_start = True
        self._fence: tuple[str, int] | None = None  # open code fence: its character and length
        self._skip_line = False  # drop the rest of this line (fence lines, rules)
        self._line_end = "\n"  # what this line's newline becomes: a blank line ends its chunk
        self._table = False
        self._code = 0  # backticks that opened the current inline code span
        self._target = 0  # parenthesis depth inside a dropped link target
        self._url_tail = False  # dropping a URL's path
        self._drop_run = ""  # dropping a long run of this marker character
        self._plain: re.Pattern[str] | None = None  # what plain text for feed()'s fast path must avoid
        # The last two non-empty outputs: what was said ends with them ("after a word" in _said_end).
        self._said = self._said_before = ""
        self._closed: int | None = None  # emoji after a word: where in this run's output what follows starts
        self._spaced = False  # a space has followed those emoji
        self._glued = False  # no space before those emoji either: a word right after them is a new word

    def feed(self, text: str) -> str:
        """Add markdown; return the speakable text that is certain now."""
        if not isinstance(text, str):
            raise TypeError(f"feed() takes str, got {type(text).__name__}")
        if self._sanitizer is None:
            return self._feed(text)
        start = self._sanitizer.passed
        return self._feed_sanitized(self._sanitizer.feed(text), start)

    def _feed_sanitized(self, text: str, start: int) -> str:
        """Feed the sanitizer's output ``text`` (from its position ``start``) in pieces that end where it
        removed something, so the filter takes its steps up to there as it would if a feed() ended there."""
        if not self._removed:
            return self._feed(text)  # the usual token: nothing was removed
        said, at = [], 0
        for position in [p - start for p, _ in self._removed if p > start]:
            said.append(self._feed(text[at:position]))
            at = position
        if at < len(text):
            said.append(self._feed(text[at:]))
        return "".join(said)

    def _sanitized(self, removed: str) -> None:
        assert self._sanitizer is not None  # the sanitizer's own callback
        self._removed.append((self._sanitizer.passed, removed))

    def _place_removed(self, upto: int) -> None:
        """Report what the sanitizer removed at or before ``upto`` in this filter's input, in order."""
        while self._removed and self._removed[0][0] <= upto:
            self._dropped.add(self._removed.popleft()[1])

    def _feed(self, text: str) -> str:
        plain = self._plain
        if plain is not None and text and not self._removed and not plain.search(text):
            self._last = text  # the usual token: plain text (or a line of code: nothing)
            self._offset += len(text)
            said = [] if self._skip_line else [text]
            if said:
                self._said_before, self._said = self._said, text
            if self.on_filtered is not None:
                self._note(text, said, 0)
            return "".join(said)
        data = self._pending + text
        out, i = self._run(data, final=False)
        self._pending = data[i:]
        if i:
            self._last = data[i - 1]
        self._offset += i
        self._arm_fast_path()
        return out

    def _arm_fast_path(self) -> None:
        """Let feed() pass plain text through while nothing is pending or being dropped."""
        if (
            self._pending
            or self._line_start
            or self._target
            or self._url_tail
            or self._drop_run
            or self._closed is not None
        ):
            self._plain = None
        elif self._skip_line:
            self._plain = _NEWLINE
        else:
            self._plain = self._pattern()

    def flush(self) -> str:
        """End of the document: return the rest and reset."""
        said = ""
        if self._sanitizer is not None:
            start = self._sanitizer.passed
            said = self._feed_sanitized(self._sanitizer.flush(), start)
        out, _ = self._run(self._pending, final=True)
        self._dropped.end()
        self.reset()
        return said + out

    # -- driver -----------------------------------------------------------------------------

    def _run(self, data: str, final: bool) -> tuple[str, int]:
        out: list[str] = []
        i, n = 0, len(data)
        # Where the sanitizer removed something inside pending text, a feed() call ended once.
        # Each step is taken as it was then: on the text up to there if that decides it, and
        # plain text is said up to there, so that the removal lands between the same two steps
        # whatever the feed() calls were.
        ends = [p - self._offset for p, _ in self._removed if 0 < p - self._offset < n] if self._removed else None
        note = self._note if self.on_filtered is not None else None
        while i < n:
            said = len(out)
            if self._removed:
                self._place_removed(self._offset + i)
            step = self._step_as_fed(data, i, final, out, ends) if ends else self._step(data, i, final, out, n)
            if step is None:
                break
            if note is not None:
                note(data[i:step], out, said)
            i = step
        if self._removed:
            self._place_removed(self._offset + i)
        if self._closed is not None:
            self._place_break(out)
            if self._closed is not None:
                self._closed = None if final else 0  # still only spaces: the next output decides
        spoken = "".join(out)
        if spoken:
            self._said_before, self._said = self._said, spoken
        return spoken, i

    def _step_as_fed(self, data: str, i: int, final: bool, out: list[str], ends: list[int]) -> int | None:
        """``_step`` on the text up to the first of ``ends`` after ``i`` that decides it."""
        later = [end for end in ends if end > i]
        for end in later:
            step = self._step(data[:end], i, False, out, later[0])
            if step is not None:
                return step
        return self._step(data, i, final, out, later[0] if later else len(data))

    def _step(self, data: str, i: int, final: bool, out: list[str], stop: int) -> int | None:
        """Handle the input at ``i``: where the next step starts, or None to wait for more text.

        Plain text is said, and a URL's path dropped, up to ``stop`` or just past it at most.
        """
        n = len(data)
        if data[i] == "\n":
            self._newline(out)
            return i + 1
        if self._line_start:
            return self._block(data, i, final, out)
        if self._skip_line:
            j = data.find("\n", i)
            return n if j < 0 else j
        if self._target:
            return self._drop_target(data, i)
        if self._url_tail:
            return self._drop_url_tail(data, i, final, out, stop)
        if self._drop_run:
            step = i + _run_length(data, i, self._drop_run, n)
            if step == i:
                self._drop_run = ""
            return step
        return self._inline(data, i, final, out, stop)

    def _note(self, consumed: str, out: list[str], said_from: int) -> None:
        """Account for a step that said ``out[said_from:]``: the input it did not say joins the piece to report.

        Steps are small (one marker, one tag, one URL, one line of code), so this needs no
        bookkeeping in each handler: a step says its input, a part of it (its tail, as in
        "\\*" -> "*"), or something else, and then all of its input is dropped. Saying anything
        ends the piece. How input is split into steps depends on the feed() calls (a line of
        code or a link target is taken as far as it has arrived); pieces do not.
        """
        if len(out) == said_from + 1 and out[said_from] == consumed:  # plain text, the usual step
            self._dropped.end()
            return
        said = "".join(out[said_from:])
        if said != consumed:
            k = consumed.rfind(said) if said else -1
            self._dropped.add(consumed[:k] + consumed[k + len(said) :] if k >= 0 else consumed)
        if said:
            self._dropped.end()

    def _report(self, piece: str) -> None:
        piece = piece.strip()  # the whitespace around dropped markup is no news
        if piece and self.on_filtered is not None:
            self.on_filtered(piece)

    def _newline(self, out: list[str]) -> None:
        if self._fence is None:
            out.append(self._line_end)
        self._line_start = True
        self._skip_line = self._table = self._url_tail = False
        self._line_end = "\n"
        self._code = self._target = 0
        self._drop_run = ""

    # -- block level ------------------------------------------------------------------------

    def _block(self, data: str, i: int, final: bool, out: list[str]) -> int | None:
        """Classify a line by its start; return where inline text begins, or None to wait."""
        n = len(data)
        while i < n and data[i] in " \t":
            i += 1  # indentation is not spoken
        if i == n or data[i] == "\n":
            return i
        c = data[i]
        if self._fence is not None:
            run = _run_length(data, i, self._fence[0], _RUN_CAP)
            if i + run == n and run < _RUN_CAP and not final:
                return None
            if run >= self._fence[1]:
                self._fence = None
            self._skip_line = True
            self._line_start = False
            return i + run
        if c == ">":
            return i + 1  # block quote: still at the start of the line
        if c == "#":
            run = _run_length(data, i, "#", 7)
            if i + run == n and run < 7 and not final:
                return None
            if run <= 6 and (i + run == n or data[i + run] in " \t\r\n"):
                self._line_end = "\n\n"
                self._line_start = False
                return i + run
        elif c in "`~":
            run = _run_length(data, i, c, _RUN_CAP)
            if i + run == n and run < _RUN_CAP and not final:
                return None
            if run >= 3:
                self._fence = (c, run)
                out.append("\n" + (self.code_block_phrase + "\n\n" if self.code_block_phrase else ""))
                self._skip_line = True
                self._line_start = False
                return i + run
        elif c in "-*_=+":
            j = i
            while j < n and data[j] in "-*_= \t\r" and j - i < _RULE_SCAN:
                j += 1
            if (j == n and j - i < _RULE_SCAN or c in "-*+" and i + 1 == n) and not final:
                return None
            line = data[i:j]
            if (j == n or data[j] == "\n") and max(line.count(m) for m in "-*_=") >= 3:
                self._skip_line = True  # horizontal rule or setext underline
                self._line_start = False
                return j
            if c in "-*+" and i + 1 < n and data[i + 1] in " \t":
                out.append("\n")  # a list item is a paragraph of its own
                self._line_start = False
                return i + 2
        elif c == "|":
            j = i
            while j < n and data[j] in "|:- \t\r" and j - i < _TABLE_RULE_SCAN:
                j += 1
            if j == n and j - i < _TABLE_RULE_SCAN and not final:
                return None
            self._line_start = False
            if (j == n or data[j] == "\n") and "-" in data[i:j]:
                self._skip_line = True  # |---|:--:|
                return j
            self._table = True
            self._line_end = "\n\n"
            return i + 1
        self._line_start = False
        return i

    # -- inline level -----------------------------------------------------------------------

    def _pattern(self) -> re.Pattern[str]:
        return _SPECIAL_CODE if self._code else _SPECIAL_TABLE if self._table else _SPECIAL

    def _inline(self, data: str, i: int, final: bool, out: list[str], stop: int) -> int | None:
        """Copy plain text up to the next special character (or ``stop``), or handle that character."""
        m = self._pattern().search(data, i)
        k = m.start() if m else len(data)
        if k > i:
            k = min(k, stop)
            out.append(data[i:k])
            return k
        if m is None:
            return k
        c = data[k]
        if m.end() - k > 1 or c in "hw":
            return self._url(data, k, m.end(), final, out)
        if c == "`":
            return self._backticks(data, k, final, out)
        if self._code or c not in self._markers:
            return k + 1 if c == "[" else self._emoji(data, k, out)  # "[" opens a link text
        return self._markers[c](data, k, final, out)

    def _emoji(self, data: str, k: int, out: list[str]) -> int:
        """Drop an emoji. After a word ("questions 🚀", "done🎉") it may close the sentence,
        as the chunker decides: if a space and then a capital follow ("🚀 🎉 Happy" alike)."""
        if self._closed is not None:
            self._place_break(out)
        if self._closed is None:
            tail = self._said_end(out)
            if tail[-1:].isalnum() or tail[-1:] == " " and tail[:1].isalnum():
                self._closed, self._spaced, self._glued = len(out), False, tail[-1:].isalnum()
        run = _EMOJI_RUN.match(data, k)
        assert run is not None  # data[k] is an emoji
        return run.end()

    def _said_end(self, out: list[str]) -> str:
        """The last two characters said so far."""
        tail = ""
        for piece in reversed(out):
            tail = piece[-2:] + tail
            if len(tail) >= 2:
                return tail[-2:]
        return (self._said_before[-1:] + self._said[-2:] + tail)[-2:]

    def _place_break(self, out: list[str]) -> None:
        """Once the text after closing emoji speaks: a space and a capital get a paragraph break."""
        assert self._closed is not None
        for j in range(self._closed, len(out)):
            piece = out[j]
            m = _NON_SPACE.search(piece)
            if m is None:
                self._spaced = self._spaced or bool(piece)
                self._closed = j + 1
                continue
            if (m.start() or self._spaced) and capital_like(m.group()):
                out[j] = piece[: m.start()] + "\n\n" + piece[m.start() :]
            elif self._glued and not (m.start() or self._spaced) and m.group().isalnum():
                out[j] = " " + piece  # "Great🎉Now": the emoji parted two words; keep them two
            self._closed = None
            return

    def _left(self, data: str, k: int) -> str:
        return data[k - 1] if k else self._last[-1]

    def _backticks(self, data: str, k: int, final: bool, out: list[str]) -> int | None:
        """Inline code is spoken as its content, without the backticks."""
        run = _run_length(data, k, "`", 16)
        if k + run == len(data) and run < 16 and not final:
            return None
        if not self._code:
            self._code = run
        elif run == self._code:
            self._code = 0
        else:
            out.append("`" * run)  # a shorter run inside code is content
        return k + run

    def _emphasis(self, data: str, k: int, final: bool, out: list[str]) -> int | None:
        """Drop * _ ~~ markers; keep "snake_case", "2*3", "2 * 3"; drop "**bold**", "**粗体**文字"."""
        c, n = data[k], len(data)
        run = _run_length(data, k, c, 4)
        if run == 4:
            self._drop_run = c  # "****...": never speech
            return k + run
        if k + run == n and not final:
            return None
        left, right = self._left(data, k), data[k + run] if k + run < n else "\n"
        intraword = left.isalnum() and right.isalnum() and (c == "_" or run == 1)
        spaced = left.isspace() and right.isspace()
        if intraword or spaced or c == "~" and run == 1:
            out.append(c * run)
        return k + run

    def _after(self, data: str, k: int, final: bool) -> str | None:
        """The character after data[k], "" at the very end, None if it has not arrived yet."""
        if k + 1 < len(data):
            return data[k + 1]
        return "" if final else None

    def _escape(self, data: str, k: int, final: bool, out: list[str]) -> int | None:
        nxt = self._after(data, k, final)
        if nxt is None:
            return None
        if nxt and nxt.isascii() and not nxt.isalnum() and not nxt.isspace():
            out.append(nxt)  # an escaped marker is literal
            return k + 2
        return k + 1

    def _link_end(self, data: str, k: int, final: bool, out: list[str]) -> int | None:
        nxt = self._after(data, k, final)
        if nxt is None:
            return None
        if nxt == "(":
            self._target = 1  # [text](target): the target is not spoken
            return k + 2
        return k + 1

    def _bang(self, data: str, k: int, final: bool, out: list[str]) -> int | None:
        nxt = self._after(data, k, final)
        if nxt is None:
            return None
        if nxt != "[":  # "![alt](src)" is spoken as its alt text
            out.append("!")
        return k + 1

    def _tag(self, data: str, k: int, final: bool, out: list[str]) -> int | None:
        """Tags of known elements are dropped; any other "<" is text."""
        tag = _TAG.match(data, k, k + _MAX_TAG)
        if tag and (tag.group("open") or tag.group("close") or "").lower() in TAGS | {""}:
            return tag.end()
        if not final and self._may_become_tag(data[k + 1 : k + _MAX_TAG]):
            return None
        out.append("<")
        return k + 1

    @staticmethod
    def _may_become_tag(rest: str) -> bool:
        """Could more input turn "<" + ``rest`` into a tag? (No ">" yet, and the name fits.)"""
        if ">" in rest or "\n" in rest or "<" in rest or len(rest) >= _MAX_TAG - 1:
            return False
        if rest in ("", "/") or "!--".startswith(rest) or rest.startswith("!--"):
            return True
        name = _TAG_NAME.match(rest)
        if name is None:
            return False
        word = name.group(1).lower()
        if name.end() == len(rest):
            return any(t.startswith(word) for t in TAGS)
        return word in TAGS

    def _cell_space(self, data: str, k: int, final: bool, out: list[str]) -> int | None:
        """Spaces in a table row: dropped before a cell border, so cells read "a, b"."""
        n = len(data)
        j = k
        while j < n and data[j] in " \t" and j - k < 16:
            j += 1
        if j == n and j - k < 16 and not final:
            return None
        if j == n or data[j] != "|":
            out.append(data[k:j])
        return j

    def _pipe(self, data: str, k: int, final: bool, out: list[str]) -> int | None:
        """A table cell border: a comma between cells, nothing at the end of the row."""
        n = len(data)
        j = k + 1
        while j < n and data[j] in " \t\r" and j - k < 16:
            j += 1
        if j == n and j - k < 16 and not final:
            return None
        if j < n and data[j] != "\n":
            out.append(", ")
        return j

    def _url(self, data: str, k: int, end: int, final: bool, out: list[str]) -> int | None:
        """A bare URL becomes url_phrase with its host; the path is dropped."""
        n = len(data)
        left = self._left(data, k)
        at_boundary = not (left.isalnum() or left in _URL_LEFT)
        if not at_boundary or not data[k:end].endswith(("//", "www.")):
            if at_boundary and not final:
                return None  # "htt" at the end of the text may still become "https://"
            out.append(data[k])
            return k + 1
        host_match = _HOST.match(data, end)
        host_end = host_match.end() if host_match else end
        if host_end == n and host_end - end < 100 and not final:
            return None
        host = data[end:host_end].rstrip(".-_")
        if host and self.url_phrase:
            out.append(self.url_phrase.format(host=host.removeprefix("www.")))
        if host_end < n and data[host_end] in "/?#:":
            self._url_tail = True
            return host_end
        out.append(data[end + len(host) : host_end])  # "example.com." ends a sentence
        return host_end

    def _drop_url_tail(self, data: str, i: int, final: bool, out: list[str], stop: int) -> int | None:
        m = _SPACE.search(data, i)
        end = m.start() if m else len(data)
        path = data[i:end]
        punct = len(path) - len(path.rstrip(_TRAILING_PUNCT))
        if stop < end - punct:
            # the punctuation held at stop is no end of the URL: drop it with the next character
            after = _NOT_PUNCT.search(data, stop)
            assert after is not None  # data[end - punct - 1] is one
            return after.end()
        if m is None and not final:
            keep = end - min(punct, 16)  # hold the trailing punctuation until the URL ends
            return keep if keep > i else None
        out.append(path[len(path) - punct :][-16:])
        self._url_tail = False
        return end

    def _drop_target(self, data: str, i: int) -> int:
        m = _TARGET.search(data, i)
        if m is None:
            return len(data)
        c = m.group()
        if c == "\n":
            self._target = 0
            return m.start()
        self._target += 1 if c == "(" else -1
        return m.end()


def clean_for_speech(text: str, **options: Any) -> str:
    """Whole-text form of SpeechFilter (same keyword options)."""
    speech = SpeechFilter(**options)
    return speech.feed(text) + speech.flush()
