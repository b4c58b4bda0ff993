"""Sanitizer: the first text stage; what no engine can take never reaches one.

Python ``str`` can hold what UTF-8 can't encode (lone surrogates, e.g. from a
JSON ``"\\ud83d"`` split across two LLM tokens) and control characters that C
libraries and servers choke on (NUL). Every engine would need its own rule, and
one bad character ended a cloud reply, so they are handled here, once:

- a surrogate pair split across ``feed()`` calls is joined into its character;
- an unpaired surrogate becomes U+FFFD (the replacement character);
- control characters other than ``\\n`` and ``\\t`` are removed; line ends
  are normalized (``\\r\\n`` and a lone ``\\r`` become ``\\n``).

Every surrogate or control character replaced or removed is reported to
``on_filtered`` (the original characters, in order): nothing fed disappears
unreported.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["Sanitizer", "REPLACEMENT"]

REPLACEMENT = "\ufffd"
# C0 and C1 controls except \t and \n, DEL, surrogates; \r is handled as a line end
_BAD = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_BAD_RUN = re.compile(_BAD.pattern + "+")
_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def _join_pair(m: re.Match[str]) -> str:
    return m.group().encode("utf-16-le", "surrogatepass").decode("utf-16-le")


class Sanitizer:
    """Incremental: ``feed(text) -> str`` and ``flush() -> str``; output never splits a pair."""

    def __init__(self, on_filtered: Callable[[str], None] | None = None) -> None:
        self._on_filtered = on_filtered
        self._held = ""  # a trailing high surrogate or "\r": the next text decides what it is

    def feed(self, text: str) -> str:
        if not isinstance(text, str):
            raise TypeError(f"feed() takes str, got {type(text).__name__}")
        if self._held:
            text, self._held = self._held + text, ""
        elif not _BAD.search(text):
            return text  # the usual token
        if text and (text[-1] == "\r" or "\ud800" <= text[-1] <= "\udbff"):
            text, self._held = text[:-1], text[-1]
        return self._clean(text)

    def flush(self) -> str:
        """End of the text: a held character is decided now."""
        text, self._held = self._held, ""
        return self._clean(text)

    def reset(self) -> None:
        self._held = ""

    def _clean(self, text: str) -> str:
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        text = _PAIR.sub(_join_pair, text)
        return _BAD_RUN.sub(self._replace, text)

    def _replace(self, run: re.Match[str]) -> str:
        if self._on_filtered is not None:
            self._on_filtered(run.group())
        return "".join(REPLACEMENT for c in run.group() if "\ud800" <= c <= "\udfff")


def sanitize(text: str, on_filtered: Callable[[str], None] | None = None) -> str:
    """Whole-text form of :class:`Sanitizer`."""
    sanitizer = Sanitizer(on_filtered)
    return sanitizer.feed(text) + sanitizer.flush()
