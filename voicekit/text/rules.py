"""English boundary rules: when a period ends a sentence, and what starts a list item.

The word lists live in ``data/*.txt`` so they can grow without touching code.
"""

from __future__ import annotations

import enum
import re
from importlib import resources
from typing import NamedTuple

TERMINATORS = ".!?…"
CLOSERS = "\"'”’»)]}"
OPENERS = "\"'“‘«([{"
# Typographic bullets mark a new item even in the middle of a line.
INLINE_BULLETS = "•⁃‣◦▪●"
# Markdown bullets count only at the start of a line.
LINE_BULLETS = "-*+"

# Dotted single letters: "u.s", "a.m", "u.s.a" (the final period is not part of the token).
_ACRONYM = re.compile(r"[^\W\d_](?:\.[^\W\d_])+")


def _word_list(name: str) -> frozenset[str]:
    """A rule table from data/: one lower-case word a line, # starts a comment line."""
    text = (resources.files("voicekit.text") / "data" / name).read_text("utf-8")
    words = (line.strip().lower() for line in text.splitlines())
    return frozenset(w for w in words if w and not w.startswith("#"))


_TITLES = _word_list("titles.txt")  # never end a sentence: "Mr.", "e.g."
_ABBREVIATIONS = _word_list("abbreviations.txt")  # end one only before a capital: "Inc."
_NUMBER_PREFIXES = _word_list("number_prefixes.txt")  # never before a digit: "p. 55"


def period_ends_sentence(token: str, previous: str, following: str) -> bool:
    """Whether ``token`` + "." ends a sentence, given the word before and the next non-space char.

    ``following`` is never lower case here: a lower-case continuation was already ruled out.
    """
    word = token.lower()
    if word in _TITLES:
        return False
    abbreviation = word in _ABBREVIATIONS or _ACRONYM.fullmatch(word) is not None
    if following.isdigit():
        return not (abbreviation or word in _NUMBER_PREFIXES)
    if len(token) == 1 and token.isupper():
        # A capital letter is an initial ("by J. K. Rowling"), except the pronoun after a
        # lower-case word: "you and I. Did" ends a sentence, "Albert I. Jones" does not.
        return token == "I" and bool(previous) and not previous[0].isupper()
    if abbreviation:
        return following.isupper()
    return True


class Marker(NamedTuple):
    """A list marker such as "2.", "b)", "• 9." or "- ": where it ends and which marker comes next."""

    end: int
    successor: tuple[str, str] | None  # (enumerator, punctuation) of the next item, e.g. ("3", ".")


class _Wait(enum.Enum):
    WAIT = "wait"


WAIT = _Wait.WAIT  # returned when the text ends before the marker can be judged


def _successor(enumerator: str, punctuation: str) -> tuple[str, str] | None:
    if enumerator.isdigit():
        return str(int(enumerator) + 1), punctuation
    if enumerator in "zZ":
        return None
    return chr(ord(enumerator) + 1), punctuation


def parse_marker(text: str, i: int, final: bool, *, bullets: bool = True) -> Marker | _Wait | None:
    """Parse a list marker at ``text[i]``: a bullet, an enumerator ("12." "a)" "1.)"), or both.

    Returns a Marker, None when there is none, or WAIT when ``text`` ends too early to tell
    (never WAIT when ``final``).
    """
    n = len(text)
    j = i
    bullet: Marker | None = None
    if bullets:
        if j == n:
            return None if final else WAIT
        c = text[j]
        if c in LINE_BULLETS:
            if j + 1 == n:
                return None if final else WAIT
            return Marker(j + 2, None) if text[j + 1] in " \t" else None
        if c in INLINE_BULLETS:
            j += 1
            while j < n and j - i <= 3 and text[j] in " \t":
                j += 1
            bullet = Marker(j, None)
    short = bullet if final else WAIT
    k = j
    while k < n and k - j < 4 and "0" <= text[k] <= "9":
        k += 1
    if k == n:
        return short
    if k > j:
        if k - j > 3:
            return bullet
        enumerator = text[j:k]
    elif text[k].isascii() and text[k].isalpha():
        enumerator = text[k]
        k += 1
    else:
        return bullet
    if k == n:
        return short
    punctuation = text[k]
    if punctuation not in ".)":
        return bullet
    k += 1
    if k < n and punctuation == "." and text[k] == ")":
        punctuation, k = ".)", k + 1
    if k == n:
        return short
    if not text[k].isspace():
        return bullet
    return Marker(k, _successor(enumerator, punctuation))
