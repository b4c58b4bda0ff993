"""The streaming core with real parts: voicekit.testing's tone engine into memory sinks.

The tone engine's audio and word marks are known to the sample (``ToneEngine.plan``),
so what was played and heard is asserted exactly; eSpeak has its own tests (test_espeak.py).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import numpy as np
import pytest

from tests.helpers import timeline, wait_for
from voicekit import (
    BufferError,
    EngineError,
    MemorySink,
    NullSink,
    StreamError,
)
from voicekit.contract import AudioChunk
from voicekit.testing import ToneEngine, ToneTTS

TEXT = "Hello there. This is a test of the streaming core. It should work fine!"


@pytest.fixture
def tts(no_thread_leak):
    tts = ToneTTS()
    yield tts
    tts.cleanup()


def test_word_by_word_feed_speaks_everything(tts):
    sink = MemorySink()
    chunks, words = [], []
    stream = tts.create_stream(sink=sink, on_chunk_processed=chunks.append, on_word=words.append)
    for word in TEXT.split(" "):
        stream.feed(word + " ")
    stream.done()
    assert stream.wait_until_done(timeout=30)
    stream.close()
    texts = [c["text"] for c in chunks]
    assert texts == tts.client.texts and " ".join(texts) == TEXT
    assert sink.samplerate == 24000 and len(sink.audio) == sum(tts.client.frames(t) for t in texts)
    assert [c["index"] for c in chunks] == list(range(len(chunks)))
    for info in chunks:
        assert info["engine"] == "tone" and info["latency"] >= 0
        assert info["duration"] == tts.client.frames(info["text"]) / 24000
    # every word, as it starts playing, at the frame where its tone starts
    assert [(w["word"], w["time"]) for w in words] == [(word, frame / 24000) for word, frame in timeline(tts.client, texts)]
    assert [TEXT[w["offset"] :].split(" ")[0] for w in words] == TEXT.split(" ")
    assert stream.heard_text == TEXT
    assert stream.fed_text == TEXT + " "


def test_speech_does_not_depend_on_how_text_was_split(tts):
    def render(pieces):
        sink, chunks = MemorySink(), []
        with tts.create_stream(sink=sink, on_chunk_processed=chunks.append) as stream:
            for piece in pieces:
                stream.feed(piece)
        return [c["text"] for c in chunks], sink.audio

    whole, whole_audio = render([TEXT])
    by_char, by_char_audio = render(list(TEXT))
    assert whole == by_char
    np.testing.assert_array_equal(whole_audio, by_char_audio)


def test_wait_false_calls_play_in_call_order_without_overlap(tts):
    tts.set_property("rate", 2.0)
    sink = MemorySink(realtime=True)
    texts = ["First one, two, three.", "Second four.", "Third five six."]
    solo = []
    for text in texts:
        alone = MemorySink()
        tts.speak(text, sink=alone)
        solo.append(alone.audio)
    heard = []
    streams = []
    for n, text in enumerate(texts):
        stream = tts.create_stream(sink=sink, on_word=lambda w, n=n: heard.append((n, w["word"])))
        stream.feed(text)
        stream.done()
        streams.append(stream)
    for stream in streams:
        assert stream.wait_until_done(timeout=20)
        stream.close()
    # words arrive stream by stream, each stream's words in order
    assert heard == [(n, word) for n, text in enumerate(texts) for word in text.split()]
    # back to back: the three alone, one after the other, so nothing overlapped or was dropped
    np.testing.assert_array_equal(sink.audio, np.concatenate(solo))


def test_chatbot_pattern_next_stream_waits_its_turn(tts):
    tts.set_property("rate", 2.0)
    sink = MemorySink(realtime=True)
    tts.set_output(sink)
    first = tts.create_stream()
    first.feed("One two three. ")
    first.done()
    second = tts.create_stream()
    second.feed("Four five six.")
    second.done()
    assert second.wait_until_done(timeout=20)
    assert first.wait_until_done(timeout=0)
    assert first.heard_text == "One two three." and second.heard_text == "Four five six."
    first.close()
    second.close()


def test_interrupt_silences_within_one_block_and_reports_heard_words(tts):
    sink = MemorySink(realtime=True)
    tts.setup_stream(chunk_size=480)  # 20 ms blocks at the engine's 24 kHz
    chunks = []
    stream = tts.create_stream(sink=sink, on_chunk_processed=lambda info: chunks.append(info["text"]))
    spoken = "This is a long sentence that will be cut in the middle, surely. And another one follows it here."
    stream.feed(spoken)
    wait_for(lambda: sink.seconds >= 1.0)
    unheard = stream.interrupt()
    played = len(sink.audio)
    time.sleep(0.3)
    assert len(sink.audio) - played <= 480
    heard = stream.heard_text
    assert spoken.startswith(heard) and (heard + " " + unheard).split() == spoken.split()
    # heard: the words whose tone had started when the speaker went quiet (the playback
    # clock is read a moment before the sink stops, hence the margin on the next word)
    words, count = timeline(tts.client, chunks), len(heard.split())
    assert 0 < count < len(words)
    assert words[count - 1][1] <= played < words[count][1] + 2400
    # the stream stays usable and heard_text starts over
    stream.feed("A new reply.")
    stream.done()
    assert stream.wait_until_done(timeout=20)
    assert stream.heard_text == "A new reply."
    stream.close()


def test_a_listeners_own_clock_cuts_what_was_heard(tts):
    """A network client plays later than the sink took the audio: its clock, given to interrupt(), is the truth."""
    sink = MemorySink()  # takes everything at once, like a socket
    chunks = []
    stream = tts.create_stream(sink=sink, on_chunk_processed=lambda info: chunks.append(info["text"]))
    spoken = "One two three four five. Six seven eight nine ten."
    stream.feed(spoken)
    stream.done()
    assert stream.wait_until_done(timeout=20) and stream.heard_text == spoken
    words = timeline(tts.client, chunks)
    # the listener had heard up to just after the fourth word's start when it barged in
    unheard = stream.interrupt(played=(words[3][1] + 1) / 24000)
    assert stream.heard_text == "One two three four"
    assert unheard == "five. Six seven eight nine ten."
    assert stream.interrupt(played=0) == spoken and stream.heard_text == ""
    stream.close()
    # while the reply is still going: the sink's clock is ahead of the listener's
    stream = tts.create_stream(sink=MemorySink(realtime=True))
    stream.feed(spoken)
    wait_for(lambda: stream.heard_text.startswith("One two three"))
    unheard = stream.interrupt(played=(words[1][1] + 1) / 24000)
    assert stream.heard_text == "One two" and f"{stream.heard_text} {unheard}" == spoken
    stream.close()


def test_an_engine_failing_as_an_interrupt_lands_leaves_the_next_reply_alone(no_thread_leak):
    class StuckThenFails(ToneEngine):
        def synthesize(self, text, cancel=None):
            if text.startswith("Stuck"):
                stuck.set()
                release.wait(10)  # a request that ignores the cancel, then fails
                raise EngineError("the connection dropped")
            yield from super().synthesize(text, cancel)

    stuck, release = threading.Event(), threading.Event()
    tts = ToneTTS(StuckThenFails())
    stream = tts.create_stream(sink=MemorySink())
    stream.feed("Stuck in a request. And more")  # the next sentence's start lets the first go
    assert stuck.wait(10)
    assert stream.interrupt() == "Stuck in a request. And more"
    stream.feed("The next reply.")
    release.set()
    stream.done()
    assert stream.wait_until_done(timeout=20)
    assert stream.heard_text == "The next reply." and stream.error is None
    stream.close()
    tts.cleanup()


def test_pause_and_resume_hold_the_position(tts):
    tts.set_property("rate", 2.0)
    sink = MemorySink(realtime=True)
    stream = tts.create_stream(sink=sink)
    stream.feed("Counting slowly now, one, two, three, four, five, six, seven.")
    stream.done()
    time.sleep(0.5)
    stream.pause()
    time.sleep(0.2)
    held = sink.seconds
    time.sleep(0.4)
    assert sink.seconds == held
    stream.resume()
    assert stream.wait_until_done(timeout=20)
    stream.close()
    whole = MemorySink()
    tts.speak_streamed("Counting slowly now, one, two, three, four, five, six, seven.", sink=whole)
    np.testing.assert_array_equal(sink.audio, whole.audio)


def test_setup_stream_sets_the_output_format(tts):
    sink = MemorySink()
    tts.setup_stream(chunk_size=1024, buffer_size=4096, samplerate=44100, channels=2, dtype="int16")
    tts.speak_streamed("Format check.", sink=sink)
    assert sink.samplerate == 44100 and sink.channels == 2
    assert sink.audio.dtype == np.int16 and sink.audio.shape[1] == 2
    assert len(sink.audio) == tts.client.frames("Format check.") * 44100 // 24000  # resampled, none lost
    assert np.array_equal(sink.audio[:, 0], sink.audio[:, 1])
    assert np.abs(sink.audio).max() > 1000


def test_guide_values_give_no_permanent_buffer_full(tts):
    tts.set_property("rate", 5.0)  # 3.4 s of audio in all: still more than the lookahead
    tts.set_stream_config({"chunk_size": 1024, "max_text_chunk": 100, "buffer_threshold": 0.75, "lookahead": 2.0})
    sink = MemorySink(realtime=True)
    stream = tts.create_stream(sink=sink)
    stream.feed("Word " * 60 + ". ")
    assert stream.buffer_full()
    stream.done()
    assert stream.wait_until_done(timeout=60)
    assert not stream.buffer_full()
    stream.close()
    assert not stream.buffer_full()


def test_lookahead_bounds_audio_queued_ahead(tts):
    tts.set_stream_config({"lookahead": 1.0, "max_text_chunk": 60})
    sink = MemorySink(realtime=True)
    stream = tts.create_stream(sink=sink)
    stream.feed("This goes on and on. " * 12)
    stream.done()
    peak = 0.0
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        reply = stream._reply
        if reply is not None:
            peak = max(peak, reply.queued_seconds)
        time.sleep(0.01)
    stream.interrupt()
    stream.close()
    # one engine piece (chunk_seconds, 50 ms) may land after the bound is reached
    assert 0.9 < peak <= 1.0 + 0.05 + 1e-9


def test_feed_errors_are_clear(tts):
    tts.set_stream_config({"max_queued_chars": 100})
    stream = tts.create_stream(sink=NullSink())
    with pytest.raises(TypeError):
        stream.feed(b"bytes")
    with pytest.raises(BufferError) as info:
        stream.feed("x" * 101)
    assert isinstance(info.value, __builtins__["BufferError"] if isinstance(__builtins__, dict) else __builtins__.BufferError)
    assert isinstance(info.value, StreamError)
    with pytest.raises(StreamError, match="needs done"):
        stream.wait_until_done()
    stream.feed("Fine.")
    stream.done()
    with pytest.raises(StreamError, match="after done"):
        stream.feed("late")
    stream.close()
    with pytest.raises(StreamError):
        stream.feed("after close")


def test_hostile_text_is_spoken_or_rejected_never_hangs(tts):
    tts.set_property("rate", 10.0)  # the 3000-letter word alone is 18 s of audio even so
    sink = MemorySink()
    hostile = "\x00\x01 <speak>&amp; \ud800 \u202e ﷽ " + "🙂" * 5 + " end. " + "a" * 3000
    tts.speak_streamed(hostile, sink=sink)
    sent = tts.client.texts
    assert "end." in sent[0].split() and "".join(sent[1:]) == "a" * 3000
    assert not any(c in "".join(sent) for c in "\x00\x01\ud800")
    assert len(sink.audio) == sum(tts.client.frames(t) for t in sent)
    sink2 = MemorySink()
    tts.speak_streamed("   \n\t ", sink=sink2)
    assert sink2.seconds == 0


class _DroppedConnection(ToneEngine):
    """A tone engine whose break is a ConnectionError: engines fail with any exception, not only EngineError."""

    def synthesize(self, text, cancel):
        try:
            yield from super().synthesize(text, cancel)
        except EngineError as exc:
            raise ConnectionError("network dropped") from exc


def test_engine_failure_reports_every_unspoken_character(no_thread_leak):
    tts = ToneTTS(_DroppedConnection(fail="oom"))  # breaks after the "B" of "Boom"
    sink = MemorySink()
    stream = tts.create_stream(sink=sink)
    fed = "First sentence is fine. Boom goes the second one, after a while of talking. Third never comes."
    stream.feed(fed)
    stream.done()
    with pytest.raises(EngineError) as info:
        stream.wait_until_done(timeout=20)
    assert "network dropped" in str(info.value) and info.value.engine == "tone"
    # "Boom" started playing before the break: heard, so not reported again
    assert stream.heard_text == "First sentence is fine. Boom"
    assert info.value.unspoken_text == "goes the second one, after a while of talking. Third never comes."
    first, broken = tts.client.texts
    assert len(sink.audio) == tts.client.frames(first) + tts.client.plan(broken)[0].start + 1440
    with pytest.raises(EngineError):
        stream.feed("more")
    stream.close()  # already reported: close does not raise it again
    tts.cleanup()


def test_feed_from_many_threads(tts):
    sink = NullSink()
    stream = tts.create_stream(sink=sink)
    words = []

    def producer(n):
        for i in range(20):
            stream.feed(f"w{n}x{i} ")

    threads = [threading.Thread(target=producer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stream.done()
    assert stream.wait_until_done(timeout=30)
    words = stream.heard_text.split()
    assert sorted(words) == sorted(f"w{n}x{i}" for n in range(4) for i in range(20))
    stream.close()


def test_cleanup_stops_everything_at_once(no_thread_leak):
    tts = ToneTTS()
    sink = MemorySink(realtime=True)
    streams = [tts.speak_streamed("A fairly long line of speech to play. " * 3, wait=False, sink=sink) for _ in range(5)]
    time.sleep(0.3)
    started = time.monotonic()
    tts.cleanup()
    assert time.monotonic() - started < 2.0
    assert sink.seconds < 3.0
    assert all(s.buffer_full() is False for s in streams)


def test_async_stream(tts):
    sink = MemorySink()

    async def main():
        stream = await tts.create_async_stream(sink=sink)
        async with stream:
            await stream.feed("First part. ")
            await stream.feed("Second part. ")
            await stream.done()
            assert await stream.wait_until_done(timeout=20)
        return stream.heard_text

    assert asyncio.run(main()) == "First part. Second part."
    assert tts.client.texts == ["First part.", "Second part."]
    assert len(sink.audio) == tts.client.frames("First part.") + tts.client.frames("Second part.")


def test_exception_in_with_block_interrupts(tts):
    sink = MemorySink(realtime=True)
    with pytest.raises(RuntimeError):
        with tts.create_stream(sink=sink) as stream:
            stream.feed("This would take a few seconds to say out loud, if it were not stopped. " * 2)
            time.sleep(0.2)
            raise RuntimeError("caller failed")
    assert sink.seconds < 1.0


def test_user_callback_errors_do_not_stop_speech(tts, caplog):
    def bad(_info):
        raise ValueError("callback bug")

    sink = MemorySink()
    tts.speak_streamed("Still spoken.", sink=sink, on_chunk_processed=bad)
    assert len(sink.audio) == tts.client.frames("Still spoken.")
    assert "callback bug" in caplog.text


def test_resampler_keeps_a_sine_frequency():
    from voicekit.resample import Resampler

    rate_in, rate_out, freq = 22050, 48000, 440.0
    t = np.arange(rate_in) / rate_in
    sine = np.sin(2 * np.pi * freq * t).astype(np.float32)
    resampler = Resampler(rate_out)
    out = np.concatenate([resampler.process(sine[i : i + 1000], rate_in) for i in range(0, rate_in, 1000)] + [resampler.flush()])
    assert abs(len(out) - rate_out) <= 2
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak = np.argmax(spectrum) * rate_out / len(out)
    assert abs(peak - freq) < 2.0


def test_audio_chunk_duration():
    assert AudioChunk(np.zeros(22050, np.float32), 22050).duration == 1.0


def test_close_raises_an_engine_error_nobody_saw(no_thread_leak):
    tts = ToneTTS(fail="oom")  # breaks after the "B" of "Boom"
    stream = tts.create_stream(sink=MemorySink())
    stream.feed("Boom goes this one, after a while of talking for some time.")
    with pytest.raises(EngineError) as info:
        stream.close()
    assert stream.heard_text == "Boom"  # it started playing: heard
    assert info.value.unspoken_text == "goes this one, after a while of talking for some time."
    with pytest.raises(EngineError):
        tts.speak_streamed("Boom again, after a while of talking for some time.", sink=MemorySink())
    tts.cleanup()


def test_text_held_by_the_chunker_does_not_make_the_buffer_full(tts):
    # a producer that waits on buffer_full() must not wait for text only it can complete
    stream = tts.create_stream(sink=NullSink())
    stream.feed("an unfinished line that goes on " * 6)
    deadline = time.monotonic() + 5
    while stream.buffer_full() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not stream.buffer_full()
    stream.close()
    assert stream.heard_text.endswith("goes on")


# -- the playback seam (issue 8) ------------------------------------------------------------------
def run_briefly(action, timeout: float = 3.0) -> float:
    """Run ``action`` in a thread; fail (instead of hanging the suite) if it deadlocks. Returns its duration."""
    result: dict[str, object] = {}

    def target():
        start = time.monotonic()
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - re-raised below in the test's thread
            result["error"] = exc
        result["took"] = time.monotonic() - start

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{action} still blocked after {timeout} s"
    if "error" in result:
        raise result["error"]
    return result["took"]


def test_the_playback_contract_alone_reports_once_per_reply():
    from voicekit.playback import line_for
    from voicekit.reply import PlaybackReport, Reply
    from voicekit.sinks._format import AudioFormat

    sink = MemorySink()
    fmt = AudioFormat(8000, 1, "float32", 160, 640)
    line = line_for(sink)
    assert line_for(sink) is line  # one line per sink, whoever asks
    replies = [Reply(fmt, threading.Event()) for _ in range(3)]
    for reply in replies:
        line.submit(reply)
    # only the head and the next one synthesize ahead
    assert [r.admitted for r in replies] == [True, True, False]
    replies[1].cancel()  # a queued reply that is cancelled never plays
    assert replies[1].outcome.result(1) == PlaybackReport(0, interrupted=True)
    assert replies[2].admitted
    for n, reply in enumerate((replies[0], replies[2])):
        reply.push(np.full(800 * (n + 1), 0.5, np.float32))
        reply.end()
    assert replies[0].outcome.result(5) == PlaybackReport(800, interrupted=False)
    report = replies[2].outcome.result(5)
    assert report["frames_played"] == 1600 and report["interrupted"] is False and report.error is None
    assert len(sink.audio) == 2400
    assert line.wait_released(5)


def test_two_tts_objects_sharing_a_sink_take_turns(no_thread_leak):
    texts = ["The first voice says one whole sentence here.", "The second voice answers with another one."]
    fast = {"char_seconds": 0.03, "gap_seconds": 0.02}
    solo = []
    for text in texts:
        with ToneTTS(**fast) as tts:
            sink = MemorySink()
            tts.speak(text, sink=sink)
            solo.append(sink.audio)
    shared = MemorySink(realtime=True)
    ttss = [ToneTTS(**fast), ToneTTS(**fast)]
    heard: list[tuple[int, str]] = []
    try:
        streams = []
        for n, tts in enumerate(ttss):
            tts.set_output(shared)
            stream = tts.create_stream(on_word=lambda w, n=n: heard.append((n, w["word"])))
            streams.append(stream)
        for piece in itertools.zip_longest(*(t.split(" ") for t in texts), fillvalue=""):
            for stream, word in zip(streams, piece):  # fed interleaved, word by word
                stream.feed(word + " ")
        for stream in streams:
            stream.done()
        for stream in streams:
            assert stream.wait_until_done(timeout=30)
    finally:
        for tts in ttss:
            tts.cleanup()
    assert heard == [(n, word) for n, text in enumerate(texts) for word in text.split()]
    # one voice after the other, each as it sounds alone: not a block of either interleaved
    np.testing.assert_array_equal(shared.audio, np.concatenate(solo))


def test_interrupt_gives_up_the_line_and_a_new_feed_queues_behind(tts):
    tts.set_property("rate", 2.0)
    sink = MemorySink(realtime=True)
    tts.set_output(sink)
    order: list[str] = []
    first = tts.create_stream(on_word=lambda w: order.append("first:" + w["word"]))
    first.feed("A long first reply that keeps talking for quite a while, on and on and on. " * 3)
    wait_for(lambda: sink.seconds > 0.3)
    second = tts.create_stream(on_word=lambda w: order.append("second:" + w["word"]))
    second.feed("Second reply here.")
    second.done()
    first.interrupt()  # no close(): the interrupted stream must not hold the line
    at_interrupt = sink.seconds
    wait_for(lambda: any(w.startswith("second:") for w in order), timeout=2.0)
    assert sink.seconds - at_interrupt < 1.0
    first.feed("Back again.")  # a new reply: it queues behind the second stream
    first.done()
    assert first.wait_until_done(timeout=20) and second.wait_until_done(timeout=0)
    assert first.heard_text == "Back again." and second.heard_text == "Second reply here."
    tail = order[order.index("second:Second") :]
    assert [w.split(":")[0] for w in tail] == ["second"] * 3 + ["first"] * 2
    first.close()
    second.close()


def test_close_inside_on_word_does_not_deadlock(tts):
    tts.set_property("rate", 2.0)
    sink = MemorySink(realtime=True)
    words = []
    holder = {}

    def on_word(info):
        words.append(info["word"])
        if len(words) == 2:
            holder["stream"].close()  # returns at once; the rest still plays

    stream = holder["stream"] = tts.create_stream(sink=sink, on_word=on_word)
    stream.feed("One two three four five six. ")
    stream.feed("Seven eight nine.")  # no done(): only the close() inside on_word ends the stream
    wait_for(lambda: len(words) >= 2)
    assert run_briefly(lambda: stream.wait_until_done(timeout=10)) < 10
    assert stream.heard_text == "One two three four five six. Seven eight nine."
    # the playback thread lives on: the next stream on this sink plays
    assert run_briefly(lambda: tts.speak("Next.", sink=sink)) < 5


def test_interrupt_inside_on_word_stops_at_once(tts):
    sink = MemorySink(realtime=True)
    holder: dict[str, float] = {}

    def on_word(info):
        if info["word"] == "three":
            holder["at"] = time.monotonic()
            holder["unheard"] = stream.interrupt()

    stream = tts.create_stream(sink=sink, on_word=on_word)
    stream.feed("One two three four five six seven eight nine ten.")
    stream.done()
    wait_for(lambda: "at" in holder)
    at = sink.seconds
    time.sleep(0.3)
    assert sink.seconds - at < 0.05
    assert stream.heard_text == "One two three" and holder["unheard"] == "four five six seven eight nine ten."
    assert run_briefly(lambda: stream.close()) < 0.5
    assert run_briefly(lambda: tts.speak("Next.", sink=sink)) < 5


def test_the_unheard_text_of_one_huge_word_is_exactly_what_was_not_heard(tts):
    """A text without spaces is cut into chunks (max_text_chunk) and slices (queued text): no cut adds a space."""
    text = "".join(itertools.islice(itertools.cycle("Antidisestablishmentarianism"), 1_000_000))
    heard = threading.Event()
    stream = tts.create_stream(sink=MemorySink(realtime=True), on_word=lambda info: heard.set())
    stream.feed(text)
    assert heard.wait(30)
    unheard = stream.interrupt()
    assert stream.heard_text + unheard == text, (len(stream.heard_text), len(unheard))
    assert stream.heard_text == tts.client.texts[0]  # the first chunk's one word started; 15 s later the next
    stream.close()


def test_the_unspoken_text_of_one_huge_word_is_exactly_what_was_not_heard(no_thread_leak):
    tts = ToneTTS(fail=lambda text: 1)  # the first chunk already breaks off, after its first letter
    fed = "".join(itertools.islice(itertools.cycle("Antidisestablishmentarianism"), 2000))
    stream = tts.create_stream(sink=MemorySink())
    stream.feed(fed)
    stream.done()
    with pytest.raises(EngineError) as info:
        stream.wait_until_done(timeout=20)
    assert stream.heard_text + info.value.unspoken_text == fed
    assert stream.heard_text == tts.client.texts[0] and 0 < len(stream.heard_text) < len(fed)
    stream.close()
    tts.cleanup()


def test_close_inside_on_chunk_processed_does_not_stall(tts):
    sink = MemorySink()
    holder = {}

    def on_chunk(info):
        holder["stream"].close()

    stream = holder["stream"] = tts.create_stream(sink=sink, on_chunk_processed=on_chunk)
    stream.feed("First sentence here. Second sentence there. Third one too.")
    assert run_briefly(lambda: wait_for(lambda: stream.finished)) < 3
    assert stream.heard_text == "First sentence here. Second sentence there. Third one too."


def test_pause_inside_on_word_then_close_ends_the_stream(tts):
    sink = MemorySink(realtime=True)

    def on_word(info):
        if info["word"] == "two":
            stream.pause()

    stream = tts.create_stream(sink=sink, on_word=on_word)
    stream.feed("One two three four five six seven eight.")
    stream.done()
    wait_for(lambda: "two" in stream.heard_text.split())
    assert run_briefly(stream.close) < 0.5
    # paused within the tone of "two" (180 ms, then 40 ms of silence): "three" never started
    assert stream.heard_text == "One two"


def test_leaving_a_with_block_after_pause_ends_the_stream(tts):
    sink = MemorySink(realtime=True)

    def body():
        with tts.create_stream(sink=sink) as stream:
            stream.feed("Counting now, one, two, three, four, five, six, seven, eight.")
            wait_for(lambda: sink.seconds > 0.3)
            stream.pause()

    assert run_briefly(body) < 1.0
    held = sink.seconds
    time.sleep(0.2)
    assert sink.seconds - held < 0.1


def test_callback_payloads_are_typed_and_subscriptable(tts):
    from typing import get_type_hints

    from voicekit.reply import ChunkInfo, WordInfo

    chunks, words = [], []
    tts.speak_streamed("Typed payloads.", sink=MemorySink(), on_chunk_processed=chunks.append)
    stream = tts.create_stream(sink=MemorySink(), on_word=words.append)
    stream.feed("Typed words.")
    stream.close()
    assert set(chunks[0]) == set(get_type_hints(ChunkInfo)) and set(words[0]) == set(get_type_hints(WordInfo))
    assert isinstance(chunks[0]["duration"], float) and isinstance(words[0]["offset"], int)


def test_an_endless_reply_keeps_bounded_text(tts, monkeypatch):
    from voicekit.reply import Reply

    monkeypatch.setattr(Reply, "HISTORY_CHARS", 400)
    line = "The narrator reads entry {n} of the endless log, and then moves on. "
    stream = tts.create_stream(sink=NullSink())
    longest_heard = longest_fed = 0
    for n in range(60):  # about 4,000 characters, ten times the history kept
        stream.feed(line.format(n=n))
        longest_heard = max(longest_heard, len(stream.heard_text))
        longest_fed = max(longest_fed, len(stream.fed_text))
        while stream.buffer_full():
            time.sleep(0.01)
    stream.done()
    assert stream.wait_until_done(timeout=60)
    # the newest 400 characters, plus at most one chunk / one feed() piece
    assert longest_fed <= 400 + len(line) + 2 and len(stream.fed_text) <= 400 + len(line) + 2
    assert longest_heard <= 400 + 250 and 400 <= len(stream.heard_text) <= 400 + 250
    assert stream.heard_text.endswith("entry 59 of the endless log, and then moves on.")
    assert stream.fed_text.endswith(line.format(n=59))
    stream.close()


class _StalledServer:
    """A TCP server on 127.0.0.1 that accepts and then says nothing until released."""

    def __init__(self):
        import socket

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connected = threading.Event()
        self.release = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-stalled-server", daemon=True)
        self._thread.start()

    def _serve(self):
        conn, _ = self.sock.accept()
        self.connected.set()
        self.release.wait(30)
        conn.close()

    def close(self):
        self.release.set()
        self._thread.join(5)
        self.sock.close()


class _BlockingNetworkEngine:
    """An engine written without cancel support: its network read blocks until the server answers."""

    name, samplerate, max_chars = "blocking-net", 22050, 500

    def __init__(self, port):
        self.port = port

    def synthesize(self, text, cancel):
        import socket

        with socket.create_connection(("127.0.0.1", self.port)) as conn:
            conn.sendall(text.encode())
            conn.recv(1)  # the stalled server never answers
        raise ConnectionError("the server hung up")

    def voices(self):
        return []

    def set_voice(self, voice_id):
        pass

    def set_property(self, name, value):
        pass

    def close(self):
        pass


def test_close_and_cleanup_after_interrupt_never_wait_for_the_network():
    from tests.conftest import voicekit_threads
    from voicekit import BaseTTS

    server = _StalledServer()
    before = set(voicekit_threads())
    try:
        tts = BaseTTS(_BlockingNetworkEngine(server.port))
        stream = tts.create_stream(sink=NullSink())
        stream.feed("A sentence the server will never speak.")
        stream.done()
        assert server.connected.wait(10)
        assert run_briefly(stream.interrupt) < 1.0
        assert run_briefly(stream.close) < 1.0  # the worker is still stuck in recv()
        other = tts.create_stream(sink=NullSink())
        other.feed("Another one.")
        assert run_briefly(other.interrupt) < 1.0
        assert run_briefly(tts.cleanup) < 1.0
    finally:
        server.close()  # the stuck read returns; the abandoned worker ends by itself
    for thread in set(voicekit_threads()) - before:
        thread.join(5)
        assert not thread.is_alive(), thread.name


def test_cancelling_async_close_is_honoured_and_never_stalls_the_loop(tts):
    sink = MemorySink(realtime=True)

    async def main():
        loop = asyncio.get_running_loop()
        gaps = []

        async def ticker():
            last = loop.time()
            while True:
                await asyncio.sleep(0.005)
                now = loop.time()
                gaps.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        stream = await tts.create_async_stream(sink=sink)
        await stream.feed("This reply takes several seconds to say out loud, which is far too long to wait. " * 2)
        closing = asyncio.create_task(stream.close())
        await asyncio.sleep(0.5)
        asked = loop.time()
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        took = loop.time() - asked
        ticking.cancel()
        return took, max(gaps), stream

    took, worst_gap, stream = asyncio.run(main())
    assert took < 0.5
    assert worst_gap < 0.25  # a blocked loop shows up here as seconds
    at = sink.seconds
    time.sleep(0.2)
    assert sink.seconds - at < 0.05  # cancelling close() stopped the speech
    assert sink.seconds < 5.0 and stream.heard_text


def test_finished_callbacks_run_once_when_everything_was_played(tts, caplog):
    tts.set_property("rate", 2.0)
    stream = tts.create_stream(sink=MemorySink(realtime=True))
    calls, dropped = [], []
    stream.add_finished_callback(lambda: 1 / 0)  # a broken waiter is logged; the others still run
    stream.add_finished_callback(dropped.append)  # removed below: never called (it would fail: no argument)
    stream.add_finished_callback(lambda: calls.append(stream.finished))
    stream.remove_finished_callback(dropped.append)
    stream.feed("Short and sweet.")
    time.sleep(0.3)
    assert calls == []  # no done() yet: a stream that may get more text is not finished
    stream.done()
    assert stream.wait_until_done(timeout=30)
    wait_for(lambda: calls)
    assert calls == [True] and dropped == []
    assert "finished-callback" in caplog.text and "ZeroDivisionError" in caplog.text
    late = []
    stream.add_finished_callback(lambda: late.append(True))
    assert late == [True]  # already finished: at once
    stream.close()
    assert calls == [True]


def test_an_async_stream_waits_without_polling_its_loop(tts):
    """The loop is woken once when the stream finishes, not every few milliseconds while it plays."""
    import sys

    calls: list[str] = []

    def profile(frame, event: str, arg: object) -> None:
        if event == "call" and "voicekit" in frame.f_code.co_filename:
            calls.append(frame.f_code.co_name)

    tts.set_property("rate", 2.0)  # 1.9 s of audio

    async def main() -> float:
        stream = await tts.create_async_stream(sink=MemorySink(realtime=True))
        await stream.feed("This reply takes a couple of seconds to play out, all of it.")
        await stream.done()
        started = time.monotonic()
        sys.setprofile(profile)  # this thread only: the loop's
        try:
            assert await stream.wait_until_done(timeout=30)
        finally:
            sys.setprofile(None)
        took = time.monotonic() - started
        await stream.close()
        return took

    took = asyncio.run(main())
    assert took > 1.0  # it really waited for the audio
    assert len(calls) < 40, calls  # polling every 10 ms made hundreds


def test_feeding_on_an_event_loop_starts_no_thread(tts, monkeypatch):
    """Thread.start() waits for the new thread to run; under load that stalled the loop for tens of ms."""
    started_on: list[str] = []
    start = threading.Thread.start

    def recording_start(self: threading.Thread) -> None:
        started_on.append(threading.current_thread().name)
        start(self)

    async def main() -> None:
        stream = await tts.create_async_stream(sink=NullSink())
        loop_thread = threading.current_thread().name
        before = len(started_on)
        await stream.feed("The worker was started when the stream was made. ")
        await stream.feed("Feeding only queues text.")
        await stream.done()
        assert await stream.wait_until_done(timeout=30)
        await stream.close()
        assert loop_thread not in started_on[before:], started_on

    monkeypatch.setattr(threading.Thread, "start", recording_start)
    asyncio.run(main())


def test_an_idle_playback_line_sleeps_until_audio_comes(tts):
    """A line whose audio has all been heard waits for the buffer, instead of waking 50 times a second."""
    reads = []

    def profile(frame, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_name == "read" and frame.f_code.co_filename.endswith("buffer.py"):
            reads.append(time.monotonic())

    threading.setprofile(profile)  # threads started from now on: the playback thread
    try:
        stream = tts.create_stream(sink=NullSink())
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    stream.feed("One short sentence. And")  # the next word tells the chunker the sentence ended
    wait_for(lambda: stream.heard_text == "One short sentence.")  # to the end of its last word
    time.sleep(0.2)
    quiet_from = time.monotonic()
    time.sleep(1.0)
    assert len([t for t in reads if t >= quiet_from]) <= 2, len(reads)
    stream.feed(" it still speaks when more text comes.")
    stream.done()
    assert stream.wait_until_done(timeout=30)
    assert stream.heard_text == "One short sentence. And it still speaks when more text comes."
    stream.close()


def test_close_after_interrupt_runs_the_finished_callbacks(tts):
    """Nothing plays after the interrupt, so close() itself is the moment the stream finishes."""
    stream = tts.create_stream(sink=MemorySink(realtime=True))
    calls = []
    stream.add_finished_callback(lambda: calls.append(True))
    stream.feed("Interrupted, then closed without done().")
    time.sleep(0.3)
    stream.interrupt()
    time.sleep(0.2)
    assert calls == []  # interrupted but still open: more text may come
    stream.close()
    assert calls == [True]
