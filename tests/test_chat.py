"""voicekit chat: the REPL driven through prompt_toolkit's pipe input, and once in a real pty.

Speech is real: eSpeak synthesis into a MemorySink(realtime=True), which plays
(and keeps only what was heard) at the speed of a sound card.
"""

from __future__ import annotations

import functools
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
from typing import Any

import numpy as np
import pytest

pytest.importorskip("prompt_toolkit", reason="needs prompt_toolkit: pip install 'voicekit[chat]'")

from prompt_toolkit.data_structures import Size  # noqa: E402
from prompt_toolkit.input import create_pipe_input  # noqa: E402
from prompt_toolkit.output.vt100 import Vt100_Output  # noqa: E402

from tests import helpers  # noqa: E402
from voicekit import EspeakTTS, MemorySink  # noqa: E402
from voicekit.backends import LLMChat  # noqa: E402
from voicekit.chat import Chat  # noqa: E402
from voicekit.responder import Responder, tokenize  # noqa: E402

from .test_cli import NO_DEVICE, NO_PORTAUDIO, fake_sounddevice_env, no_cloud_env  # noqa: E402

SHORT = "## Hi\n\nHello **there**, this is a short reply."
LONG = (
    "# A long answer\n\nThis reply goes on for quite a while, so that there is time to interrupt it. "
    "It has a **second** sentence with a few more words in it. A third sentence keeps the voice busy. "
    "The fourth sentence is here too. And a fifth one, which nobody should hear to the end.\n"
)
wait_for = functools.partial(helpers.wait_for, timeout=20.0)  # a chat turn on a busy machine
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


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
        backend = Responder(tokens_per_second=tokens_per_second, script=script)
        s = Session(Chat(tts, backend, sink=sink, input=pipe, output=output, **kwargs), pipe, screen, sink)
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
    # the screen shows the markdown rendered; the finished line reaches the scrollback from the
    # UI loop, which on a busy machine can come just after the reply is recorded
    wait_for(lambda: "Hello there, this is a short reply." in s.text, what="the reply's line in the scrollback")
    assert s.sink.seconds > 1.0  # ... and the speaker got the whole reply
    s.quit()


MARKDOWN = (
    "## A heading\n\nSome **bold** and *italic* words, `inline code` and a [link](https://example.com).\n\n"
    "- first item\n* second item\n\n```python\nprint('not read aloud')\n```\n\nThe end.\n"
)


def _terminal(s: Session) -> Any:
    """The chat's screen as a terminal shows it, with each character's attributes."""
    pyte = pytest.importorskip("pyte", reason="needs pyte: pip install 'voicekit[test]'")
    screen = pyte.Screen(200, 40)
    screen.set_mode(pyte.modes.LNM)  # a tty turns "\n" into CR LF
    pyte.Stream(screen).feed(s.screen.getvalue())
    return screen


def _cells(screen: Any, text: str) -> list[Any]:
    """The cells of the first row showing ``text``."""
    for y, row in enumerate(screen.display):
        x = row.find(text)
        if x >= 0:
            return [screen.buffer[y][x + i] for i in range(len(text))]
    raise AssertionError(f"{text!r} is not on the screen:\n" + "\n".join(screen.display))


def test_markdown_is_rendered_on_screen_and_code_is_not_spoken(session):
    from voicekit import clean_for_speech

    s = session([MARKDOWN])
    assert s.reply("show me markdown") == {"role": "assistant", "content": MARKDOWN}  # the history keeps it as sent
    s.quit()
    screen = _terminal(s)
    shown = "\n".join(screen.display)
    for markup in ("##", "**", "```", "](", "`inline"):
        assert markup not in shown, shown
    assert all(c.bold for c in _cells(screen, "A heading"))
    assert all(c.bold for c in _cells(screen, "bold")) and not _cells(screen, "Some")[0].bold
    assert all(c.italics for c in _cells(screen, "italic"))
    assert all(c.underscore for c in _cells(screen, "link"))
    assert "• first item" in shown and "• second item" in shown
    label = _cells(screen, "python code (not spoken)")
    code = _cells(screen, "print('not read aloud')")
    the_end = _cells(screen, "The end.")
    assert {c.fg for c in label + code} == {"brightblack"} and the_end[0].fg == "default"  # dimmed, then not
    # what is spoken: the speech filter drops the markup and the code block
    spoken = clean_for_speech(MARKDOWN)
    assert "A heading" in spoken and "read aloud" not in spoken and "*" not in spoken and "#" not in spoken


def _barge_in_with(s: Session, key: str) -> float:
    """Ask for LONG, press ``key`` a second into its speech: the seconds heard after the key.

    Checks that the speaker is silent from then on and that the history keeps only what was heard.
    """
    s.type("tell me everything\r")
    wait_for(lambda: s.sink.seconds > 1.0, what="speech to start")
    before = s.sink.seconds
    s.type(key)
    wait_for(lambda: not s.chat.speaking, timeout=5, what=f"{key!r} to interrupt")
    after = s.sink.seconds
    time.sleep(0.3)
    assert s.sink.seconds == after  # silent from then on
    content = s.chat.history[-1]["content"]
    assert content.endswith("[interrupted]")
    heard = content.removesuffix("[interrupted]").split()
    assert 2 <= len(heard) < len(LONG.split()) // 2
    assert "fifth" not in content
    wait_for(lambda: "[interrupted]" in s.text, what="the interrupted mark in the scrollback")
    return after - before


def test_escape_barges_in_and_history_keeps_only_what_was_heard(session):
    s = session([LONG], tokens_per_second=None)
    # Esc waits out prompt_toolkit's key timeout (0.1 s); generous bound for a busy machine.
    assert _barge_in_with(s, "\x1b") < 1.5
    s.quit()


def test_typing_barges_in_and_the_key_stays_on_the_input_line(session):
    s = session([LONG, SHORT], tokens_per_second=None)
    # the first key of the next message stops the reply, with no key timeout to wait out
    assert _barge_in_with(s, "w") < 1.0
    assert len(s.chat.history) == 2  # nothing was sent: the key is on the input line ...
    s.type("hat now?\r")  # ... and starts the next message
    wait_for(lambda: len(s.chat.history) == 4 and not s.chat.speaking, what="the second reply")
    assert s.chat.history[2] == {"role": "user", "content": "what now?"}
    assert s.chat.history[3]["content"] == SHORT
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
    # the old reply's tail is printed above the new message, not after it
    # (the last "you> second question" is the scrollback line; earlier ones were the prompt being typed)
    screen = s.text
    assert screen.index("[interrupted]") < screen.rindex("you> second question") < screen.index("Hello there")

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
    s.command("/voice", "voice: the default")
    s.command("/voice en-us", "voice: en-us")
    s.command("/voice no-such-voice", "/voice: ")
    s.command("/save nothing.wav", "nothing of the last reply was heard")
    s.command("/bogus", "unknown command /bogus")

    s.reply("hello")
    s.command("/history", "you> hello")
    saved = tmp_path / "last.wav"
    s.command(f"/save {saved}", "saved the last reply")
    with wave.open(str(saved)) as wav:
        assert wav.getnframes() / wav.getframerate() == pytest.approx(s.sink.seconds, abs=0.05)

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
    backend = LLMChat(openai.OpenAI(base_url=fake_llm.base_url, api_key="test-key"), "fake-model")
    screen = io.StringIO()
    with create_pipe_input() as pipe:
        s = Session(
            Chat(tts, backend, sink=sink, input=pipe, output=Vt100_Output(screen, lambda: Size(40, 200), term="xterm")),
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
        sink = MemorySink()
        chat = Chat(tts, LLMChat(client, "fake-model"), sink=sink, input=pipe, output=output)
        s = Session(chat, pipe, screen, sink)
        s.command("hello", "error: APIConnectionError")
        assert s.chat.history == []  # nothing unanswered left behind
        s.command("/history", "(no messages yet)")
        s.quit()
    assert "test-key" not in s.text


def test_commands_are_echoed_and_esc_then_slash_starts_a_command(session):
    s = session([SHORT])
    s.command("/rate 1.2", "rate: 1.2")
    assert "you> /rate 1.2" in s.text  # in the scrollback, like a message
    # Esc while idle, then `/help` within a second: not Meta-/ (complete), but /help
    s.type("\x1b")
    time.sleep(0.05)
    s.command("/help", "/save-transcript FILE")
    assert "you> /help" in s.text
    s.quit()


def test_save_writes_the_audio_that_was_heard(session, tmp_path):
    s = session([LONG], tokens_per_second=None)
    s.type("tell me\r")
    wait_for(lambda: s.sink.seconds > 1.5, what="speech to start")
    s.type("\x1b")
    wait_for(lambda: not s.chat.speaking, timeout=5, what="the interrupt")
    heard = s.sink.seconds  # the real-time sink keeps only what was played
    s.command("/rate 0.5", "rate: 0.5")  # a later setting must not change what is saved
    saved = tmp_path / "heard.wav"
    s.command(f"/save {saved}", "saved the last reply")
    with wave.open(str(saved)) as wav:
        audio = np.frombuffer(wav.readframes(wav.getnframes()), "<i2") / 32767
        assert wav.getframerate() == s.sink.samplerate
    assert len(audio) / s.sink.samplerate == pytest.approx(heard, abs=0.03)
    played = s.sink.audio.reshape(-1)[: len(audio)]
    assert np.abs(audio - played).max() < 1e-3  # the very samples played, not a new synthesis
    s.command("/save heard.txt", "is not a .wav file name")
    s.command(f"/save {tmp_path}/no/dir/x.wav", "there is no directory")
    s.quit()
    assert "Errno" not in s.text and "FileNotFoundError" not in s.text


def test_messages_read_as_words_not_python(session):
    s = session([SHORT])
    rates = "x-slow, slow, medium, fast, x-fast"
    s.command("/rate banana", f"/rate: rate must be a number from 0.1 to 10 or one of {rates}, got 'banana'")
    s.command("/rate 50", f"/rate: rate must be a number from 0.1 to 10 or one of {rates}, got '50'")
    s.command("/voice no-such-voice", "/voice: no espeak voice 'no-such-voice'; /voices lists them")
    s.command("/save-transcript /no/such/dir/t.txt", "there is no directory '/no/such/dir'")
    s.quit()
    for python in ("could not convert", "voices()", "Errno", "Error:", "['", "50.0"):
        assert python not in s.text


def test_voices_browse_by_language_and_complete(session):
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    from voicekit.chat import _Completer

    s = session([SHORT])
    completions = list(_Completer(s.chat).get_completions(Document("/voice en"), CompleteEvent()))
    ids = [c.text for c in completions]
    assert "gmw/en-US" in ids and "gmw/en-GB-x-rp" in ids and len(ids) < 20
    assert all(c.start_position == -2 for c in completions)
    s.command("/voices", "/voices LANG lists one language's")
    assert " en " in s.text or " en\n" in s.text
    s.command("/voices en", "English (America)")
    assert "Afrikaans" not in s.text  # one language, not all 141 voices
    s.command("/voice gmw/en-GB-x-rp", "voice: gmw/en-GB-x-rp")
    s.quit()


def test_sync_text_shows_only_heard_words(session):
    s = session([LONG], tokens_per_second=None, sync_text=True)
    s.type("tell me everything\r")
    wait_for(lambda: s.sink.seconds > 1.5, what="speech to start")
    assert "fifth" not in s.text and "**" not in s.text  # the text does not scroll ahead of the voice
    s.type("\x1b")
    wait_for(lambda: not s.chat.speaking, timeout=5, what="the interrupt")
    content = s.chat.history[-1]["content"]
    assert content.endswith("[interrupted]")
    wait_for(lambda: content in " ".join(s.text.split()), what="the heard words on screen")
    s.command("/sync", "sync off")
    s.quit()


def test_clear_system_prompt_and_transcript(session, tmp_path):
    s = session([SHORT], system="Answer in one sentence.")
    s.reply("hello")
    assert s.chat.messages()[0] == {"role": "system", "content": "Answer in one sentence."}
    transcript = tmp_path / "chat.txt"
    s.command(f"/save-transcript {transcript}", "saved the conversation (2 messages)")
    text = transcript.read_text(encoding="utf-8")
    assert text.startswith("system> Answer in one sentence.\nyou> hello\nbot> ## Hi\n")
    s.command("/clear", "history cleared")
    assert s.chat.history == []
    s.command("/history", "system> Answer in one sentence.")
    s.quit()


def test_system_prompt_reaches_the_model(fake_llm, no_thread_leak):
    openai = pytest.importorskip("openai", reason="needs openai: pip install 'voicekit[openai]'")
    tts = EspeakTTS()
    sink = MemorySink()
    backend = LLMChat(openai.OpenAI(base_url=fake_llm.base_url, api_key="test-key"), "fake-model")
    screen = io.StringIO()
    with create_pipe_input() as pipe:
        output = Vt100_Output(screen, lambda: Size(40, 200), term="xterm")
        chat = Chat(tts, backend, sink=sink, system="Be brief.", input=pipe, output=output)
        s = Session(chat, pipe, screen, sink)
        s.reply("hi")
        s.quit()
    assert fake_llm.requests[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]


def test_engine_without_credentials_is_refused(session, monkeypatch):
    from voicekit.cli import build_parser, tts_factory
    from voicekit.registry import ENGINES

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    s = session([SHORT])
    s.chat.make_tts = tts_factory(build_parser().parse_args(["chat"]))
    s.chat.engines = ENGINES
    s.command("/engine openai", "/engine: the openai engine needs an API key: set OPENAI_API_KEY")
    assert s.chat.engine == "espeak"
    assert s.reply("still there?")["content"] == SHORT  # spoken by eSpeak as before
    s.quit()


def test_failed_speech_shows_the_whole_reply_and_keeps_it(no_thread_leak):
    from voicekit import DeviceSink

    tts = EspeakTTS()
    screen = io.StringIO()
    with create_pipe_input() as pipe:
        output = Vt100_Output(screen, lambda: Size(40, 200), term="xterm")
        backend = Responder(tokens_per_second=None, script=[LONG])
        # a device that is not there: playback fails at the first sentence
        chat = Chat(tts, backend, sink=DeviceSink("no-such-device-anywhere"), input=pipe, output=output)
        s = Session(chat, pipe, screen, MemorySink())
        assert s.reply("hello") == {"role": "assistant", "content": LONG}  # the reply as shown, whole
        wait_for(lambda: "speech failed: " in s.text, what="the failure note")
        s.quit()
    wait_for(lambda: "nobody should hear to the end." in s.text, what="the whole reply as text")  # not cut short
    assert "Traceback" not in s.text


def test_responder_streams_markdown_at_its_pace():
    tokens = list(Responder(tokens_per_second=None).reply([{"role": "user", "content": "cats"}]))
    text = "".join(tokens)
    for markdown in ("#", "**", "1. ", "```"):
        assert markdown in text
    assert "Cats" in text
    second = "".join(Responder(tokens_per_second=None).reply([{"role": "assistant", "content": text}, {"role": "user", "content": "and?"}]))
    assert "[the voicekit README](README.md)" in second and "- " in second
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
def quit_cleanly(pexpect: Any, child: Any) -> None:
    """``/quit`` ends the chat with exit code 0."""
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


@pytest.fixture
def spawn() -> Iterator[Callable[..., tuple[Any, Any]]]:
    """Starts `voicekit chat` in a real pseudo-terminal; every child is ended at teardown."""
    pexpect = pytest.importorskip("pexpect", reason="needs pexpect: pip install 'voicekit[test]'")
    children = []

    def start(args: list[str], env: dict[str, str], cwd: str | None = None) -> tuple[Any, Any]:
        child = pexpect.spawn(
            sys.executable, ["-m", "voicekit", "chat", *args], env=env, encoding="utf-8", timeout=30,
            dimensions=(80, 200), cwd=cwd,
        )  # fmt: skip
        child.logfile_read = io.StringIO()  # everything the user saw
        children.append(child)
        return pexpect, child

    yield start
    for child in children:
        child.close(force=True)


def _env(*pythonpath: str) -> dict[str, str]:
    """The test's own environment, minus any OpenAI key (so the offline responder answers)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, *sys.path])
    return env


def test_chat_in_a_terminal_writes_each_reply_to_wav(tmp_path, spawn):
    out = tmp_path / "x.wav"
    pexpect, child = spawn(["--out", str(out), "--tokens-per-second", "300"], _env())
    child.expect("/help lists the commands")
    child.sendline("tell me about streams")
    child.expect("Each sentence is cut")
    child.expect(r"audio: (\S+\.wav)")
    wav_path = Path(child.match.group(1))
    quit_cleanly(pexpect, child)
    assert wav_path == tmp_path / "x-1.wav"
    with wave.open(str(wav_path)) as wav:
        assert wav.getnframes() / wav.getframerate() > 5.0


@pytest.mark.parametrize(
    "sounddevice, reason",
    [
        (NO_PORTAUDIO, "the PortAudio library is missing: install it (`apt-get install libportaudio2`)"),
        (NO_DEVICE, "no audio output device found: connect a sound card"),
    ],
    ids=["no-portaudio", "no-device"],
)
def test_chat_without_a_sound_card_writes_each_reply_to_a_wav(sounddevice, reason, tmp_path, spawn):
    env = fake_sounddevice_env(tmp_path, sounddevice)
    env = {**_env(env["PYTHONPATH"]), "TMPDIR": str(tmp_path)}
    pexpect, child = spawn(["--engine", "espeak", "--tokens-per-second", "40"], env, cwd=str(tmp_path))
    child.expect(r"voicekit: (.*); replies go to WAV files in (\S+)\r\n")
    assert child.match.group(1).startswith(reason) and "--out" not in child.match.group(1)
    folder = Path(child.match.group(2))
    assert folder.parent == tmp_path
    child.expect("/help lists the commands")
    child.sendline("hello")
    child.expect(r"writing reply-1\.wav \(type or Esc to stop")  # the toolbar: nothing plays, a file is written
    child.expect(r"to stop me at any time\.")  # the reply's last words (Esc is bold)
    child.expect(r"\(audio: (\S+)\)")
    assert Path(child.match.group(1)) == folder / "reply-1.wav"
    child.sendline("/save saved.wav")
    child.expect(r"saved the last reply \(\d+\.\d s, as heard\) to saved.wav")
    child.sendline("/mute")
    child.expect("muted: replies are shown, not spoken")
    child.sendline("/history")
    child.expect("## Hello")  # the whole reply is in the history
    quit_cleanly(pexpect, child)
    seen = child.logfile_read.getvalue()
    assert "Traceback" not in seen and "speaking (type or Esc to stop)" not in seen and "speech stays off" not in seen
    for wav_file in (folder / "reply-1.wav", tmp_path / "saved.wav"):
        with wave.open(str(wav_file)) as wav:
            assert wav.getnframes() / wav.getframerate() > 5.0
    assert sorted(p.name for p in folder.iterdir()) == ["reply-1.wav"]


def test_engine_lists_what_can_speak_and_piper_names_its_voice(tmp_path, spawn):
    from voicekit.registry import default_engine

    if default_engine() != "piper":
        pytest.skip("needs Piper: pip install 'voicekit[piper]'")
    pexpect, child = spawn(["--engine", "piper", "--out", str(tmp_path / "r.wav")], no_cloud_env(_env(), tmp_path))
    child.expect("/help lists the commands")
    child.sendline("/voice")
    child.expect(r"voice: (\S+) \(/voices lists them")
    assert child.match.group(1) == "en_US-joe-medium"
    child.sendline("/engine")
    child.expect(r"engine: piper \(available: ([^\r\n]*)\)")
    assert child.match.group(1) == "piper, kokoro, espeak; polly needs AWS credentials; openai needs an API key"
    child.sendline("/engine espeak")
    child.expect("engine: espeak")
    quit_cleanly(pexpect, child)


def test_chat_in_a_terminal_with_an_openai_compatible_server(fake_llm, tmp_path, spawn):
    pytest.importorskip("openai", reason="needs openai: pip install 'voicekit[openai]'")
    args = ["--base-url", fake_llm.base_url, "--model", "fake-model", "--out", str(tmp_path / "llm.wav")]
    pexpect, child = spawn(args, _env())
    child.expect("fake-model at")
    child.sendline("hi")
    child.expect("How can I help you today")
    child.expect("audio: ")
    quit_cleanly(pexpect, child)
    assert fake_llm.requests[0]["model"] == "fake-model"


def _normalized(line: str) -> str:
    return re.sub(r"\(\d+\.\d s, as heard\)", "(N s, as heard)", line.rstrip())


def test_readme_transcript_is_the_real_output(tmp_path, alsa_null_env, spawn):
    # The session in docs/getting-started.md, replayed as typed into `voicekit chat` in a pty
    # and rendered by a terminal emulator: every line on the screen must be the page's.
    pytest.importorskip("pexpect", reason="needs pexpect: pip install 'voicekit[test]'")
    pyte = pytest.importorskip("pyte", reason="needs pyte: pip install 'voicekit[test]'")
    from voicekit.registry import default_engine

    if default_engine() != "piper":
        pytest.skip("the documented session is `scripts/demo`, which speaks with Piper: pip install '.[piper]'")
    readme = (Path(__file__).parent.parent / "docs" / "getting-started.md").read_text(encoding="utf-8")
    expected = [_normalized(line) for line in readme.split("$ scripts/demo\n", 1)[1].split("\n```\n", 1)[0].splitlines()]
    env = no_cloud_env(alsa_null_env, tmp_path)  # the page's /engine line lists what can speak
    env["PROMPT_TOOLKIT_NO_CPR"] = "1"  # the emulator answers no cursor-position requests
    pexpect, child = spawn([], env, cwd=str(tmp_path))
    screen = pyte.Screen(200, 80)
    terminal = pyte.Stream(screen)

    def rendered() -> list[str]:
        rows = [_normalized(row) for row in screen.display]
        while rows and not rows[-1]:
            rows.pop()
        return rows

    def settle() -> None:
        """Read until the terminal has been quiet for a moment: no redraw is half done."""
        while True:
            try:
                terminal.feed(child.read_nonblocking(65536, timeout=0.3))
            except pexpect.TIMEOUT:
                return

    def read_until(line: str) -> None:
        """Until ``line`` is on the screen and no reply is still speaking."""
        deadline = time.monotonic() + 90
        settle()
        while line not in rendered() or any("speaking (type or Esc to stop)" in row for row in rendered()):
            assert time.monotonic() < deadline, f"timed out waiting for {line!r}; screen:\n" + "\n".join(rendered())
            settle()

    prompts = [i for i, line in enumerate(expected) if line.startswith("you> ")]
    read_until(expected[0])
    for here, after in zip(prompts, [*prompts[1:], None]):
        child.sendline(expected[here][len("you> ") :])
        if after is not None:
            read_until(expected[after - 1])
    child.expect(pexpect.EOF)
    terminal.feed(child.before or "")
    child.close()
    assert child.exitstatus == 0
    assert rendered() == expected
    with wave.open(str(tmp_path / "last.wav")) as wav:
        assert wav.getnframes() / wav.getframerate() > 10
