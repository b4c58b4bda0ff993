"""``voicekit chat``: the guide's ``ChatBot`` pattern as a terminal voice chat.

Each reply gets its own stream (``create_stream`` ... ``done()``), fed token by
token through ``voicekit.adapters`` while the same tokens are printed (or, with
``sync_text``, while each word is printed as it is heard, from ``on_word``).
Barge-in: typing while the bot speaks (the first key stops the reply and
stays on the input line), Esc or Ctrl-C, or sending a new message interrupts
the reply; the history then keeps only the words that were heard,
marked as interrupted. The audio plays through a ``RecordingSink``, so
``/save`` writes what was heard, not a new synthesis. The screen shows the
reply's markdown rendered (headings, emphasis, bullets, dimmed code blocks);
the speech filter drops that markup and the code from what is spoken. Only
voicekit's public API is used: this module doubles as a demonstration of it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import shlex
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.application import get_app_or_none
from prompt_toolkit.application.current import create_app_session
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition, emacs_insert_mode, vi_insert_mode
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.key_binding.bindings.basic import if_no_repeat
from prompt_toolkit.key_binding.bindings.named_commands import get_by_name
from prompt_toolkit.keys import Keys
from prompt_toolkit.output import Output
from prompt_toolkit.styles import Style

from . import (
    BaseTTS,
    DeviceSink,
    NullSink,
    Recording,
    RecordingSink,
    Sink,
    SpeechStream,
    Voice,
    VoicekitError,
)
from .adapters import INTERRUPTED_MARK, SpokenText
from .backends import ChatBackend
from .contract import Cancel

__all__ = ["Chat"]

HELP = """\
Type a message and press Enter. While the bot speaks, start typing (or press Esc or
Ctrl-C) to interrupt it: the history keeps only what you heard. Ctrl-C at an empty
prompt, Ctrl-D or /quit leaves.
  /voice [ID]            show or switch the voice (Tab completes, e.g. /voice en<Tab>)
  /voices [LANG]         list the languages, or the voices of one (/voices en)
  /rate [FACTOR]         show or set the speaking rate (1.0 is normal)
  /engine [NAME]         show or switch the speech engine
  /mute                  turn speech off or back on
  /sync                  show words as they are heard, or as they arrive
  /save FILE.wav         save the audio of the last reply, as it was heard
  /save-transcript FILE  save the conversation as text
  /history               show the conversation so far
  /clear                 forget the conversation
  /help                  this help
  /quit                  leave (Ctrl-D works too)"""

# code is grey rather than "dim": prompt_toolkit knows dim only from 3.0.52
_STYLE = Style.from_dict(
    {"you": "ansicyan bold", "bot": "ansigreen bold", "note": "ansiyellow", "code": "ansibrightblack"}
)
_WHO = {"user": "you> ", "assistant": "bot> ", "system": "system> "}
_SELF_INSERT = get_by_name("self-insert")


class _Speech:
    """A reply's speech, as the adapters see a stream (feed, interrupt, heard_text).

    Speech may be off (muted: no stream) or fail midway (engine or device).
    Either way the reply goes on as text: nothing the model said is lost.
    """

    def __init__(self, stream: SpeechStream | None) -> None:
        self.stream = stream
        self.error: VoicekitError | None = None

    @property
    def on(self) -> bool:
        return self.stream is not None and self.error is None

    def feed(self, text: str) -> None:
        if self.stream is not None and self.error is None:
            try:
                self.stream.feed(text)
            except VoicekitError as exc:
                self.error = exc

    def interrupt(self) -> str:
        return self.stream.interrupt() if self.stream is not None else ""

    @property
    def heard_text(self) -> str:
        return self.stream.heard_text if self.stream is not None else ""

    def play_out(self) -> None:
        """Worker: the reply is complete; wait until it was heard (ChatBot.finish_response)."""
        if self.stream is not None and self.error is None:
            try:
                self.stream.done()
                self.stream.wait_until_done()
            except VoicekitError as exc:
                self.error = exc

    def close(self) -> None:
        if self.stream is not None:
            try:
                self.stream.close()
            except VoicekitError as exc:
                self.error = self.error or exc


@dataclass
class _Turn:
    """The bot reply in progress, fed and played on its own worker thread."""

    reply: SpokenText
    speech: _Speech
    recorder: RecordingSink | None
    sync: bool  # words are shown as they are heard
    wav: Path | None  # where its audio is saved when it is over, instead of playing
    thread: threading.Thread | None = None

    def interrupt(self) -> None:
        self.reply.interrupt()


class _Completer(Completer):
    """Completes command names, then each command's argument (voices by id or language)."""

    def __init__(self, chat: Chat) -> None:
        self.chat = chat

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/"):
            return
        if " " not in text:
            for command in COMMANDS:
                if command.startswith(text):
                    yield Completion(command, start_position=-len(text))
            return
        command, _, word = text.partition(" ")
        for candidate, meta in self.chat.completions(command, word):
            yield Completion(candidate, start_position=-len(word), display_meta=meta)


class _NoteHandler(logging.Handler):
    """voicekit's warnings as chat notes: one line, no traceback on the prompt.

    Records logged with a traceback are skipped: that failure also reaches the
    chat as an exception, which it reports itself.
    """

    def __init__(self, chat: Chat) -> None:
        super().__init__(logging.WARNING)
        self.chat = chat

    def emit(self, record: logging.LogRecord) -> None:
        if not record.exc_info:
            try:
                self.chat._post(self.chat._note, record.getMessage())
            except RuntimeError:  # the chat's loop is gone: nothing to show it on
                pass


class Chat:
    """A terminal voice chat with barge-in.

    Replies play on ``sink`` (default: the sound card), through a
    ``RecordingSink`` that keeps what was heard for ``/save``. With
    ``reply_wav``, each reply is written to its own numbered WAV file instead
    (``reply-1.wav``, ...). ``make_tts(name)`` builds the TTS for ``/engine``
    (raising ``VoicekitError`` if it can't); ``engine_problem(name)`` says why
    one of ``engines`` can't speak here ("needs AWS credentials"), or None.
    ``default_voice(name)`` is the voice id an engine starts with, if known.
    ``system`` is sent before the history. ``input``/``output`` are
    prompt_toolkit's (tests pass a pipe input). The chat owns ``tts``: it is
    cleaned up when :meth:`run` returns.
    """

    def __init__(
        self,
        tts: BaseTTS,
        backend: ChatBackend,
        *,
        sink: Sink | None = None,
        make_tts: Callable[[str], BaseTTS] | None = None,
        engine: str = "espeak",
        engines: Sequence[str] = (),
        engine_problem: Callable[[str], str | None] | None = None,
        default_voice: Callable[[str], str | None] | None = None,
        voice: str | None = None,
        rate: float | str | None = None,
        reply_wav: Path | None = None,
        muted: bool = False,
        sync_text: bool = False,
        system: str | None = None,
        input: Input | None = None,
        output: Output | None = None,
    ) -> None:
        self.tts = tts
        self.backend = backend
        self.make_tts = make_tts
        self.engine = engine
        self.engines = tuple(engines) if make_tts else (engine,)
        self.engine_problem = engine_problem
        self.default_voice = default_voice
        self.voice = voice
        self.rate = _number_or_word(rate) if rate is not None else None
        self.reply_wav = reply_wav
        self.muted = muted
        self.sync_text = sync_text
        self.system = system
        self.history: list[dict[str, str]] = []
        self._input = input
        self._output = output
        self._recorder = RecordingSink(sink or DeviceSink()) if reply_wav is None else None
        self._turn: _Turn | None = None
        self._last_recording: Recording | None = None
        self._replies = 0
        self._line = ""  # the reply's unfinished last line, shown above the prompt
        self._first_line = True
        self._markdown = _Markdown()
        self._voices: list[Voice] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._context: contextvars.Context | None = None
        self._quit = False

    # -- state the UI reads ------------------------------------------------------------
    @property
    def speaking(self) -> bool:
        """A reply is being generated or is still playing."""
        return self._turn is not None

    def messages(self) -> list[dict[str, str]]:
        """What the backend is sent: the system prompt, then the history."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + self.history

    def voices(self) -> list[Voice]:
        if self._voices is None:
            try:
                self._voices = self.tts.get_voices()
            except VoicekitError:
                self._voices = []
        return self._voices

    def completions(self, command: str, word: str) -> Iterable[tuple[str, str]]:
        """(candidate, description) pairs for a command's argument."""
        if command == "/voice":
            return ((v.id, f"{v.language} {v.name}") for v in self.voices() if _voice_matches(v, word))
        if command == "/voices":
            return ((lang, "") for lang in _languages(self.voices()) if lang.startswith(word.lower()))
        values = {"/engine": self.engines, "/rate": ("0.8", "1.0", "1.25", "1.5")}.get(command, ())
        return ((v, "") for v in values if v.startswith(word))

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
            rprompt=self._rprompt,
            completer=_Completer(self),
            complete_while_typing=True,
            key_bindings=self._key_bindings(),
            erase_when_done=True,
            style=_STYLE,
        )
        # A lone Esc is a barge-in key: don't wait the default half second for a sequence.
        session.app.ttimeoutlen = 0.1
        logger = logging.getLogger("voicekit")
        notes = _NoteHandler(self)
        logger.addHandler(notes)
        self._note(f"voicekit chat: {self.backend.name}, {self.engine} voice. /help lists the commands.")
        try:
            while not self._quit:
                try:
                    text = await session.prompt_async()
                except EOFError:
                    break
                await self._handle(text.strip())
        finally:
            await self._stop_turn()
            logger.removeHandler(notes)

    def _prompt(self) -> FormattedText:
        line = self._markdown.partial(self._line) if self._line else None
        if line is None:
            return FormattedText([("class:you", "you> ")])
        prefix = "bot> " if self._first_line else "     "
        return FormattedText([("class:bot", prefix), *line, ("", "\n"), ("class:you", "you> ")])

    def _rprompt(self) -> FormattedText:
        # The text of a reply arrives before its speech ends: say when a key still has something to stop.
        turn = self._turn
        if turn is None:
            return FormattedText([])
        if not turn.speech.on:
            doing = "replying"  # muted, or the speech failed
        else:
            doing = f"writing {turn.wav.name}" if turn.wav is not None else "speaking"
        return FormattedText([("class:note", f"{doing} (type or Esc to stop)")])

    def _key_bindings(self) -> KeyBindings:
        keys = KeyBindings()
        speaking = Condition(lambda: self.speaking)

        @keys.add("escape", filter=speaking, eager=True)
        @keys.add("c-c", filter=speaking)
        def _(event: KeyPressEvent) -> None:
            self._barge_in()

        # Barge-in by typing: the first printable key stops the reply at once, and is typed
        # as any key is (prompt_toolkit's own self-insert), so the next message starts with it.
        @keys.add(Keys.Any, filter=speaking & (emacs_insert_mode | vi_insert_mode), save_before=if_no_repeat)
        def _(event: KeyPressEvent) -> None:
            if event.data.isprintable():
                self._barge_in()
            _SELF_INSERT.call(event)

        # Ctrl-C with nothing to stop: drop the line typed so far, as a shell does; at an empty
        # prompt, leave like every other command on Ctrl-C (KeyboardInterrupt: exit code 130)
        @keys.add("c-c", filter=~speaking)
        def _(event: KeyPressEvent) -> None:
            if event.current_buffer.text:
                event.current_buffer.reset()
            else:
                event.app.exit(exception=KeyboardInterrupt())

        # Esc pressed just after a reply ended, then `/` for a command: that is not
        # Meta-/ (complete) but the start of the command.
        @keys.add("escape", "/", filter=~speaking)
        def _(event: KeyPressEvent) -> None:
            event.current_buffer.insert_text("/")

        return keys

    async def _handle(self, text: str) -> None:
        if not text:
            return
        if text.startswith("/"):
            self._print([("class:you", "you> "), ("", text)])
            await self._command(text)
            return
        await self._stop_turn()  # the old reply's tail goes above the new message
        self._print([("class:you", "you> "), ("", text)])
        self.history.append({"role": "user", "content": text})
        self._start_turn()

    # -- replies -----------------------------------------------------------------------
    def _start_turn(self) -> None:
        self._replies += 1
        recorder = None if self.muted else self._reply_recorder()
        sync = self.sync_text and recorder is not None
        wav = self._wav_path() if recorder is not None and self.reply_wav is not None else None
        speech = _Speech(None)
        try:
            if recorder is not None:
                on_word = self._on_word if sync else None
                speech = _Speech(self.tts.create_stream(sink=recorder, on_word=on_word))
            cancel = Cancel()
            reply = SpokenText(speech, self.backend.reply(self.messages(), cancel), abort=cancel.set)
        except Exception as exc:  # noqa: BLE001 - a failing backend must not end the chat
            speech.close()
            self.history.pop()  # unanswered: sending it again must not double it
            self._note(f"error: {_describe(exc)}")
            return
        turn = _Turn(reply, speech, recorder, sync, wav)
        turn.thread = threading.Thread(target=self._speak, args=(turn,), name="voicekit-chat-reply", daemon=True)
        self._turn = turn
        turn.thread.start()

    def _reply_recorder(self) -> RecordingSink:
        if self._recorder is None:
            # the file is written from the recording when the reply is over: complete, and as heard
            return RecordingSink(NullSink())
        self._recorder.take()  # nothing else plays on it: start this reply's recording
        return self._recorder

    def _wav_path(self) -> Path:
        assert self.reply_wav is not None
        return self.reply_wav.with_name(f"{self.reply_wav.stem}-{self._replies}{self.reply_wav.suffix}")

    def _on_word(self, info: dict[str, Any]) -> None:
        self._post(self._show_word, info["word"])

    def _speak(self, turn: _Turn) -> None:
        """Worker: feed and show the reply, then let it finish playing."""
        error = None
        try:
            for piece in turn.reply:
                if not turn.sync:
                    self._post(self._show, piece)
            turn.speech.play_out()
        except Exception as exc:  # noqa: BLE001 - shown in the chat, which goes on
            error = exc
        finally:
            turn.speech.close()
            self._post(self._finish, turn, error)

    def _finish(self, turn: _Turn, error: Exception | None) -> None:
        """Back on the UI loop: record the reply once its worker is done."""
        reply, speech = turn.reply, turn.speech
        if turn.sync and speech.error is not None:
            # the words shown so far were the heard ones; show the reply as text instead
            self._flush_line()
            self._show(reply.text)
        if reply.interrupted:
            self._line = (self._line.rstrip() + INTERRUPTED_MARK).lstrip()
        self._flush_line()
        if speech.error is not None:
            self._note(f"speech failed: {_describe(speech.error)}")
        if error is not None:
            self._note(f"error: {_describe(error)}")
        self._last_recording = turn.recorder.take() if turn.recorder is not None and speech.stream else None
        # the file is there before the reply counts as over
        if turn.wav is not None and self._last_recording is not None and self._last_recording.seconds:
            try:
                self._last_recording.save(turn.wav)
                self._note(f"(audio: {turn.wav})")
            except VoicekitError as exc:
                self._note(f"can't save the reply's audio: {exc}")
        if speech.on:
            if reply.text:
                self.history.append(reply.as_message())
        elif reply.text:
            # Muted or failed, the user read what was shown: that is what "heard" means here.
            mark = INTERRUPTED_MARK if reply.interrupted else ""
            self.history.append({"role": "assistant", "content": reply.text + mark})
        if self._turn is turn:
            self._turn = None
        self._invalidate()

    def _barge_in(self) -> None:
        if self._turn is not None:
            self._turn.interrupt()

    async def _stop_turn(self) -> None:
        """Interrupt the reply in progress and wait until it is recorded."""
        turn = self._turn
        if turn is None or turn.thread is None:
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
                self._print_bot_line(line)
        self._invalidate()

    def _show_word(self, word: str) -> None:
        """A heard word; a line full to the terminal's width goes to the scrollback."""
        line = f"{self._line} {word}" if self._line else word
        if len(line) > self._columns() - 6 and self._line:
            self._print_bot_line(self._line)
            line = word
        self._line = line
        self._invalidate()

    def _columns(self) -> int:
        app = get_app_or_none()
        return app.output.get_size().columns if app is not None else 80

    def _print_bot_line(self, line: str) -> None:
        fragments = self._markdown.line(line)
        if fragments is None:
            return
        prefix = [("class:bot", "bot> ")] if self._first_line else [("", "     ")]
        self._first_line = False
        self._print([*prefix, *fragments])

    def _flush_line(self) -> None:
        if self._line:
            self._print_bot_line(self._line)
        self._line = ""
        self._first_line = True
        self._markdown = _Markdown()

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
            self._note(f"can't read that command: {exc}")
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
        if args:
            try:
                self.tts.set_voice(args[0])
            except (VoicekitError, ValueError) as exc:
                raise ValueError(f"no {self.engine} voice {args[0]!r}; /voices lists them") from exc
            self.voice = args[0]
        voice = self.voice or (self.default_voice(self.engine) if self.default_voice else None)
        self._note(f"voice: {voice or 'the default'} (/voices lists them, Tab completes)")

    async def _cmd_voices(self, args: list[str]) -> None:
        voices = self.voices()
        if not args:
            languages = _languages(voices)
            self._note(
                f"{_count(len(voices), self.engine + ' voice')} in {_count(len(languages), 'language')}; "
                f"/voices LANG lists one language's:\n{_columns(languages, self._columns())}"
            )
            return
        chosen = [v for v in voices if _voice_matches(v, args[0])]
        if not chosen:
            raise ValueError(f"no {self.engine} voices for {args[0]!r}; /voices lists the languages")
        self._note("\n".join(f"{v.id:<20} {v.language:<16} {v.name}" for v in chosen))

    async def _cmd_rate(self, args: list[str]) -> None:
        if args:
            self.tts.set_property("rate", args[0])
            self.rate = _number_or_word(args[0])
        self._note(f"rate: {self.rate if self.rate is not None else 'normal (1.0)'}")

    async def _cmd_engine(self, args: list[str]) -> None:
        if args:
            if self.make_tts is None or args[0] not in self.engines:
                raise ValueError(f"unknown engine {args[0]!r}; choose from {', '.join(self.engines)}")
            tts = self.make_tts(args[0])
            if self.rate is not None:
                try:
                    tts.set_property("rate", self.rate)
                except BaseException:
                    tts.cleanup()
                    raise
            await self._stop_turn()
            old, self.tts, self.engine, self.voice, self._voices = self.tts, tts, args[0], None, None
            old.cleanup()
        self._note(f"engine: {self.engine} (available: {await self._engines_available()})")

    async def _engines_available(self) -> str:
        """The engines that can speak, then what each other one needs ("polly needs AWS credentials")."""
        if self.engine_problem is None:
            return ", ".join(self.engines)
        # boto3 loads and looks for credentials: not on the UI loop
        problems = await asyncio.gather(*(asyncio.to_thread(self.engine_problem, e) for e in self.engines))
        ready = [e for e, problem in zip(self.engines, problems) if problem is None]
        lacking = [f"{e} {problem}" for e, problem in zip(self.engines, problems) if problem is not None]
        return "; ".join([", ".join(ready), *lacking])

    async def _cmd_mute(self, args: list[str]) -> None:
        self.muted = not self.muted
        if self.muted:
            await self._stop_turn()
        self._note("muted: replies are shown, not spoken" if self.muted else "unmuted")

    async def _cmd_sync(self, args: list[str]) -> None:
        self.sync_text = not self.sync_text
        self._note(
            "sync: words are shown as they are heard (from the next reply)"
            if self.sync_text
            else "sync off: text is shown as it arrives"
        )

    async def _cmd_clear(self, args: list[str]) -> None:
        await self._stop_turn()
        self.history.clear()
        self._note("history cleared: the next message starts a new conversation")

    async def _cmd_save(self, args: list[str]) -> None:
        if len(args) != 1:
            raise ValueError("usage: /save FILE.wav")
        path = _new_file(args[0])
        if path.suffix.lower() != ".wav":
            raise ValueError(f"{args[0]!r} is not a .wav file name")
        if self._last_recording is None or not self._last_recording.seconds:
            raise ValueError("nothing of the last reply was heard, so there is no audio to save")
        self._last_recording.save(path)
        self._note(f"saved the last reply ({self._last_recording.seconds:.1f} s, as heard) to {path}")

    async def _cmd_save_transcript(self, args: list[str]) -> None:
        if len(args) != 1:
            raise ValueError("usage: /save-transcript FILE")
        path = _new_file(args[0])
        if not self.messages():
            raise ValueError("there is no conversation to save yet")
        lines = []
        for message in self.messages():
            who = _WHO.get(message["role"], f"{message['role']}> ")
            lines.append(who + message["content"].replace("\n", "\n" + " " * len(who)))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._note(f"saved the conversation ({len(self.history)} messages) to {path}")

    async def _cmd_history(self, args: list[str]) -> None:
        if not self.messages():
            self._note("(no messages yet)")
        for message in self.messages():
            who = _WHO.get(message["role"], f"{message['role']}> ")
            self._print([(f"class:{'you' if who == 'you> ' else 'bot'}", who), ("", message["content"])])

    async def _cmd_help(self, args: list[str]) -> None:
        self._note(HELP)

    async def _cmd_quit(self, args: list[str]) -> None:
        self._quit = True


COMMANDS: dict[str, Callable[[Chat, list[str]], Any]] = {
    "/voice": Chat._cmd_voice,
    "/voices": Chat._cmd_voices,
    "/rate": Chat._cmd_rate,
    "/engine": Chat._cmd_engine,
    "/mute": Chat._cmd_mute,
    "/sync": Chat._cmd_sync,
    "/save": Chat._cmd_save,
    "/save-transcript": Chat._cmd_save_transcript,
    "/history": Chat._cmd_history,
    "/clear": Chat._cmd_clear,
    "/help": Chat._cmd_help,
    "/quit": Chat._cmd_quit,
}


_Fragments = list[tuple[str, str]]

_FENCE = re.compile(r"\s*(```|~~~)\s*([\w+.#-]*)")
_HEADING = re.compile(r"\s{0,3}#{1,6}(?:\s+|$)(.*?)(?:\s+#+)?\s*$")
_BULLET = re.compile(r"(\s*)[-*+]\s+")
_INLINE = re.compile(
    r"`(?P<code>[^`]+)`"
    r"|\[(?P<link>[^\]]+)\]\((?P<url>[^)\s]+)\)"
    r"|\*\*(?P<strong>\S(?:.*?\S)?)\*\*|__(?P<strong_>\S(?:.*?\S)?)__"
    r"|(?<![\w*])\*(?P<em>[^\s*](?:[^*]*[^\s*])?)\*(?![\w*])"
    r"|(?<![\w_])_(?P<em_>[^\s_](?:[^_]*[^\s_])?)_(?![\w_])"
)


class _Markdown:
    """A reply's markdown as the terminal shows it, line by line as the reply streams in.

    Headings and strong emphasis are bold, emphasis italic, links underlined
    (the target follows, grey), bullets are "•", and code blocks are grey
    under a "code (not spoken)" line: the speech filter skips them, so the
    screen says so. Only a complete line opens or closes a code block.
    """

    def __init__(self) -> None:
        self.in_code = False

    def line(self, text: str) -> _Fragments | None:
        """A complete line; None for one that shows nothing (a code block's closing fence)."""
        shown = self.partial(text)
        if _FENCE.match(text):
            self.in_code = not self.in_code
        return shown

    def partial(self, text: str) -> _Fragments | None:
        """The line as far as it has arrived."""
        fence = _FENCE.match(text)
        if fence:
            return None if self.in_code else [("class:code italic", f"{fence[2]} code (not spoken)".lstrip())]
        if self.in_code:
            return [("class:code", "  " + text)]
        heading = _HEADING.match(text)
        if heading:
            return _inline(heading[1], "bold")
        bullet = _BULLET.match(text)
        if bullet:
            return [("", f"{bullet[1]}• "), *_inline(text[bullet.end() :])]
        return _inline(text)


def _inline(text: str, style: str = "") -> _Fragments:
    fragments: _Fragments = []
    end = 0
    for match in _INLINE.finditer(text):
        if match.start() > end:
            fragments.append((style, text[end : match.start()]))
        end = match.end()
        if match["code"] is not None:
            fragments.append((f"{style} class:code".strip(), match["code"]))
        elif match["link"] is not None:
            fragments += _inline(match["link"], f"{style} underline".strip())
            fragments.append(("class:code", f" ({match['url']})"))
        elif match["strong"] is not None or match["strong_"] is not None:
            fragments += _inline(match["strong"] or match["strong_"], f"{style} bold".strip())
        else:
            fragments += _inline(match["em"] or match["em_"], f"{style} italic".strip())
    if end < len(text):
        fragments.append((style, text[end:]))
    return fragments


def _voice_matches(voice: Voice, prefix: str) -> bool:
    """By id (``gmw/en-US``), the id's last part (``en-US``) or language (``en-us``), ignoring case."""
    prefix = prefix.lower().replace("_", "-")
    vid = voice.id.lower().replace("_", "-")
    language = voice.language.lower().replace("_", "-")
    return vid.startswith(prefix) or vid.rpartition("/")[2].startswith(prefix) or language.startswith(prefix)


def _languages(voices: Sequence[Voice]) -> list[str]:
    return sorted({v.language.lower().replace("_", "-").split("-")[0] for v in voices if v.language})


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _columns(words: Sequence[str], width: int) -> str:
    cell = max((len(w) for w in words), default=0) + 2
    per_line = max(1, (width - 2) // cell)
    rows = [words[i : i + per_line] for i in range(0, len(words), per_line)]
    return "\n".join("  " + "".join(w.ljust(cell) for w in row).rstrip() for row in rows)


def _number_or_word(value: float | str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


def _new_file(name: str) -> Path:
    """``name`` as a path to write, refusing a missing directory in plain words."""
    path = Path(name).expanduser()
    if not path.parent.is_dir():
        raise ValueError(f"there is no directory {str(path.parent)!r}")
    return path


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    text = str(exc).strip()
    return text if isinstance(exc, (VoicekitError, ValueError)) and text else f"{type(exc).__name__}: {text}"
