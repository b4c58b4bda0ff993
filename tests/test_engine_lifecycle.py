"""Engines at the edges of their life: an interrupt or close() never waits for the network,
and after cleanup() every engine path refuses to work, sync and async, with a typed error.

Real boto3 and openai clients against the fake servers on 127.0.0.1, real eSpeak.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from tests.fakes.openai import FakeOpenAI
from tests.fakes.polly import FakePolly
from tests.helpers import collect, wait_for
from voicekit import EngineError, MemorySink, StreamError
from voicekit.contract import Cancel
from voicekit.engines.openai_tts import OpenAIClient
from voicekit.engines.polly import PollyClient
from voicekit.testing import ToneTTS
from voicekit.tts import BaseTTS
from voicekit.tts_classes import EspeakTTS, FallbackTTS, OpenAITTS, PollyTTS

pytestmark = pytest.mark.usefixtures("no_thread_leak")

CREDENTIALS = ("eu-west-1", "AKIDFAKEKEY1234567", "fakeSecretValue")
HOLD = 5.0  # the fake server holds its first byte this long
SOON = 1.0  # "at once", generously: the hold is five times longer


@pytest.fixture
def polly(fake_polly: FakePolly) -> Iterator[PollyClient]:
    client = PollyClient(CREDENTIALS, endpoint_url=fake_polly.url, backoff=0.01)
    yield client
    client.close()


def request_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "voicekit-polly-request"]


def test_polly_interrupt_does_not_wait_for_the_first_byte(fake_polly: FakePolly, polly: PollyClient) -> None:
    fake_polly.first_byte_delay = HOLD
    cancel = Cancel()
    interrupted_at: list[float] = []

    def interrupt() -> None:
        wait_for(lambda: fake_polly.speech_requests("pcm"), "the request never reached the server")
        interrupted_at.append(time.monotonic())
        cancel.set()

    threading.Thread(target=interrupt).start()
    assert list(polly.synthesize("Polly holds this answer back.", cancel)) == []
    assert time.monotonic() - interrupted_at[0] < SOON
    # the request thread hung up while the server still held the answer back
    wait_for(lambda: not request_threads(), "the request thread outlived the interrupt", timeout=SOON)
    fake_polly.release()
    [request] = fake_polly.speech_requests("pcm")
    assert request.finished.wait(5) and request.last_byte_at is None
    assert len(fake_polly.speech_requests("pcm")) == 1 and not fake_polly.speech_requests("json")


def test_polly_hangs_up_on_a_client_the_app_built_and_used_before(fake_polly: FakePolly) -> None:
    import boto3

    mine = boto3.session.Session(aws_access_key_id=CREDENTIALS[1], aws_secret_access_key=CREDENTIALS[2],
                                 region_name=CREDENTIALS[0]).client("polly", endpoint_url=fake_polly.url)
    mine.describe_voices()  # its connection pool exists before voicekit sees the client
    polly = PollyClient(client=mine)
    fake_polly.first_byte_delay = HOLD
    cancel = Cancel()
    try:
        pieces = polly.synthesize("Polly holds this answer back.", cancel)
        threading.Timer(0.0, lambda: (wait_for(lambda: fake_polly.speech_requests("pcm"), "no request"),
                                      cancel.set())).start()
        assert list(pieces) == []
        wait_for(lambda: not request_threads(), "the request thread outlived the interrupt", timeout=SOON)
        fake_polly.first_byte_delay = 0.0
        assert "Voices" in mine.describe_voices()  # the app's own client still works
    finally:
        fake_polly.release()
        polly.close()
        mine.close()


def test_polly_interrupt_hangs_up_the_marks_request_too(fake_polly: FakePolly, polly: PollyClient) -> None:
    fake_polly.marks_delay = HOLD
    cancel = Cancel()
    pieces = polly.synthesize("The server holds the speech marks of this reply back.", cancel)
    next(pieces)
    next(pieces)  # the first piece was taken: the marks request has started
    wait_for(lambda: fake_polly.speech_requests("json"), "the marks request never reached the server")
    cancel.set()
    pieces.close()
    polly.close()
    marks_threads = lambda: [t for t in threading.enumerate() if t.name.startswith("voicekit-polly-marks")]  # noqa: E731
    wait_for(lambda: not marks_threads(), "the marks thread waited for the server", timeout=SOON)
    fake_polly.release()


def test_polly_close_wakes_a_waiting_call_and_nothing_reaches_the_server_after(fake_polly: FakePolly,
                                                                               polly: PollyClient) -> None:
    fake_polly.first_byte_delay = HOLD
    outcome: list[Exception] = []

    def speak() -> None:
        try:
            list(polly.synthesize("Held back until the client is closed.", Cancel()))
        except EngineError as exc:
            outcome.append(exc)

    speaker = threading.Thread(target=speak)
    speaker.start()
    wait_for(lambda: fake_polly.speech_requests("pcm"), "the request never reached the server")
    started = time.monotonic()
    polly.close()
    speaker.join(SOON)
    assert not speaker.is_alive() and time.monotonic() - started < SOON
    assert len(outcome) == 1 and "closed" in str(outcome[0])
    with pytest.raises(EngineError, match="closed"):
        polly.voices()  # describe_voices is a request too
    wait_for(lambda: not request_threads(), "the request thread outlived close()", timeout=SOON)
    fake_polly.release()
    assert len(fake_polly.speech_requests("pcm")) == 1 and len(fake_polly.exchanges) == 1


def test_polly_stream_close_and_cleanup_after_an_interrupt_do_not_wait(fake_polly: FakePolly,
                                                                       polly: PollyClient) -> None:
    fake_polly.first_byte_delay = HOLD
    tts = PollyTTS(polly)
    stream = tts.create_stream(sink=MemorySink(realtime=True))
    stream.feed("Polly holds the first byte of this reply for five seconds.")
    stream.done()
    wait_for(lambda: fake_polly.speech_requests("pcm"), "the request never reached the server")
    started = time.monotonic()
    stream.interrupt()
    stream.close()
    tts.cleanup()
    assert time.monotonic() - started < SOON
    wait_for(lambda: not request_threads(), "the request thread outlived cleanup()", timeout=SOON)
    fake_polly.release()
    assert len(fake_polly.exchanges) == 1


# -- after cleanup(), every engine path refuses -------------------------------------------

@pytest.fixture(params=["espeak", "piper", "polly", "openai", "fallback", "tone"])
def tts(request, fake_polly: FakePolly, fake_openai: FakeOpenAI) -> Iterator[BaseTTS]:
    def piper() -> BaseTTS:
        pytest.importorskip("piper", reason="needs the piper extra: pip install 'voicekit[piper]'")
        from voicekit.tts_classes import PiperTTS

        return PiperTTS()
    def openai() -> OpenAITTS:
        return OpenAITTS(OpenAIClient(api_key="sk-fake", base_url=f"{fake_openai.url}/v1"))

    def polly() -> PollyTTS:
        return PollyTTS(PollyClient(CREDENTIALS, endpoint_url=fake_polly.url))

    made = {"espeak": EspeakTTS, "piper": piper, "polly": polly, "openai": openai, "tone": ToneTTS,
            "fallback": lambda: FallbackTTS([polly(), openai(), EspeakTTS()])}[request.param]()
    yield made
    made.cleanup()


def test_after_cleanup_every_engine_path_refuses(tts: BaseTTS, fake_polly: FakePolly,
                                                 fake_openai: FakeOpenAI) -> None:
    tts.speak("Working before cleanup.", sink=MemorySink())
    before = len(fake_polly.exchanges) + len(fake_openai.exchanges)
    tts.cleanup()
    with pytest.raises(EngineError, match="closed"):
        collect(tts.client.synthesize("After cleanup.", Cancel()))
    with pytest.raises(StreamError, match="closed"):
        tts.speak("Through a stream after cleanup.", sink=MemorySink())

    async def async_stream() -> None:
        async with await tts.create_async_stream(sink=MemorySink()) as stream:
            await stream.feed("Through an async stream after cleanup.")

    with pytest.raises(StreamError, match="closed"):
        asyncio.run(async_stream())
    time.sleep(0.3)  # a late retry would arrive by now
    assert len(fake_polly.exchanges) + len(fake_openai.exchanges) == before
