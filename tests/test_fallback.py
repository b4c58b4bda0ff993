"""FallbackEngine / FallbackTTS over real clients talking to the fake servers: nothing is lost.

The offline last resort of a chain is voicekit.testing's ToneEngine, whose audio is known exactly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from tests.fakes.openai import FakeOpenAI
from tests.fakes.polly import FakePolly
from tests.helpers import audio, marks, synth, words
from voicekit.contract import Engine
from voicekit.engines.fallback import FallbackEngine
from voicekit.engines.openai_tts import OpenAIClient
from voicekit.engines.polly import PollyClient
from voicekit.errors import EngineError
from voicekit.testing import ToneEngine, ToneTTS
from voicekit.tts import BaseTTS
from voicekit.tts_classes import FallbackTTS, OpenAITTS, PollyTTS

CREDENTIALS = ("eu-west-1", "AKIDFAKEKEY1234567", "fakeSecretValue")
TEXT = "The first engine breaks off somewhere in this sentence, and the second one finishes it."


@pytest.fixture
def backup_polly(aws_env: None) -> Iterator[FakePolly]:
    with FakePolly() as server:
        yield server


@pytest.fixture
def engines(fake_polly: FakePolly, backup_polly: FakePolly, fake_openai: FakeOpenAI, no_thread_leak: None):
    """Primary Polly, backup Polly (named polly-backup), OpenAI; each on its own fake server."""
    primary = PollyClient(CREDENTIALS, endpoint_url=fake_polly.url, max_retries=0)
    backup = PollyClient(CREDENTIALS, endpoint_url=backup_polly.url, max_retries=0)
    backup.name = "polly-backup"
    openai = OpenAIClient(api_key="sk-fake", base_url=f"{fake_openai.url}/v1", max_retries=0)
    yield primary, backup, openai
    for engine in (primary, backup, openai):
        engine.close()


def test_chain_is_an_engine_with_the_strictest_limits(engines) -> None:
    primary, backup, openai = engines
    chain = FallbackEngine([openai, primary])
    assert isinstance(chain, Engine)
    assert (chain.samplerate, chain.max_chars) == (24000, 3000)
    assert chain.name == "fallback(openai, polly)"
    chain.set_voice("nova")
    chain.set_property("rate", 1.5)
    assert (openai.voice, openai.speed, primary.voice) == ("nova", 1.5, "Joanna")
    assert chain.voices() == openai.voices()
    with pytest.raises(ValueError):
        FallbackEngine([])


def test_chunk_failing_before_any_audio_goes_whole_to_the_next_engine(engines, fake_polly: FakePolly,
                                                                       fake_openai: FakeOpenAI) -> None:
    primary, _, openai = engines
    fake_polly.faults = ["throttle"]
    chunks = list(FallbackEngine([primary, openai]).synthesize(TEXT, threading.Event()))
    assert {c.engine for c in chunks} == {"openai"}
    assert fake_openai.speech_requests()[0].body["input"] == TEXT
    assert sum(len(c.pcm) for c in chunks) == fake_openai.speech_requests()[0].total // 2
    np.testing.assert_array_equal(audio(chunks), fake_openai.audio_of(fake_openai.speech_requests()[0]))


def test_failure_mid_chunk_resumes_at_the_last_started_word(engines, fake_polly: FakePolly,
                                                            backup_polly: FakePolly) -> None:
    primary, backup, _ = engines
    fake_polly.faults = ["disconnect"]
    chunks = list(FallbackEngine([primary, backup]).synthesize(TEXT, threading.Event()))
    first = [c for c in chunks if c.engine == "polly"]
    second = [c for c in chunks if c.engine == "polly-backup"]
    assert first and second and chunks == first + second
    first_marks = [m for c in first for m in c.marks]
    resume = first_marks[-1].offset
    assert 0 < resume < len(TEXT)
    # the primary's audio up to the break, to the sample; the backup resumes at the word the break cut
    [broken], [resumed] = fake_polly.speech_requests(), backup_polly.speech_requests()
    played = len(audio(first))
    np.testing.assert_array_equal(audio(first), fake_polly.audio_of(broken)[:played])
    assert resume == [w.offset for w in fake_polly.plan_of(broken) if w.start < played][-1]
    assert resumed.body["Text"] == TEXT[resume:]
    np.testing.assert_array_equal(audio(second), backup_polly.audio_of(resumed))
    # every word is marked, in order; only the word cut by the failure is spoken twice
    marks = [m for c in chunks for m in c.marks]
    assert [TEXT[m.offset:m.offset + m.length] for m in marks if m is not first_marks[-1]] == words(TEXT)
    assert [m.time for m in marks] == sorted(m.time for m in marks)
    # the backup's marks, exact to the sample, after the primary's audio
    assert [round(m.time * 16000) for c in second for m in c.marks] == [
        played + w.start for w in backup_polly.plan_of(resumed)]


def test_failure_mid_chunk_without_marks_restarts_the_text(engines, fake_openai: FakeOpenAI,
                                                           fake_polly: FakePolly) -> None:
    primary, _, openai = engines
    fake_openai.faults = ["disconnect"]
    chunks = list(FallbackEngine([openai, primary]).synthesize(TEXT, threading.Event()))
    engines_in_order = [c.engine for c in chunks]
    split = engines_in_order.index("polly")
    assert split > 0 and set(engines_in_order[:split]) == {"openai"} and set(engines_in_order[split:]) == {"polly"}
    assert {c.samplerate for c in chunks} == {24000, 16000}
    [request] = fake_polly.speech_requests()
    assert request.body["Text"] == TEXT
    broken, restarted = audio(chunks[:split]), audio(chunks[split:])
    np.testing.assert_array_equal(broken, fake_openai.audio_of(fake_openai.speech_requests()[0])[: len(broken)])
    np.testing.assert_array_equal(restarted, fake_polly.audio_of(request))
    marks = [m for c in chunks for m in c.marks]
    assert [TEXT[m.offset:m.offset + m.length] for m in marks] == words(TEXT)
    # each word where its tone starts, after OpenAI's audio (24 kHz) and then Polly's (16 kHz)
    expected = [len(broken) / 24000 + w.start / 16000 for w in fake_polly.plan_of(request)]
    assert [m.time for m in marks] == pytest.approx(expected, rel=0, abs=1e-9)


def test_when_every_engine_fails_the_unspoken_text_is_reported(engines, fake_polly: FakePolly,
                                                               backup_polly: FakePolly) -> None:
    primary, backup, _ = engines
    fake_polly.faults = ["disconnect"]
    backup_polly.faults = ["500"]
    chunks = []
    with pytest.raises(EngineError, match="every engine failed") as caught:
        for chunk in FallbackEngine([primary, backup]).synthesize(TEXT, threading.Event()):
            chunks.append(chunk)
    resume = [m for c in chunks for m in c.marks][-1].offset
    played = len(audio(chunks))
    assert resume == [w.offset for w in fake_polly.plan_of(fake_polly.speech_requests()[0]) if w.start < played][-1]
    assert caught.value.unspoken_text == TEXT[resume:]
    assert "polly:" in str(caught.value) and "polly-backup:" in str(caught.value)


def test_an_interrupt_never_moves_on_to_the_next_engine(engines, fake_polly: FakePolly,
                                                        backup_polly: FakePolly) -> None:
    primary, backup, _ = engines
    fake_polly.piece_interval = 0.03
    chunks = FallbackEngine([primary, backup]).synthesize(TEXT, threading.Event())
    next(chunks)
    chunks.close()
    [request] = fake_polly.speech_requests()
    assert request.finished.wait(5) and request.hung_up.is_set()
    cancel = threading.Event()
    for _ in FallbackEngine([primary, backup]).synthesize(TEXT, cancel):
        cancel.set()
    assert not backup_polly.exchanges


# -- through the stream -------------------------------------------------------------------


def test_fallback_tts_speaks_every_word_across_engines(engines, fake_polly: FakePolly,
                                                      backup_polly: FakePolly) -> None:
    from voicekit.sinks import MemorySink

    primary, backup, _ = engines
    fake_polly.faults = ["disconnect"]
    tts = FallbackTTS([PollyTTS(primary), PollyTTS(backup)])
    reports, heard_words = [], []
    sink = MemorySink()
    stream = tts.create_stream(sink=sink, on_chunk_processed=reports.append, on_word=heard_words.append)
    stream.feed(TEXT)
    stream.done()
    assert stream.wait_until_done(timeout=60)
    assert stream.heard_text.split() == TEXT.split()
    assert [w["word"] for w in heard_words if w["word"]][-1] == "it."
    # the chunk the primary broke off in was finished by the backup, which keeps the rest during the cooldown
    assert reports[0]["engine"] == "polly-backup" and " ".join(r["text"] for r in reports).split() == TEXT.split()
    # the primary's audio up to the break, then all the backup sent, to the sample
    rest = backup_polly.sent_audio()
    played = len(sink.audio) - len(rest)
    assert 0 < played <= fake_polly.speech_requests()[0].sent // 2
    np.testing.assert_array_equal(sink.audio, np.concatenate(
        [fake_polly.audio_of(fake_polly.speech_requests()[0])[:played], rest]))
    stream.close()
    tts.cleanup()


def test_fallback_tts_to_the_offline_engine_reports_the_engine_and_resamples(engines, fake_polly: FakePolly,
                                                                             fake_openai: FakeOpenAI) -> None:
    from voicekit.sinks import MemorySink

    primary, _, openai = engines
    fake_polly.faults = ["500"]
    fake_openai.faults = ["500"]
    last = ToneTTS()
    tts = FallbackTTS([PollyTTS(primary), OpenAITTS(openai), last])
    reports = []
    sink = MemorySink()
    tts.speak_streamed("Polly and OpenAI are down. The tones speak.", on_chunk_processed=reports.append, sink=sink)
    assert [r["text"] for r in reports] == last.client.texts == ["Polly and OpenAI are down.", "The tones speak."]
    assert {r["engine"] for r in reports} == {"tone"}
    # the chain plays at its first engine's rate: the tones' 24 kHz comes out at Polly's 16 kHz, none lost
    assert tts.client.samplerate == sink.samplerate == 16000
    assert len(sink.audio) == sum(last.client.frames(t) * 2 // 3 for t in last.client.texts)
    tts.cleanup()


def test_stream_reports_unspoken_text_when_every_engine_fails(engines, fake_polly: FakePolly,
                                                              backup_polly: FakePolly) -> None:
    from voicekit.sinks import MemorySink

    primary, backup, _ = engines
    fake_polly.faults = ["throttle"]
    backup_polly.faults = ["throttle"]
    tts = FallbackTTS([PollyTTS(primary), PollyTTS(backup)])
    stream = tts.create_stream(sink=MemorySink())
    stream.feed("Nobody can say this.")
    stream.done()
    with pytest.raises(EngineError) as caught:
        stream.wait_until_done(timeout=60)
    assert "Nobody can say this." in caught.value.unspoken_text
    tts.cleanup()


# -- capabilities and memory of failures ------------------------------------------------------


def test_the_chain_exposes_its_members_capabilities(engines) -> None:
    primary, backup, openai = engines
    tone = ToneEngine()  # reads no SSML
    assert FallbackEngine([openai, primary]).capabilities.ssml and FallbackEngine([tone, primary]).capabilities.ssml
    assert not FallbackEngine([openai, tone]).capabilities.ssml
    # a chunk may come from any member: word marks only if every member gives them
    assert FallbackEngine([tone, primary]).capabilities.word_marks
    assert not FallbackEngine([openai, tone]).capabilities.word_marks
    assert FallbackTTS([BaseTTS(tone), BaseTTS(openai)]).capabilities == FallbackEngine([tone, openai]).capabilities


def test_ssml_behind_a_fallback_reaches_polly_as_ssml(engines, fake_polly: FakePolly) -> None:
    from voicekit.sinks import MemorySink

    primary, _, _ = engines
    tts = FallbackTTS([PollyTTS(primary), ToneTTS()])
    document = '<speak>Hello <break time="300ms"/> <emphasis>world</emphasis>.</speak>'
    tts.speak(document, sink=MemorySink())
    [request] = fake_polly.speech_requests()
    assert request.body["TextType"] == "ssml" and request.body["Text"] == document
    tts.cleanup()


def test_an_ssml_chunk_reaches_a_member_without_ssml_as_its_words(engines, fake_polly: FakePolly) -> None:
    primary, _, _ = engines
    fake_polly.faults = ["500"]
    document = '<speak>Hello <break time="300ms"/>there, <emphasis>world</emphasis>.</speak>'
    tone = ToneEngine()
    chunks = list(FallbackEngine([primary, tone]).synthesize(document, threading.Event(), ssml=True))
    [words_only] = tone.texts
    assert {c.engine for c in chunks} == {"tone"} and words_only.split() == ["Hello", "there,", "world."]
    alone = synth(ToneEngine(), words_only)
    np.testing.assert_array_equal(audio(chunks), audio(alone))
    assert marks(alone) and not marks(chunks), "the member's offsets index its words, not the document"


@pytest.fixture
def slow_primary(fake_polly: FakePolly) -> Iterator[PollyClient]:
    """Polly whose server never answers in time: every request costs a read timeout."""
    import boto3
    from botocore.config import Config

    fake_polly.first_byte_delay = 5.0
    session = boto3.session.Session(aws_access_key_id=CREDENTIALS[1], aws_secret_access_key=CREDENTIALS[2],
                                    region_name=CREDENTIALS[0])
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=0.3)
    client = session.client("polly", endpoint_url=fake_polly.url, config=config)
    primary = PollyClient(client=client, max_retries=0)
    yield primary
    primary.close()
    client.close()


def test_a_failed_engine_cools_down_instead_of_costing_every_chunk(slow_primary: PollyClient,
                                                                  fake_polly: FakePolly,
                                                                  no_thread_leak: None) -> None:
    from voicekit.sinks import MemorySink

    tts = FallbackTTS([PollyTTS(slow_primary), ToneTTS()], cooldown=60)
    tts.set_stream_config({"max_text_chunk": 40})
    reports: list[dict] = []
    text = "One sentence here. Another one follows. A third is spoken. And a fourth one ends it."
    tts.speak_streamed(text, on_chunk_processed=reports.append, sink=MemorySink())
    assert len(reports) >= 4 and {r["engine"] for r in reports} == {"tone"}
    assert len(fake_polly.speech_requests()) == 1, "the dead primary was asked again within its cooldown"
    tts.cleanup()
    fake_polly.release()


def test_after_the_cooldown_a_probe_brings_the_engine_back(engines, fake_polly: FakePolly) -> None:
    import time

    primary, _, _ = engines
    tone = ToneEngine()
    chain = FallbackEngine([primary, tone], cooldown=0.3)
    fake_polly.faults = ["500"]
    assert {c.engine for c in chain.synthesize("First.", threading.Event())} == {"tone"}
    assert {c.engine for c in chain.synthesize("Second.", threading.Event())} == {"tone"}
    assert len(fake_polly.speech_requests()) == 1
    time.sleep(0.35)
    fake_polly.faults = ["500"]  # the probe fails: the cooldown doubles
    assert {c.engine for c in chain.synthesize("Third.", threading.Event())} == {"tone"}
    time.sleep(0.35)
    assert {c.engine for c in chain.synthesize("Fourth.", threading.Event())} == {"tone"}
    assert len(fake_polly.speech_requests()) == 2 and tone.texts == ["First.", "Second.", "Third.", "Fourth."]
    time.sleep(0.3)
    assert {c.engine for c in chain.synthesize("Fifth.", threading.Event())} == {"polly"}
    assert {c.engine for c in chain.synthesize("Sixth.", threading.Event())} == {"polly"}


def test_a_cooling_engine_is_still_tried_when_every_other_one_fails(engines, fake_polly: FakePolly,
                                                                    backup_polly: FakePolly) -> None:
    primary, backup, _ = engines
    chain = FallbackEngine([primary, backup], cooldown=60)
    fake_polly.faults = ["500"]
    assert {c.engine for c in chain.synthesize("First.", threading.Event())} == {"polly-backup"}
    backup_polly.faults = ["500"]
    assert {c.engine for c in chain.synthesize("Second.", threading.Event())} == {"polly"}


def test_the_chain_refuses_work_once_closed(engines) -> None:
    primary, backup, _ = engines
    chain = FallbackEngine([primary, backup])
    chain.close()
    with pytest.raises(EngineError, match="closed") as caught:
        list(chain.synthesize("Too late.", threading.Event()))
    assert caught.value.unspoken_text == "Too late."


@pytest.mark.parametrize("broken", ["polly", "openai"])
@pytest.mark.parametrize("fault, reason", [("html", "text/html"), ("noise", "middle of a sample")])
def test_a_200_whose_body_is_not_pcm_is_an_engine_error_and_moves_a_chain_on(
    fake_polly: FakePolly, fake_openai: FakeOpenAI, no_thread_leak: None, broken: str, fault: str, reason: str
) -> None:
    """A proxy or captive portal answering in place of the service: never played as noise."""
    polly = PollyClient(CREDENTIALS, endpoint_url=fake_polly.url, max_retries=0)
    openai = OpenAIClient(api_key="sk-fake", base_url=f"{fake_openai.url}/v1")
    clients = {"polly": (polly, fake_polly), "openai": (openai, fake_openai)}
    (client, server), (other, other_server) = clients.pop(broken), *clients.values()
    text = f"A captive portal answers in place of {broken}."
    try:
        server.faults = [fault]
        got = []
        with pytest.raises(EngineError, match=reason) as caught:
            for chunk in client.synthesize(text, threading.Event()):
                got.append(chunk)
        assert caught.value.engine == broken
        if fault == "html":
            assert got == [], "a page is never played as noise"
            server.faults = [fault]
            chunks = list(FallbackEngine([client, other]).synthesize(text, threading.Event()))
            assert {c.engine for c in chunks} == {other.name}
            spoken = [r.body["Text"] for r in other_server.speech_requests("pcm")] if other is polly else [
                r.body["input"] for r in other_server.speech_requests()]
            assert spoken == [text]
    finally:
        polly.close()
        openai.close()
