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
