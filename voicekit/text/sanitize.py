"""Sanitizer: the first text stage; what no engine can take never reaches one.

Python ``str`` can hold what UTF-8 can't encode (lone surrogates, e.g. from a
JSON ``"\\ud83d"`` split across two LLM tokens) and control characters that C
libraries and servers choke on (NUL). Every engine would need its own rule, and
one bad character ended a cloud reply, so they are handled here, once:

- a surrogate pair split across ``feed()`` calls is joined into its character;
- an unpaired surrogate becomes U+FFFD (the replacement character);
- ANSI escape sequences (CSI such as ``\\x1b[31m``, OSC such as
  ``\\x1b]0;title\\x07``, also split across ``feed()`` calls) are removed
  whole, so a colored build log is read without "31m";
- other control characters than ``\\n`` and ``\\t`` are removed; line ends
  are normalized (``\\r\\n`` and a lone ``\\r`` become ``\\n``).

Everything replaced or removed is reported to ``on_filtered`` (the original
characters, in order): nothing fed disappears unreported. A report is one
piece per stretch of input with nothing passed on in between (a U+FFFD is
passed on), whatever the ``feed()`` calls were, so it is sent once the text
after it arrives (or at ``flush()``); see :class:`DroppedText`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["Sanitizer", "REPLACEMENT"]

REPLACEMENT = "\ufffd"
#: the longest piece reported at once
MAX_PIECE = 4096
# C0 and C1 controls except \t and \n, DEL, surrogates; \r is handled as a line end
_CONTROL = "[\x00-\x08\x0b-\x1f\x7f-\x9f]"
_BAD = re.compile(f"{_CONTROL}|[\ud800-\udfff]")
# Bounds, so that an escape sequence that never ends holds back little text: longer is no sequence.
_CSI_BYTES = 64
_OSC_CHARS = 512
# ECMA-48: CSI is parameter bytes, intermediate bytes, one final byte; OSC is text up to BEL or ST.
_CSI = rf"(?:\x1b\[|\x9b)[\x30-\x3f]{{0,{_CSI_BYTES}}}[\x20-\x2f]{{0,{_CSI_BYTES}}}"
_OSC = rf"(?:\x1b\]|\x9d)[^\x00-\x1f\x7f-\x9f\ud800-\udfff]{{0,{_OSC_CHARS}}}"
_DROPPED = re.compile(
    rf"(?:{_CSI}[\x40-\x7e]|{_OSC}(?:\x07|\x1b\\|\x9c)|{_CONTROL})+|(?P<surrogate>[\ud800-\udfff])"
)
# what more text may still turn into a sequence (or a pair, or "\r\n"): held back until it comes
_UNFINISHED = re.compile(rf"(?:{_CSI}|{_OSC}\x1b?|\x1b|[\r\ud800-\udbff])\Z")
_HOLD = 2 + 2 * _CSI_BYTES + _OSC_CHARS  # the longest text _UNFINISHED can match
_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def _join_pair(m: re.Match[str]) -> str:
    return m.group().encode("utf-16-le", "surrogatepass").decode("utf-16-le")


def _ignore(piece: str) -> None:
    pass


class DroppedText:
    """What a text stage dropped since it last passed text on: one piece, reported when it passes text on again.

    So the pieces do not depend on how the input was split into ``feed()``
    calls. A piece is reported in parts of ``MAX_PIECE`` characters as it
    grows, so that an endless stretch of dropped text (a code block that never
    closes, a flood of NUL) is reported as it goes and memory stays flat.
    """

    _parts: list[str]
    _size: int

    def __init__(self, report: Callable[[str], object]) -> None:
        self._report = report
        self.clear()

    def add(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        self._size += len(text)
        if self._size >= MAX_PIECE:
            piece = "".join(self._parts)
            whole = len(piece) - len(piece) % MAX_PIECE
            for start in range(0, whole, MAX_PIECE):
                self._report(piece[start : start + MAX_PIECE])
            self._parts, self._size = [piece[whole:]], len(piece) - whole

    def end(self) -> None:
        """Text was passed on: the piece is complete."""
        if self._size:
            self._report("".join(self._parts))
            self.clear()

    def clear(self) -> None:
        self._parts = []
        self._size = 0


class Sanitizer:
    """Incremental: ``feed(text) -> str`` and ``flush() -> str``; output never splits a pair.

    ``passed`` counts the characters passed on so far: when ``on_filtered`` is
    called, it is where the reported text was, in the output.
    """

    _held: str
    passed: int

    def __init__(self, on_filtered: Callable[[str], None] | None = None) -> None:
        self._dropped = DroppedText(on_filtered or _ignore)
        self.reset()

    def feed(self, text: str) -> str:
        if not isinstance(text, str):
            raise TypeError(f"feed() takes str, got {type(text).__name__}")
        if self._held:
            text, self._held = self._held + text, ""
        elif not _BAD.search(text):
            return self._pass(text)  # the usual token
        unfinished = _UNFINISHED.search(text, max(0, len(text) - _HOLD))
        if unfinished:
            text, self._held = text[: unfinished.start()], unfinished.group()
        return self._clean(text)

    def flush(self) -> str:
        """End of the text: what is held is decided now, and the last report sent."""
        text, self._held = self._held, ""
        out = self._clean(text)
        self._dropped.end()
        return out

    def reset(self) -> None:
        self._held = ""  # the end of the text, until the next text decides what it is
        self._dropped.clear()
        self.passed = 0

    def _clean(self, text: str) -> str:
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        text = _PAIR.sub(_join_pair, text)
        out, start = [], 0
        for run in _DROPPED.finditer(text):
            out.append(self._pass(text[start : run.start()]))
            self._dropped.add(run.group())
            if run.group("surrogate"):
                out.append(self._pass(REPLACEMENT))
            start = run.end()
        out.append(self._pass(text[start:]))
        return "".join(out)

    def _pass(self, text: str) -> str:
        if text:
            self._dropped.end()
            self.passed += len(text)
        return text


def sanitize(text: str, on_filtered: Callable[[str], None] | None = None) -> str:
    """Whole-text form of :class:`Sanitizer`."""
    sanitizer = Sanitizer(on_filtered)
    return sanitizer.feed(text) + sanitizer.flush()
