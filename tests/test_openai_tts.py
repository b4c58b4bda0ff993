"""OpenAIClient with the real openai SDK (sync and async) against the fake server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import sys
import threading
import time

import numpy as np
import pytest

from tests.fakes.openai import FakeOpenAI
from tests.helpers import audio, collect
from voicekit.contract import Cancel, Engine
from voicekit.engines.openai_tts import OpenAIClient
from voicekit.errors import EngineError
from voicekit.tts_classes import OpenAITTS

KEY = "sk-fake-0123456789abcdefSECRET"


@pytest.fixture
def openai_client(fake_openai: FakeOpenAI, no_thread_leak: None):
    client = OpenAIClient(api_key=KEY, base_url=f"{fake_openai.url}/v1")
    yield client
    client.close()


def test_client_is_an_engine(openai_client: OpenAIClient) -> None:
    assert isinstance(openai_client, Engine)
    assert (openai_client.name, openai_client.samplerate) == ("openai", 24000)
    assert [v.id for v in openai_client.voices()][:2] == ["alloy", "ash"]


def test_first_audio_arrives_before_the_body_is_complete(fake_openai: FakeOpenAI,
                                                         openai_client: OpenAIClient) -> None:
    text = "The first words play while the rest is still being sent."
    chunks, first = collect(openai_client.synthesize(text, threading.Event()))
    [request] = fake_openai.speech_requests()
    assert request.last_byte_at is not None and first < request.last_byte_at
    assert len(chunks) > 5 and all(c.samplerate == 24000 and not c.marks for c in chunks)
    assert sum(len(c.pcm) for c in chunks) == request.total // 2
    np.testing.assert_array_equal(audio(chunks), fake_openai.audio_of(request))
    assert request.body == {"model": "gpt-4o-mini-tts", "voice": "alloy", "input": text, "response_format": "pcm"}
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_model_voice_instructions_and_speed_are_sent(fake_openai: FakeOpenAI, openai_env: None) -> None:
    client = OpenAIClient(api_key=KEY, base_url=f"{fake_openai.url}/v1", model="tts-1", voice="nova",
                          instructions="Speak like a pirate.", speed=1.25)
    try:
        collect(client.synthesize("Ahoy.", threading.Event()))
        client.set_voice("onyx")
        client.set_property("rate", 0.75)
        collect(client.synthesize("Ahoy.", threading.Event()))
    finally:
        client.close()
    first, second = (r.body for r in fake_openai.speech_requests())
    assert (first["model"], first["voice"], first["instructions"], first["speed"]) == (
        "tts-1", "nova", "Speak like a pirate.", 1.25)
    assert (second["voice"], second["speed"]) == ("onyx", 0.75)


def test_volume_scales_samples_and_pitch_is_refused(fake_openai: FakeOpenAI, openai_client: OpenAIClient) -> None:
    loud, _ = collect(openai_client.synthesize("Same words.", threading.Event()))
    openai_client.set_property("volume", 50)
    quiet, _ = collect(openai_client.synthesize("Same words.", threading.Event()))
    np.testing.assert_array_equal(audio(loud), fake_openai.audio_of(fake_openai.speech_requests()[0]))
    np.testing.assert_allclose(audio(quiet), audio(loud) / 2)
    with pytest.raises(ValueError, match="instructions"):
        openai_client.set_property("pitch", 60)
    with pytest.raises(ValueError):
        OpenAIClient(speed=9)


def test_key_comes_from_the_environment(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    client = OpenAIClient(base_url=f"{fake_openai.url}/v1")
    try:
        collect(client.synthesize("From the environment.", threading.Event()))
    finally:
        client.close()
    assert fake_openai.speech_requests()[0].headers["authorization"] == f"Bearer {KEY}"


def test_missing_key_is_a_clear_error_at_first_use(fake_openai: FakeOpenAI) -> None:
    client = OpenAIClient(base_url=f"{fake_openai.url}/v1")  # constructing needs no key yet
    with pytest.raises(EngineError, match="OPENAI_API_KEY"):
        collect(client.synthesize("No key.", threading.Event()))
    assert not fake_openai.exchanges


def test_429_and_500_are_retried_by_the_sdk(fake_openai: FakeOpenAI, openai_client: OpenAIClient) -> None:
    fake_openai.faults = ["throttle", "500"]
    chunks, _ = collect(openai_client.synthesize("Third time lucky.", threading.Event()))
    assert len(fake_openai.speech_requests()) == 3
    assert sum(len(c.pcm) for c in chunks) == fake_openai.speech_requests()[-1].total // 2
    np.testing.assert_array_equal(audio(chunks), fake_openai.audio_of(fake_openai.speech_requests()[-1]))


def test_retries_are_bounded(fake_openai: FakeOpenAI, openai_client: OpenAIClient) -> None:
    fake_openai.faults = ["throttle"] * 5
    with pytest.raises(EngineError, match="Rate limit") as caught:
        collect(openai_client.synthesize("Never spoken.", threading.Event()))
    assert caught.value.engine == "openai"
    assert len(fake_openai.speech_requests()) == 3  # max_retries=2


def test_disconnect_mid_body_raises_after_the_audio_it_got(fake_openai: FakeOpenAI,
                                                           openai_client: OpenAIClient) -> None:
    fake_openai.faults = ["disconnect"]
    got = []
    with pytest.raises(EngineError):
        for chunk in openai_client.synthesize("This answer breaks off in the middle, sadly.", threading.Event()):
            got.append(chunk)
    [request] = fake_openai.speech_requests()
    played = audio(got)
    assert 0 < len(played) <= request.sent // 2
    np.testing.assert_array_equal(played, fake_openai.audio_of(request)[: len(played)])


def test_a_body_cut_by_a_reset_says_what_happened(fake_openai: FakeOpenAI, openai_client: OpenAIClient) -> None:
    fake_openai.faults = ["reset"]
    with pytest.raises(EngineError, match=r"^the OpenAI response ended early after [1-9]\d* bytes: \S") as caught:
        collect(openai_client.synthesize("This answer is cut off by a reset, sadly.", threading.Event()))
    [request] = fake_openai.speech_requests()
    assert f"after {request.sent} bytes" in str(caught.value)


def test_closing_the_generator_closes_the_response(fake_openai: FakeOpenAI, openai_client: OpenAIClient) -> None:
    fake_openai.piece_interval = 0.03
    chunks = openai_client.synthesize("A long answer that the user interrupts as soon as it starts.",
                                      threading.Event())
    next(chunks)
    chunks.close()
    [request] = fake_openai.speech_requests()
    assert request.finished.wait(5)
    assert request.hung_up.is_set() and request.sent < request.total


def test_an_interrupt_from_another_thread_cuts_a_stalled_read(fake_openai: FakeOpenAI,
                                                              openai_client: OpenAIClient) -> None:
    fake_openai.piece_interval = 5.0  # after its first piece the body stalls
    cancel = Cancel()
    chunks = openai_client.synthesize("The server stalls after the first piece of this answer.", cancel)
    next(chunks)
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    list(chunks)
    assert time.monotonic() - started < 2.5, "the read should end when cancel is set, not when bytes come"


def test_a_later_interrupt_never_cuts_a_reused_connection(fake_openai: FakeOpenAI,
                                                         openai_client: OpenAIClient) -> None:
    first = Cancel()
    collect(openai_client.synthesize("First reply.", first))
    second = openai_client.synthesize("Second reply, on the pooled connection the first one used.", Cancel())
    got = [next(second)]
    first.set()  # the first reply is interrupted after its audio was complete
    got += list(second)
    assert sum(len(c.pcm) for c in got) == fake_openai.speech_requests()[1].total // 2
    np.testing.assert_array_equal(audio(got), fake_openai.audio_of(fake_openai.speech_requests()[1]))


def test_key_stays_out_of_logs_reprs_and_errors(fake_openai: FakeOpenAI, openai_client: OpenAIClient,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("openai", "httpx", "httpx2", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    fake_openai.faults = ["throttle"] * 3
    with pytest.raises(EngineError) as caught:
        collect(openai_client.synthesize("Log everything.", threading.Event()))
    collect(openai_client.synthesize("Log everything.", threading.Event()))
    assert caplog.records, "the SDK's DEBUG logs were not captured"
    shown = caplog.text + repr(openai_client) + str(caught.value) + repr(OpenAITTS(openai_client))
    assert KEY not in shown and KEY[-12:] not in shown
    expected = r"OpenAIClient\(model='gpt-4o-mini-tts', voice='alloy', base_url='http://127\.0\.0\.1:\d+/v1'\)"
    assert re.fullmatch(expected, repr(openai_client))


def test_missing_openai_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)
    client = OpenAIClient(api_key=KEY)
    with pytest.raises(EngineError, match=re.escape("pip install 'voicekit[openai]'")):
        collect(client.synthesize("No SDK.", threading.Event()))


# -- through the stream -------------------------------------------------------------------

LONG = "This reply is long enough that the user interrupts it while the server is still sending the audio body"


def test_openai_tts_speaks_through_a_stream(fake_openai: FakeOpenAI, openai_client: OpenAIClient) -> None:
    from voicekit.sinks import MemorySink

    tts = OpenAITTS(openai_client)
    reports = []
    sink = MemorySink()
    tts.speak_streamed("Hello from OpenAI. It streams too.", on_chunk_processed=reports.append, sink=sink)
    assert {r["engine"] for r in reports} == {"openai"}
    assert " ".join(r["text"] for r in reports) == "Hello from OpenAI. It streams too."
    # what the fake sent, to the sample, and each chunk's duration is its own audio's
    requests = fake_openai.speech_requests()
    assert [r.body["input"] for r in requests] == [r["text"] for r in reports]
    assert sink.samplerate == 24000
    np.testing.assert_array_equal(sink.audio, fake_openai.sent_audio())
    assert [round(r["duration"] * 24000) for r in reports] == [len(fake_openai.audio_of(e)) for e in requests]
    tts.cleanup()


def test_async_stream_speaks_through_async_openai(fake_openai: FakeOpenAI, openai_client: OpenAIClient) -> None:
    from voicekit.sinks import MemorySink

    tts = OpenAITTS(openai_client)
    sink = MemorySink()

    async def speak() -> str:
        async with await tts.create_async_stream(sink=sink) as stream:
            await stream.feed("Hello from the async stream.")
            await stream.done()
            assert await stream.wait_until_done(timeout=60)
            return stream.heard_text

    assert asyncio.run(speak()) == "Hello from the async stream."
    requests = fake_openai.speech_requests()
    assert requests and all(r.headers.get("x-stainless-async", "").startswith("async") for r in requests)
    assert [r.body["input"] for r in requests] == ["Hello from the async stream."]
    np.testing.assert_array_equal(sink.audio, fake_openai.sent_audio())
    tts.cleanup()


def test_async_stream_interrupt_cancels_the_transfer(fake_openai: FakeOpenAI, openai_client: OpenAIClient) -> None:
    from voicekit.sinks import MemorySink

    fake_openai.piece_interval = 0.2  # slower than real time: the body is still coming at the interrupt
    tts = OpenAITTS(openai_client)
    sink = MemorySink(realtime=True)

    async def interrupt_while_playing() -> str:
        stream = await tts.create_async_stream(sink=sink)
        await stream.feed(LONG)
        await stream.done()
        for _ in range(3000):  # OpenAI has no word marks: watch the sink for the first audio
            if sink.seconds > 0.1:
                break
            await asyncio.sleep(0.01)
        unheard = await stream.interrupt()
        await stream.close()
        return unheard

    assert asyncio.run(interrupt_while_playing())
    [request] = fake_openai.speech_requests()
    assert request.finished.wait(5) and request.hung_up.is_set() and request.last_byte_at is None
    heard = sink.audio
    assert 0 < len(heard) < len(fake_openai.audio_of(request))  # what was heard before the interrupt
    np.testing.assert_array_equal(heard, fake_openai.audio_of(request)[: len(heard)])
    tts.cleanup()


# -- never block: interrupts, close, one client -------------------------------------------

HOLD = 5.0  # the server holds its first byte this long


def wait_for_requests(fake: FakeOpenAI, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(fake.speech_requests()) < count:
        assert time.monotonic() < deadline, "the request never reached the server"
        time.sleep(0.01)


def interrupt_once_requested(fake: FakeOpenAI, cancel: Cancel) -> list[float]:
    """Sets ``cancel`` once the request is waiting at the server; the list gets the time it did."""
    interrupted_at: list[float] = []

    def interrupt() -> None:
        wait_for_requests(fake, 1)
        interrupted_at.append(time.monotonic())
        cancel.set()

    threading.Thread(target=interrupt).start()
    return interrupted_at


def test_an_interrupt_cancels_a_request_waiting_for_its_first_byte_and_it_is_not_retried(
        fake_openai: FakeOpenAI, openai_client: OpenAIClient) -> None:
    fake_openai.first_byte_delay = HOLD
    cancel = Cancel()
    interrupted_at = interrupt_once_requested(fake_openai, cancel)
    chunks = list(openai_client.synthesize("The server holds this answer back.", cancel))
    assert chunks == [] and time.monotonic() - interrupted_at[0] < 1.0, "the interrupt must not wait for the first byte"
    time.sleep(1.0)  # the SDK's back-off (0.5 s and up) would have retried by now
    assert len(fake_openai.speech_requests()) == 1


def test_close_cancels_requests_in_flight_and_every_path_refuses_afterwards(
        fake_openai: FakeOpenAI, openai_env: None, no_thread_leak: None) -> None:
    client = OpenAIClient(api_key=KEY, base_url=f"{fake_openai.url}/v1")
    fake_openai.first_byte_delay = HOLD
    outcome: list[BaseException] = []

    def speak() -> None:
        try:
            list(client.synthesize("Held back until the engine is closed.", Cancel()))
        except EngineError as exc:
            outcome.append(exc)

    speaker = threading.Thread(target=speak)
    speaker.start()
    wait_for_requests(fake_openai, 1)
    started = time.monotonic()
    client.close()
    closed_in = time.monotonic() - started
    speaker.join(timeout=2)
    assert not speaker.is_alive() and closed_in < 1.0
    assert len(outcome) == 1 and "closed" in str(outcome[0]), "an unfinished chunk is reported, not dropped"
    with pytest.raises(EngineError, match="closed"):
        list(client.synthesize("After close.", Cancel()))
    client.close()  # idempotent
    time.sleep(1.0)  # no retry, no late request
    assert len(fake_openai.speech_requests()) == 1


def test_one_client_serves_every_chunk_on_one_kept_alive_connection(fake_openai: FakeOpenAI,
                                                                    openai_client: OpenAIClient) -> None:
    from voicekit.sinks import MemorySink

    tts = OpenAITTS(openai_client)

    async def speak() -> None:
        async with await tts.create_async_stream(sink=MemorySink()) as stream:
            await stream.feed("One. Two sentences here. And a third one. Then the fourth.")
            await stream.done()
            assert await stream.wait_until_done(timeout=60)

    asyncio.run(speak())
    asyncio.run(speak())  # another event loop: still the same client and connection
    collect(openai_client.synthesize("And a sync call too.", Cancel()))
    requests = fake_openai.speech_requests()
    assert len(requests) >= 5 and len({r.client_port for r in requests}) == 1
    tts.cleanup()


def test_stream_close_and_cleanup_after_an_interrupt_do_not_wait_for_the_server(
        fake_openai: FakeOpenAI, openai_client: OpenAIClient) -> None:
    from voicekit.sinks import MemorySink

    fake_openai.first_byte_delay = HOLD
    tts = OpenAITTS(openai_client)
    stream = tts.create_stream(sink=MemorySink(realtime=True))
    stream.feed("The server holds the first byte of this reply for five seconds.")
    stream.done()
    wait_for_requests(fake_openai, 1)
    started = time.monotonic()
    stream.interrupt()
    stream.close()
    tts.cleanup()
    assert time.monotonic() - started < 1.0
    with pytest.raises(EngineError, match="closed"):
        list(openai_client.synthesize("After cleanup.", Cancel()))
    time.sleep(1.0)
    assert len(fake_openai.speech_requests()) == 1


def test_the_callers_event_loop_runs_no_sdk_code(fake_openai: FakeOpenAI, openai_client: OpenAIClient) -> None:
    """What stalled the loop (a client built per chunk, the SDK's request work) runs on the engine's thread."""
    from voicekit.sinks import MemorySink

    tts = OpenAITTS(openai_client)
    ran: set[str] = set()

    def profile(frame, event: str, arg: object) -> None:
        if event == "call":
            ran.add(frame.f_code.co_filename + ":" + frame.f_code.co_name)

    async def speak() -> None:
        async with await tts.create_async_stream(sink=MemorySink()) as stream:
            await stream.feed("The loop only waits. It never builds a client or a request.")
            await stream.done()
            assert await stream.wait_until_done(timeout=60)

    # finalizers of clients from earlier tests must not run here and count as this loop's work
    gc.collect()
    gc.disable()
    sys.setprofile(profile)  # this thread only: the one running the caller's loop
    try:
        asyncio.run(speak())
    finally:
        sys.setprofile(None)
        gc.enable()
    sdk = sorted(f for f in ran if re.search(r"[/\\](openai|httpx2?|httpcore2?|anyio|h11)[/\\]", f))
    assert not sdk, sdk[:5]
    assert len(fake_openai.speech_requests()) >= 2
    tts.cleanup()
