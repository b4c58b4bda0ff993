"""voicekit chat: the REPL driven through prompt_toolkit's pipe input, and once in a real pty.

Speech is real: eSpeak synthesis into a MemorySink(realtime=True), which plays
(and keeps only what was heard) at the speed of a sound card.
"""

from __future__ import annotations

import io
import os
import re
import socket
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

pytest.importorskip("prompt_toolkit", reason="needs prompt_toolkit: pip install 'voicekit[chat]'")

from prompt_toolkit.data_structures import Size  # noqa: E402
from prompt_toolkit.input import create_pipe_input  # noqa: E402
from prompt_toolkit.output.vt100 import Vt100_Output  # noqa: E402

from voicekit import EspeakTTS, MemorySink  # noqa: E402
from voicekit.chat import Chat, LLMBackend, ResponderBackend  # noqa: E402
from voicekit.responder import Responder, tokenize  # noqa: E402

SHORT = "## Hi\n\nHello **there**, this is a short reply."
LONG = (
    "# A long answer\n\nThis reply goes on for quite a while, so that there is time to interrupt it. "
    "It has a **second** sentence with a few more words in it. A third sentence keeps the voice busy. "
    "The fourth sentence is here too. And a fifth one, which nobody should hear to the end.\n"
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Session:
    """A Chat running on its own thread, typed into through a pipe."""

    def __init__(self, chat: Chat, pipe, screen: io.StringIO, sink: MemorySink) -> None:
        self.chat, self.pipe, self.screen, self.sink = chat, pipe, screen, sink
        self.thread = threading.Thread(target=chat.run, name="test-chat")
        self.thread.start()
        wait_for(lambda: "/help lists" in self.text, what="the greeting")

    @property
    def text(self) -> str:
        return ANSI.sub("", self.screen.getvalue())

    def type(self, keys: str) -> None:
        self.pipe.send_text(keys)

    def command(self, line: str, expect: str) -> None:
        self.type(line + "\r")
        wait_for(lambda: expect in self.text, what=f"{expect!r} after {line}")

    def reply(self, message: str) -> dict[str, str]:
        """Send a message and wait until the reply is recorded in the history."""
        count = len(self.chat.history)
        self.type(message + "\r")
        wait_for(lambda: len(self.chat.history) >= count + 2 and not self.chat.speaking, what="the reply")
        return self.chat.history[-1]

    def quit(self) -> None:
        self.type("/quit\r")
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "/quit did not end the chat"


@pytest.fixture
def session(no_thread_leak) -> Iterator[Callable[..., Session]]:
    started: list[Session] = []

    def start(script: list[str], *, tokens_per_second: float | None = 200.0, **kwargs) -> Session:
        sink = MemorySink(realtime=True)
        tts = EspeakTTS()
        tts.set_output(sink)
        screen = io.StringIO()
        output = Vt100_Output(screen, lambda: Size(rows=40, columns=200), term="xterm")
        pipe = stack.enter_context(create_pipe_input())
        backend = ResponderBackend(Responder(tokens_per_second=tokens_per_second, script=script))
        s = Session(Chat(tts, backend, input=pipe, output=output, **kwargs), pipe, screen, sink)
        started.append(s)
        return s

    with ExitStack() as stack:
        yield start
        for s in started:
            if s.thread.is_alive():
                s.quit()


def test_a_reply_is_shown_and_spoken(session):
    s = session([SHORT])
    message = s.reply("hello")
    assert message == {"role": "assistant", "content": SHORT}
    assert "Hello **there**, this is a short reply." in s.text  # the screen shows the markdown
    assert s.sink.seconds > 1.0  # ... and the speaker got the whole reply
    s.quit()


def test_escape_barges_in_and_history_keeps_only_what_was_heard(session):
    s = session([LONG], tokens_per_second=None)
    s.type("tell me everything\r")
    wait_for(lambda: s.sink.seconds > 1.0, what="speech to start")
    before = s.sink.seconds
    s.type("\x1b")
    wait_for(lambda: not s.chat.speaking, timeout=5, what="the interrupt")
    after = s.sink.seconds
    time.sleep(0.3)
    assert s.sink.seconds == after  # silent from then on
    # Esc waits out prompt_toolkit's key timeout (0.1 s); generous bound for a busy machine.
    assert after - before < 1.5
    content = s.chat.history[-1]["content"]
    assert content.endswith("[interrupted]")
    heard = content.removesuffix("[interrupted]").split()
    assert 2 <= len(heard) < len(LONG.split()) // 2
    assert "fifth" not in content
    assert "[interrupted]" in s.text
    s.quit()


def test_ctrl_c_and_a_new_message_barge_in(session):
    s = session([LONG, SHORT], tokens_per_second=None)
    s.type("first\r")
    wait_for(lambda: s.sink.seconds > 0.8, what="speech to start")
    s.type("second question\r")  # typing a new message interrupts the reply
    wait_for(lambda: len(s.chat.history) == 4 and not s.chat.speaking, what="the second reply")
    roles = [m["role"] for m in s.chat.history]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert s.chat.history[1]["content"].endswith("[interrupted]")
    assert s.chat.history[2]["content"] == "second question"
    assert s.chat.history[3]["content"] == SHORT

    heard = s.sink.seconds
    s.type("third\r")  # the script cycles back to LONG
    wait_for(lambda: s.sink.seconds > heard + 0.5, what="the third reply")
    s.type("\x03")
    wait_for(lambda: not s.chat.speaking, timeout=5, what="Ctrl-C to interrupt")
    assert s.chat.history[-1]["content"].endswith("[interrupted]")
    s.quit()


def test_commands(session, tmp_path):
    s = session([SHORT])
    s.command("/help", "/save FILE.wav")
    s.command("/rate 1.5", "rate: 1.5")
    assert s.chat.rate == 1.5
    s.command("/rate fast-ish", "/rate: ")  # bad input: one line, the chat goes on
    s.command("/voice", "en-us")
    s.command("/voice en-us", "voice: en-us")
    s.command("/voice no-such-voice", "/voice: ")
    s.command("/save nothing.wav", "no reply to save yet")
    s.command("/bogus", "unknown command /bogus")

    s.reply("hello")
    s.command("/history", "you> hello")
    saved = tmp_path / "last.wav"
    s.command(f"/save {saved}", "saved the last reply")
    with wave.open(str(saved)) as wav:
        assert wav.getnframes() / wav.getframerate() > 1.0

    s.command("/mute", "muted")
    heard = s.sink.seconds
    assert s.reply("quiet please")["content"] == SHORT  # shown in full ...
    assert s.sink.seconds == heard  # ... and not spoken
    s.command("/mute", "unmuted")
    s.command("/engine", "engine: espeak")
    s.quit()


def test_each_reply_to_its_own_wav(session, tmp_path):
    s = session([SHORT], reply_wav=tmp_path / "reply.wav")
    s.reply("one")
    s.reply("two")
    for n in (1, 2):
        with wave.open(str(tmp_path / f"reply-{n}.wav")) as wav:
            assert wav.getnframes() / wav.getframerate() > 1.0
    wait_for(lambda: f"audio: {tmp_path / 'reply-2.wav'}" in s.text, what="the WAV's name on screen")
    s.quit()


def test_llm_backend_through_an_openai_compatible_server(fake_llm, no_thread_leak):
    openai = pytest.importorskip("openai", reason="needs openai: pip install 'voicekit[openai]'")
    sink = MemorySink(realtime=True)
    tts = EspeakTTS()
    tts.set_output(sink)
    backend = LLMBackend(openai.OpenAI(base_url=fake_llm.base_url, api_key="test-key"), "fake-model")
    screen = io.StringIO()
    with create_pipe_input() as pipe:
        s = Session(
            Chat(tts, backend, input=pipe, output=Vt100_Output(screen, lambda: Size(40, 200), term="xterm")),
            pipe, screen, sink,
        )
        assert s.reply("hi") == {"role": "assistant", "content": "Hello there. How can I help you today?"}
        s.quit()
    assert fake_llm.requests[0]["messages"] == [{"role": "user", "content": "hi"}]
    assert sink.seconds > 1.0


def test_an_unreachable_llm_is_one_error_line_and_the_chat_goes_on(no_thread_leak):
    openai = pytest.importorskip("openai", reason="needs openai: pip install 'voicekit[openai]'")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="test-key", max_retries=0)
    tts = EspeakTTS()
    tts.set_output(MemorySink())
    screen = io.StringIO()
    with create_pipe_input() as pipe:
        output = Vt100_Output(screen, lambda: Size(40, 200), term="xterm")
        s = Session(Chat(tts, LLMBackend(client, "fake-model"), input=pipe, output=output), pipe, screen, MemorySink())
        s.command("hello", "error: APIConnectionError")
        assert s.chat.history == []  # nothing unanswered left behind
        s.command("/history", "(no messages yet)")
        s.quit()
    assert "test-key" not in s.text


def test_responder_streams_markdown_at_its_pace():
    tokens = list(Responder(tokens_per_second=None).reply([{"role": "user", "content": "cats"}]))
    text = "".join(tokens)
    for markdown in ("#", "**", "1. ", "```", "]("):
        assert markdown in text
    assert "Cats" in text
    assert tokenize(text) == tokens and len(tokens) > 60
    cancel = threading.Event()
    paced = Responder(tokens_per_second=20).reply([], cancel)
    start = time.monotonic()
    next(paced), next(paced)
    cancel.set()
    assert list(paced) == []
    assert time.monotonic() - start >= 0.09  # two tokens at 20/s
    with pytest.raises(ValueError):
        Responder(tokens_per_second=0)


# -- as a user runs it: a real pseudo-terminal ---------------------------------------------
def _spawn(args: list[str], env: dict[str, str]):
    pexpect = pytest.importorskip("pexpect", reason="needs pexpect: pip install 'voicekit[test]'")
    child = pexpect.spawn(
        sys.executable, ["-m", "voicekit", "chat", *args], env=env, encoding="utf-8", timeout=30, dimensions=(30, 120)
    )
    return pexpect, child


def _env(*pythonpath: str) -> dict[str, str]:
    """The test's own environment, minus any OpenAI key (so the offline responder answers)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, *sys.path])
    return env


def test_chat_in_a_terminal_writes_each_reply_to_wav(tmp_path):
    out = tmp_path / "x.wav"
    pexpect, child = _spawn(["--out", str(out), "--tokens-per-second", "300"], _env())
    child.expect("/help lists the commands")
    child.sendline("tell me about streams")
    child.expect("Each sentence is cut")
    child.expect(r"audio: (\S+\.wav)")
    wav_path = Path(child.match.group(1))
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert wav_path == tmp_path / "x-1.wav"
    with wave.open(str(wav_path)) as wav:
        assert wav.getnframes() / wav.getframerate() > 5.0


def test_chat_without_portaudio_says_so_and_goes_on_as_text(tmp_path):
    # A sounddevice that fails to load is exactly what a machine without libportaudio2 shows.
    (tmp_path / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    pexpect, child = _spawn(["--tokens-per-second", "300"], _env(str(tmp_path)))
    child.expect("no usable audio device")
    child.expect("apt-get install libportaudio2")
    child.expect("/help lists the commands")
    child.sendline("hello")
    child.expect("Text arrives token by token")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_chat_in_a_terminal_with_an_openai_compatible_server(fake_llm, tmp_path):
    pytest.importorskip("openai", reason="needs openai: pip install 'voicekit[openai]'")
    args = ["--base-url", fake_llm.base_url, "--model", "fake-model", "--out", str(tmp_path / "llm.wav")]
    pexpect, child = _spawn(args, _env())
    child.expect("fake-model at")
    child.sendline("hi")
    child.expect("How can I help you today")
    child.expect("audio: ")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert fake_llm.requests[0]["model"] == "fake-model"
