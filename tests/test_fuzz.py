"""Property-based fuzz: hostile Unicode at random split points through every text stage and engine.

Input mixes lone surrogates, control characters, RTL and combining marks, emoji, ``< > &``,
SSML and HTML fragments and markdown, cut into ``feed()`` pieces at random points.
Invariants: nothing crashes or hangs, plain text never reaches an engine as SSML, and every
character fed is spoken or reported (the sanitizer's and the speech filter's ``on_filtered``).

The text stages run many examples (they are fast); each engine runs fewer, real ones: eSpeak
in process, Polly and OpenAI through their real clients against the fake servers. The whole
stream runs on voicekit.testing's tone engine: its accounting is what is checked there.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from xml.parsers import expat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.openai import FakeOpenAI
from tests.fakes.polly import FakePolly
from voicekit.engines.espeak import EspeakClient
from voicekit.engines.openai_tts import OpenAIClient
from voicekit.engines.polly import PollyClient
from voicekit.text import SentenceChunker, SpeechFilter
from voicekit.text.sanitize import REPLACEMENT, Sanitizer
from voicekit.text.ssml import check_ssml, split_ssml

_ATOMS = [
    "<", ">", "&", "&amp;", "<speak>", "</speak>", "<speak", '<prosody rate="x-slow">', "</prosody>",
    '<break time="10s"/>', "<break\n time='1s'/>", "<b>", "</b>", "<Enter>", "a<b and c>d", "x -> y", "<!-- c -->",
    "<p>", "</p>", "<s>", "<a href='https://x.org'>", "**", "*", "_", "`", "```", "\n```\n", "# ", "- ", "| ",
    "[", "](", ")", "![", "https://example.com/a?b=1", "www.", "\n", "\n\n", " ", "\t", ".", "!", "?", "...",
    "\u202e", "\u200f", "\u05e9\u05dc\u05d5\u05dd", "\u0627\u0644\u0633\u0644\u0627\u0645", "e\u0301", "\u0301\u0301",
    "\U0001f600", "\U0001f44d\U0001f3fd", "\u2764\ufe0f", "\u200d", "\x00", "\x07", "\x1b[31m", "\x7f", "\x85",
    "\r\n", "\r", "\ud800", "\udfff", "\ud83d", "\ude00", "\ufeff", "\u2028", "word", "Hello there", "1.5",
]
_chars = st.one_of(
    st.characters(),
    st.integers(0xD800, 0xDFFF).map(chr),
    st.integers(0, 0x9F).map(chr),
)
_texts = st.lists(st.one_of(st.sampled_from(_ATOMS), st.text(_chars, max_size=4)), max_size=40).map("".join)
_cuts = st.lists(st.integers(min_value=0), max_size=12)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def _pairs_joined(text: str) -> str:
    """``text`` as the sanitizer passes it on: surrogate pairs are one character (nothing lost)."""
    return _PAIR.sub(lambda m: m.group().encode("utf-16-le", "surrogatepass").decode("utf-16-le"), text)


def _pieces(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]


class Stages:
    """sanitizer -> speech filter -> chunker, as a stream runs them, with what each one reported."""

    def __init__(self, pieces: list[str], max_chars: int = 200) -> None:
        self.sanitized: list[str] = []
        self.filtered: list[str] = []
        sanitizer, speech = Sanitizer(self.sanitized.append), SpeechFilter(on_filtered=self.filtered.append)
        chunker = SentenceChunker(max_chars=max_chars)
        self.chunks: list[str] = []
        self.clean = ""  # what the sanitizer passed on
        for piece in [*pieces, None]:
            clean = sanitizer.feed(piece) if piece is not None else sanitizer.flush()
            self.clean += clean
            self.chunks += chunker.feed(speech.feed(clean) + ("" if piece is not None else speech.flush()))
        self.chunks += chunker.flush()

    @property
    def reported(self) -> list[str]:
        return self.sanitized + self.filtered


def _visible(text: str) -> Counter[str]:
    return Counter(c for c in text if not c.isspace())


def _in_order(reports: list[str], fed: str) -> bool:
    rest = iter(c for c in fed if not c.isspace())
    return all(c in rest for c in "".join(reports) if not c.isspace())


def assert_spoken_or_reported(fed: str, stages: Stages) -> None:
    """Every non-space character fed is in a chunk or was reported; each stage reports in input order."""
    fed = _pairs_joined(fed)
    lost = _visible(fed) - _visible("".join(stages.chunks)) - _visible("".join(stages.reported))
    assert not lost, f"dropped without a report: {''.join(lost.elements())!r}"
    assert _in_order(stages.sanitized, fed) and _in_order(stages.filtered, stages.clean), "reports are out of order"


def assert_speakable(chunks: list[str], max_chars: int) -> None:
    for chunk in chunks:
        assert chunk.strip() and len(chunk) <= max_chars
        assert not _CONTROL.search(chunk), repr(chunk)
        chunk.encode("utf-8")  # strict


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_texts, cuts=_cuts)
def test_text_stages_speak_or_report_everything(text: str, cuts: list[int]) -> None:
    stages = Stages(_pieces(text, cuts))
    assert_speakable(stages.chunks, 200)
    assert_spoken_or_reported(text, stages)
    whole = Stages([text])
    assert " ".join(stages.chunks).split() == " ".join(whole.chunks).split()
    assert "".join(stages.sanitized) == "".join(whole.sanitized)
    assert _visible("".join(stages.filtered)) == _visible("".join(whole.filtered))


# -- SSML documents -------------------------------------------------------------------------

_ssml_text = st.text(st.sampled_from("ab cd. Ef! gh? & < > ' \" \n\t\u05e9\U0001f600"), max_size=120)


@st.composite
def _ssml_elements(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["text", "text", "break", "p", "s", "prosody", "say-as"] if depth < 3 else ["text"]))
        if kind == "text":
            parts.append(draw(_ssml_text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
        elif kind == "break":
            parts.append('<break\n  time="200ms"/>')
        elif kind == "say-as":
            parts.append('<say-as interpret-as="characters">abc</say-as>')
        else:
            attrs = ' rate="slow"\n volume="loud"' if kind == "prosody" else ""
            parts.append(f"<{kind}{attrs}>{draw(_ssml_elements(depth + 1))}</{kind}>")
    return "".join(parts)


def _ssml_words(document: str) -> list[str]:
    text: list[str] = []
    parser = expat.ParserCreate()
    parser.CharacterDataHandler = text.append
    parser.Parse(document, True)
    return "".join(text).split()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_ssml_elements(), repeat=st.integers(1, 40), limit=st.integers(400, 3000))
def test_long_ssml_splits_into_well_formed_documents(body: str, repeat: int, limit: int) -> None:
    document = "<speak>" + body * repeat + "</speak>"
    docs = split_ssml(document, limit)
    for doc in docs:
        check_ssml(doc)
        assert len(doc) <= limit or doc == document
    assert "".join(w for d in docs for w in _ssml_words(d)) == "".join(_ssml_words(document))


# -- engines --------------------------------------------------------------------------------

_ENGINE_SETTINGS = settings(
    max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


def _engine_chunks(text: str, cuts: list[int], max_chars: int) -> list[str]:
    stages = Stages(_pieces(text, cuts), max_chars)
    assert_spoken_or_reported(text, stages)
    return stages.chunks


@pytest.fixture(scope="module")
def espeak():
    client = EspeakClient()
    yield client
    client.close()


@settings(_ENGINE_SETTINGS, max_examples=60)
@given(text=_texts, cuts=_cuts)
def test_espeak_speaks_any_chunk(espeak: EspeakClient, text: str, cuts: list[int]) -> None:
    for chunk in _engine_chunks(text, cuts, 200):
        started = time.monotonic()
        audio = list(espeak.synthesize(chunk, threading.Event()))
        assert time.monotonic() - started < 10
        for mark in (m for a in audio for m in a.marks):
            assert 0 <= mark.offset and mark.offset + mark.length <= len(chunk)


def _only_our_prosody(document: str) -> None:
    """voicekit's own wrapper: one <speak><prosody> with the text escaped inside, nothing else."""
    elements: list[str] = []
    parser = expat.ParserCreate()
    parser.StartElementHandler = lambda tag, attributes: elements.append(tag)
    parser.Parse(document, True)
    assert elements == ["speak", "prosody"], elements


@_ENGINE_SETTINGS
@given(text=_texts, cuts=_cuts, rate=st.sampled_from([None, 1.25]))
def test_polly_never_gets_ssml_from_plain_text(fake_polly: FakePolly, text: str, cuts: list[int],
                                               rate: float | None) -> None:
    client = PollyClient(("eu-west-1", "AKIDFAKE", "secret"), endpoint_url=fake_polly.url, max_retries=0)
    try:
        if rate is not None:
            client.set_property("rate", rate)
        seen = len(fake_polly.speech_requests("pcm"))
        chunks = _engine_chunks(text, cuts, client.max_chars)
        for chunk in chunks:
            list(client.synthesize(chunk, threading.Event()))
        requests = fake_polly.speech_requests("pcm")[seen:]
        assert len(requests) == len([c for c in chunks if c.strip()])
        for request, chunk in zip(requests, (c for c in chunks if c.strip())):
            if rate is None:
                assert (request.body["TextType"], request.body["Text"]) == ("text", chunk)
            else:
                assert request.body["TextType"] == "ssml"
                _only_our_prosody(request.body["Text"])
    finally:
        client.close()


@_ENGINE_SETTINGS
@given(text=_texts, cuts=_cuts)
def test_openai_gets_every_chunk_as_valid_text(fake_openai: FakeOpenAI, text: str, cuts: list[int]) -> None:
    client = OpenAIClient(api_key="sk-test", base_url=fake_openai.url + "/v1", max_retries=0)
    try:
        seen = len(fake_openai.speech_requests())
        chunks = _engine_chunks(text, cuts, client.max_chars)
        for chunk in chunks:
            list(client.synthesize(chunk, threading.Event()))
        assert [r.body["input"] for r in fake_openai.speech_requests()[seen:]] == chunks
    finally:
        client.close()


def _said_and_reported(pieces: list[str]) -> tuple[str, list[str]]:
    """The speech filter as a stream runs it: sanitizing its input, both stages reporting to one list."""
    reported: list[str] = []
    speech = SpeechFilter(on_filtered=reported.append, sanitize=True)
    said = "".join(speech.feed(piece) for piece in pieces) + speech.flush()
    return said, reported


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_texts, cuts=_cuts)
def test_what_the_text_stages_report_does_not_depend_on_how_the_text_is_cut(text: str, cuts: list[int]) -> None:
    said, reported = _said_and_reported(_pieces(text, cuts))
    assert (said, reported) == _said_and_reported([text])


def test_replacement_character_is_what_a_lone_surrogate_becomes() -> None:
    stages = Stages(["Half a pair \ud83d here."])
    assert stages.chunks == [f"Half a pair {REPLACEMENT} here."] and stages.reported == ["\ud83d"]


# -- the whole stream -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tone_tts():
    from voicekit.testing import ToneTTS  # the stream's accounting is the point here, not an engine's

    tts = ToneTTS()
    yield tts
    tts.cleanup()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_texts.filter(lambda t: not t.lstrip().startswith("<speak")), cuts=_cuts)
def test_a_stream_hears_or_reports_every_character(tone_tts, text: str, cuts: list[int]) -> None:
    from voicekit import MemorySink

    stream = tone_tts.create_stream(sink=MemorySink())
    for piece in _pieces(text, cuts):
        stream.feed(piece)
    stream.done()
    assert stream.wait_until_done(timeout=30)
    stream.close()
    fed = _pairs_joined(text)
    lost = _visible(fed) - _visible(stream.heard_text) - _visible(stream.filtered_text)
    assert not lost, f"neither heard nor reported: {''.join(lost.elements())!r}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_texts.filter(lambda t: not t.lstrip().startswith("<speak")), cuts=_cuts, stop=st.integers(0, 12))
def test_an_interrupt_at_any_point_loses_nothing(tone_tts, text: str, cuts: list[int], stop: int) -> None:
    from voicekit import MemorySink

    stream = tone_tts.create_stream(sink=MemorySink(realtime=True))
    fed = _pieces(text, cuts)[:stop]
    for piece in fed:
        stream.feed(piece)
    unheard = _pairs_joined(stream.interrupt())  # text still queued comes back as fed
    lost = (_visible(_pairs_joined("".join(fed))) - _visible(stream.heard_text) - _visible(unheard)
            - _visible(stream.filtered_text))
    stream.close()
    assert not lost, f"neither heard, unheard nor reported: {''.join(lost.elements())!r}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_texts.filter(lambda t: not t.lstrip().startswith("<speak")), cut=st.integers(min_value=0))
def test_what_a_stream_reports_does_not_depend_on_where_its_text_is_cut(tone_tts, text: str, cut: int) -> None:
    """The worker takes queued text in slices of ``_SLICE`` characters: blank lines before the text put a cut at ``cut``."""
    from voicekit import MemorySink
    from voicekit.text.pipeline import _SLICE

    def reported(blank_lines: int) -> tuple[str, str]:
        stream = tone_tts.create_stream(sink=MemorySink())
        stream.feed("\n" * blank_lines + text)
        stream.done()
        assert stream.wait_until_done(timeout=30)
        stream.close()
        return stream.filtered_text, stream.heard_text

    assert reported(_SLICE - cut % (len(text) + 1)) == reported(_SLICE)
