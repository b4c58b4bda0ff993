"""Hostile text through the text stages: the sanitizer and the speech filter report what they drop."""

from __future__ import annotations

import pytest

from voicekit.text.sanitize import REPLACEMENT, Sanitizer, sanitize


def run_sanitizer(pieces: list[str]) -> tuple[str, str]:
    dropped: list[str] = []
    s = Sanitizer(dropped.append)
    out = "".join(s.feed(p) for p in pieces) + s.flush()
    return out, "".join(dropped)


def test_lone_surrogates_are_replaced_and_reported() -> None:
    out, dropped = run_sanitizer(["Hello \ud800 world \udfff."])
    assert out == f"Hello {REPLACEMENT} world {REPLACEMENT}."
    assert dropped == "\ud800\udfff"
    out.encode("utf-8")  # strict: what leaves the sanitizer is always valid UTF-8


def test_a_surrogate_pair_split_across_feeds_is_joined() -> None:
    out, dropped = run_sanitizer(["smile \ud83d", "\ude00 now"])
    assert (out, dropped) == ("smile \U0001f600 now", "")
    assert sanitize("\ud83d\ude00") == "\U0001f600"


def test_a_high_surrogate_at_the_end_is_replaced_at_flush() -> None:
    assert run_sanitizer(["end \ud83d"]) == (f"end {REPLACEMENT}", "\ud83d")


def test_control_characters_are_removed_and_reported_newline_and_tab_kept() -> None:
    out, dropped = run_sanitizer(["a\x00b\x07c\td\ne\x1bf\x7fg\x85h"])
    assert out == "abc\td\nefgh"
    assert dropped == "\x00\x07\x1b\x7f\x85"


@pytest.mark.parametrize("pieces", [["a\r\nb"], ["a\r", "\nb"], ["a\r", "b"], ["a\rb"]])
def test_line_ends_are_normalized(pieces: list[str]) -> None:
    assert run_sanitizer(pieces) == ("a\nb", "")


def test_plain_text_passes_unchanged() -> None:
    text = "Plain — text with emoji \U0001f600, RTL \u05e9\u05dc\u05d5\u05dd and e\u0301."
    assert run_sanitizer([text]) == (text, "")


# a colored build log line, as `make` and compilers print it to a terminal
LOG = "\x1b]0;make: build\x07\x1b[1m\x1b[31merror:\x1b[0m missing \x1b[38;5;208mfile\x1b[m \x1b]8;;https://x.org\x1b\\docs\x1b]8;;\x1b\\\n"
LOG_SPOKEN = "error: missing file docs\n"
LOG_DROPPED = ["\x1b]0;make: build\x07\x1b[1m\x1b[31m", "\x1b[0m", "\x1b[38;5;208m", "\x1b[m", "\x1b]8;;https://x.org\x1b\\",
               "\x1b]8;;\x1b\\"]


@pytest.mark.parametrize("cut", range(len(LOG) + 1))
def test_ansi_escape_sequences_are_removed_whole_and_reported_wherever_the_text_is_cut(cut: int) -> None:
    dropped: list[str] = []
    sanitizer = Sanitizer(dropped.append)
    out = sanitizer.feed(LOG[:cut]) + sanitizer.feed(LOG[cut:]) + sanitizer.flush()
    assert (out, dropped) == (LOG_SPOKEN, LOG_DROPPED)


@pytest.mark.parametrize("text, spoken, dropped", [
    ("\x9b1;31mred\x9b0m", "red", "\x9b1;31m\x9b0m"),  # the 8-bit CSI
    ("\x9d2;title\x9cdone", "done", "\x9d2;title\x9c"),  # the 8-bit OSC and ST
    ("a\x1b[", "a[", "\x1b"),  # a sequence the text ends in the middle of is no sequence
    ("\x1b[31\nno\x1b", "[31\nno", "\x1b\x1b"),
    ("\x1b]0;title\nnext", "]0;title\nnext", "\x1b"),  # an OSC ends at BEL or ST, not at a line end
])
def test_what_is_not_a_whole_escape_sequence_is_text(text: str, spoken: str, dropped: str) -> None:
    assert run_sanitizer([text]) == (spoken, dropped)
    assert run_sanitizer(list(text)) == (spoken, dropped)


def test_an_unterminated_escape_sequence_holds_back_a_bounded_amount_of_text() -> None:
    text = "\x1b]0;" + "x" * 2000
    sanitizer = Sanitizer()
    out = "".join(sanitizer.feed(c) for c in text)
    assert out and len(text) - len(out) <= 600
    assert out + sanitizer.flush() == text[1:]


def test_an_endless_stretch_of_dropped_text_is_reported_as_it_goes() -> None:
    from voicekit.text import SpeechFilter
    from voicekit.text.sanitize import MAX_PIECE

    dropped: list[str] = []
    sanitizer = Sanitizer(dropped.append)
    for _ in range(3000):
        sanitizer.feed("\x00\x07")
    assert dropped and all(len(piece) == MAX_PIECE for piece in dropped), "a flood of NUL is held whole"
    sanitizer.flush()
    assert "".join(dropped) == "\x00\x07" * 3000

    dropped.clear()
    speech = SpeechFilter(on_filtered=dropped.append)
    speech.feed("Look:\n```\n")
    for _ in range(1000):
        speech.feed("x = 1  # a line of code that never ends\n")
    assert dropped and max(map(len, dropped)) <= MAX_PIECE, "a code block that never closes is held whole"
