"""The voicekit command: say, narrate, voices, devices, and clean failures on bad input.

Most runs call ``voicekit.cli.main`` in-process with real eSpeak synthesis
writing WAV files; the runs that depend on the machine's audio stack use a
subprocess with its own environment.
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

import pytest

from voicekit import EspeakTTS, MemorySink
from voicekit.cli import Narrator, main


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


def run_subprocess(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicekit", *args], input=stdin, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def no_portaudio_env(tmp_path) -> dict[str, str]:
    """A subprocess environment where sounddevice fails to load, as it does without libportaudio2."""
    (tmp_path / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}


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
    code, _, err = run(["say", "--file", str(source), "--out", str(out), "--progress"], capsys)
    assert code == 0
    final = err.rstrip("\n").split("\r")[-1]
    assert f"100% {len(text)}/{len(text)} chars" in final
    assert "s audio" in final and "RTF" in final
    assert err.count("\r") > 2  # it moved while speaking
    audio = float(final.split(" chars")[1].split("s audio")[0])
    assert audio == pytest.approx(seconds(out), rel=0.05)


def test_say_reads_stdin(tmp_path, capsys, monkeypatch, no_thread_leak):
    monkeypatch.setattr(sys, "stdin", io.StringIO("Read from standard input.\n"))
    out = tmp_path / "stdin.wav"
    code, _, _ = run(["say", "-", "--out", str(out)], capsys)
    assert code == 0
    assert seconds(out) > 1.0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["say"], "exactly one of"),
        (["say", "--file", "/no/such/file.txt"], "can't read /no/such/file.txt"),
        (["say", "   "], "nothing to say"),
        (["say", "--rate", "0", "hi"], "positive speed factor"),
        (["say", "--rate", "fast", "hi"], "not a number"),
        (["say", "--out", "speech.mp3", "hi"], "not a .wav file name"),
        (["say", "--out", "/no/such/dir/a.wav", "hi"], "does not exist"),
        (["say", "--voice", "no-such-voice", "hi"], "voicekit voices"),
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
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("voicekit") and message in last


def test_say_rejects_a_file_that_is_not_text(tmp_path, capsys):
    binary = tmp_path / "image.bin"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 10)
    code, _, err = run(["say", "--file", str(binary)], capsys)
    assert code == 2 and "is not UTF-8 text" in err


def test_narrate_speaks_every_line(tmp_path, capsys, monkeypatch, no_thread_leak):
    lines = ["Build started", "Compiling the first module", "All tests passed"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{line}\n" for line in lines)))
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


def test_say_without_an_audio_device_names_the_fix(no_portaudio_env):
    result = run_subprocess(["say", "hello"], no_portaudio_env)
    assert result.returncode == 1
    assert result.stderr.startswith("voicekit: no usable audio device")
    assert "--out FILE.wav" in result.stderr and "Traceback" not in result.stderr


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
