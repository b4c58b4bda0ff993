"""SentenceChunker and split_sentences: right cuts, earliest emit, caps, split invariance."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicekit.text import SentenceChunker, split_sentences
from voicekit.text.rules import languages

from .helpers import chunk, pieces, three_ways


def no_space(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize(
    "text, sentences",
    [
        ("Dr. Watson came in. He sat down.", ["Dr. Watson came in.", "He sat down."]),
        ("Prof. Ada Byron met Mrs. Jones on Main St. near the park.", None),
        ("We met at 10 a.m. and left at noon.", None),
        (
            "The deal closed, i.e. the firm was sold. Then, e.g. Acme Inc. grew.",
            ["The deal closed, i.e. the firm was sold.", "Then, e.g. Acme Inc. grew."],
        ),
        ("Acme Inc. Then it grew.", ["Acme Inc.", "Then it grew."]),
        ("Send it to the U.K. office. They know.", ["Send it to the U.K. office.", "They know."]),
        ("The books by J. R. R. Tolkien are long.", None),
        ("Grace M. Hopper wrote code. So did I. Then we left.", ["Grace M. Hopper wrote code.", "So did I.", "Then we left."]),
        ("Pi is 3.14 today. The TV costs $1,249.99 now.", ["Pi is 3.14 today.", "The TV costs $1,249.99 now."]),
        ("Install v2.0.1 first. Ping 10.0.0.1 next. Meet at 9:30 sharp.", ["Install v2.0.1 first.", "Ping 10.0.0.1 next.", "Meet at 9:30 sharp."]),
        ("See vol. 3 and fig. 12 on p. 44 of ch. 2 today.", None),
        ("Open https://docs.example.org/v1.2/setup.html now. Thanks.", ["Open https://docs.example.org/v1.2/setup.html now.", "Thanks."]),
        ("Mail ann.lee@example.co.uk today. Edit config.yaml and main.py first.", ["Mail ann.lee@example.co.uk today.", "Edit config.yaml and main.py first."]),
        ("Wait... Let me think. Well . . . maybe not.", ["Wait...", "Let me think.", "Well . . . maybe not."]),
        ("Hmm… Okay then.", ["Hmm…", "Okay then."]),
        ("Really?! Yes!!! Fine?? Sure.", ["Really?!", "Yes!!!", "Fine??", "Sure."]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ('"Go now!" she said.', None),
        ("(It was late.) We slept.", ["(It was late.)", "We slept."]),
        ("It was late (very late.) and dark.", None),
        ("Do this: 1) red 2) green 3) blue", ["Do this: 1) red 2) green 3) blue"]),
        ("1) red 2) green 3) blue", ["1) red", "2) green", "3) blue"]),
        ("a. one b. two", ["a. one", "b. two"]),
        ("1. Open it. 2. Close it.", ["1. Open it.", "2. Close it."]),
        ("• Apples • Pears", ["• Apples", "• Pears"]),
        ("Steps:\n1. Open it\n2. Close it", ["Steps:", "1. Open it", "2. Close it"]),
        ("Fruit:\n- apples\n- pears\n* plums", ["Fruit:", "- apples", "- pears", "* plums"]),
        ("A title\n\nThe body starts here", ["A title", "The body starts here"]),
        ("one line\nwraps here", ["one line\nwraps here"]),
        ("It costs -5 degrees\n-5 degrees", ["It costs -5 degrees\n-5 degrees"]),
    ],
)
def test_right_cuts(text: str, sentences: list[str] | None) -> None:
    assert three_ways(text) == (sentences or [text])
    assert split_sentences(text) == (sentences or [text])


def test_emits_when_first_non_space_after_terminator_arrives() -> None:
    chunker = SentenceChunker(first_fragment=False)
    assert chunker.feed("Hello there.") == []
    assert chunker.feed("  ") == []
    assert chunker.feed("H") == ["Hello there."]
    assert chunker.feed("ow is it?\"") == []
    assert chunker.feed(" s") == []  # lower case: the quote did not end the sentence
    assert chunker.feed("he asked. Mr.") == ['How is it?" she asked.']
    assert chunker.feed(" S") == []  # a title never ends a sentence
    assert chunker.feed("mith") == []
    assert chunker.flush() == ["Mr. Smith"]


def test_blank_line_and_list_item_end_a_chunk_without_waiting() -> None:
    chunker = SentenceChunker(first_fragment=False)
    assert chunker.feed("Title\n") == []
    assert chunker.feed("\n") == ["Title"]
    assert chunker.feed("Intro\n- ") == ["Intro"]
    assert chunker.feed("item one.\n\n") == ["- item one."]
    assert chunker.feed("Done?!\n") == []
    assert chunker.feed(" \n") == ["Done?!"]


def test_first_fragment_cuts_at_a_clause_once_per_utterance() -> None:
    text = "Well, to be honest, I think this is right, mostly. And more, much more."
    first = ["Well,", "to be honest, I think this is right, mostly.", "And more, much more."]
    assert chunk([text]) == first
    assert chunk(list(text)) == first
    chunker = SentenceChunker()
    for _ in range(2):  # flush() starts a new utterance with a new first fragment
        assert chunker.feed(text) + chunker.flush() == first
    chunker.feed("Sure, let me see: the answer")
    chunker.reset()
    assert chunker.feed(text) + chunker.flush() == first
    assert chunk([text], first_fragment=False) == ["Well, to be honest, I think this is right, mostly.", "And more, much more."]
    # a clause shorter than FIRST_FRAGMENT_MIN_CHARS is no fragment of its own
    assert chunk(["So, the answer is yes, it is."]) == ["So, the answer is yes,", "it is."]


def test_first_fragment_cuts_at_a_dash() -> None:
    assert chunk(["Here is the thing — it works fine."]) == ["Here is the thing —", "it works fine."]


def test_max_chars_prefers_clause_breaks_then_spaces_and_never_splits_words() -> None:
    text = "alpha beta gamma delta, epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho"
    chunks = chunk([text], first_fragment=False, max_chars=30)
    assert chunks[0] == "alpha beta gamma delta,"
    assert all(len(c) <= 30 for c in chunks)
    assert [w for c in chunks for w in c.split()] == text.split()


def test_a_word_longer_than_max_chars_is_cut_hard() -> None:
    word = "x" * 25
    assert chunk(["see " + word + " now"], max_chars=10) == ["see", "x" * 10, "x" * 10, "x" * 5 + " now"]


def test_min_chars_merges_tiny_sentences_but_not_one_word_ones() -> None:
    assert chunk(["I am. How are you? Ok."], first_fragment=False, min_chars=8) == ["I am. How are you?", "Ok."]
    assert chunk(["I am. How are you?"], first_fragment=False, min_chars=0) == ["I am.", "How are you?"]
    assert chunk(["A. B? How are you?"], first_fragment=False, min_chars=8) == ["A. B? How are you?"]


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \n", "\u3000\u2028 "])
def test_whitespace_only_yields_nothing(text: str) -> None:
    assert chunk([text]) == []
    assert chunk(list(text)) == []


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        SentenceChunker(max_chars=0)
    with pytest.raises(ValueError, match="min_chars"):
        SentenceChunker(min_chars=-1)
    assert SentenceChunker(max_chars=2).min_chars == 2  # the default min_chars never exceeds the cap
    with pytest.raises(TypeError, match="max_chars"):
        SentenceChunker(max_chars=2.5)
    with pytest.raises(TypeError, match="str"):
        SentenceChunker().feed(b"bytes")
    with pytest.raises(TypeError):
        SentenceChunker(80)  # keyword-only


def test_reset_drops_pending_text() -> None:
    chunker = SentenceChunker()
    chunker.feed("This is never spoken")
    chunker.reset()
    assert chunker.feed("Fresh start. Ok") == ["Fresh start."]
    assert chunker.flush() == ["Ok"]


def test_a_megabyte_fed_token_by_token_takes_time_linear_in_size() -> None:
    sentence = "Dr. Smith paid $12.50 for v2.1, e.g. at 9:30 a.m. today! Then... he left?\n\n1. Item one\n- bullet\n"
    text = sentence * (1_000_000 // len(sentence))
    tokens = [text[i : i + 4] for i in range(0, len(text), 4)]
    chunker = SentenceChunker()
    started = time.perf_counter()
    chunks = [c for t in tokens for c in chunker.feed(t)] + chunker.flush()
    elapsed = time.perf_counter() - started
    assert no_space("".join(chunks)) == no_space(text)
    assert elapsed < 60, f"1 MB took {elapsed:.1f} s; the chunker should take about a second"


# -- properties ---------------------------------------------------------------------------

# Text that exercises every rule: terminators, abbreviations, markers, newlines, clauses, and
# those of every language: CJK and Indic terminators, quotes, ordinals, titles, emoji, title lines.
_ATOMS = [
    "a", "Word", " ", "  ", "\n", "\n\n", "\t", ".", "!", "?", "…", "...", " . . . ", ",", ";", ":", "—", " - ",
    '"', "'", ")", "(", "Mr. ", "U.S. ", "e.g. ", "p. ", "I. ", "J. ", "3.14", "$1,249.99", "1. ", "2. ",
    "1) ", "2) ", "a. ", "b. ", "• ", "⁃", "\n- ", "\n1. ", "https://x.org/a.b ", "é", "😀", "\x00", "\x1f", "\u2028",
    "。", "！", "？", "｡", "।", "॥", "؟", "¿", "¡", "«", "»", "「", "」", "“", "”", "，", "、", "،", "🎉 ", "👨‍👩‍👧",
    " 🚀\n", "Am 3. ", "3. Oktober", "Die ", "Sr. ", "Sig. ", "z.B. ", "usw. ", "г. ", "1990 г. ", "т.д. ", "د. ",
    "إلخ. ", "डॉ. ", "L'Avv. ", "EE. UU. ", "Inc. ", "Then ", "a.m. ", "Summary\n", "Ok. ", "你好", "はい", "नमस्ते",
]
_texts = st.lists(st.sampled_from(_ATOMS) | st.text(max_size=4), max_size=60).map("".join)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=_texts,
    cuts=st.lists(st.integers(min_value=0), max_size=20),
    first_fragment=st.booleans(),
    max_chars=st.integers(1, 60),
    min_chars=st.integers(0, 6),
    language=st.sampled_from(languages()),
)
def test_same_chunks_for_any_split(text, cuts, first_fragment, max_chars, min_chars, language) -> None:
    options = dict(
        first_fragment=first_fragment, max_chars=max_chars, min_chars=min(min_chars, max_chars), language=language
    )
    whole = chunk([text], **options)
    assert chunk(pieces(text, cuts), **options) == whole
    assert chunk(list(text), **options) == whole


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text() | _texts,
    max_chars=st.integers(1, 300),
    first_fragment=st.booleans(),
    language=st.sampled_from(languages()),
)
def test_nothing_lost_and_every_chunk_fits(text, max_chars, first_fragment, language) -> None:
    chunks = chunk([text], max_chars=max_chars, min_chars=0, first_fragment=first_fragment, language=language)
    assert no_space("".join(chunks)) == no_space(text)
    for c in chunks:
        assert c and c == c.strip() and len(c) <= max_chars


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(unit=st.text(min_size=1, max_size=40) | _texts.filter(bool), repeat=st.integers(1000, 5000), cuts=st.lists(st.integers(0), max_size=30))
def test_huge_inputs(unit, repeat, cuts) -> None:
    text = unit * repeat
    chunks = chunk(pieces(text, cuts))
    assert chunks == chunk([text])
    assert no_space("".join(chunks)) == no_space(text)
    assert all(0 < len(c) <= 250 for c in chunks)


_words = st.text(alphabet="bdgiou", min_size=2, max_size=7)  # never an abbreviation
_sentence = st.tuples(
    st.text(alphabet="KLMNOPQRS", min_size=1, max_size=1),  # capital, never a single-letter word
    st.lists(_words, min_size=1, max_size=6),
    st.sampled_from([".", "!", "?", "?!", "...", '."', "!)"]),
).map(lambda t: t[0] + " ".join(t[1]) + t[2])


@settings(max_examples=200, deadline=None)
@given(sentences=st.lists(_sentence, min_size=2, max_size=6), gap=st.sampled_from([" ", "  ", "\n", " \t "]))
def test_each_sentence_is_emitted_when_the_next_one_starts(sentences: list[str], gap: str) -> None:
    chunker = SentenceChunker(first_fragment=False, min_chars=0)
    text = gap.join(sentences)
    emitted: list[tuple[int, str]] = []
    for i, char in enumerate(text):
        emitted += [(i, c) for c in chunker.feed(char)]
    assert chunker.flush() == [sentences[-1]]
    starts = [sum(len(s) + len(gap) for s in sentences[:n]) for n in range(1, len(sentences))]
    # Each sentence comes out on the first character of the next one, never later.
    assert emitted == list(zip(starts, sentences[:-1]))
