"""MemorySink, WavSink and NullSink: formats, pacing, abort, bad input."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import threading
import time
import wave

import numpy as np
import pytest

from voicekit.errors import OutputError
from voicekit.sinks import DeviceSink, MemorySink, NullSink, Sink, WavSink

RATE = 8000


def sine(seconds: float, rate: int = RATE, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def open_sink(sink, rate=RATE, channels=1, dtype="float32", blocksize=160, buffer_frames=800):
    sink.open(rate, channels, dtype, blocksize=blocksize, buffer_frames=buffer_frames)
    return sink


SINKS = {
    "memory": lambda tmp_path: MemorySink(),
    "memory-realtime": lambda tmp_path: MemorySink(realtime=True),
    "wav": lambda tmp_path: WavSink(tmp_path / "out.wav"),
    "null": lambda tmp_path: NullSink(),
}


@pytest.fixture(params=sorted(SINKS))
def any_sink(request, tmp_path):
    sink = SINKS[request.param](tmp_path)
    yield sink
    sink.close()


def test_every_sink_follows_the_protocol(tmp_path):
    for sink in [make(tmp_path) for make in SINKS.values()] + [DeviceSink("no such device")]:
        assert isinstance(sink, Sink), sink


def test_a_hand_written_sink_missing_a_member_is_refused_by_name(no_thread_leak):
    from voicekit.testing import ToneTTS

    class NoClock:
        preferred_samplerate = None
        pending_frames = 0

        def open(self, *args, **kwargs): ...
        def write(self, frames): ...
        def abort(self): ...
        def drain(self): ...
        def close(self): ...

    tts = ToneTTS()
    with pytest.raises(TypeError, match=r"has no latency \(see voicekit.sinks.base\)"):
        tts.create_stream(sink=NoClock())
    tts.cleanup()


def test_import_does_not_load_portaudio():
    code = "import sys, voicekit, voicekit.sinks; print('sounddevice' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "frames, message",
    [
        (np.zeros(10, np.float32), "shaped"),
        (np.zeros((10, 2), np.float32), "shaped"),
        (np.zeros((10, 1), np.float64), "float32"),
        (np.zeros((10, 1), np.int16), "float32"),
        # same name, other byte order: a sink passing raw bytes on would play noise
        (np.zeros((10, 1), ">f4"), "non-native byte order"),
        ([[0.0]] * 10, "numpy array"),
    ],
)
def test_bad_blocks_raise_output_error(any_sink, frames, message):
    open_sink(any_sink)
    with pytest.raises(OutputError, match=message):
        any_sink.write(frames)


@pytest.mark.parametrize(
    "args, message",
    [
        ((RATE, 1, "float64"), "dtype"),
        ((RATE, 1, "uint8"), "dtype"),
        ((RATE, 1, "no-such-type"), "dtype"),
        ((0, 1, "float32"), "samplerate"),
        ((RATE, 0, "float32"), "channels"),
        ((RATE, True, "float32"), "channels"),
    ],
)
def test_bad_open_arguments_raise_output_error(any_sink, args, message):
    with pytest.raises(OutputError, match=message):
        any_sink.open(*args, blocksize=160, buffer_frames=800)


def test_write_needs_open(any_sink):
    with pytest.raises(OutputError, match="before open"):
        any_sink.write(sine(0.01))
    open_sink(any_sink).close()
    with pytest.raises(OutputError, match="after close"):
        any_sink.write(sine(0.01))


def test_memory_sink_keeps_mono_audio_as_1d():
    sink = open_sink(MemorySink())
    assert sink.audio.shape == (0,)
    data = sine(0.5)
    for start in range(0, len(data), 160):
        sink.write(data[start : start + 160])
    assert sink.pending_frames == 0
    assert (sink.samplerate, sink.channels, sink.seconds) == (RATE, 1, 0.5)
    np.testing.assert_array_equal(sink.audio, data[:, 0])


def test_memory_sink_stereo_int16_and_append_across_opens():
    sink = open_sink(MemorySink(), channels=2, dtype="int16")
    first = np.arange(20, dtype=np.int16).reshape(10, 2)
    sink.write(first)
    sink.close()
    open_sink(sink, channels=2, dtype="int16")
    sink.write(-first)
    assert sink.audio.dtype == np.int16
    np.testing.assert_array_equal(sink.audio, np.concatenate([first, -first]))
    assert sink.seconds == pytest.approx(20 / RATE)


def test_memory_sink_refuses_another_format_until_cleared():
    sink = open_sink(MemorySink())
    sink.write(sine(0.01))
    with pytest.raises(OutputError, match="clear"):
        open_sink(sink, rate=16000)
    sink.clear()
    open_sink(sink, rate=16000)
    assert (sink.samplerate, sink.seconds, len(sink.audio)) == (16000, 0.0, 0)


def test_memory_sink_before_open_is_empty():
    sink = MemorySink()
    assert (sink.samplerate, sink.channels, sink.seconds, sink.audio.size) == (None, None, 0.0, 0)


def test_realtime_memory_sink_paces_writes_like_a_device():
    sink = open_sink(MemorySink(realtime=True), buffer_frames=800)  # 0.1 s ahead
    data = sine(0.6)
    start = time.monotonic()
    most_pending = 0
    for offset in range(0, len(data), 160):
        sink.write(data[offset : offset + 160])
        most_pending = max(most_pending, sink.pending_frames)
    written = time.monotonic() - start
    sink.drain()
    drained = time.monotonic() - start
    assert most_pending <= 800
    assert sink.pending_frames == 0
    # 0.6 s of audio with 0.1 s of buffer: writing takes ~0.5 s, draining ends ~0.6 s
    assert 0.4 <= written < 3.0
    assert 0.55 <= drained < 3.5
    np.testing.assert_array_equal(sink.audio, data[:, 0])


def test_realtime_abort_keeps_only_what_was_played():
    sink = open_sink(MemorySink(realtime=True), buffer_frames=RATE)  # 1 s ahead
    data = sine(1.0)
    sink.write(data)
    time.sleep(0.2)
    sink.abort()
    assert sink.pending_frames == 0
    kept = sink.audio
    assert 0 < len(kept) < len(data) // 2
    np.testing.assert_array_equal(kept, data[: len(kept), 0])
    # the sink is still usable and new audio follows what was heard
    sink.write(data[:160])
    assert len(sink.audio) == len(kept) + 160


def test_abort_from_another_thread_releases_a_blocked_write():
    sink = open_sink(MemorySink(realtime=True), buffer_frames=RATE)
    sink.write(sine(1.0))  # the buffer is now full
    blocked = threading.Thread(target=sink.write, args=(sine(1.0),), name="test-writer")
    blocked.start()
    time.sleep(0.1)
    assert blocked.is_alive()
    sink.abort()
    blocked.join(timeout=2.0)
    assert not blocked.is_alive()
    assert len(sink.audio) < RATE  # neither the unplayed part nor the blocked block was kept


def test_drain_returns_at_once_when_nothing_is_pending(any_sink):
    open_sink(any_sink).write(sine(0.01))
    any_sink.abort()
    start = time.monotonic()
    any_sink.drain()
    assert any_sink.pending_frames == 0
    assert time.monotonic() - start < 1.0


def test_null_sink_discards_but_checks():
    sink = open_sink(NullSink(), channels=2, dtype="int32")
    sink.write(np.zeros((100, 2), np.int32))
    assert sink.pending_frames == 0 and sink.preferred_samplerate is None


def read_wav(path) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        params = wav.getparams()
        data = np.frombuffer(wav.readframes(params.nframes), "<i2")
    return params, data.reshape(-1, params.nchannels)


def test_wav_sink_writes_int16_pcm_from_float(tmp_path):
    path = tmp_path / "speech.wav"
    sink = open_sink(WavSink(path))
    data = sine(0.25)
    data[:3, 0] = [1.5, -2.0, 1.0]  # out of range input is clipped
    sink.write(data)
    sink.close()
    params, pcm = read_wav(path)
    assert (params.nchannels, params.sampwidth, params.framerate, params.nframes) == (1, 2, RATE, 2000)
    assert pcm[:3, 0].tolist() == [32767, -32767, 32767]
    np.testing.assert_array_equal(pcm[3:, 0], np.rint(data[3:, 0] * 32767).astype(np.int16))


def test_wav_sink_converts_int32_and_keeps_int16(tmp_path):
    path = tmp_path / "stereo.wav"
    sink = open_sink(WavSink(path), channels=2, dtype="int32")
    sink.write(np.array([[1 << 30, -(1 << 30)]], np.int32))
    open_sink(sink, channels=2, dtype="int16")  # same file, appended
    sink.write(np.array([[123, -456]], np.int16))
    sink.close()
    params, pcm = read_wav(path)
    assert params.nchannels == 2
    assert pcm.tolist() == [[1 << 14, -(1 << 14)], [123, -456]]


def test_wav_sink_appends_across_opens_and_closes(tmp_path):
    # the TTS closes its sink whenever it goes idle: one WavSink still records everything
    path = tmp_path / "two.wav"
    sink = WavSink(path)
    first, second = sine(0.1), sine(0.05, freq=880.0)
    open_sink(sink).write(first)
    open_sink(sink).write(first)
    sink.close()
    assert read_wav(path)[0].nframes == 1600
    open_sink(sink, dtype="int16").write(np.rint(second * 32767).astype(np.int16))
    sink.close()
    sink.close()  # idempotent
    params, pcm = read_wav(path)
    assert params.nframes == 2000
    np.testing.assert_array_equal(pcm[1600:, 0], np.rint(second[:, 0] * 32767).astype(np.int16))
    np.testing.assert_array_equal(pcm[:800, 0], pcm[800:1600, 0])


def test_a_new_wav_sink_overwrites_the_file(tmp_path):
    path = tmp_path / "again.wav"
    for seconds in (0.2, 0.1):
        with WavSink(path) as sink:
            open_sink(sink).write(sine(seconds))
    assert read_wav(path)[0].nframes == 800


def test_wav_file_is_complete_after_drain_while_open(tmp_path):
    path = tmp_path / "live.wav"
    sink = open_sink(WavSink(path))
    sink.write(sine(0.1))
    sink.drain()
    assert read_wav(path)[0].nframes == 800
    sink.write(sine(0.1))
    sink.close()
    assert read_wav(path)[0].nframes == 1600


def test_with_block_closes_the_sink(tmp_path):
    path = tmp_path / "with.wav"
    with WavSink(path) as sink:
        open_sink(sink).write(sine(0.1))
    assert read_wav(path)[0].nframes == 800
    with pytest.raises(OutputError, match="after close"):
        sink.write(sine(0.1))


def test_wav_sink_refuses_another_rate_or_channel_count(tmp_path):
    sink = open_sink(WavSink(tmp_path / "a.wav"))
    with pytest.raises(OutputError, match="new WavSink"):
        open_sink(sink, rate=16000)
    sink.close()
    with pytest.raises(OutputError, match="new WavSink"):
        open_sink(sink, channels=2)


def test_wav_pipe_sink_refuses_another_rate_or_channel_count():
    from voicekit.sinks.pipe import WavPipeSink

    pipe = io.BytesIO()
    sink = open_sink(WavPipeSink(pipe))
    sink.close()
    with pytest.raises(OutputError, match="new WavPipeSink"):
        open_sink(sink, rate=16000)
    open_sink(sink).write(sine(0.1))  # the same layout appends after the one header
    assert pipe.getvalue().count(b"RIFF") == 1


def test_wav_sink_unwritable_path(tmp_path):
    with pytest.raises(OutputError, match="opening WAV file"):
        open_sink(WavSink(tmp_path / "missing-dir" / "x.wav"))


def test_a_sink_error_is_raised_and_logged_in_one_line(tmp_path, caplog):
    """A device or file error reaches the stream as OutputError; the log gets one line, no traceback."""
    from voicekit import StreamError
    from voicekit.testing import ToneTTS

    with ToneTTS() as tts, caplog.at_level("ERROR", logger="voicekit"):
        with pytest.raises(StreamError, match="opening WAV file"):
            tts.speak_streamed("Hello.", sink=WavSink(tmp_path / "missing-dir" / "x.wav"))
    failed = [r for r in caplog.records if "playback failed" in r.getMessage()]
    assert failed and not any(r.exc_info for r in failed)


def soxi(path, flag: str) -> str:
    """A field of the file as sox (libsox, an independent WAV reader) sees it."""
    return subprocess.run(["soxi", flag, str(path)], capture_output=True, text=True, check=True, timeout=30).stdout.strip()


needs_sox = pytest.mark.skipif(shutil.which("soxi") is None, reason="needs the Debian package sox (installed by .ci/run)")


@needs_sox
@pytest.mark.parametrize("dtype, bits, encoding", [("int16", "16", "Signed Integer PCM"),
                                                   ("int32", "32", "Signed Integer PCM"),
                                                   ("float32", "32", "Floating Point PCM")])
def test_wav_sink_writes_the_sample_type_it_was_made_for(tmp_path, dtype, bits, encoding):
    path = tmp_path / f"{dtype}.wav"
    data = sine(0.25, channels=3)
    with WavSink(path, dtype=dtype) as sink:
        open_sink(sink, channels=3).write(data[:1000])
        sink.drain()  # a complete file mid-way, then appended to
        sink.write(data[1000:])
    assert (soxi(path, "-c"), soxi(path, "-b"), soxi(path, "-e"), soxi(path, "-s")) == ("3", bits, encoding, "2000")
    decoded = subprocess.run(["sox", str(path), "-t", "f32", "-"], capture_output=True, check=True, timeout=30).stdout
    np.testing.assert_allclose(np.frombuffer(decoded, "<f4").reshape(-1, 3), data, atol=1e-4)


@pytest.fixture
def tone_tts():
    from voicekit.testing import ToneTTS

    tts = ToneTTS()
    yield tts
    tts.cleanup()


def test_synth_to_bytes_writes_a_stereo_header_for_stereo_audio(tone_tts):
    frames = tone_tts.client.frames("Stereo check.")
    mono = read_wav_bytes(tone_tts.synth_to_bytes("Stereo check."))
    tone_tts.setup_stream(channels=2)
    params, pcm = read_wav_bytes(tone_tts.synth_to_bytes("Stereo check."))
    assert (params.nchannels, params.sampwidth) == (2, 2)
    # the same audio, not twice as long (a mono header over stereo data doubles it)
    assert params.nframes == mono[0].nframes == frames
    np.testing.assert_array_equal(pcm[:, 0], pcm[:, 1])
    np.testing.assert_array_equal(pcm[:, 0], mono[1][:, 0])
    assert abs(int(np.abs(pcm).max()) - 16384) <= 1  # the tones peak at half scale


@needs_sox
def test_synth_to_file_honours_channels_and_dtype(tone_tts, tmp_path):
    tone_tts.setup_stream(samplerate=16000, channels=2, dtype="int32")
    params = wave.open(str(tone_tts.synth_to_file("Thirty two bits.", tmp_path / "a.wav"))).getparams()
    assert (params.nchannels, params.sampwidth, params.framerate) == (2, 4, 16000)
    assert params.nframes == tone_tts.client.frames("Thirty two bits.") * 2 // 3  # resampled from 24 kHz
    tone_tts.setup_stream(channels=4, dtype="float32")
    path = tone_tts.synth_to_file("Float samples.", tmp_path / "b.wav")
    assert (soxi(path, "-c"), soxi(path, "-e")) == ("4", "Floating Point PCM")
    assert float(soxi(path, "-D")) == tone_tts.client.frames("Float samples.") / 24000


def test_synth_to_bytes_of_nothing_is_an_empty_wav_of_the_layout(tone_tts):
    tone_tts.setup_stream(channels=2)
    params, pcm = read_wav_bytes(tone_tts.synth_to_bytes("   "))
    assert (params.nchannels, params.nframes) == (2, 0)


def read_wav_bytes(data: bytes):
    with wave.open(io.BytesIO(data), "rb") as wav:
        params = wav.getparams()
        samples = np.frombuffer(wav.readframes(params.nframes), f"<i{params.sampwidth}")
    return params, samples.reshape(-1, params.nchannels)
