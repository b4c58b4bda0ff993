"""EspeakTTS playing through DeviceSink on a real PortAudio device (the test jackd)."""

from __future__ import annotations

import time

import psutil
import pytest

from tests.helpers import wait_for
from voicekit import DeviceSink, EspeakTTS

pytestmark = [pytest.mark.device, pytest.mark.usefixtures("no_thread_leak")]

REPLY = "Hello there. The quick brown fox jumps over the lazy dog, then naps in the sun."
NARRATION = " ".join(
    [
        "Once upon a time, a small robot lived in a lighthouse by the sea.",
        "Every evening it climbed the spiral stairs and polished the great lamp.",
        "Ships passed in the night, and their sailors waved at the tiny light keeper.",
        "One winter a storm broke the lamp, and the robot worked until morning to mend it.",
        "When the sun rose, the whole harbour cheered, and the robot blinked its lights in reply.",
    ]
)


@pytest.fixture
def tts_on_device(jack_device):
    tts = EspeakTTS()
    sink = DeviceSink(jack_device.index)
    tts.set_output(sink)
    yield tts, sink
    tts.cleanup()


def test_a_reply_plays_in_real_time_at_the_device_rate(tts_on_device, jack_device):
    tts, sink = tts_on_device
    assert sink.preferred_samplerate == jack_device.samplerate  # so the stream resamples 22050 -> 48000
    chunks = []
    start = time.monotonic()
    tts.speak_streamed(REPLY, on_chunk_processed=chunks.append)
    elapsed = time.monotonic() - start
    played = sink.frames_played / jack_device.samplerate
    assert played > 2.0
    assert played == pytest.approx(sum(c["duration"] for c in chunks), abs=0.1)
    # paced by the device: not faster than the audio, and only startup/drain on top
    assert 0.9 * played <= elapsed < played + 2.0
    assert sink.underruns == 0


def test_interrupt_silences_the_speaker_at_once(tts_on_device, jack_device, jack_recorder):
    tts, sink = tts_on_device
    block_seconds = 0.02  # the default chunk_size: 20 ms of output
    stream = tts.create_stream()
    stream.feed(NARRATION)  # no done(): the reply is still open when interrupted
    wait_for(lambda: sink.frames_played > 0)
    jack_recorder.connect()
    wait_for(lambda: sink.frames_played > 0.8 * jack_device.samplerate)
    playing = jack_device.speaker.sources()
    before = time.monotonic()
    unheard = stream.interrupt()
    returned = time.monotonic()
    played_at_interrupt = sink.frames_played
    time.sleep(0.2)
    assert sink.last_audible_time is not None
    assert sink.last_audible_time - before < block_seconds
    assert sink.frames_played - played_at_interrupt <= round(block_seconds * jack_device.samplerate)
    # at the speaker too: the device stream is closed, so what PortAudio and ALSA had
    # queued is dropped (its JACK client leaves the speaker) instead of playing out
    wait_for(lambda: not set(playing) & set(jack_device.speaker.sources()), timeout=1.0)
    quiet = time.monotonic()
    assert jack_recorder.last_sound_time() is not None
    assert jack_recorder.first_sound_time(after=quiet) is None
    heard = stream.heard_text
    assert heard and unheard
    assert len(heard) < len(NARRATION) / 2
    # the stream stays usable: the next reply restarts the device and plays in full
    stream.feed("And now, something else.")
    stream.done()
    assert stream.wait_until_done(timeout=20)
    assert "something else" in stream.heard_text
    assert jack_recorder.first_sound_time(after=returned) is not None
    stream.close()


def test_no_underrun_over_a_long_narration(tts_on_device, jack_device):
    tts, sink = tts_on_device
    tts.speak_streamed(NARRATION)
    assert sink.frames_played / jack_device.samplerate > 12.0
    assert sink.underruns == 0


def test_cleanup_releases_the_device_and_every_thread(tts_on_device, jack_device):
    tts, sink = tts_on_device
    process = psutil.Process()
    before = process.num_threads()
    stream = tts.speak_streamed(REPLY, wait=False)
    wait_for(lambda: sink.frames_played > 0)
    assert process.num_threads() > before
    tts.cleanup()
    assert stream.heard_text != REPLY
    wait_for(lambda: process.num_threads() <= before, timeout=5.0)
    # no_thread_leak checks the voicekit-* threads; this checks PortAudio's and JACK's
    assert process.num_threads() == before
