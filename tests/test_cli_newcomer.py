"""The voicekit command as someone new to it first meets it: a bare `voicekit`, a file
to narrate, a mistyped rate, a cloud engine without its setup, WAV on stdout into a file,
Ctrl-C pressed as soon as it starts."""

from __future__ import annotations

import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

from .helpers import sigint
from .test_cli import no_cloud_env, run, run_subprocess, seconds

VERBS = ("chat", "say", "narrate", "voices", "devices", "serve")


def test_a_bare_voicekit_prints_the_help(capsys):
    code, out, err = run([], capsys)
    assert code == 2 and out == ""
    assert err.startswith("usage: voicekit") and "required" not in err, err
    for verb in VERBS:
        assert verb in err


@pytest.mark.parametrize("how", [["STORY"], ["-f", "STORY"], ["--file", "STORY"]])
def test_narrate_reads_a_file(how, tmp_path, capsys, no_thread_leak):
    story = tmp_path / "story.txt"
    story.write_text("Once upon a time there was a build.\nIt passed.\n", encoding="utf-8")
    out = tmp_path / "story.wav"
    args = [str(story) if arg == "STORY" else arg for arg in how]
    code, _, err = run(["narrate", "--engine", "espeak", *args, "-o", str(out)], capsys)  # pytest's stdin is never read
    assert (code, err) == (0, "")
    assert seconds(out) > 2.0


def test_narrate_still_reads_stdin_and_dash(tmp_path):
    for args in ([], ["-"]):
        out = tmp_path / f"stdin{len(args)}.wav"
        result = run_subprocess(["narrate", "--engine", "espeak", *args, "-o", str(out)], stdin="Line one.\nLine two.\n")
        assert result.returncode == 0, result.stderr
        assert seconds(out) > 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["a.txt", "-f", "b.txt"], "voicekit narrate: give FILE or --file, not both"),
        (["/no/such/story.txt"], "voicekit narrate: can't read /no/such/story.txt: No such file or directory"),
    ],
)
def test_narrate_file_errors_are_one_line(args, message, capsys, tmp_path):
    code, _, err = run(["narrate", *args, "-o", str(tmp_path / "x.wav")], capsys)
    assert code == 2 and err == message + "\n"
    assert list(tmp_path.iterdir()) == []


def test_narrate_refuses_a_binary_file_by_its_name(tmp_path, capsys):
    binary = tmp_path / "ls.bin"
    binary.write_bytes(Path("/bin/ls").read_bytes())
    code, _, err = run(["narrate", str(binary), "-o", str(tmp_path / "x.wav")], capsys)
    assert code == 2 and err == f"voicekit narrate: {binary} is binary, not text (it holds NUL bytes)\n"


_RATES = "x-slow, slow, medium, fast, x-fast"
_LEVELS = "silent, x-low, low, medium, high, x-high, loud"


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--rate", "banana", f"rate must be a number from 0.1 to 10 or one of {_RATES}, got 'banana'"),
        ("-r", "quick", f"rate must be a number from 0.1 to 10 or one of {_RATES}, got 'quick'"),
        ("--volume", "loud-ish", f"volume must be a number from 0 to 100 or one of {_LEVELS}, got 'loud-ish'"),
        ("--pitch", "up", f"pitch must be a number from 0 to 100 or one of {_LEVELS}, got 'up'"),
        # a number out of range: the same line (the library's, which chat's /rate shows too)
        ("--rate", "50", f"rate must be a number from 0.1 to 10 or one of {_RATES}, got '50'"),
        ("--volume", "200", f"volume must be a number from 0 to 100 or one of {_LEVELS}, got '200'"),
        ("--pitch", "nan", f"pitch must be a number from 0 to 100 or one of {_LEVELS}, got 'nan'"),
    ],
)
def test_a_mistyped_property_names_what_it_accepts(flag, value, expected, capsys):
    code, _, err = run(["say", "--engine", "espeak", flag, value, "hi"], capsys)
    name = {"-r": "--rate"}.get(flag, flag)
    assert code == 2 and err == f"voicekit say: {name}: {expected}\n"
    assert "[" not in err  # not a Python list


def test_voices_of_polly_without_aws_setup_says_what_to_set(tmp_path):
    pytest.importorskip("boto3", reason="needs boto3: pip install 'voicekit[polly]'")
    env = no_cloud_env(dict(os.environ), tmp_path)
    result = run_subprocess(["voices", "--engine", "polly"], env)
    assert result.returncode == 1 and result.stderr == (
        "voicekit voices: the polly engine needs AWS credentials: set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or configure a profile with `aws configure`\n"
    )
    result = run_subprocess(["voices", "--engine", "polly"], {**env, "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "x"})
    assert result.returncode == 1 and result.stderr == (
        "voicekit voices: the polly engine needs an AWS region: set AWS_DEFAULT_REGION, "
        "or configure one with `aws configure`\n"
    )


def test_voices_help_explains_engine(capsys):
    code, out, _ = run(["voices", "--help"], capsys)
    assert code == 0
    engine_help = out.split("--engine {piper,kokoro,espeak,polly,openai}", 2)[2]
    assert engine_help.split()[0:2] == ["speech", "engine"], out


def _header_sizes(data: bytes) -> tuple[int, int]:
    """The RIFF size and the data chunk size a 16-bit PCM WAV header states."""
    (riff,) = struct.unpack_from("<I", data, 4)
    assert data[36:40] == b"data"
    (size,) = struct.unpack_from("<I", data, 40)
    return riff, size


def _say_to_stdout(target: Path, mode: str) -> None:
    with open(target, mode) as stdout:
        result = subprocess.run(
            [sys.executable, "-m", "voicekit", "say", "--engine", "espeak", "-o", "-", "Written to a file, not a pipe."],
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_out_dash_redirected_to_a_file_states_the_real_length(tmp_path):
    # `voicekit say -o - > file.wav`: the header said 0xFFFFFFFF bytes, 27 hours
    target = tmp_path / "said.wav"
    _say_to_stdout(target, "wb")
    data = target.read_bytes()
    assert _header_sizes(data) == (len(data) - 8, len(data) - 44)
    with wave.open(str(target)) as wav:
        duration = wav.getnframes() / wav.getframerate()
    assert 1.0 < duration < 6.0
    if shutil.which("sox") is None:
        pytest.skip("sox checks the header too: apt-get install sox")
    sox = subprocess.run(["sox", "--i", "-D", str(target)], capture_output=True, text=True, timeout=30, check=True)
    assert float(sox.stdout) == pytest.approx(duration, abs=0.001)


def test_out_dash_appended_to_a_file_is_left_streaming(tmp_path):
    # `>>` writes at the end whatever the position: a header written back would land after the audio
    target = tmp_path / "appended.wav"
    target.touch()
    _say_to_stdout(target, "ab")
    data = target.read_bytes()
    assert data.count(b"RIFF") == 1 and _header_sizes(data)[1] > len(data)


def _entry_point() -> tuple[str, str]:
    """The module and function pyproject.toml names as the `voicekit` command's entry point."""
    text = (Path(__file__).parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    scripts = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    found = re.search(r'^voicekit\s*=\s*"([\w.]+):(\w+)"', scripts, re.MULTILINE)
    assert found, scripts
    return found[1], found[2]


@pytest.mark.parametrize("how", ["python -m voicekit", "the voicekit script"])
def test_ctrl_c_while_starting_up_is_130_without_a_traceback(how, tmp_path):
    # Before the command handles Ctrl-C itself, its modules load for a tenth of a second (numpy
    # among them): Ctrl-C there printed a KeyboardInterrupt traceback, or numpy's page-long
    # ImportError. The child says when CPython is up and the voicekit package is imported
    # (nothing of the command runs before, so nothing of it could catch anything), then runs
    # what `python -m` runs, or what pip's script for the entry point runs.
    if how == "python -m voicekit":
        run_command = "runpy.run_module('voicekit', run_name='__main__', alter_sys=True)"
    else:
        module, function = _entry_point()
        run_command = f"from {module} import {function}; sys.exit({function}())"
    code = f"import os, runpy, sys, voicekit; os.write(1, b'.'); {run_command}"
    argv = [sys.executable, "-c", code, "say", "--engine", "espeak", "-o", str(tmp_path / "out.wav"), "hello"]
    runs = 10
    # one delay in each 15 ms of the first 150 ms, from 3 ms: the first ms are runpy's or pip's own
    for delay in [0.003 + (i + random.random()) * 0.147 / runs for i in range(runs)]:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.stdout is not None and child.stdout.read(1) == b"."
        time.sleep(delay)
        stderr = sigint(child, timeout=30)
        assert child.returncode in (130, 0) and "Traceback" not in stderr and len(stderr.splitlines()) <= 1, (
            f"Ctrl-C {delay * 1000:.0f} ms in: exit code {child.returncode}, stderr:\n{stderr}"
        )
