"""Hostile input: voice ids that are paths, injected SSML, bad characters, mid-chunk failures."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from xml.parsers import expat

import numpy as np
import pytest

from tests.fakes.openai import FakeOpenAI
from tests.fakes.polly import FakePolly
from voicekit.contract import check_voice_id
from voicekit.engines.openai_tts import OpenAIClient
from voicekit.engines.polly import PollyClient

pytestmark = pytest.mark.usefixtures("no_thread_leak")

PATH_IDS = [
    "../" * 20 + "etc/passwd",
    "../" * 20 + "dev/zero",
    "/etc/passwd",
    "/dev/zero",
    "..",
    "en/" + "../" * 20 + "dev/zero",
    "gmw/" + "../" * 20 + "etc/passwd",
    "en+" + "../" * 20 + "etc/passwd",
    "en\\..\\..\\x",
    "C:\\Windows\\win.ini",
    "~/voice",
    "./en",
    "en\n",
    "en\x00",
    "",
]


@pytest.mark.parametrize("voice_id", PATH_IDS)
def test_paths_are_not_voice_ids(voice_id: str) -> None:
    with pytest.raises(ValueError, match="invalid voice id"):
        check_voice_id(voice_id)


@pytest.mark.parametrize("voice_id", ["Joanna", "en-us", "en+f3", "en_US-lessac-medium", "alloy", "v2.1"])
def test_ids_are_voice_ids(voice_id: str) -> None:
    assert check_voice_id(voice_id) == voice_id


def test_an_engines_own_list_may_name_any_id() -> None:
    assert check_voice_id("gmw/en-US", known={"gmw/en-US"}) == "gmw/en-US"
    with pytest.raises(ValueError):
        check_voice_id("gmw/../en-US", known={"gmw/en-US"})


# A child process: before the fix the first id crashed the interpreter (SIGSEGV) on the
# next speech and /dev/zero never returned, blocking every eSpeak client in the process.
_ESPEAK_PROBE = """
import sys, threading, time
from voicekit.engines.espeak import EspeakClient
client = EspeakClient()
for bad in sys.argv[1:]:
    start = time.monotonic()
    try:
        client.set_voice(bad)
    except ValueError as exc:
        assert "voice" in str(exc), exc
    else:
        sys.exit(f"accepted {bad!r}")
    took = time.monotonic() - start
    assert took < 1.0, (bad, took)
print(sum(len(c.pcm) for c in client.synthesize("Still speaking after that.", threading.Event())))
"""


def test_espeak_refuses_path_voice_ids_and_keeps_speaking() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _ESPEAK_PROBE, *[v for v in PATH_IDS if "\x00" not in v]],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout) > 10_000
    assert "root:" not in result.stderr, "eSpeak read /etc/passwd"


def test_polly_refuses_path_voice_ids_and_keeps_speaking(fake_polly: FakePolly) -> None:
    with pytest.raises(ValueError, match="invalid voice id"):
        PollyClient(endpoint_url=fake_polly.url, voice="../x")
    client = PollyClient(("eu-west-1", "AKIDFAKE", "secret"), endpoint_url=fake_polly.url)
    try:
        for bad in PATH_IDS:
            with pytest.raises(ValueError, match="invalid voice id"):
                client.set_voice(bad)
        assert list(client.synthesize("Still here.", threading.Event()))
        assert {e.body["VoiceId"] for e in fake_polly.speech_requests("pcm")} == {"Joanna"}
    finally:
        client.close()


def test_openai_refuses_path_voice_ids_and_keeps_speaking(fake_openai: FakeOpenAI) -> None:
    with pytest.raises(ValueError, match="invalid voice id"):
        OpenAIClient(api_key="sk-test", base_url=fake_openai.url + "/v1", voice="/etc/passwd")
    client = OpenAIClient(api_key="sk-test", base_url=fake_openai.url + "/v1")
    try:
        for bad in PATH_IDS:
            start = time.monotonic()
            with pytest.raises(ValueError, match="invalid voice id"):
                client.set_voice(bad)
            assert time.monotonic() - start < 1.0
        assert list(client.synthesize("Still here.", threading.Event()))
        assert {e.body["voice"] for e in fake_openai.speech_requests()} == {"alloy"}
    finally:
        client.close()


# -- accounting after a failure in the middle of a chunk ----------------------------------------

FOURTEEN = "One two three four five six seven eight nine ten eleven twelve thirteen fourteen."


def _speak_until_failure(tts, text: str) -> tuple[str, str, np.ndarray]:
    """(heard_text, unspoken_text, the audio played) of a stream whose engine breaks off mid-chunk."""
    from voicekit import MemorySink
    from voicekit.errors import EngineError

    sink = MemorySink()
    stream = tts.create_stream(sink=sink)
    stream.feed(text)
    stream.done()
    with pytest.raises(EngineError) as info:
        stream.wait_until_done(timeout=30)
    stream.close()
    return stream.heard_text, info.value.unspoken_text, sink.audio


def _played_words(fake, played: np.ndarray) -> list[str]:
    """The words of the fake's one speech request whose tone starts within the audio ``played``, which must be
    exactly the first half of the answer the ``disconnect`` fault sent."""
    [request] = fake.speech_requests()
    assert len(played) == request.sent // 2
    np.testing.assert_array_equal(played, fake.audio_of(request)[: len(played)])
    return [FOURTEEN[w.offset : w.offset + w.length] for w in fake.plan_of(request) if w.start < len(played)]


def test_polly_mid_chunk_failure_reports_each_word_once(fake_polly: FakePolly) -> None:
    from voicekit import PollyTTS

    fake_polly.faults = ["disconnect"]
    tts = PollyTTS(PollyClient(("eu-west-1", "AKIDFAKE", "secret"), endpoint_url=fake_polly.url, max_retries=0))
    try:
        heard, unspoken, played = _speak_until_failure(tts, FOURTEEN)
    finally:
        tts.cleanup()
    # Polly's marks: exactly the words whose tone started before the break were heard
    assert heard.split() == _played_words(fake_polly, played) != []
    assert heard.split() + unspoken.split() == FOURTEEN.split()


def test_openai_mid_chunk_failure_counts_the_delivered_audio_as_heard(fake_openai: FakeOpenAI) -> None:
    from voicekit import OpenAITTS

    fake_openai.faults = ["disconnect"]
    tts = OpenAITTS(OpenAIClient(api_key="sk-test", base_url=fake_openai.url + "/v1", max_retries=0))
    try:
        heard, unspoken, played = _speak_until_failure(tts, FOURTEEN)
    finally:
        tts.cleanup()
    assert heard, "half of the chunk's audio was delivered and played"
    assert unspoken, "the other half was not"
    assert heard.split() + unspoken.split() == FOURTEEN.split()
    # without marks the heard words are estimated from the audio played: never one whose tone had not
    # started, at most the one cut by the break missing
    started = _played_words(fake_openai, played)
    assert heard.split() in (started, started[:-1])


# -- SSML: decided once per reply by the caller, carried with every chunk -----------------------

PAD = " " * 120  # longer than any tag the old speech filter recognised, so the tags survived it
INJECTED = f'<speak{PAD}><prosody rate="x-slow"{PAD}>Slow <break time="10s"{PAD}/> down.</prosody></speak>'


@pytest.fixture
def polly_tts(fake_polly: FakePolly):
    from voicekit import PollyTTS

    tts = PollyTTS(PollyClient(("eu-west-1", "AKIDFAKE", "secret"), endpoint_url=fake_polly.url, max_retries=0))
    yield tts
    tts.cleanup()


def _say(tts, *pieces: str, ssml: bool | None = None):
    from voicekit import MemorySink

    stream = tts.create_stream(sink=MemorySink())
    stream.feed(pieces[0], **({} if ssml is None else {"ssml": ssml}))
    for piece in pieces[1:]:
        stream.feed(piece)
    stream.done()
    stream.close()
    return stream


@pytest.mark.parametrize("rate", [None, 0.9])
def test_a_plain_reply_never_sends_ssml(fake_polly: FakePolly, polly_tts, rate: float | None) -> None:
    if rate is not None:
        polly_tts.set_property("rate", rate)
    _say(polly_tts, "Hello there. ", INJECTED, " The end.")
    requests = fake_polly.speech_requests("pcm")
    assert len(requests) >= 2
    for request in requests:
        if rate is None:
            assert request.body["TextType"] == "text"
        else:  # only voicekit's own wrapper, the rest escaped
            assert request.body["Text"].startswith('<speak><prosody rate="90%">')
            assert "<break" not in request.body["Text"] and request.body["Text"].count("<speak") == 1


def test_a_long_ssml_reply_is_split_into_well_formed_documents(fake_polly: FakePolly, polly_tts) -> None:
    paragraph = '<p>Paragraph with a <break\n  time="100ms"/> pause.<s>And a sentence &amp; more.</s></p>\n'
    document = '<speak><prosody\n rate="fast">' + paragraph * 140 + "</prosody></speak>"
    fake_polly.piece_bytes = 64_000  # minutes of audio: send it fast
    assert len(document) > 12_000
    stream = _say(polly_tts, document[:5000], document[5000:])
    requests = fake_polly.speech_requests("pcm")
    assert len(requests) >= 5
    for request in requests:
        assert request.body["TextType"] == "ssml" and len(request.body["Text"]) <= 3000
        expat.ParserCreate().Parse(request.body["Text"], True)  # well-formed
        assert request.body["Text"].startswith('<speak><prosody rate="fast">')
    assert stream.error is None


def test_explicit_ssml_true_wraps_a_fragment_and_false_keeps_text(fake_polly: FakePolly, polly_tts) -> None:
    _say(polly_tts, 'Wait <break time="300ms"/> for it.', ssml=True)
    _say(polly_tts, "<speak>Read these tags out.</speak>", ssml=False)
    first, second = fake_polly.speech_requests("pcm")
    assert (first.body["TextType"], first.body["Text"]) == ("ssml", '<speak>Wait <break time="300ms"/> for it.</speak>')
    assert second.body["TextType"] == "text"


def test_malformed_ssml_is_refused_before_any_request(fake_polly: FakePolly, polly_tts) -> None:
    from voicekit import MemorySink
    from voicekit.errors import EngineError

    document = "<speak><p>Unclosed paragraph <s>and more.</p></speak>"
    stream = polly_tts.create_stream(sink=MemorySink())
    stream.feed(document)
    stream.done()
    with pytest.raises(EngineError, match="malformed SSML: mismatched tag") as info:
        stream.wait_until_done(timeout=10)
    stream.close()
    assert info.value.unspoken_text == document
    assert fake_polly.exchanges == []


# -- sanitizing and the filtered-text report ------------------------------------------------------


def test_a_bad_character_never_ends_a_cloud_reply(fake_polly: FakePolly, fake_openai: FakeOpenAI, polly_tts) -> None:
    from voicekit import OpenAITTS

    text = "Lone \ud800 surrogate. A NUL\x00 byte and a bell\x07 too. Still here."
    stream = _say(polly_tts, text)
    assert stream.error is None
    assert stream.heard_text.split()[-2:] == ["Still", "here."]
    assert stream.filtered_text.split() == ["\ud800", "\x00", "\x07"]
    openai = OpenAITTS(OpenAIClient(api_key="sk-test", base_url=fake_openai.url + "/v1", max_retries=0))
    try:
        assert _say(openai, text).error is None
    finally:
        openai.cleanup()
    sent = [e.body["Text"] for e in fake_polly.speech_requests("pcm")] + [e.body["input"] for e in
                                                                        fake_openai.speech_requests()]
    assert sent and not any(c in "".join(sent) for c in "\ud800\x00\x07")


def test_the_stream_reports_everything_it_does_not_say() -> None:
    from voicekit.testing import ToneTTS

    tts = ToneTTS()
    try:
        stream = _say(tts, "**Press** <Enter> 🎉 ", "if a<b and c>d. <b>Bold</b> ", "see https://x.org/a\x1b.")
    finally:
        tts.cleanup()
    assert stream.heard_text.split() == "Press <Enter> if a<b and c>d. Bold see link to x.org.".split()
    # both stages' reports, in input order: the sanitizer's ESC joins the URL's path dropped right before it
    assert stream.filtered_text.split() == ["**", "**", "🎉", "<b>", "</b>", "https://x.org", "/a\x1b"]


def test_a_build_log_is_read_without_its_escape_sequences() -> None:
    from tests.test_hostile_text import LOG, LOG_DROPPED
    from voicekit.testing import ToneTTS

    tts = ToneTTS()
    try:
        pieces = [LOG[:10], LOG[10:18], LOG[18:70], LOG[70:]]  # cut inside an OSC, a CSI and an OSC 8 link
        stream = _say(tts, *pieces)
    finally:
        tts.cleanup()
    assert stream.heard_text == "error: missing file docs"
    assert stream.filtered_text == " ".join(LOG_DROPPED)


def test_an_ssml_reply_to_an_engine_without_ssml_is_read_as_its_words() -> None:
    from voicekit.testing import ToneTTS

    tts = ToneTTS()
    try:
        stream = _say(tts, '<speak>Tom &amp; Jerry <break time="1s"/> run.', "<p>New <emphasis>part</emphasis>.</p></speak>")
    finally:
        tts.cleanup()
    assert stream.heard_text.split() == ["Tom", "&", "Jerry", "run.", "New", "part."]
    assert " ".join(tts.client.texts).split() == ["Tom", "&", "Jerry", "run.", "New", "part."]  # no markup reached it
    assert stream.filtered_text.split() == ["<speak>", '<break', 'time="1s"/>', "<p>", "<emphasis>"]
