"""``voicekit chat``: the guide's ``ChatBot`` pattern as a terminal voice chat.

Each reply gets its own stream (``create_stream`` ... ``done()``), fed token by
token through ``voicekit.adapters`` while the same tokens are printed. Barge-in:
sending a new message, or Esc / Ctrl-C while the bot speaks, interrupts the
reply; the history then keeps only the words that were heard, marked as
interrupted. Only voicekit's public API is used: this module doubles as a
demonstration of it.
"""

from __future__ import annotations

import asyncio
import contextvars
import shlex
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.application import get_app_or_none
from prompt_toolkit.application.current import create_app_session
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output import Output
from prompt_toolkit.styles import Style

from . import BaseTTS, VoicekitError, WavSink, clean_for_speech
from .adapters import INTERRUPTED_MARK, SpokenText, speak_iter, stream_chat
from .responder import Responder

__all__ = ["Backend", "LLMBackend", "ResponderBackend", "Chat"]

Message = Mapping[str, str]

HELP = """\
Type a message and press Enter. While the bot speaks, Esc or Ctrl-C stops it, and
sending a new message interrupts it: the history keeps only what you heard.
  /voice [ID]       list voices, or switch voice
  /rate [FACTOR]    show or set the speaking rate (1.0 is normal)
  /engine [NAME]    show or switch the speech engine
  /mute             turn speech off or back on
  /save FILE.wav    save the last reply as a WAV file
  /history          show the conversation so far
  /help             this help
  /quit             leave (Ctrl-D works too)"""

_STYLE = Style.from_dict({"you": "ansicyan bold", "bot": "ansigreen bold", "note": "ansiyellow"})


class Backend(Protocol):
    """Where replies come from: speaks one on ``stream`` and yields its text pieces."""

    name: str

    def respond(self, stream: Any, messages: Sequence[Message]) -> SpokenText: ...


class ResponderBackend:
    """The built-in offline responder, spoken through ``speak_iter``."""

    name = "offline responder"

    def __init__(self, responder: Responder) -> None:
        self.responder = responder

    def respond(self, stream: Any, messages: Sequence[Message]) -> SpokenText:
        return speak_iter(stream, self.responder.reply(messages))


class LLMBackend:
    """An OpenAI-compatible chat model, spoken through ``stream_chat``."""

    def __init__(self, client: Any, model: str) -> None:
        self.client = client
        self.model = model
        self.name = f"{model} at {client.base_url}"

    def respond(self, stream: Any, messages: Sequence[Message]) -> SpokenText:
        return stream_chat(self.client, list(messages), stream=stream, model=self.model)


class _Silent:
    """Stands in for a stream while muted: the text is shown, nothing is spoken."""

    heard_text = ""

    def feed(self, text: str) -> None:
        pass

    def interrupt(self) -> str:
        return ""


@dataclass
class _Turn:
    """The bot reply in progress, fed and played on its own worker thread."""

    reply: SpokenText
    stream: Any  # a SpeechStream, or _Silent while muted
    thread: threading.Thread
    spoken: str = ""  # what was heard (speech-filtered), for /save

    def interrupt(self) -> None:
        self.reply.interrupt()


class _Completer(Completer):
    """Completes command names, then voice ids and engine names."""

    def __init__(self, chat: Chat) -> None:
        self.chat = chat

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/"):
            return
        if " " not in text:
            candidates: Iterable[str] = (c for c in COMMANDS if c.startswith(text))
            word = text
        else:
            command, _, word = text.partition(" ")
            candidates = self.chat.arguments(command)
        for candidate in candidates:
            if candidate.startswith(word):
                yield Completion(candidate, start_position=-len(word))


class Chat:
    """A terminal voice chat with barge-in.

    Speech goes to ``tts``'s output (``tts.set_output``), or, with
    ``reply_wav``, each reply is written to its own numbered WAV file
    (``reply-1.wav``, ...). ``make_tts(name)`` builds the TTS for ``/engine``.
    ``input``/``output`` are prompt_toolkit's (tests pass a pipe input).
    The chat owns ``tts``: it is cleaned up when :meth:`run` returns.
    """

    def __init__(
        self,
        tts: BaseTTS,
        backend: Backend,
        *,
        make_tts: Callable[[str], BaseTTS] | None = None,
        engine: str = "espeak",
        engines: Sequence[str] = (),
        rate: float = 1.0,
        reply_wav: Path | None = None,
        muted: bool = False,
        input: Input | None = None,
        output: Output | None = None,
    ) -> None:
        self.tts = tts
        self.backend = backend
        self.make_tts = make_tts
        self.engine = engine
        self.engines = tuple(engines) if make_tts else (engine,)
        self.rate = rate
        self.reply_wav = reply_wav
        self.muted = muted
        self.history: list[dict[str, str]] = []
        self._input = input
        self._output = output
        self._turn: _Turn | None = None
        self._last_spoken = ""
        self._replies = 0
        self._line = ""  # the reply's unfinished last line, shown above the prompt
        self._first_line = True
        self._voices: list[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._context: contextvars.Context | None = None
        self._quit = False

    # -- state the UI reads ------------------------------------------------------------
    @property
    def speaking(self) -> bool:
        """A reply is being generated or is still playing."""
        return self._turn is not None

    def arguments(self, command: str) -> list[str]:
        """Completion candidates for a command's argument."""
        if command == "/voice":
            if self._voices is None:
                try:
                    self._voices = [v.id for v in self.tts.get_voices()]
                except VoicekitError:
                    self._voices = []
            return self._voices
        if command == "/engine":
            return list(self.engines)
        if command == "/rate":
            return ["0.8", "1.0", "1.25", "1.5"]
        return []

    # -- the REPL ----------------------------------------------------------------------
    def run(self) -> None:
        """Run until /quit or Ctrl-D; always releases the TTS and its threads."""
        with create_app_session(input=self._input, output=self._output):
            try:
                asyncio.run(self._repl())
            finally:
                self.tts.cleanup()

    async def _repl(self) -> None:
        self._loop = asyncio.get_running_loop()
        # Worker callbacks must run in the UI's context, where the prompt_toolkit session lives.
        self._context = contextvars.copy_context()
        session: PromptSession[str] = PromptSession(
            self._prompt,
            completer=_Completer(self),
            complete_while_typing=True,
            key_bindings=self._key_bindings(),
            erase_when_done=True,
            style=_STYLE,
        )
        # A lone Esc is a barge-in key: don't wait the default half second for a sequence.
        session.app.ttimeoutlen = 0.1
        self._note(f"voicekit chat: {self.backend.name}, {self.engine} voice. /help lists the commands.")
        try:
            while not self._quit:
                try:
                    text = await session.prompt_async()
                except KeyboardInterrupt:
                    self._note("(Ctrl-D or /quit to leave)")
                    continue
                except EOFError:
                    break
                await self._handle(text.strip())
        finally:
            await self._stop_turn()

    def _prompt(self) -> FormattedText:
        if not self._line:
            return FormattedText([("class:you", "you> ")])
        prefix = "bot> " if self._first_line else "     "
        return FormattedText([("class:bot", prefix), ("", self._line + "\n"), ("class:you", "you> ")])

    def _key_bindings(self) -> KeyBindings:
        keys = KeyBindings()

        @keys.add("escape", filter=Condition(lambda: self.speaking), eager=True)
        @keys.add("c-c", filter=Condition(lambda: self.speaking))
        def _(event: KeyPressEvent) -> None:
            self._barge_in()

        return keys

    async def _handle(self, text: str) -> None:
        if not text:
            return
        if text.startswith("/"):
            await self._command(text)
            return
        self._print([("class:you", "you> "), ("", text)])
        await self._stop_turn()
        self.history.append({"role": "user", "content": text})
        self._start_turn()

    # -- replies -----------------------------------------------------------------------
    def _start_turn(self) -> None:
        self._replies += 1
        if self.muted:
            stream: Any = _Silent()
        else:
            stream = self.tts.create_stream(sink=self._reply_wav())
        try:
            reply = self.backend.respond(stream, list(self.history))
        except Exception as exc:  # noqa: BLE001 - a failing backend must not end the chat
            self._close_stream(stream)
            self.history.pop()  # unanswered: sending it again must not double it
            self._note(f"error: {_describe(exc)}")
            return
        thread = threading.Thread(target=self._speak, name="voicekit-chat-reply", daemon=True)
        self._turn = _Turn(reply, stream, thread)
        thread.start()

    def _reply_wav(self) -> WavSink | None:
        return WavSink(self._wav_path()) if self.reply_wav is not None else None

    def _wav_path(self) -> Path:
        assert self.reply_wav is not None
        return self.reply_wav.with_name(f"{self.reply_wav.stem}-{self._replies}{self.reply_wav.suffix}")

    def _speak(self) -> None:
        """Worker: feed and show the reply, then let it finish playing (ChatBot.finish_response)."""
        turn = self._turn
        assert turn is not None
        error = None
        try:
            for piece in turn.reply:
                self._post(self._show, piece)
            if not isinstance(turn.stream, _Silent):
                turn.stream.done()
                turn.stream.wait_until_done()
        except Exception as exc:  # noqa: BLE001 - shown in the chat, which goes on
            error = exc
        finally:
            turn.spoken = turn.reply.heard_text if not isinstance(turn.stream, _Silent) else ""
            self._close_stream(turn.stream)
            self._post(self._finish, turn, error)

    def _close_stream(self, stream: Any) -> None:
        if not isinstance(stream, _Silent):
            try:
                stream.close()
            except VoicekitError:
                pass  # the reply's own error, if any, is what gets reported

    def _finish(self, turn: _Turn, error: Exception | None) -> None:
        """Back on the UI loop: record the reply once its worker is done."""
        if turn.reply.interrupted:
            self._line = (self._line.rstrip() + INTERRUPTED_MARK).lstrip()
        self._flush_line()
        if error is not None:
            self._note(f"error: {_describe(error)}")
        silent = isinstance(turn.stream, _Silent)
        if silent and turn.reply.interrupted:
            # Muted, the user read what was shown: that is what "heard" means here.
            self.history.append({"role": "assistant", "content": turn.reply.text + INTERRUPTED_MARK})
        elif turn.reply.text:
            self.history.append(turn.reply.as_message())
        self._last_spoken = clean_for_speech(turn.reply.text) if silent else turn.spoken
        if self._turn is turn:
            self._turn = None
        if self.reply_wav is not None and turn.spoken:
            self._note(f"(audio: {self._wav_path()})")
        self._invalidate()

    def _barge_in(self) -> None:
        if self._turn is not None:
            self._turn.interrupt()

    async def _stop_turn(self) -> None:
        """Interrupt the reply in progress and wait until it is recorded."""
        turn = self._turn
        if turn is None:
            return
        turn.interrupt()
        await asyncio.to_thread(turn.thread.join)
        await asyncio.sleep(0)  # let the posted _finish run
        while self._turn is turn:
            await asyncio.sleep(0.01)

    # -- screen ------------------------------------------------------------------------
    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn, *args, context=self._context)

    def _show(self, piece: str) -> None:
        """Complete lines go to the scrollback; the unfinished one stays above the prompt."""
        self._line += piece
        if "\n" in self._line:
            done, _, self._line = self._line.rpartition("\n")
            for line in done.split("\n"):
                self._print(self._bot_line(line))
        self._invalidate()

    def _bot_line(self, line: str) -> list[tuple[str, str]]:
        prefix = [("class:bot", "bot> ")] if self._first_line else [("", "     ")]
        self._first_line = False
        return [*prefix, ("", line)]

    def _flush_line(self) -> None:
        if self._line:
            self._print(self._bot_line(self._line))
        self._line = ""
        self._first_line = True

    def _print(self, fragments: list[tuple[str, str]]) -> None:
        print_formatted_text(FormattedText(fragments), style=_STYLE)

    def _note(self, text: str) -> None:
        self._print([("class:note", text)])

    def _invalidate(self) -> None:
        app = get_app_or_none()
        if app is not None:
            app.invalidate()

    # -- commands ----------------------------------------------------------------------
    async def _command(self, text: str) -> None:
        try:
            command, *args = shlex.split(text)
        except ValueError as exc:
            self._note(f"can't parse {text!r}: {exc}")
            return
        handler = COMMANDS.get(command)
        if handler is None:
            self._note(f"unknown command {command}; /help lists the commands")
            return
        try:
            await handler(self, args)
        except (VoicekitError, ValueError, OSError) as exc:
            self._note(f"{command}: {_describe(exc)}")

    async def _cmd_voice(self, args: list[str]) -> None:
        if not args:
            voices = self.tts.get_voices()
            self._note("\n".join(f"{v.id:<20} {v.language:<8} {v.name}" for v in voices) or "no voices")
            return
        self.tts.set_voice(args[0])
        self._note(f"voice: {args[0]}")

    async def _cmd_rate(self, args: list[str]) -> None:
        if args:
            rate = float(args[0])
            if not rate > 0:
                raise ValueError("the rate must be a positive factor, e.g. 1.25")
            self.tts.set_property("rate", rate)
            self.rate = rate
        self._note(f"rate: {self.rate:g}")

    async def _cmd_engine(self, args: list[str]) -> None:
        if args:
            if self.make_tts is None or args[0] not in self.engines:
                raise ValueError(f"unknown engine {args[0]!r}; choose from {', '.join(self.engines)}")
            tts = self.make_tts(args[0])
            if self.rate != 1.0:
                tts.set_property("rate", self.rate)
            await self._stop_turn()
            old, self.tts, self.engine, self._voices = self.tts, tts, args[0], None
            old.cleanup()
        self._note(f"engine: {self.engine} (available: {', '.join(self.engines)})")

    async def _cmd_mute(self, args: list[str]) -> None:
        self.muted = not self.muted
        if self.muted:
            await self._stop_turn()
        self._note("muted: replies are shown, not spoken" if self.muted else "unmuted")

    async def _cmd_save(self, args: list[str]) -> None:
        if len(args) != 1:
            raise ValueError("usage: /save FILE.wav")
        if not self._last_spoken.strip():
            raise ValueError("there is no reply to save yet")
        path = Path(args[0]).expanduser()
        self.tts.synth_to_file(self._last_spoken, str(path))
        self._note(f"saved the last reply to {path}")

    async def _cmd_history(self, args: list[str]) -> None:
        if not self.history:
            self._note("(no messages yet)")
        for message in self.history:
            who = "you> " if message["role"] == "user" else "bot> "
            self._print([(f"class:{'you' if who == 'you> ' else 'bot'}", who), ("", message["content"])])

    async def _cmd_help(self, args: list[str]) -> None:
        self._note(HELP)

    async def _cmd_quit(self, args: list[str]) -> None:
        self._quit = True


COMMANDS: dict[str, Callable[[Chat, list[str]], Any]] = {
    "/voice": Chat._cmd_voice,
    "/rate": Chat._cmd_rate,
    "/engine": Chat._cmd_engine,
    "/mute": Chat._cmd_mute,
    "/save": Chat._cmd_save,
    "/history": Chat._cmd_history,
    "/help": Chat._cmd_help,
    "/quit": Chat._cmd_quit,
}


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text if isinstance(exc, (VoicekitError, ValueError)) and text else f"{type(exc).__name__}: {text}"
