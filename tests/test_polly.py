"""PollyClient with the real boto3 client against the fake Polly on 127.0.0.1."""

from __future__ import annotations

import logging
import re
import socket
import sys
import threading
import time

import numpy as np
import pytest

from tests.fakes.polly import FakePolly
from tests.helpers import audio as audio_of
from tests.helpers import collect, wait_for, words
from tests.helpers import marks as marks_of
from voicekit.contract import Cancel, Engine
from voicekit.engines import polly as polly_module
from voicekit.engines.polly import PollyClient
from voicekit.errors import EngineError
from voicekit.tts_classes import PollyTTS

KEY_ID, SECRET = "AKIDFAKEKEY1234567", "fakeSecretValue/abc+123"


@pytest.fixture
def polly(fake_polly: FakePolly, no_thread_leak: None):
    client = PollyClient(("eu-west-1", KEY_ID, SECRET), endpoint_url=fake_polly.url, backoff=0.01)
    yield client
    client.close()


def test_client_is_an_engine(polly: PollyClient) -> None:
    assert isinstance(polly, Engine)
    assert (polly.name, polly.samplerate, polly.max_chars) == ("polly", 16000, 3000)


def test_first_audio_arrives_before_the_body_is_complete(fake_polly: FakePolly, polly: PollyClient) -> None:
    text = "Streaming means the first words play while the rest is still on its way."
    chunks, first = collect(polly.synthesize(text, threading.Event()))
    [audio] = fake_polly.speech_requests("pcm")
    assert audio.last_byte_at is not None and first < audio.last_byte_at
    assert len(chunks) > 5, "the body should be read in small pieces"
    assert sum(len(c.pcm) for c in chunks) == audio.total // 2
    assert all(c.samplerate == 16000 and c.pcm.dtype.name == "float32" for c in chunks)
    np.testing.assert_array_equal(np.concatenate([c.pcm for c in chunks]), fake_polly.audio_of(audio))
    body = audio.body
    assert (body["OutputFormat"], body["SampleRate"], body["TextType"], body["Text"]) == ("pcm", "16000", "text", text)


def test_marks_are_requested_while_the_audio_streams_and_mapped_to_str_offsets(fake_polly: FakePolly,
                                                                                 polly: PollyClient) -> None:
    fake_polly.piece_interval = 0.25  # 100 ms pieces of audio, 250 ms apart: the marks answer comes in between
    text = "Café naïve — über straße, déjà vu."
    chunks, _ = collect(polly.synthesize(text, threading.Event()))
    [audio], [marks_request] = fake_polly.speech_requests("pcm"), fake_polly.speech_requests("json")
    assert marks_request.body["SpeechMarkTypes"] == ["word"]
    assert marks_request.received_at < audio.last_byte_at, "marks must not wait for the whole audio"
    marks = marks_of(chunks)
    assert [text[m.offset:m.offset + m.length] for m in marks] == words(text)
    assert [m.time for m in marks] == [w.start / 16000 for w in fake_polly.plan_of(audio)]  # to the sample
    # a mark rides on the piece in which its word starts; only marks of the first
    # server piece (100 ms, before the marks answer came) may ride on a later one
    end = 0
    for chunk in chunks:
        start, end = end, end + len(chunk.pcm)
        assert all(round(m.time * 16000) < end and (start <= round(m.time * 16000) or m.time < 0.1)
                   for m in chunk.marks)


def test_marks_arriving_after_the_audio_are_still_delivered(fake_polly: FakePolly, polly: PollyClient) -> None:
    fake_polly.marks_delay = 0.6
    text = "Late marks still count."
    chunks, _ = collect(polly.synthesize(text, threading.Event()))
    marks = marks_of(chunks)
    assert [text[m.offset:m.offset + m.length] for m in marks] == words(text)
    assert [m.time for m in marks] == [w.start / 16000 for w in fake_polly.plan_of(fake_polly.speech_requests()[0])]
    audio_end, attached_at = 0, []
    for chunk in chunks:
        audio_end += len(chunk.pcm)
        attached_at += [audio_end] * len(chunk.marks)
    assert all(round(m.time * 16000) < at for m, at in zip(marks, attached_at)), "a mark came before its word's audio"


def test_plain_text_is_spoken_literally(fake_polly: FakePolly, polly: PollyClient) -> None:
    text = "if a < b && c > d then <speak> is just a word"
    collect(polly.synthesize(text, threading.Event()))
    [audio] = fake_polly.speech_requests("pcm")
    assert (audio.body["TextType"], audio.body["Text"]) == ("text", text)


def test_ssml_passes_through_only_when_given(fake_polly: FakePolly, polly: PollyClient) -> None:
    ssml = '<speak>Hello <break time="200ms"/> world.</speak>'
    chunks, _ = collect(polly.synthesize(ssml, threading.Event(), ssml=True))
    [audio] = fake_polly.speech_requests("pcm")
    assert (audio.body["TextType"], audio.body["Text"]) == ("ssml", ssml)
    marks = marks_of(chunks)
    assert [ssml[m.offset:m.offset + m.length] for m in marks] == ["Hello", "world."]
    assert [m.time for m in marks] == [w.start / 16000 for w in fake_polly.plan_of(audio)]
    np.testing.assert_array_equal(audio_of(chunks), fake_polly.audio_of(audio))


@pytest.mark.parametrize("rate", [None, 0.8])
def test_text_that_looks_like_ssml_is_never_sent_as_ssml(fake_polly: FakePolly, polly: PollyClient,
                                                          rate: float | None) -> None:
    """The chunk's text does not decide: a later sentence of a plain reply may start with <speak."""
    if rate is not None:
        polly.set_property("rate", rate)
    attack = '<speak><prosody rate="x-slow">slow <break time="10s"/></prosody></speak>'
    collect(polly.synthesize(attack, threading.Event()))
    [audio] = fake_polly.speech_requests("pcm")
    if rate is None:
        assert (audio.body["TextType"], audio.body["Text"]) == ("text", attack)
    else:  # voicekit's own prosody, the attacker's tags escaped inside it
        assert audio.body["TextType"] == "ssml"
        assert audio.body["Text"].startswith('<speak><prosody rate="80%">&lt;speak&gt;&lt;prosody rate=')
        assert "<break" not in audio.body["Text"]


def test_properties_wrap_escaped_text_in_prosody(fake_polly: FakePolly, polly: PollyClient) -> None:
    polly.set_property("rate", 1.5)
    polly.set_property("volume", 50)
    text = 'Tom & Jerry <3 "quotes"'
    chunks, _ = collect(polly.synthesize(text, threading.Event()))
    [audio] = fake_polly.speech_requests("pcm")
    assert audio.body["TextType"] == "ssml"
    assert audio.body["Text"] == ('<speak><prosody rate="150%" volume="-6.0dB">'
                                  "Tom &amp; Jerry &lt;3 &quot;quotes&quot;</prosody></speak>")
    marks = marks_of(chunks)
    assert [text[m.offset:m.offset + m.length] for m in marks] == words(text)
    assert [m.time for m in marks] == [w.start / 16000 for w in fake_polly.plan_of(audio)]
    with pytest.raises(ValueError):
        polly.set_property("pitch", 120)
    with pytest.raises(ValueError):
        polly.set_property("speed", 1)


def test_engine_voice_language_and_8khz_are_sent(fake_polly: FakePolly, aws_env: None, no_thread_leak: None) -> None:
    client = PollyClient(("eu-west-1", KEY_ID, SECRET), endpoint_url=fake_polly.url, engine="standard",
                         voice="Aditi", language="hi-IN", samplerate=8000)
    try:
        chunks, _ = collect(client.synthesize("Namaste, hello.", threading.Event()))
    finally:
        client.close()
    for request in fake_polly.speech_requests("pcm") + fake_polly.speech_requests("json"):
        assert {k: request.body[k] for k in ("Engine", "VoiceId", "LanguageCode", "SampleRate")} == {
            "Engine": "standard", "VoiceId": "Aditi", "LanguageCode": "hi-IN", "SampleRate": "8000"}
    assert chunks and all(c.samplerate == 8000 for c in chunks)
    [audio] = fake_polly.speech_requests("pcm")
    np.testing.assert_array_equal(audio_of(chunks), fake_polly.audio_of(audio))
    assert [m.time for m in marks_of(chunks)] == [w.start / 8000 for w in fake_polly.plan_of(audio)]


@pytest.mark.parametrize("kwargs", [{"engine": "turbo"}, {"samplerate": 22050}, {"max_retries": -1}])
def test_bad_arguments_raise(aws_env: None, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        PollyClient(("eu-west-1", KEY_ID, SECRET), **kwargs)


@pytest.mark.parametrize("credentials", [("eu-west-1", KEY_ID), ("eu-west-1", "", SECRET)])
def test_bad_credentials_raise(aws_env: None, credentials: tuple) -> None:
    with pytest.raises(ValueError, match="region, key_id, secret"):
        PollyClient(credentials)


def test_voices_come_from_describe_voices_across_pages(fake_polly: FakePolly, polly: PollyClient) -> None:
    voices = polly.voices()
    assert [(v.id, v.language, v.gender) for v in voices] == [
        ("Joanna", "en-US", "Female"), ("Matthew", "en-US", "Male"), ("Aditi", "en-IN", "Female")]
    requests = [e for e in fake_polly.exchanges if e.path == "/v1/voices"]
    assert len(requests) == 2 and requests[0].query["Engine"] == ["neural"]
    polly.set_voice("Matthew")
    collect(polly.synthesize("Hi.", threading.Event()))
    assert fake_polly.speech_requests("pcm")[0].body["VoiceId"] == "Matthew"


def test_throttling_and_5xx_are_retried(fake_polly: FakePolly, polly: PollyClient) -> None:
    fake_polly.faults = ["throttle", "500"]
    chunks, _ = collect(polly.synthesize("Third time lucky.", threading.Event()))
    assert len(fake_polly.speech_requests("pcm")) == 3
    assert sum(len(c.pcm) for c in chunks) == fake_polly.speech_requests("pcm")[-1].total // 2
    np.testing.assert_array_equal(audio_of(chunks), fake_polly.audio_of(fake_polly.speech_requests("pcm")[-1]))


def test_retries_are_bounded(fake_polly: FakePolly, polly: PollyClient) -> None:
    fake_polly.faults = ["throttle"] * 5
    with pytest.raises(EngineError, match="ThrottlingException") as caught:
        collect(polly.synthesize("Never spoken.", threading.Event()))
    assert caught.value.engine == "polly"
    assert len(fake_polly.speech_requests("pcm")) == 3  # max_retries=2


def test_disconnect_mid_body_raises_after_the_audio_it_got(fake_polly: FakePolly, polly: PollyClient) -> None:
    fake_polly.faults = ["disconnect"]
    text = "This answer breaks off in the middle of the sentence, sadly."
    got = []
    with pytest.raises(EngineError, match="broke off"):
        for chunk in polly.synthesize(text, threading.Event()):
            got.append(chunk)
    [audio] = fake_polly.speech_requests("pcm")
    played = audio_of(got)
    assert 0 < len(played) <= audio.sent // 2
    np.testing.assert_array_equal(played, fake_polly.audio_of(audio)[: len(played)])
    # exactly the words whose tone started in the audio it got: a fallback resumes at the next one
    assert [m.offset for m in marks_of(got)] == [w.offset for w in fake_polly.plan_of(audio) if w.start < len(played)]
    assert len(fake_polly.speech_requests("pcm")) == 1, "a broken body is not retried"


def test_a_429_is_retried_after_its_retry_after(fake_polly: FakePolly, polly: PollyClient) -> None:
    fake_polly.faults = ["429"]
    fake_polly.retry_after = "1"
    chunks, _ = collect(polly.synthesize("Patience pays.", threading.Event()))
    first, second = fake_polly.speech_requests("pcm")
    assert 0.9 <= second.received_at - first.received_at < 3, "Retry-After: 1 was not honoured"
    assert sum(len(c.pcm) for c in chunks) == second.total // 2
    np.testing.assert_array_equal(audio_of(chunks), fake_polly.audio_of(second))


def test_retry_after_is_bounded(fake_polly: FakePolly, polly: PollyClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(polly_module, "_MAX_RETRY_AFTER", 0.5)
    fake_polly.faults = ["429"]
    fake_polly.retry_after = "3600"
    collect(polly.synthesize("Not in an hour.", threading.Event()))
    first, second = fake_polly.speech_requests("pcm")
    assert 0.4 <= second.received_at - first.received_at < 2


@pytest.mark.parametrize("event", [Cancel, threading.Event])
def test_an_interrupt_ends_a_retry_after_wait_at_once(fake_polly: FakePolly, polly: PollyClient,
                                                      event: type[threading.Event]) -> None:
    fake_polly.faults = ["429"]
    fake_polly.retry_after = "5"
    cancel = event()
    got: list = []
    speaker = threading.Thread(target=lambda: got.extend(polly.synthesize("Never mind.", cancel)))
    speaker.start()
    wait_for(lambda: fake_polly.speech_requests("pcm") and fake_polly.speech_requests("pcm")[0].finished.is_set(),
             "the 429 answer")
    time.sleep(0.1)  # the client has the answer and waits
    interrupted = time.monotonic()
    cancel.set()
    speaker.join(timeout=5)
    assert time.monotonic() - interrupted < 0.5 and got == []
    time.sleep(0.3)
    assert len(fake_polly.speech_requests("pcm")) == 1, "a request was sent after the interrupt"


def test_connection_refused_is_an_engine_error(aws_env: None, no_thread_leak: None) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    client = PollyClient(("eu-west-1", KEY_ID, SECRET), endpoint_url=f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(EngineError, match="Polly synthesize_speech failed"):
            collect(client.synthesize("Nobody is listening.", threading.Event()))
    finally:
        client.close()


def test_closing_the_generator_cancels_the_transfer(fake_polly: FakePolly, polly: PollyClient) -> None:
    fake_polly.piece_interval = 0.03
    chunks = polly.synthesize("A long answer that the user interrupts right after it starts to play.",
                              threading.Event())
    next(chunks)
    chunks.close()
    [audio] = fake_polly.speech_requests("pcm")
    assert audio.finished.wait(5)
    assert audio.hung_up.is_set() and audio.last_byte_at is None
    assert audio.sent < audio.total


def test_an_interrupt_from_another_thread_cuts_a_stalled_read(fake_polly: FakePolly, polly: PollyClient) -> None:
    fake_polly.piece_interval = 5.0  # after its first piece the body stalls
    cancel = Cancel()
    chunks = polly.synthesize("The server stalls after the first piece of this answer.", cancel)
    next(chunks)
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    list(chunks)
    assert time.monotonic() - started < 2.5, "the read should end when cancel is set, not when bytes come"


def test_cancel_event_stops_the_generator(fake_polly: FakePolly, polly: PollyClient) -> None:
    cancel = threading.Event()
    got = []
    for chunk in polly.synthesize("Stop me after the first piece, please, right now.", cancel):
        got.append(chunk)
        cancel.set()
    assert len(got) == 1


def test_credentials_stay_out_of_logs_reprs_and_errors(fake_polly: FakePolly, polly: PollyClient,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("botocore", "boto3", "urllib3"):
        caplog.set_level(logging.DEBUG, logger=name)
    fake_polly.faults = ["throttle"] * 3
    with pytest.raises(EngineError) as caught:
        collect(polly.synthesize("Log everything.", threading.Event()))
    collect(polly.synthesize("Log everything.", threading.Event()))
    assert "Authorization" in caplog.text, "botocore's DEBUG logs were not captured"
    shown = caplog.text + repr(polly) + str(polly) + str(caught.value) + repr(PollyTTS(polly))
    assert KEY_ID not in shown and SECRET not in shown
    assert repr(polly) == "PollyClient(region='eu-west-1', voice='Joanna', engine='neural')"


def test_standard_credential_chain(fake_polly: FakePolly, monkeypatch: pytest.MonkeyPatch,
                                   no_thread_leak: None) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    client = PollyClient(endpoint_url=fake_polly.url)
    try:
        collect(client.synthesize("From the environment.", threading.Event()))
    finally:
        client.close()
    [audio] = fake_polly.speech_requests("pcm")
    assert f"Credential={KEY_ID}/" in audio.headers["authorization"]
    assert "/eu-west-1/polly/" in audio.headers["authorization"]


def test_a_ready_boto3_client_is_used_and_left_open(fake_polly: FakePolly, no_thread_leak: None) -> None:
    import boto3

    boto_client = boto3.session.Session(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                                        region_name="us-west-2").client("polly", endpoint_url=fake_polly.url)
    client = PollyClient(client=boto_client, voice="Matthew")
    try:
        collect(client.synthesize("Bring your own client.", threading.Event()))
    finally:
        client.close()
    assert "us-west-2" in repr(client)
    assert boto_client.describe_voices()["Voices"], "the user's client must stay usable"
    boto_client.close()


def test_the_real_aws_endpoint_is_never_reached(loopback_only: list, aws_env: None, no_thread_leak: None) -> None:
    with pytest.raises(AssertionError, match="reach the network"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    client = PollyClient(("eu-west-1", KEY_ID, SECRET))  # no endpoint_url: Polly's real address
    try:
        with pytest.raises((AssertionError, EngineError)):
            collect(client.synthesize("Offline only.", threading.Event()))
    finally:
        client.close()
    assert "polly.eu-west-1.amazonaws.com" in loopback_only


def test_a_ready_boto3_session_is_used(fake_polly: FakePolly, no_thread_leak: None) -> None:
    import boto3

    session = boto3.session.Session(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, region_name="ap-south-1")
    client = PollyClient(session=session, endpoint_url=fake_polly.url)
    try:
        collect(client.synthesize("Bring your own session.", threading.Event()))
    finally:
        client.close()
    assert "/ap-south-1/polly/" in fake_polly.speech_requests("pcm")[0].headers["authorization"]
    with pytest.raises(ValueError, match="not both"):
        PollyClient(("eu-west-1", KEY_ID, SECRET), session=session)


def test_missing_boto3_names_the_fix(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(EngineError, match=re.escape("pip install 'voicekit[polly]'")):
        PollyClient(("eu-west-1", KEY_ID, SECRET))


def test_closed_client_refuses_work(polly: PollyClient) -> None:
    polly.close()
    polly.close()
    with pytest.raises(EngineError, match="closed"):
        collect(polly.synthesize("Too late.", threading.Event()))


# -- through the stream -------------------------------------------------------------------

LONG = "This reply is long enough that the user interrupts it while Polly is still sending the audio body"


def test_polly_tts_speaks_and_tracks_words(fake_polly: FakePolly, polly: PollyClient) -> None:
    from voicekit.sinks import MemorySink

    tts = PollyTTS(polly)
    reports, spoken = [], []
    sink = MemorySink()
    stream = tts.create_stream(sink=sink, on_chunk_processed=reports.append, on_word=spoken.append)
    stream.feed("Hello from Polly & friends. It streams.")
    stream.done()
    assert stream.wait_until_done(timeout=60)
    assert stream.heard_text == "Hello from Polly & friends. It streams."
    assert [w["word"] for w in spoken] == ["Hello", "from", "Polly", "&", "friends.", "It", "streams."]
    assert {r["engine"] for r in reports} == {"polly"}
    # what the fake sent, to the sample, and each word where its tone starts in the stream's audio
    requests = fake_polly.speech_requests("pcm")
    assert " ".join(r.body["Text"] for r in requests) == "Hello from Polly & friends. It streams."
    np.testing.assert_array_equal(sink.audio, fake_polly.sent_audio())
    starts, before = [], 0
    for request in requests:
        starts += [before + w.start for w in fake_polly.plan_of(request)]
        before += len(fake_polly.audio_of(request))
    assert [w["time"] for w in spoken] == pytest.approx([start / 16000 for start in starts], rel=0, abs=1e-9)
    stream.close()
    tts.cleanup()


def test_stream_interrupt_cancels_the_transfer(fake_polly: FakePolly, polly: PollyClient) -> None:
    from voicekit.sinks import MemorySink

    fake_polly.piece_interval = 0.2  # slower than real time: the body is still coming at the interrupt
    tts = PollyTTS(polly)
    playing = threading.Event()
    stream = tts.create_stream(sink=MemorySink(realtime=True), on_word=lambda info: playing.set())
    stream.feed(LONG)
    stream.done()
    assert playing.wait(30)
    unheard = stream.interrupt()
    [audio] = fake_polly.speech_requests("pcm")
    assert audio.finished.wait(5) and audio.hung_up.is_set() and audio.last_byte_at is None
    assert unheard and LONG.endswith(unheard.split()[-1])
    tts.cleanup()


def test_an_ssml_reply_fed_in_pieces_goes_to_polly_whole(fake_polly: FakePolly, polly: PollyClient) -> None:
    from voicekit.sinks import MemorySink

    tts = PollyTTS(polly)
    ssml = '<speak>Hello, <break time="300ms"/> world. Second sentence &amp; more.</speak>'
    sink = MemorySink()
    stream = tts.create_stream(sink=sink)
    for piece in (ssml[:20], ssml[20:45], ssml[45:]):
        stream.feed(piece)
    stream.done()
    assert stream.wait_until_done(timeout=20)
    (request,) = fake_polly.speech_requests()
    assert request.body["TextType"] == "ssml" and request.body["Text"] == ssml
    np.testing.assert_array_equal(sink.audio, fake_polly.audio_of(request))
    tts.cleanup()


def test_plain_text_with_markup_characters_is_spoken_literally_through_a_stream(fake_polly: FakePolly,
                                                                                polly: PollyClient) -> None:
    from voicekit.sinks import MemorySink

    tts = PollyTTS(polly)
    sink = MemorySink()
    tts.speak_streamed("Use a < b & c > d here.", sink=sink)
    tts.set_property("rate", 1.5)  # prosody needs SSML: the text is escaped into it
    tts.speak_streamed("Use a < b & c > d here.", sink=sink)
    plain, wrapped = fake_polly.speech_requests()
    assert (plain.body["TextType"], plain.body["Text"]) == ("text", "Use a < b & c > d here.")
    assert wrapped.body["TextType"] == "ssml"
    assert wrapped.body["Text"] == '<speak><prosody rate="150%">Use a &lt; b &amp; c &gt; d here.</prosody></speak>'
    np.testing.assert_array_equal(sink.audio, fake_polly.sent_audio())
    tts.cleanup()
