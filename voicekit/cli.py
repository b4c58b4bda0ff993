"""The ``voicekit`` command: chat, say, narrate, voices, devices.

User errors (bad arguments, unreadable or binary input, no device, engine
failures) end with one ``voicekit: ...`` line on stderr and a non-zero exit
code: 2 for usage and input, 1 for everything else, 130 for Ctrl-C. Tracebacks
are for bugs only.
"""

from __future__ import annotations

import argparse
import codecs
import logging
import os
import queue
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, BinaryIO, NoReturn, TextIO

from . import DeviceSink, VoicekitError, WavSink, __version__, registry
from .errors import OutputError, UsageError
from .registry import ENGINES, default_engine
from .sinks import WavPipeSink

__all__ = ["main", "tts_factory"]

_OR_FILE = "or use --out FILE.wav"
_STDOUT = _STDIN = "-"
_FEED_PIECE = 4096  # characters fed at a time, so backpressure can act within a long file
_READ_BLOCK = 65536  # bytes of input checked at a time: binary input is refused at its first block
_POLL = 0.05
_LATEST_LOOKAHEAD = 2.0  # seconds: --latest must stay close to the producer


class _Parser(argparse.ArgumentParser):
    """argparse's own errors in one line too, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


# -- building blocks shared by the verbs ---------------------------------------------------
def _set_properties(tts: Any, args: argparse.Namespace) -> None:
    for name in ("rate", "volume", "pitch"):
        value = getattr(args, name)
        if value is not None:
            try:
                tts.set_property(name, value)
            except (ValueError, VoicekitError) as exc:  # out of range, or the engine has no such control
                raise UsageError(f"--{name}: {exc}") from exc


def tts_factory(args: argparse.Namespace) -> Callable[[str], Any]:
    """Builds a TTS by engine name with the command line's volume and pitch (chat's /engine).

    Raises ``VoicekitError`` when the engine lacks its credentials.
    """

    def build(engine: str) -> Any:
        return registry.build(
            engine, lambda tts: _set_properties(tts, argparse.Namespace(rate=None, volume=args.volume, pitch=args.pitch))
        )

    return build


def _configured_tts(args: argparse.Namespace) -> Any:
    return registry.build(args.engine, lambda tts: _configure(tts, args))


def _configure(tts: Any, args: argparse.Namespace) -> None:
    if args.voice:
        try:
            tts.set_voice(args.voice)
        except (VoicekitError, ValueError, KeyError) as exc:
            raise UsageError(
                f"no {args.engine} voice {args.voice!r}; `voicekit voices --engine {args.engine}` lists them"
            ) from exc
    _set_properties(tts, args)


def audio_problem(device: int | str | None, exc: OutputError, instead: str | None = _OR_FILE) -> str:
    """Why ``exc`` left no audio, in command-line terms, with the flag or install that fixes it,
    then ``instead``: the way to do without a device, if the caller has one."""
    alternative = f", {instead}" if instead else ""
    try:
        import sounddevice as sd
    except OSError:  # sounddevice raises OSError when libportaudio is missing
        return f"the PortAudio library is missing: install it (`apt-get install libportaudio2`){alternative}"
    except ImportError:
        return f"the sounddevice package is missing: pip install sounddevice{alternative}"
    if not _output_devices(sd):
        return (
            "no audio output device found: connect a sound card or start a sound server "
            f"(PipeWire, PulseAudio or JACK){alternative}"
        )
    if device is not None:
        try:
            sd.query_devices(device, kind="output")
        except (ValueError, sd.PortAudioError):
            return f"no output device {device!r}: `voicekit devices` lists them{alternative}"
    # The library's message names Python fixes (WavSink...); keep only its reason.
    reason = re.split(r"\. | \(", str(exc))[0]
    return f"the audio device can't be used ({reason}): pick one with --device (`voicekit devices` lists them){alternative}"


def _output_devices(sd: Any) -> list[dict[str, Any]]:
    try:
        return [d for d in sd.query_devices() if d["max_output_channels"] > 0]
    except sd.PortAudioError:
        return []


def check_device(device: int | str | None, instead: str | None = _OR_FILE) -> DeviceSink:
    """The device sink, opened once so a missing device shows up now, not mid-reply.

    Raises ``OutputError`` with a one-line reason and the fix, ending with ``instead``.
    """
    sink = DeviceSink(device)
    try:
        sink.open(sink.preferred_samplerate or 48000, 1, "float32", blocksize=1024, buffer_frames=4096)
        sink.close()
    except OutputError as exc:
        raise OutputError(audio_problem(device, exc, instead)) from exc
    return sink


@contextmanager
def _speaking(args: argparse.Namespace) -> Iterator[Any]:
    """The configured TTS, playing where the flags say; cleaned up at the end.

    A WAV file is written under a temporary name beside it and renamed only
    when all went well: a failed run leaves no file behind, nor a broken one
    in place of an older file.
    """
    tts = _configured_tts(args)
    part: Path | None = None
    done = False
    try:
        if args.out == _STDOUT:
            if sys.stdout.isatty():
                raise UsageError("--out - writes WAV data to stdout: pipe it (`| aplay`) or redirect it")
            tts.set_output(WavPipeSink(sys.stdout.buffer))
        elif args.out is not None:
            part = args.out.with_name(f".{args.out.name}.{os.getpid()}.part")
            tts.set_output(WavSink(part))
        else:
            tts.set_output(check_device(args.device))
        yield tts
        done = True
    finally:
        released = False
        try:
            tts.cleanup()  # the file is complete once the TTS let go of it
            released = True
        finally:
            if part is not None:  # Ctrl-C during the cleanup leaves no file either
                _keep_or_drop(part, args.out, keep=done and released)


def _keep_or_drop(part: Path, out: Path, *, keep: bool) -> None:
    try:
        if keep:
            os.replace(part, out)
        else:
            part.unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(f"can't write {out}: {exc.strerror or exc}") from exc


def _device(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return number


def _wav_path(value: str) -> Path | str:
    if value == _STDOUT:
        return value
    path = Path(value).expanduser()
    if path.suffix.lower() != ".wav":
        raise argparse.ArgumentTypeError(f"{value!r} is not a .wav file name")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"directory {str(path.parent)!r} does not exist")
    return path


def _engine_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine", choices=ENGINES, default=default_engine(),
        help="speech engine (default: piper when installed, else espeak; both offline)",
    )  # fmt: skip


def _output_options() -> _Parser:
    common = _Parser(add_help=False)
    _engine_option(common)
    common.add_argument("-v", "--voice", help="voice id or language code, see `voicekit voices`")
    common.add_argument("-r", "--rate", help="speaking rate: a factor (1.0 is normal, 0.1-10) or x-slow..x-fast")
    common.add_argument("--volume", help="0-100 or x-low..x-high (default: the engine's)")
    common.add_argument("--pitch", help="0-100 (50 is normal) or x-low..x-high")
    where = common.add_mutually_exclusive_group()
    where.add_argument(
        "-o", "--out", type=_wav_path, metavar="FILE.wav", help="write a WAV file instead of playing; - for stdout"
    )
    where.add_argument("--device", type=_device, help="output device index or name, see `voicekit devices`")
    return common


def while_full(stream: Any) -> Iterator[None]:
    """Ticks while ``stream.buffer_full()``: the producer's backpressure.

    Safe to wait on: ``buffer_full()`` counts only text and audio that drain
    by themselves, never text the chunker holds back for more input.
    """
    while stream.buffer_full():
        time.sleep(_POLL)
        yield


# -- say ------------------------------------------------------------------------------------
class Progress:
    """One status line on stderr: the position HEARD, not synthesized.

    Words and seconds come from ``on_word``, which fires as each word reaches
    the speaker (for a file: as it is written), so the bar moves with what is
    heard while synthesis runs up to ``lookahead`` seconds ahead. The
    real-time factor is wall time per second heard: about 1.0 when playing,
    far below 1 when writing a file.
    """

    def __init__(self, total_words: int, out: TextIO, every: float = 0.1) -> None:
        self.total = max(total_words, 1)
        self.out = out
        self.every = every
        self.words = 0
        self.seconds = 0.0
        self.start = self._shown = time.monotonic()

    def __call__(self, info: dict[str, Any]) -> None:
        """The ``on_word`` callback."""
        self.words += 1
        self.seconds = max(self.seconds, info["time"])
        if time.monotonic() - self._shown >= self.every:
            self.show()

    def show(self, final: bool = False) -> None:
        self._shown = time.monotonic()
        done = self.total if final else min(self.words, self.total)
        bar = "#" * (30 * done // self.total)
        rtf = (self._shown - self.start) / self.seconds if self.seconds else 0.0
        end = "\n" if final else ""
        self.out.write(
            f"\r[{bar:<30}] {100 * done // self.total:3d}% {done}/{self.total} words "
            f"{self.seconds:7.1f} s heard  RTF {rtf:.2f}{end}"
        )
        self.out.flush()


def decode_input(source: BinaryIO, name: str) -> Iterator[str]:
    """Text from ``source``, block by block, as strict UTF-8 (a BOM is dropped).

    Binary input (a NUL byte, invalid UTF-8) raises ``UsageError`` at the
    first block that shows it, before anything is spoken.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    offset = 0
    while True:
        block = source.read(_READ_BLOCK)
        yield _decode(decoder, block, name, offset, final=not block)
        if not block:
            return
        offset += len(block)


def _decode(decoder: codecs.IncrementalDecoder, data: bytes, name: str, offset: int, *, final: bool) -> str:
    if b"\0" in data:
        raise UsageError(f"{name} is binary, not text (it holds NUL bytes)")
    held = len(decoder.getstate()[0])  # bytes of a character cut at the previous block's end
    try:
        return decoder.decode(data, final)
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name} is not UTF-8 text (invalid byte at offset {offset - held + exc.start})") from exc


def _open_input(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise UsageError(f"can't read {path}: {exc.strerror or exc}") from exc


def _read_text(args: argparse.Namespace) -> str:
    if args.text and args.file:
        raise UsageError("give the text or --file, not both")
    if args.text and args.text != ["-"]:
        return " ".join(args.text)
    if args.file:
        with _open_input(args.file) as source:
            return "".join(decode_input(source, args.file))
    if not args.text and (sys.stdin is None or sys.stdin.isatty()):
        raise UsageError("say needs TEXT, --file F, or text on stdin (`echo hi | voicekit say`)")
    return "".join(decode_input(sys.stdin.buffer, "stdin"))


def speak_text(tts: Any, text: str, progress: Progress | None = None) -> None:
    """Feed ``text`` in pieces, obeying backpressure, and wait until it was heard."""
    with tts.create_stream(on_word=progress) as stream:
        for start in range(0, len(text), _FEED_PIECE):
            for _ in while_full(stream):
                pass
            stream.feed(text[start : start + _FEED_PIECE])
        stream.done()
        stream.wait_until_done()
    if progress:
        progress.show(final=True)


def _cmd_say(args: argparse.Namespace) -> int:
    text = _read_text(args)
    if not text.strip():
        raise UsageError("nothing to say: the text is empty")
    show = args.progress if args.progress is not None else len(text) >= 2000 and sys.stderr.isatty()
    with _speaking(args) as tts:
        speak_text(tts, text, Progress(len(text.split()), sys.stderr) if show else None)
    return 0


# -- narrate --------------------------------------------------------------------------------
_EOF = None
Line = str | UsageError | None  # a line, the input's error, or the end


def _read_lines(source: BinaryIO, name: str, lines: queue.Queue[Line]) -> None:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    offset = 0
    try:
        for raw in _raw_lines(source.fileno()):
            lines.put(_decode(decoder, raw, name, offset, final=False))
            offset += len(raw)
    except UsageError as exc:
        lines.put(exc)  # binary input: the narrator stops with this error
    except OSError as exc:
        lines.put(UsageError(f"can't read {name}: {exc.strerror or exc}"))
    finally:
        lines.put(_EOF)


def _raw_lines(fd: int) -> Iterator[bytes]:
    """The lines read from ``fd``, each with its newline.

    Read with ``os.read`` rather than through the file object: this runs on a
    daemon thread, and one blocked inside ``BufferedReader`` holds the lock that
    the interpreter takes for stdin at exit, which aborts the exit after Ctrl-C.
    """
    held: list[bytes] = []
    while block := os.read(fd, _READ_BLOCK):
        *ended, rest = block.split(b"\n")
        for piece in ended:
            yield b"".join([*held, piece, b"\n"])
            held.clear()
        held.append(rest)
    if tail := b"".join(held):
        yield tail


def _text(line: Line) -> str | None:
    if isinstance(line, UsageError):
        raise line
    return line


class Narrator:
    """Speaks lines as they arrive, on one stream, with a policy for a fast producer.

    ``latest=False`` (``--queue``) waits while ``buffer_full()`` and loses
    nothing. ``latest=True`` (``--latest``) keeps reading while the buffer is
    full and then speaks only the newest line, saying how many it skipped.
    """

    def __init__(self, stream: Any, *, latest: bool, report: Callable[[str], None]) -> None:
        self.stream = stream
        self.latest = latest
        self.report = report
        self.skipped = 0

    def run(self, lines: queue.Queue[Line]) -> None:
        """Speak lines until the end of input; raises ``UsageError`` for binary input."""
        while (line := _text(lines.get())) is not _EOF:
            line, ended = self._wait_for_room(line, lines)
            if line.strip():
                # A blank line ends a chunk, so each line is spoken as soon as it is in.
                self.stream.feed(line.strip() + "\n\n")
            if ended:
                return

    def _wait_for_room(self, line: str, lines: queue.Queue[Line]) -> tuple[str, bool]:
        skipped = 0
        for _ in while_full(self.stream):
            if not self.latest:
                continue
            for newer in map(_text, _drain(lines)):
                if newer is _EOF:
                    return self._announce(line, skipped), True
                line, skipped = newer, skipped + 1
        return self._announce(line, skipped), False

    def _announce(self, line: str, skipped: int) -> str:
        if not skipped:
            return line
        self.skipped += skipped
        note = f"skipped {skipped} line{'s' if skipped > 1 else ''}"
        self.report(note)
        return f"{note[0].upper()}{note[1:]}.\n\n{line}"


def _drain(lines: queue.Queue[Line]) -> Iterator[Line]:
    while True:
        try:
            yield lines.get_nowait()
        except queue.Empty:
            return


def narrate_lookahead(args: argparse.Namespace) -> float | None:
    """``--lookahead``, else a short one for ``--latest``, which skips lines only once
    this much audio is queued (None: the library's default)."""
    return args.lookahead or (_LATEST_LOOKAHEAD if args.latest else None)


def _cmd_narrate(args: argparse.Namespace) -> int:
    if args.source and args.file:
        raise UsageError("give FILE or --file, not both")
    path = args.file or (args.source if args.source != _STDIN else None)
    with _open_input(path) if path else nullcontext(sys.stdin.buffer) as source:
        _narrate(args, source, path or "stdin")
    return 0


def _narrate(args: argparse.Namespace, source: BinaryIO, name: str) -> None:
    with _speaking(args) as tts:
        lookahead = narrate_lookahead(args)
        if lookahead is not None:
            tts.set_stream_config({"lookahead": lookahead})
        lines: queue.Queue[Line] = queue.Queue()
        # Daemon: a reader blocked on a terminal must not keep the process alive after Ctrl-C.
        reader = threading.Thread(
            target=_read_lines, args=(source, name, lines), name="voicekit-narrate-reader", daemon=True
        )
        reader.start()
        with tts.create_stream() as stream:
            Narrator(stream, latest=args.latest, report=lambda note: print(f"voicekit: {note}", file=sys.stderr)).run(lines)
            stream.done()
            stream.wait_until_done()
        reader.join()


# -- voices, devices ------------------------------------------------------------------------
def _cmd_voices(args: argparse.Namespace) -> int:
    tts = registry.build(args.engine)
    try:
        voices = tts.get_voices()
    finally:
        tts.cleanup()
    if args.language:
        voices = [v for v in voices if v.language.lower().startswith(args.language.lower())]
    if not voices:
        raise VoicekitError(f"no {args.engine} voices" + (f" for language {args.language!r}" if args.language else ""))
    for v in voices:
        print(f"{v.id:<24} {v.language:<16} {v.gender:<8} {v.name}")
    return 0


def _cmd_devices(args: argparse.Namespace) -> int:
    try:
        import sounddevice as sd
    except (OSError, ImportError) as exc:
        raise OutputError(audio_problem(None, OutputError(str(exc)), instead=None)) from exc
    outputs = _output_devices(sd)
    if not outputs:
        raise OutputError(audio_problem(None, OutputError("no output devices"), instead=None))
    default = sd.default.device[1]
    for d in outputs:
        mark = "*" if d["index"] == default else " "
        print(f"{mark} {d['index']:>3}  {d['name']}  ({d['max_output_channels']} ch, {d['default_samplerate']:.0f} Hz)")
    return 0


# -- chat -----------------------------------------------------------------------------------
def _chat_backend(args: argparse.Namespace) -> Any:
    from .backends import chat_backend

    if bool(args.base_url) != bool(args.model) and not os.environ.get("OPENAI_API_KEY"):
        raise UsageError("--base-url and --model go together (or set OPENAI_API_KEY)")
    return chat_backend(args.base_url, args.model, args.tokens_per_second)


def _cmd_chat(args: argparse.Namespace) -> int:
    try:
        from .chat import Chat
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("prompt_toolkit"):
            raise
        raise VoicekitError("voicekit chat needs prompt_toolkit: pip install 'voicekit[chat]'") from exc
    if args.out == _STDOUT:
        raise UsageError("chat writes one WAV file per reply: --out needs a file name")
    backend = _chat_backend(args)
    sink, reply_wav = None, args.out
    if args.out is None:
        try:
            # a device asked for by name must be there, as for `say`; without one, files will do
            sink = check_device(args.device, instead=_OR_FILE if args.device is not None else None)
        except OutputError as exc:
            if args.device is not None:
                raise
            reply_wav = Path(tempfile.mkdtemp(prefix="voicekit-chat-")) / "reply.wav"
            print(f"voicekit: {exc}; replies go to WAV files in {reply_wav.parent}", file=sys.stderr)
    tts = _configured_tts(args)
    chat = Chat(
        tts, backend, sink=sink, make_tts=tts_factory(args), engine=args.engine, engines=ENGINES,
        engine_problem=registry.engine_problem, default_voice=registry.default_voice, voice=args.voice, rate=args.rate,
        reply_wav=reply_wav, muted=args.mute, sync_text=args.sync_text, system=args.system,
    )  # fmt: skip
    chat.run()
    return 0


def _log_warnings() -> None:
    """voicekit's warnings on stderr, one line each, and no tracebacks: a failure
    logged with its traceback also reaches the command as an exception, which
    ``main`` reports in one line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(lambda record: not record.exc_info)
    logger = logging.getLogger("voicekit")
    if not logger.handlers:
        logger.addHandler(handler)


# -- entry point ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="voicekit", description="Streaming, interruptible text-to-speech.")
    parser.add_argument("--version", action="version", version=f"voicekit {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="{chat,say,narrate,voices,devices,serve}")
    common = _output_options()

    chat = verbs.add_parser("chat", parents=[common], help="terminal voice chat with barge-in")
    chat.add_argument("--base-url", help="OpenAI-compatible server, e.g. a local llama.cpp or Ollama")
    chat.add_argument("--model", help="chat model name (default with OPENAI_API_KEY: gpt-4o-mini)")
    chat.add_argument("--system", metavar="PROMPT", help="system prompt sent to the model before the conversation")
    chat.add_argument("--mute", action="store_true", help="start with speech off")
    chat.add_argument("--sync-text", action="store_true", help="show each word as it is heard, not as it arrives")
    chat.add_argument(
        "--tokens-per-second", type=_positive, default=30.0, help="pace of the offline responder (default 30)"
    )
    chat.set_defaults(run=_cmd_chat)

    say = verbs.add_parser("say", parents=[common], help="speak TEXT, a --file, or stdin")
    say.add_argument("text", nargs="*", help="the text; none or - reads stdin")
    say.add_argument("-f", "--file", help="read the text from this UTF-8 file")
    say.add_argument("--progress", action=argparse.BooleanOptionalAction, help="progress bar (default: long text on a terminal)")
    say.set_defaults(run=_cmd_say)

    narrate = verbs.add_parser("narrate", parents=[common], help="speak the lines of a file or stdin as they arrive")
    narrate.add_argument("source", nargs="?", metavar="FILE", help="the UTF-8 text file to read; none or - reads stdin")
    narrate.add_argument("-f", "--file", help="the same as FILE")
    policy = narrate.add_mutually_exclusive_group()
    policy.add_argument("--queue", dest="latest", action="store_false", help="speak every line (default)")
    policy.add_argument("--latest", dest="latest", action="store_true", help="skip to the newest line when behind")
    narrate.add_argument(
        "--lookahead", type=_positive, metavar="SECONDS",
        help=f"audio made ahead of the speaker (default 10, or {_LATEST_LOOKAHEAD:g} with --latest)",
    )  # fmt: skip
    narrate.set_defaults(run=_cmd_narrate, latest=False)

    voices = verbs.add_parser("voices", help="list the voices of an engine")
    _engine_option(voices)
    voices.add_argument("--language", help="only voices whose language starts with this, e.g. en")
    voices.set_defaults(run=_cmd_voices)

    devices = verbs.add_parser("devices", help="list audio output devices")
    devices.set_defaults(run=_cmd_devices)

    from .server import command as serve_command

    serve = verbs.add_parser("serve", help="web voice: OpenAI-compatible speech, a WebSocket stream, a browser chat")
    serve_command.add_arguments(serve)
    serve.set_defaults(run=serve_command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Ctrl-C is 130 wherever it lands: building the parser, running the verb, reporting its error
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.verb is None:
            # like git: a bare command shows what it can do; still a usage error for scripts
            parser.print_help(sys.stderr)
            return 2
        _log_warnings()
        return _run(args)
    except KeyboardInterrupt:
        return _ctrl_c()


def _ctrl_c() -> int:
    print(file=sys.stderr)
    # CPython up to 3.13 notes a KeyboardInterrupt leaving exec()'d source (dataclasses and
    # namedtuples are made so while modules load) and, though it was handled, ends
    # `python -m voicekit` by SIGINT instead of 130; the next exec() clears the note (gh-128130).
    exec("")
    return 130


def _run(args: argparse.Namespace) -> int:
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"voicekit {args.verb}: {exc}", file=sys.stderr)
        return 2
    except VoicekitError as exc:
        print(f"voicekit {args.verb}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
