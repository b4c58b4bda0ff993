"""FallbackEngine / FallbackTTS over real clients talking to the fake servers: nothing is lost."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.fakes.openai import FakeOpenAI
from tests.fakes.polly import FakePolly
from tests.helpers import words
from voicekit.engine import Engine
from voicekit.engines.fallback import FallbackEngine
from voicekit.engines.openai_tts import OpenAIClient
from voicekit.engines.polly import PollyClient
from voicekit.errors import EngineError
from voicekit.voices import FallbackTTS, OpenAITTS, PollyTTS

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
    assert backup_polly.speech_requests()[0].body["Text"] == TEXT[resume:]
    # every word is marked, in order; only the word cut by the failure is spoken twice
    marks = [m for c in chunks for m in c.marks]
    assert [TEXT[m.offset:m.offset + m.length] for m in marks if m is not first_marks[-1]] == words(TEXT)
    assert [m.time for m in marks] == sorted(m.time for m in marks)
    first_audio = sum(c.duration for c in first)
    assert min(m.time for c in second for m in c.marks) >= first_audio


def test_failure_mid_chunk_without_marks_restarts_the_text(engines, fake_openai: FakeOpenAI,
                                                           fake_polly: FakePolly) -> None:
    primary, _, openai = engines
    fake_openai.faults = ["disconnect"]
    chunks = list(FallbackEngine([openai, primary]).synthesize(TEXT, threading.Event()))
    engines_in_order = [c.engine for c in chunks]
    split = engines_in_order.index("polly")
    assert split > 0 and set(engines_in_order[:split]) == {"openai"} and set(engines_in_order[split:]) == {"polly"}
    assert {c.samplerate for c in chunks} == {24000, 16000}
    assert fake_polly.speech_requests()[0].body["Text"] == TEXT
    marks = [m for c in chunks for m in c.marks]
    assert [TEXT[m.offset:m.offset + m.length] for m in marks] == words(TEXT)
    assert marks[0].time >= sum(c.duration for c in chunks[:split])


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


def test_fallback_tts_speaks_every_word_across_engines(engines, fake_polly: FakePolly) -> None:
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
    # the chunk the primary broke off in was finished by the backup; later chunks start on the primary again
    assert reports[0]["engine"] == "polly-backup" and " ".join(r["text"] for r in reports).split() == TEXT.split()
    assert sink.seconds > 2
    stream.close()
    tts.cleanup()


def test_fallback_tts_to_espeak_reports_the_engine_and_resamples(engines, fake_polly: FakePolly,
                                                                 fake_openai: FakeOpenAI) -> None:
    from voicekit.sinks import MemorySink
    from voicekit.voices import EspeakTTS

    primary, _, openai = engines
    fake_polly.faults = ["500"]
    fake_openai.faults = ["500"]
    tts = FallbackTTS([PollyTTS(primary), OpenAITTS(openai), EspeakTTS()])
    reports = []
    sink = MemorySink()
    tts.speak_streamed("Polly and OpenAI are down. eSpeak speaks.", on_chunk_processed=reports.append, sink=sink)
    assert reports and {r["engine"] for r in reports} == {"espeak"}
    assert tts.client.samplerate == 16000 and sink.seconds > 1
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
