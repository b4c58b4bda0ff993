"""Sentence boundary rules per language: when a period ends a sentence, what starts a list item.

The rules are data. ``data/common.txt`` holds what every language shares (terminators,
quotes, clause marks and a few Latin-script words); ``data/<code>.txt`` holds a language's
titles, abbreviations, number prefixes, ordinals and sentence starters. A language is
added by adding a file.
"""

from __future__ import annotations

import enum
import re
from functools import cache
from importlib import resources
from typing import NamedTuple

DEFAULT_LANGUAGE = "en"


def _sections(name: str) -> dict[str, list[str]]:
    """Read data/<name>.txt: ``[section]`` headers, items separated by white space, # comments."""
    text = (resources.files("voicekit.text") / "data" / (name + ".txt")).read_text("utf-8")
    sections: dict[str, list[str]] = {}
    items: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            items = sections.setdefault(line[1:-1], [])
        elif line and not line.startswith("#"):
            items.extend(line.split())
    return sections


_COMMON = _sections("common")

STRONG_TERMINATORS = "".join(_COMMON["strong_terminators"])
TERMINATORS = "".join(_COMMON["terminators"]) + STRONG_TERMINATORS
CLOSERS = "".join(_COMMON["closers"])
OPENERS = "".join(_COMMON["openers"])
SENTENCE_OPENERS = "".join(_COMMON["sentence_openers"])
CLAUSE_MARKS = "".join(_COMMON["clause_marks"])  # a clause break only before white space
STRONG_CLAUSE_MARKS = "".join(_COMMON["strong_clause_marks"])
# Typographic bullets mark a new item even in the middle of a line.
INLINE_BULLETS = "•⁃‣◦▪●"
# Markdown bullets count only at the start of a line.
LINE_BULLETS = "-*+"
# Pictographs (with their joiners, variation selectors and tags): one can close a
# sentence that has no terminator ("That's it 🚀 Next").
EMOJI = "\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff\ufe00-\ufe0f\u200d\u20e3\U000e0020-\U000e007f"

# Dotted single letters: "u.s", "a.m", "u.s.a" (the final period is not part of the token).
_ACRONYM = re.compile(r"[^\W\d_](?:\.[^\W\d_])+")
_ROMAN = re.compile(r"[IVXLCDM]+")
_ELISION = re.compile("['’]")


def capital_like(char: str) -> bool:
    """Whether ``char`` may start a sentence: a capital, a letter of a script without case, "¿" or "¡"."""
    return (char.isalpha() and not char.islower()) or char in SENTENCE_OPENERS


class Language:
    """The boundary rules of one language (the common ones included)."""

    def __init__(self, code: str, sections: dict[str, list[str]]) -> None:
        def words(name: str) -> frozenset[str]:
            return frozenset(w.lower() for w in _COMMON.get(name, []) + sections.get(name, []))

        self.code = code
        self.titles = words("titles")  # never end a sentence: "Mr.", "e.g."
        self.abbreviations = words("abbreviations")  # may end one: "Inc.", "etc."
        self.number_prefixes = words("number_prefixes")  # never before a digit: "p. 55"
        self.number_suffixes = words("number_suffixes")  # abbreviations after a number, else titles
        self.final_letters = words("final_letters")  # one-letter words that may end one: "I"
        self.starters = words("sentence_starters")  # a word after an abbreviation that starts one
        digits = int(sections.get("ordinal_digits", ["0"])[0])
        self._ordinal = re.compile(rf"\d{{1,{digits}}}(?:\.\d{{1,2}})?") if digits else None

    def __repr__(self) -> str:
        return f"Language({self.code!r})"

    def period_ends_sentence(self, token: str, previous: str, following: str) -> bool | None:
        """Whether ``token`` + "." ends a sentence, given the word before and the next non-space char.

        None means the next word decides: pass it to :meth:`starts_sentence`. ``following``
        is never lower case here: a lower-case continuation was already ruled out.
        """
        if "'" in token or "’" in token:
            token = _ELISION.split(token)[-1] or token  # "L'Avv." is "Avv."
        word = token.lower()
        if word in self.titles:
            return False
        after_number = word in self.number_suffixes
        if after_number and not (previous.isdigit() or _ROMAN.fullmatch(previous)):
            return False
        abbreviation = after_number or word in self.abbreviations or _ACRONYM.fullmatch(word) is not None
        if following.isdigit():
            return not (abbreviation or word in self.number_prefixes)
        if len(token) == 1 and token.isupper():
            # A capital letter is an initial ("by J. K. Rowling"), except the English pronoun
            # after a lower-case word: "you and I. Did" ends a sentence, "Albert I. Jones" does not.
            return word in self.final_letters and bool(previous) and not previous[0].isupper()
        if self._ordinal is not None and self._ordinal.fullmatch(token):
            return None if self.starters else False  # "am 3. Oktober"
        if abbreviation:
            if self.starters:
                return None
            return capital_like(following)
        return True

    def starts_sentence(self, word: str) -> bool:
        """After an abbreviation or ordinal: whether ``word`` (letters only) starts a new sentence."""
        word = word.lower()
        return word in self.starters or word in self.titles


@cache
def _codes() -> dict[str, str]:
    """Every accepted code (ISO 639-1 and the 639-2/3 ones in [codes]) -> its rule file."""
    files = (resources.files("voicekit.text") / "data").iterdir()
    names = sorted(f.name[:-4] for f in files if f.name.endswith(".txt") and f.name != "common.txt")
    codes = {name: name for name in names}
    for name in names:
        codes.update((alias.lower(), name) for alias in _sections(name).get("codes", []))
    return codes


def languages() -> list[str]:
    """The language codes that have rules of their own."""
    return sorted(set(_codes().values()))


def resolve(code: str) -> str:
    """The rule file for a language code or tag: "de", "pt-BR", "zh_Hans", "cmn-CN" or "deu".

    Raises ValueError for a language without rules.
    """
    if not isinstance(code, str):
        raise TypeError(f"language must be a str such as 'en' or 'de', got {code!r}")
    tag = code.strip().lower().replace("_", "-")
    codes = _codes()
    found = codes.get(tag) or codes.get(tag.split("-")[0])
    if found is None:
        raise ValueError(f"no sentence rules for language {code!r}; known: {', '.join(languages())}")
    return found


def language_or_default(tag: object) -> str:
    """The rules for a language tag that may be unknown or missing (a voice's "en-US"); else English."""
    if isinstance(tag, str):
        try:
            return resolve(tag)
        except ValueError:
            pass
    return DEFAULT_LANGUAGE


@cache
def _language(name: str) -> Language:
    return Language(name, _sections(name))


def language(code: str | None = None) -> Language:
    """The rules for ``code`` (see :func:`resolve`); English for None."""
    return _language(resolve(DEFAULT_LANGUAGE if code is None else code))


class Marker(NamedTuple):
    """A list marker such as "2.", "b)", "• 9." or "- ": where it ends and which marker comes next."""

    end: int
    successor: tuple[str, str] | None  # (enumerator, punctuation) of the next item, e.g. ("3", ".")


class _Wait(enum.Enum):
    WAIT = "wait"


WAIT = _Wait.WAIT  # returned when the text ends before the marker (or the next word) can be judged


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
