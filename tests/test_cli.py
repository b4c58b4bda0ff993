"""The voicekit command: say, narrate, voices, devices, and clean failures on bad input.

Most runs call ``voicekit.cli.main`` in-process with real eSpeak synthesis
writing WAV files; the runs that depend on the machine's audio stack, stdin
or stdout use a subprocess with its own environment.
"""

from __future__ import annotations

import io
import os
import queue
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from voicekit import EspeakTTS, MemorySink
from voicekit.cli import (
    Narrator,
    Progress,
    build_parser,
    main,
    narrate_lookahead,
    speak_text,
)

from .helpers import fundamental, rms


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


def run_subprocess(
    args: list[str], env: dict[str, str] | None = None, stdin: str | bytes = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicekit", *args], input=stdin, env=env, capture_output=True, text=isinstance(stdin, str),
        check=False,
        timeout=60,
    )


@pytest.fixture
def stdin_bytes(monkeypatch, tmp_path_factory):
    """Sets sys.stdin as a process gets it: text over a buffered file with a descriptor
    (narrate reads the descriptor itself)."""
    opened: list[io.TextIOWrapper] = []

    def set_stdin(data: bytes) -> None:
        path = tmp_path_factory.mktemp("stdin") / "stdin"  # not in tmp_path, which tests list
        path.write_bytes(data)
        opened.append(open(path, encoding="utf-8"))
        monkeypatch.setattr(sys, "stdin", opened[-1])

    yield set_stdin
    for file in opened:
        file.close()


def samples(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.float64) / 32768


# sounddevice as it fails without libportaudio2
NO_PORTAUDIO = "raise OSError('PortAudio library not found')\n"
# sounddevice as it answers when PortAudio loads but finds no output device (a server without a sound card)
NO_DEVICE = (
    "class PortAudioError(Exception):\n    pass\n"
    "def query_devices(device=None, kind=None):\n"
    "    if device is None and kind is None:\n        return []\n"
    "    raise PortAudioError('Error querying device -1')\n"
)


def fake_sounddevice_env(folder: Path, module: str) -> dict[str, str]:
    """A subprocess environment whose sounddevice is ``module`` (NO_PORTAUDIO, NO_DEVICE),
    so a test does not depend on the machine's sound cards."""
    (folder / "sounddevice.py").write_text(module)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), *sys.path])}


def no_cloud_env(base: dict[str, str], folder: Path) -> dict[str, str]:
    """``base`` without an OpenAI key or any AWS setup (variables, config files, instance metadata)."""
    env = {k: v for k, v in base.items() if not k.startswith(("AWS_", "OPENAI_"))}
    env.update(
        AWS_CONFIG_FILE=str(folder / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(folder / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


@pytest.fixture
def no_portaudio_env(tmp_path) -> dict[str, str]:
    return fake_sounddevice_env(tmp_path, NO_PORTAUDIO)


@pytest.fixture
def no_device_env(tmp_path) -> dict[str, str]:
    return fake_sounddevice_env(tmp_path, NO_DEVICE)


def test_say_text_to_wav(tmp_path, capsys, no_thread_leak):
    out = tmp_path / "hello.wav"
    code, _, err = run(["say", "--out", str(out), "--rate", "1.2", "Hello there.", "This is voicekit."], capsys)
    assert (code, err) == (0, "")
    assert seconds(out) > 1.0


def test_say_long_file_shows_progress(tmp_path, capsys, no_thread_leak):
    text = " ".join(f"Sentence number {i} of the long file is spoken here." for i in range(40))
    source = tmp_path / "long.txt"
    source.write_text(text, encoding="utf-8")
    out = tmp_path / "long.wav"
    code, _, err = run(["say", "-f", str(source), "-o", str(out), "--progress"], capsys)
    assert code == 0
    final = err.rstrip("\n").split("\r")[-1]
    assert f"100% {len(text.split())}/{len(text.split())} words" in final
    assert "s heard" in final and "RTF" in final
    assert err.count("\r") > 2  # it moved while speaking
    heard = float(final.split(" words")[1].split("s heard")[0])
    assert heard == pytest.approx(seconds(out), abs=1.0)  # the last word starts just before the end


def test_progress_shows_the_heard_position_not_synthesis(no_thread_leak):
    # A sink that plays in real time: synthesis runs up to `lookahead` seconds ahead of it.
    text = " ".join(f"Sentence number {i} is read aloud at the speed of speech." for i in range(30))
    tts = EspeakTTS()
    tts.set_output(MemorySink(realtime=True))
    made: list[float] = []
    progress = Progress(len(text.split()), io.StringIO())
    speaker = threading.Thread(target=speak_text, args=(tts, text, progress), name="test-say")
    try:
        with tts.create_stream(on_chunk_processed=lambda info: made.append(info["duration"])) as probe:
            probe.feed(text[:400])  # how far synthesis gets ahead on its own, for comparison
            probe.done()
            time.sleep(2.0)
            probe.interrupt()
        start = time.monotonic()
        speaker.start()
        time.sleep(2.0)
        elapsed = time.monotonic() - start
        assert sum(made) > 6.0  # synthesis was far ahead ...
        assert 0 < progress.seconds <= elapsed + 0.5  # ... the bar is where the speaker is
        assert progress.words < len(text.split()) // 4
    finally:
        tts.cleanup()
        speaker.join(timeout=10)


def test_say_reads_stdin(tmp_path, capsys, stdin_bytes, no_thread_leak):
    stdin_bytes("Read from standard input, café.\n".encode())
    out = tmp_path / "stdin.wav"
    code, _, _ = run(["say", "-", "--out", str(out)], capsys)
    assert code == 0
    assert seconds(out) > 1.0


def test_echo_into_say_reads_stdin_without_a_dash(tmp_path):
    # `echo hi | voicekit say`, as espeak-ng and macOS `say` do
    out = tmp_path / "piped.wav"
    result = run_subprocess(["say", "-o", str(out)], stdin="Hello from a pipe.\n")
    assert result.returncode == 0, result.stderr
    assert seconds(out) > 0.8


def test_out_dash_writes_the_wav_to_stdout(tmp_path):
    # eSpeak: the same text gives the same samples (Piper's voice varies a little run to run)
    result = run_subprocess(["say", "--engine", "espeak", "--out", "-", "Hello there, this goes down a pipe."], stdin=b"")
    assert result.returncode == 0, result.stderr
    data = result.stdout
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    with wave.open(io.BytesIO(data)) as wav:  # the header says "as long as the stream"
        rate, width = wav.getframerate(), wav.getsampwidth()
        audio = wav.readframes(wav.getnframes())
    assert width == 2 and len(audio) / 2 / rate > 1.0
    out = tmp_path / "same.wav"
    assert run_subprocess(["say", "--engine", "espeak", "-o", str(out), "Hello there, this goes down a pipe."]).returncode == 0
    assert audio == samples_bytes(out)  # the same audio as a file gets


def samples_bytes(path: Path) -> bytes:
    with wave.open(str(path)) as wav:
        return wav.readframes(wav.getnframes())


@pytest.mark.parametrize("where", ["stdin", "file", "narrate"])
def test_binary_input_is_refused_at_once(where, tmp_path):
    binary = Path("/bin/ls").read_bytes()
    source = tmp_path / "ls.bin"
    source.write_bytes(binary)
    out = tmp_path / "x.wav"
    args = {
        "stdin": ["say", "-", "--out", str(out)],
        "file": ["say", "--file", str(source), "--out", str(out)],
        "narrate": ["narrate", "--out", str(out)],
    }[where]
    start = time.monotonic()
    result = run_subprocess(args, stdin=b"" if where == "file" else binary)
    took = time.monotonic() - start
    assert result.returncode == 2
    err = result.stderr.decode()
    assert err.count("\n") == 1 and "binary, not text" in err, err
    assert not out.exists() and list(tmp_path.iterdir()) == [source]
    assert took < 10  # the process start dominates; the point is: not 25 s of speech


def test_invalid_utf8_is_refused_with_its_offset(tmp_path, capsys, stdin_bytes):
    stdin_bytes(b"Plain text, then Latin-1: caf\xe9.\n")
    code, _, err = run(["say", "--out", str(tmp_path / "x.wav")], capsys)
    assert code == 2 and "stdin is not UTF-8 text (invalid byte at offset 29)" in err
    assert list(tmp_path.iterdir()) == []


def test_version_and_short_flags(tmp_path, capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.startswith("voicekit 0.")
    source = tmp_path / "in.txt"
    source.write_text("Short flags work too.", encoding="utf-8")
    fast, slow = tmp_path / "fast.wav", tmp_path / "slow.wav"
    espeak = ["say", "--engine", "espeak", "-v", "en-us"]
    assert run([*espeak, "-r", "1.8", "-f", str(source), "-o", str(fast)], capsys)[0] == 0
    assert run([*espeak, "-r", "x-slow", "-f", str(source), "-o", str(slow)], capsys)[0] == 0
    assert seconds(slow) > 1.5 * seconds(fast)


def test_volume_and_pitch_flags(tmp_path, capsys):
    def say(*flags: str) -> np.ndarray:
        out = tmp_path / f"{'_'.join(flags) or 'plain'}.wav"
        assert run(["say", "--engine", "espeak", *flags, "-o", str(out), "A sentence to measure."], capsys)[0] == 0
        return samples(out)

    def crossings(audio: np.ndarray) -> int:
        voiced = audio[np.abs(audio) > 0.01]
        return int(np.sum(np.signbit(voiced[1:]) != np.signbit(voiced[:-1])))

    assert rms(say("--volume", "20")) < 0.5 * rms(say("--volume", "100"))
    assert crossings(say("--pitch", "90")) > crossings(say("--pitch", "10"))


def test_a_control_the_engine_lacks_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-used")  # refused before any request; if not, nowhere to go
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    code, _, err = run(["say", "--engine", "openai", "--pitch", "60", "hi"], capsys)
    assert code == 2 and err.startswith("voicekit say: --pitch: ") and err.count("\n") == 1, err


def test_pitch_flag_with_piper(tmp_path, capsys):
    from voicekit.registry import default_engine

    if default_engine() != "piper":
        pytest.skip("needs Piper: pip install 'voicekit[piper]'")
    heard = {}
    text = "The quick brown fox jumps over the lazy dog, and then it naps in the warm afternoon sun."
    for pitch in ("30", "80"):
        out = tmp_path / f"{pitch}.wav"
        assert run(["say", "--engine", "piper", "--pitch", pitch, "-o", str(out), text], capsys)[0] == 0
        with wave.open(str(out)) as w:
            rate = w.getframerate()
        heard[pitch] = (fundamental(samples(out), rate), seconds(out))
    (low, low_seconds), (high, high_seconds) = heard["30"], heard["80"]
    # 2 ** 0.5 = 1.41 apart (measured 1.31-1.42), at about the same pace (0.85-0.89)
    assert high > 1.2 * low and 0.75 < high_seconds / low_seconds < 1.2


def test_rate_errors_are_one_line_about_the_rate(capsys):
    for value in ("100", "0", "-2", "fast-ish"):
        code, _, err = run(["say", "--rate", value, "hi"], capsys)
        assert code == 2
        assert err.count("\n") == 1 and "usage:" not in err, err
        assert err.startswith("voicekit say: --rate: ") and "voices" not in err, err


def test_a_failed_say_out_leaves_no_file_behind(tmp_path, capsys, monkeypatch, fake_openai):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{fake_openai.url}/v1")
    fake_openai.faults = ["500"] * 20
    out = tmp_path / "failed.wav"
    code, _, err = run(["say", "--engine", "openai", "-o", str(out), "This is never spoken."], capsys)
    assert code == 1 and "could not speak" in err
    assert list(tmp_path.iterdir()) == []
    # an older file of that name is left as it was
    out.write_bytes(b"old")
    assert run(["say", "--engine", "openai", "-o", str(out), "Nor is this."], capsys)[0] == 1
    assert list(tmp_path.iterdir()) == [out] and out.read_bytes() == b"old"


def test_cloud_engine_without_credentials_fails_before_speaking(tmp_path, capsys, monkeypatch, openai_env):
    code, _, err = run(["say", "--engine", "openai", "-o", str(tmp_path / "x.wav"), "hi"], capsys)
    assert code == 1 and err == "voicekit say: the openai engine needs an API key: set OPENAI_API_KEY\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["say", "words", "--file", "x.txt"], "not both"),
        (["say", "--file", "/no/such/file.txt"], "can't read /no/such/file.txt"),
        (["say", "   "], "nothing to say"),
        (["say", "--rate", "0", "hi"], "--rate: rate must be a number from 0.1 to 10"),
        (["say", "--rate", "quick", "hi"], "--rate: rate must be a number from 0.1 to 10 or one of x-slow, slow, medium"),
        (["say", "--pitch", "loud-ish", "hi"], "--pitch: pitch must be a number from 0 to 100 or one of"),
        (["say", "--out", "speech.mp3", "hi"], "not a .wav file name"),
        (["say", "--out", "/no/such/dir/a.wav", "hi"], "does not exist"),
        (["say", "--engine", "espeak", "--voice", "no-such-voice", "hi"], "no espeak voice 'no-such-voice'; `voicekit voices"),
        (["narrate", "--lookahead", "0"], "must be a positive number"),
        (["chat", "--out", "-"], "--out needs a file name"),
        (["say", "--engine", "festival", "hi"], "invalid choice"),
        (["speak", "hi"], "invalid choice"),
        (["voices", "--engine", "espeak", "--language", "zz-nowhere"], "no espeak voices for language"),
        (["chat", "--base-url", "http://127.0.0.1:9/v1"], "--base-url and --model go together"),
        (["chat", "--tokens-per-second", "-3"], "positive"),
    ],
)
def test_bad_input_gets_one_clear_line_and_an_error_code(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, out, err = run(argv, capsys)
    assert code in (1, 2)
    assert "Traceback" not in err and "usage:" not in err and err.count("\n") == 1, err
    assert err.startswith("voicekit") and message in err


def test_say_rejects_a_file_that_is_not_text(tmp_path, capsys):
    binary = tmp_path / "image.bin"
    binary.write_bytes(b"\xff\xfe\x81" * 10)
    code, _, err = run(["say", "--file", str(binary)], capsys)
    assert code == 2 and "is not UTF-8 text" in err


def test_narrate_speaks_every_line(tmp_path, capsys, stdin_bytes, no_thread_leak):
    lines = ["Build started", "Compiling the first module", "All tests passed"]
    stdin_bytes("".join(f"{line}\n" for line in lines).encode())
    out = tmp_path / "narration.wav"
    code, _, _ = run(["narrate", "--out", str(out)], capsys)
    assert code == 0
    one = tmp_path / "one.wav"
    assert run(["say", "--out", str(one), lines[1]], capsys)[0] == 0
    assert seconds(out) > 2 * seconds(one)


def _narrate(lines: list[str], *, latest: bool) -> tuple[Narrator, str, list[str]]:
    """Lines that all arrive at once, faster than speech, into a real-time sink."""
    tts = EspeakTTS()
    tts.set_output(MemorySink(realtime=True))
    tts.set_stream_config({"lookahead": 1.0})
    notes: list[str] = []
    incoming: queue.Queue[str | None] = queue.Queue()
    for line in lines:
        incoming.put(line + "\n")
    incoming.put(None)
    try:
        with tts.create_stream() as stream:
            narrator = Narrator(stream, latest=latest, report=notes.append)
            narrator.run(incoming)
            stream.done()
            assert stream.wait_until_done(timeout=60)
            heard = stream.heard_text
    finally:
        tts.cleanup()
    return narrator, heard, notes


def test_narrate_queue_policy_loses_nothing(no_thread_leak):
    lines = [f"Step {n} is done." for n in ("one", "two", "three", "four")]
    narrator, heard, notes = _narrate(lines, latest=False)
    assert narrator.skipped == 0 and notes == []
    positions = [heard.find(f"Step {n}") for n in ("one", "two", "three", "four")]
    assert -1 not in positions and positions == sorted(positions)


def test_narrate_latest_policy_skips_to_the_newest_line(no_thread_leak):
    lines = [f"Line number {n} arrived." for n in range(1, 13)]
    narrator, heard, notes = _narrate(lines, latest=True)
    assert narrator.skipped >= 5
    assert notes == [f"skipped {narrator.skipped} lines"]
    assert f"Skipped {narrator.skipped} lines" in heard
    assert "Line number 1 arrived" in heard and "Line number 12 arrived" in heard
    assert sum(f"number {n} " in heard for n in range(1, 13)) < 12


def test_narrate_latest_keeps_the_lookahead_short():
    # --latest skips only once the buffer is full: with the default 10 s it lagged ~10 s behind.
    def lookahead(*argv: str) -> float | None:
        return narrate_lookahead(build_parser().parse_args(["narrate", *argv]))

    assert lookahead() is None  # --queue loses nothing; the library's default suits it
    assert lookahead("--latest") <= 2.0
    assert lookahead("--latest", "--lookahead", "0.5") == 0.5
    assert lookahead("--queue", "--lookahead", "30") == 30


def test_voices_lists_english(capsys):
    code, out, _ = run(["voices", "--engine", "espeak", "--language", "en"], capsys)
    assert code == 0
    rows = out.splitlines()
    assert len(rows) > 3 and all(" en" in row for row in rows)
    assert any("en-us" in row for row in rows)


def test_devices_without_portaudio(no_portaudio_env):
    result = run_subprocess(["devices"], no_portaudio_env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "PortAudio library is missing" in result.stderr and "apt-get install libportaudio2" in result.stderr


def test_say_without_portaudio_names_the_fix(no_portaudio_env):
    result = run_subprocess(["say", "hello"], no_portaudio_env)
    assert result.returncode == 1
    assert result.stderr.startswith("voicekit say: the PortAudio library is missing: install it")
    assert "--out FILE.wav" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("verb", [["say", "hello"], ["devices"]])
def test_no_device_is_not_told_to_install_portaudio(verb, no_device_env):
    result = run_subprocess(verb, no_device_env)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"voicekit {verb[0]}: no audio output device found: connect a sound card")
    assert "PortAudio" not in result.stderr and "apt-get" not in result.stderr
    assert "voicekit devices" not in result.stderr.partition(": ")[2]  # `devices` must not point at itself
    if verb[0] == "devices":
        assert "--out" not in result.stderr  # `devices` has no such option
    else:
        assert "--out FILE.wav" in result.stderr


@pytest.mark.parametrize("verb", ["say", "chat", "narrate"])
def test_a_wrong_device_ends_every_verb_with_the_same_line(verb, alsa_null_env):
    args = [verb, "--device", "99"] + (["hello"] if verb == "say" else [])
    result = run_subprocess(args, alsa_null_env)
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"voicekit {verb}: no output device 99: `voicekit devices` lists them, or use --out FILE.wav\n"


def test_devices_and_say_on_a_real_portaudio_device(alsa_null_env):
    listed = run_subprocess(["devices"], alsa_null_env)
    assert listed.returncode == 0, listed.stderr
    assert "default" in listed.stdout
    said = run_subprocess(["say", "--device", "default", "Played through PortAudio."], alsa_null_env)
    assert said.returncode == 0, said.stderr


def test_python_dash_m_voicekit_help():
    result = subprocess.run([sys.executable, "-m", "voicekit", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for verb in ("chat", "say", "narrate", "voices", "devices"):
        assert verb in result.stdout


def test_narrate_speaks_a_line_before_the_next_one_arrives(no_thread_leak):
    # `tail -f build.log | voicekit narrate`: the last line so far must not wait for the next.
    tts = EspeakTTS()
    tts.set_output(MemorySink())
    incoming: queue.Queue[str | None] = queue.Queue()
    incoming.put("Build started\n")
    incoming.put("All tests passed.\n")
    try:
        with tts.create_stream() as stream:
            narrator = threading.Thread(
                target=Narrator(stream, latest=False, report=print).run, args=(incoming,), name="test-narrator"
            )
            narrator.start()
            try:
                deadline = time.monotonic() + 20
                while "passed" not in stream.heard_text and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert "All tests passed" in stream.heard_text
            finally:
                incoming.put(None)
                narrator.join(timeout=10)
            stream.done()
    finally:
        tts.cleanup()
