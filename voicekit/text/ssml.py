"""SSML replies: checked whole, then cut into documents an engine accepts.

Whether a reply is SSML is decided once, by the caller (see :func:`is_ssml`), and
the decision travels with every chunk of that reply (``synthesize(..., ssml=True)``);
an engine never guesses from a chunk's text. An SSML reply is parsed before any
request is made: a malformed one raises :class:`ValueError` with the parser's
position. A document longer than the engine's ``max_chars`` is cut into
well-formed ``<speak>`` documents at element boundaries (``<p>``, ``<s>``,
``<prosody>``...), then at sentence ends inside text, then at spaces; each piece
is re-wrapped in the elements that enclosed it, so ``<prosody rate="slow">``
still applies to every part of a long paragraph.

The parser is expat without namespace processing (Polly's ``<amazon:effect>``
needs no ``xmlns``) and refuses DOCTYPE and entity declarations, so a document
can't expand entities or reach files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

__all__ = ["is_ssml", "check_ssml", "split_ssml", "as_document", "ssml_words"]

#: elements a long document may be cut inside (each part is re-wrapped in them)
_SPLITTABLE = frozenset(
    "speak p s prosody voice lang emphasis amazon:effect amazon:domain amazon:auto-breaths".split()
)
_ELEMENT_END = {"p": "\n\n", "s": "\n\n", "break": " "}
_SENTENCE_END = re.compile(r"[.!?。！？…][\"')\]]*\s+\Z")
_WORD = re.compile(r"\s+|\S+\s*")


def is_ssml(text: str) -> bool:
    """The rule for a reply's first text: SSML iff its first non-space text is ``<speak``."""
    return text.lstrip().startswith("<speak")


def as_document(text: str) -> str:
    """``text`` the caller marked as SSML, as a ``<speak>`` document (a fragment gets wrapped)."""
    return text if is_ssml(text) else f"<speak>{text}</speak>"


@dataclass
class _Element:
    tag: str
    attributes: dict[str, str]
    children: list[str | _Element] = field(default_factory=list)

    def start(self) -> str:
        return "<" + self.tag + "".join(f" {k}={quoteattr(v)}" for k, v in self.attributes.items()) + ">"

    def end(self) -> str:
        return f"</{self.tag}>"

    def serialize(self) -> str:
        if not self.children:
            return self.start()[:-1] + "/>"
        inner = "".join(escape(c) if isinstance(c, str) else c.serialize() for c in self.children)
        return self.start() + inner + self.end()


def _refuse(*_: object) -> None:
    raise ValueError("SSML must not declare a DOCTYPE or entities")


def _parse(document: str) -> _Element:
    parser = expat.ParserCreate()
    root = _Element("", {})
    stack = [root]

    def start(tag: str, attributes: dict[str, str]) -> None:
        element = _Element(tag, attributes)
        stack[-1].children.append(element)
        stack.append(element)

    def text(data: str) -> None:
        children = stack[-1].children
        if children and isinstance(children[-1], str):
            children[-1] += data
        else:
            children.append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = lambda tag: stack.pop()
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    try:
        parser.Parse(document, True)
    except expat.ExpatError as exc:
        raise ValueError(f"malformed SSML: {exc}") from None
    elements = [c for c in root.children if isinstance(c, _Element)]
    if len(elements) != 1 or elements[0].tag != "speak":
        raise ValueError("malformed SSML: the document must be one <speak> element")
    return elements[0]


def check_ssml(document: str) -> None:
    """Raise ``ValueError`` unless ``document`` is one well-formed ``<speak>`` element."""
    _parse(document)


def ssml_words(document: str) -> tuple[str, list[str]]:
    """An SSML document read by an engine without SSML: (its text, the tags left out).

    Entities are decoded ("&amp;" is "&"), each ``<p>`` and ``<s>`` is a
    paragraph (a chunk of its own) and a ``<break>`` is a space. Raises
    ``ValueError`` if the document is malformed.
    """
    words: list[str] = []
    markup: list[str] = []

    def read(element: _Element) -> None:
        markup.append(element.start() if element.children else element.serialize())
        words.append(_ELEMENT_END.get(element.tag, ""))
        for child in element.children:
            if isinstance(child, str):
                words.append(child)
            else:
                read(child)
        words.append(_ELEMENT_END.get(element.tag, ""))

    read(_parse(document))
    return "".join(words), markup


def split_ssml(document: str, max_chars: int) -> list[str]:
    """``document`` as well-formed ``<speak>`` documents of at most ``max_chars`` characters each.

    A document that fits is returned as given. Raises ``ValueError`` if it is
    malformed, or if an element that can't be cut (``<say-as>``, ``<phoneme>``...)
    alone is longer than ``max_chars``.
    """
    root = _parse(document)
    if len(document) <= max_chars:
        return [document]
    head, tail = root.start(), root.end()
    room = max_chars - len(head) - len(tail)
    docs: list[str] = []
    parts: list[str] = []
    size = 0
    path: tuple[_Element, ...] = ()
    for where, piece in _pieces(root, (), room):
        step = _move(path, where) + piece
        if parts and size + len(step) + len(_closing(where)) > room:
            docs.append(head + "".join(parts) + _closing(path) + tail)
            parts, size, path = [], 0, ()
            step = _move(path, where) + piece
        parts.append(step)
        size += len(step)
        path = where
    if parts:
        docs.append(head + "".join(parts) + _closing(path) + tail)
    return docs


def _closing(path: tuple[_Element, ...]) -> str:
    return "".join(e.end() for e in reversed(path))


def _move(old: tuple[_Element, ...], new: tuple[_Element, ...]) -> str:
    """The tags that close ``old``'s open elements and open ``new``'s, past their common part."""
    common = 0
    while common < min(len(old), len(new)) and old[common] is new[common]:
        common += 1
    return _closing(old[common:]) + "".join(e.start() for e in new[common:])


def _pieces(element: _Element, path: tuple[_Element, ...], room: int) -> Iterator[tuple[tuple[_Element, ...], str]]:
    """(enclosing elements, markup) in document order, each fitting in ``room`` with its enclosing tags."""
    wrap = len(_move((), path)) + len(_closing(path))
    for child in element.children:
        if isinstance(child, str):
            for text in _cut_text(child, room - wrap):
                yield path, escape(text)
            continue
        markup = child.serialize()
        if wrap + len(markup) <= room:
            yield path, markup
        elif child.tag in _SPLITTABLE and wrap + len(child.start()) + len(child.end()) < room:
            yield from _pieces(child, (*path, child), room)
        else:
            raise ValueError(f"an SSML <{child.tag}> element is longer than the engine's limit of characters")


def _cut_text(text: str, room: int) -> Iterator[str]:
    """``text`` in parts whose escaped form fits ``room``: sentences, else words, else characters."""
    if len(escape(text)) <= room:
        yield text
        return
    if room < 16:
        raise ValueError("the engine's character limit leaves no room for text inside these SSML elements")
    part = ""
    for word in _WORD.findall(text):
        while len(escape(word)) > room:  # one "word" longer than a request: cut anywhere
            if part:
                yield part
                part = ""
            yield word[: room // 5]  # "&amp;" is the longest escape
            word = word[room // 5 :]
        if part and len(escape(part + word)) > room:
            yield part
            part = ""
        part += word
        if _SENTENCE_END.search(part):
            yield part
            part = ""
    if part:
        yield part
