"""DeviceSink on real PortAudio: a private jackd with the dummy driver (see fixtures/audio.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from voicekit.errors import OutputError
from voicekit.sinks import DeviceSink

pytestmark = pytest.mark.device

BLOCK = 960  # 20 ms at 48 kHz
ROOT = Path(__file__).resolve().parent.parent


def sine(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def write_blocks(sink: DeviceSink, data: np.ndarray, block: int = BLOCK) -> None:
    for start in range(0, len(data), block):
        sink.write(data[start : start + block])


@pytest.fixture
def device_sink(jack_device):
    sink = DeviceSink(jack_device.index)
    yield sink
    sink.close()


def open_device(sink: DeviceSink, rate: int, *, channels=1, dtype="float32", buffer_frames=4 * BLOCK):
    sink.open(rate, channels, dtype, blocksize=BLOCK, buffer_frames=buffer_frames)
    return sink


def test_device_found_by_index_and_name_reports_its_rate(jack_device):
    assert jack_device.samplerate == 48000
    assert DeviceSink(jack_device.index).preferred_samplerate == 48000
    assert DeviceSink(jack_device.name).preferred_samplerate == 48000


def test_playback_takes_real_time_and_plays_every_frame(device_sink, jack_device):
    rate = jack_device.samplerate
    open_device(device_sink, rate)
    data = sine(1.0, rate)
    start = time.monotonic()
    write_blocks(device_sink, data)
    device_sink.drain()
    elapsed = time.monotonic() - start
    # 1 s of audio: paced by the device clock, not by how fast we can copy
    assert 0.85 <= elapsed < 3.0
    assert device_sink.frames_played == len(data)
    assert device_sink.pending_frames == 0
    assert device_sink.underruns == 0
    assert device_sink.last_audible_time is not None


def test_the_device_plays_exactly_the_samples_written(device_sink, jack_device, jack_recorder):
    rate = jack_device.samplerate
    open_device(device_sink, rate)
    jack_recorder.connect()
    t = np.arange(rate) / rate
    data = (0.5 * np.sin(2 * np.pi * 1000.0 * t + np.pi / 4)).astype(np.float32)  # no zero at either end
    write_blocks(device_sink, data[:, None], block=700)  # blocks that don't divide the ring: it wraps
    device_sink.drain()
    time.sleep(0.1)
    heard = jack_recorder.audio
    sounding = np.flatnonzero(np.abs(heard) > 1e-4)
    played = heard[sounding[0] : sounding[-1] + 1]
    assert len(played) == len(data)
    np.testing.assert_allclose(played, data, atol=1e-4)
    peak = np.fft.rfftfreq(len(played), 1 / rate)[np.argmax(np.abs(np.fft.rfft(played)))]
    assert peak == pytest.approx(1000.0, abs=2.0)


def test_write_blocks_while_the_ring_is_full(device_sink, jack_device):
    open_device(device_sink, jack_device.samplerate, buffer_frames=4 * BLOCK)
    most_pending = 0
    start = time.monotonic()
    for _ in range(40):
        device_sink.write(sine(0.02, jack_device.samplerate))
        most_pending = max(most_pending, device_sink.pending_frames)
    assert most_pending <= 4 * BLOCK
    assert time.monotonic() - start >= 0.6  # 0.8 s written, at most 4 blocks ahead


def test_abort_is_silent_within_one_block(device_sink, jack_device, jack_recorder):
    rate = jack_device.samplerate
    open_device(device_sink, rate, buffer_frames=rate)  # the whole second fits: write won't block
    jack_recorder.connect()
    device_sink.write(sine(0.9, rate))
    time.sleep(0.3)
    playing = jack_device.speaker.sources()
    device_sink.abort()
    aborted_at = time.monotonic()
    played_at_abort = device_sink.frames_played
    assert device_sink.pending_frames == 0
    time.sleep(0.2)
    assert device_sink.frames_played - played_at_abort <= BLOCK
    assert device_sink.last_audible_time is not None
    assert device_sink.last_audible_time - aborted_at < BLOCK / rate
    assert 0 < device_sink.frames_played < 0.9 * rate
    # and at the speaker: the PortAudio stream is closed, so what the host API (ALSA) had
    # queued is dropped (the playing JACK client leaves the speaker) instead of playing out;
    # a fresh stream may already be open again, playing silence
    deadline = time.monotonic() + 1.0
    while set(playing) & set(jack_device.speaker.sources()):
        assert time.monotonic() < deadline, "the device still plays into the speaker after abort()"
        time.sleep(0.005)
    quiet = time.monotonic()
    time.sleep(0.1)
    assert jack_recorder.first_sound_time(after=quiet) is None
    # the next write starts the device again at once
    resumed = time.monotonic()
    device_sink.write(sine(0.3, rate))
    device_sink.drain()
    restarted = jack_recorder.first_sound_time(after=resumed)
    assert restarted is not None and restarted - resumed < 0.5


def test_abort_releases_a_write_blocked_on_a_full_ring(device_sink, jack_device):
    rate = jack_device.samplerate
    open_device(device_sink, rate)
    writer = threading.Thread(target=device_sink.write, args=(sine(2.0, rate),), name="test-writer")
    writer.start()
    time.sleep(0.3)
    assert writer.is_alive()
    device_sink.abort()
    writer.join(timeout=2.0)
    assert not writer.is_alive()
    time.sleep(0.1)
    assert device_sink.frames_played < rate  # the rest of the 2 s was dropped
    # still usable afterwards
    write_blocks(device_sink, sine(0.1, rate))
    device_sink.drain()
    assert device_sink.pending_frames == 0


def test_no_underrun_over_seconds_of_continuous_writes(device_sink, jack_device):
    rate = jack_device.samplerate
    # the guide's block and device buffer sizes
    device_sink.open(rate, 1, "float32", blocksize=1024, buffer_frames=4096)
    write_blocks(device_sink, sine(3.0, rate), block=1024)
    device_sink.drain()
    assert device_sink.underruns == 0
    assert device_sink.frames_played == int(3.0 * rate)


def test_running_dry_before_drain_counts_as_underrun(device_sink, jack_device):
    rate = jack_device.samplerate
    open_device(device_sink, rate)
    write_blocks(device_sink, sine(0.1, rate))
    time.sleep(0.3)  # the writer is late: the ring runs dry while audio was expected
    write_blocks(device_sink, sine(0.1, rate))
    device_sink.drain()
    assert device_sink.underruns >= 1


def test_stereo_int16(device_sink, jack_device):
    rate = jack_device.samplerate
    open_device(device_sink, rate, channels=2, dtype="int16")
    data = (sine(0.2, rate, channels=2) * 32767).astype(np.int16)
    write_blocks(device_sink, data)
    device_sink.drain()
    assert device_sink.frames_played == len(data)
    with pytest.raises(OutputError, match="shaped"):
        device_sink.write(data[:, :1])
    with pytest.raises(OutputError, match="int16"):
        device_sink.write(data.astype(np.float32))


def test_reopen_same_format_keeps_the_stream_other_format_reopens(device_sink, jack_device):
    rate = jack_device.samplerate
    open_device(device_sink, rate)
    write_blocks(device_sink, sine(0.1, rate))
    open_device(device_sink, rate)  # same format: nothing is dropped
    device_sink.drain()
    assert device_sink.frames_played == int(0.1 * rate)
    open_device(device_sink, rate, channels=2)
    write_blocks(device_sink, sine(0.1, rate, channels=2))
    device_sink.drain()
    assert device_sink.frames_played == int(0.1 * rate)


def test_a_rate_the_device_refuses_is_an_output_error(device_sink, jack_device):
    with pytest.raises(OutputError, match="refused 22050 Hz.*48000 Hz"):
        open_device(device_sink, 22050)


def test_close_ends_portaudio_threads_and_is_idempotent(jack_device, no_thread_leak):
    process = psutil.Process()
    sink = DeviceSink(jack_device.index)
    before = process.num_threads()
    open_device(sink, jack_device.samplerate)
    write_blocks(sink, sine(0.1, jack_device.samplerate))
    assert process.num_threads() > before  # PortAudio/JACK threads are running
    sink.close()
    sink.close()
    deadline = time.monotonic() + 2.0
    while process.num_threads() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.num_threads() == before
    with pytest.raises(OutputError, match="after close"):
        sink.write(sine(0.02, jack_device.samplerate))


@pytest.mark.parametrize("device", ["no such device", 9999])
def test_bogus_device_is_an_output_error_listing_devices(jack_device, device):
    sink = DeviceSink(device)
    assert sink.preferred_samplerate is None
    with pytest.raises(OutputError, match=f"no output device.*{jack_device.index}: {jack_device.name}"):
        open_device(sink, 48000)


def test_missing_portaudio_names_the_fix():
    # sounddevice finds libportaudio with ctypes.util.find_library: hide it, as on a bare system
    code = (
        "import ctypes.util; ctypes.util.find_library = lambda name: None\n"
        "from voicekit import OutputError\n"
        "from voicekit.sinks import DeviceSink\n"
        "sink = DeviceSink()\n"
        "assert sink.preferred_samplerate is None\n"
        "try:\n"
        "    sink.open(48000, 1, 'float32', blocksize=960, buffer_frames=4096)\n"
        "except OutputError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "apt-get install libportaudio2" in out.stdout
    assert "PortAudio library" in out.stdout


def test_unpaced_alsa_null_device_takes_any_rate(alsa_null_env):
    # Through ALSA's null PCM the callback runs as fast as it can: 20 s of audio in far less.
    code = (
        "import time, numpy as np\n"
        "from voicekit.sinks import DeviceSink\n"
        "sink = DeviceSink('default')\n"
        "sink.open(22050, 1, 'int16', blocksize=512, buffer_frames=4096)\n"
        "block = np.ones((512, 1), np.int16)\n"
        "start = time.monotonic()\n"
        "for _ in range(22050 * 20 // 512):\n"
        "    sink.write(block)\n"
        "sink.drain()\n"
        "print(sink.frames_played, time.monotonic() - start)\n"
        "sink.close()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=alsa_null_env
    )
    assert out.returncode == 0, out.stderr
    frames, seconds = out.stdout.split()
    assert int(frames) == 22050 * 20 // 512 * 512
    assert float(seconds) < 10.0


def test_a_dead_sound_server_is_an_output_error_not_a_hang(jack_device):
    # Its own jackd in a subprocess, stopped mid-playback: write() must give up, not wait forever.
    code = (
        "import os, signal, time, numpy as np\n"
        "from tests.fixtures.audio import jack_server, release_after_exit\n"
        "from voicekit import OutputError\n"
        "from voicekit.sinks import DeviceSink\n"
        "with jack_server() as device:\n"
        "    sink = DeviceSink(device.index)\n"
        "    sink.open(device.samplerate, 1, 'float32', blocksize=960, buffer_frames=3840)\n"
        "    block = np.full((960, 1), 0.1, np.float32)\n"
        "    sink.write(block)\n"
        "    os.kill(device.jackd_pid, signal.SIGTERM)\n"
        "    start = time.monotonic()\n"
        "    try:\n"
        "        for _ in range(1000):\n"
        "            sink.write(block)\n"
        "    except OutputError as e:\n"
        "        print(f'{time.monotonic() - start:.1f}', e, flush=True)\n"
        "    os.waitpid(device.jackd_pid, 0)\n"
        "    release_after_exit(device.server)\n"
        # os._exit below skips jack_server()'s cleanup, so its ALSA file goes here
        "    os.remove(os.environ['ALSA_CONFIG_PATH'].split(':')[-1])\n"
        # PortAudio's JACK host API asserts at exit once its server is gone: skip atexit
        "    os._exit(0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-2000:]
    seconds, message = out.stdout.split(" ", 1)
    assert float(seconds) < 10.0
    assert "stopped playing" in message
