"""Every snippet of the user's guide (the "Streaming" page), as its script in examples/, run against a fake Polly.

Each snippet lives once: in ``examples/`` (:data:`SECTIONS` says which script is
which section). Here each script runs as ``__main__`` in this process, as
``python examples/NAME.py`` would run it with AWS credentials set: its
``make_tts()`` (examples/_common.py) builds ``PollyTTS``, whose real boto3
client talks to the fake Polly server on 127.0.0.1 (``AWS_ENDPOINT_URL``), and
``VOICEKIT_OUTPUT`` sends the audio to a WAV file. The fake speaks each word as
a tone of ``voicekit.testing.ToneEngine``, so each test asserts to the sample
what was played, besides what was said to Polly, every stream's heard text, the
callbacks' output and the errors raised.

:func:`test_every_guide_block_is_in_its_example` reads the guide itself
(``../shared/spec/streaming-guide.md``, beside the clone, as in CI) and fails
when a line of a snippet is missing from its script: the guide and the
examples cannot drift apart. The guide allows two changes, the import line and
the credentials (the examples' ``make_tts()``); the few other changes are in
:data:`SECTIONS`, each with the reason the script's docstring gives.
"""

from __future__ import annotations

import re
import runpy
import sys
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import voicekit_threads
from tests.fakes.http import Exchange
from tests.fakes.polly import FakePolly
from voicekit import BufferError, PollyClient, PollyTTS, StreamError
from voicekit.tts import BaseTTS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
GUIDE = ROOT.parent / "shared" / "spec" / "streaming-guide.md"
RATE = 16000  # Polly's pcm rate: the examples' WAV has it unless the snippet sets another

# guide section -> (its script in examples/, {a line of the guide's snippet: the script's line instead})
SECTIONS: dict[str, tuple[str, dict[str, str]]] = {
    "Simple Streaming": ("simple_streaming.py", {}),
    "Streaming with Callbacks": ("streaming_callbacks.py", {
        # two sentences: the callback runs once per chunk
        '"This text will trigger callbacks for each chunk."':
            '"This text will trigger callbacks for each chunk. Every sentence is one chunk."',
    }),
    "Custom Stream Configuration": ("custom_stream_config.py", {}),
    "Stream Control": ("stream_control.py", {}),
    "Async Streaming": ("async_streaming.py", {}),
    "Efficient Chunking": ("efficient_chunking.py", {}),
    "Memory-Efficient Processing": ("memory_efficient.py", {
        # the file is an argument (default: the one beside the script); "r" is open()'s default
        'with open("large_text.txt", "r") as f:': "with open(path) as f:",
    }),
    "Interactive Chat Bot": ("chat_bot.py", {}),
    "Live Text Processing": ("live_text_processing.py", {}),
    "Stream Error Management": ("error_handling.py", {}),
    "Recovery Strategies": ("robust_streaming.py", {}),
    "Resource Cleanup": ("resource_cleanup.py", {}),
    "Example: Complete Streaming Application": ("stream_manager.py", {
        # the monitor watches the stream it was started for (stop_stream sets self.stream to None under
        # its feet), and stop_stream joins it, so no thread outlives the manager
        "threading.Thread(target=self._monitor_stream).start()":
            'self.monitor = threading.Thread(target=self._monitor_stream, args=(self.stream,), name="monitor")',
        "def _monitor_stream(self):": "def _monitor_stream(self, stream):",
        "if self.stream.buffer_full():": "if stream.buffer_full():",
    }),
}

# -- the guide and its scripts ------------------------------------------------------------------


def significant(code: str) -> list[str]:
    """A snippet's lines that must not change: no blanks, comments, imports or trailing commas, spaces collapsed."""
    lines = []
    for raw in code.splitlines():
        line = re.sub(r"\s+#.*$", "", raw).strip().rstrip(",")  # the guide has no "#" inside a string
        line = re.sub(r"\s+", " ", line)
        if line and not line.startswith("#") and not re.match(r"(import|from) \S+", line):
            lines.append(line)
    return lines


def guide_blocks(markdown: str) -> dict[str, str]:
    """Each ```python block of the guide under its heading (a ``#`` heading or a ``1. **Bold**`` list item)."""
    blocks: dict[str, str] = {}
    heading, code = "", None
    for line in markdown.splitlines():
        if code is not None:
            if line.strip() == "```":
                assert heading not in blocks, f"two snippets under {heading!r}"
                blocks[heading], code = "\n".join(code), None
            else:
                code.append(line)
        elif line.strip() == "```python":
            code = []
        elif title := re.match(r"#+\s+(.+)|\s*\d+\.\s+\*\*(.+?)\*\*", line):
            heading = (title.group(1) or title.group(2)).strip()
    return blocks


def test_every_guide_section_and_example_is_accounted_for():
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    guide_scripts = [script for script, _ in SECTIONS.values()]
    assert len(set(guide_scripts)) == len(guide_scripts) and set(guide_scripts) <= scripts
    # the others are voicekit's own patterns beyond the guide
    assert scripts - set(guide_scripts) == {"llm_chatbot.py", "generator_narration.py"}


@pytest.mark.skipif(not GUIDE.exists(), reason=f"the guide is not at {GUIDE} (shared/ sits beside the clone in CI)")
def test_every_guide_block_is_in_its_example():
    blocks = guide_blocks(GUIDE.read_text(encoding="utf-8"))
    assert set(blocks) == set(SECTIONS)
    for section, code in blocks.items():
        script, changes = SECTIONS[section]
        example = significant((EXAMPLES / script).read_text(encoding="utf-8"))
        want = []
        for line in significant(code):
            if re.search(r"\bPolly(Client|TTS)\(", line):
                continue  # the credentials: the script's make_tts() builds the TTS
            want.append(changes.pop(line, line))
        assert not changes, f"{section}: the guide no longer has the lines {list(changes)}"
        assert "make_tts()" in " ".join(example), f"{script} builds its TTS another way"
        # in the guide's order (the script may add lines between them)
        at = 0
        for line in want:
            assert line in example[at:], f"{script} lacks the guide's line {line!r} ({section}), in its order"
            at = example.index(line, at) + 1


# -- running a script against the fake Polly ----------------------------------------------------


@dataclass
class Run:
    """What running one example did."""

    stdout: str
    #: every stream it created (SpeechStream; an async stream's too), in order
    streams: list
    #: speech requests the fake Polly got, in order (failed ones too)
    requests: list[Exchange]
    #: the WAV file it wrote: int16 mono samples and their rate
    audio: np.ndarray
    samplerate: int
    namespace: dict = field(repr=False)

    @property
    def texts(self) -> list[str]:
        """What the fake was asked to say, in the order the requests came."""
        return [r.body["Text"] for r in self.requests]

    def in_play_order(self) -> list[Exchange]:
        """The requests in the order their audio plays: the streams' in creation order, each one's chunks in order.

        Each stream synthesizes on its own, so a later stream's request may reach the fake first. A request
        belongs to the first stream whose text not yet spoken starts with it (every request must succeed).
        """
        rest = [stream.fed_text.lstrip() for stream in self.streams]
        owned: list[list[Exchange]] = [[] for _ in self.streams]
        for request in self.requests:
            text = request.body["Text"]
            owner = next((i for i, left in enumerate(rest) if left.startswith(text)), None)
            assert owner is not None, f"no stream has {text!r} left to say: {rest}"
            rest[owner] = rest[owner][len(text) :].lstrip()
            owned[owner].append(request)
        assert not any(rest), f"text no request said: {rest}"
        return [request for requests in owned for request in requests]

    @property
    def heard(self) -> list[str]:
        return [s.heard_text for s in self.streams]


def as_wav(audio: np.ndarray) -> np.ndarray:
    """Float audio as a 16-bit WAV file holds it (voicekit scales by 32767 and rounds)."""
    return np.rint(np.clip(audio.astype(np.float64), -1.0, 1.0) * 32767).astype(np.int16)


def wait_for_threads(threads: list[threading.Thread], timeout: float = 2.0) -> list[str]:
    for t in threads:
        t.join(timeout=timeout)
    return [t.name for t in threads if t.is_alive()]


@pytest.fixture
def run_example(fake_polly: FakePolly, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys, no_thread_leak):
    """run_example(script, *args) runs examples/script as ``__main__`` with Polly's credentials set; -> Run."""
    fake_polly.piece_interval = 0.0
    for name in ("VOICEKIT_ENGINE", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")  # _common.make_tts() picks Polly for it
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", fake_polly.url)  # boto3's standard endpoint variable
    monkeypatch.setenv("VOICEKIT_OUTPUT", str(tmp_path / "out.wav"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(EXAMPLES))

    streams: list = []
    made: list[BaseTTS] = []
    create_stream = BaseTTS.create_stream

    def recording(self, *args, **kwargs):
        stream = create_stream(self, *args, **kwargs)
        streams.append(stream)
        if self not in made:
            made.append(self)
        return stream

    monkeypatch.setattr(BaseTTS, "create_stream", recording)  # speak_streamed and create_async_stream use it

    def run(script: str, *args: str, exits_while_playing: bool = False) -> Run:
        before = set(voicekit_threads())
        monkeypatch.setattr(sys, "argv", [str(EXAMPLES / script), *args])
        namespace = runpy.run_path(str(EXAMPLES / script), run_name="__main__")
        if exits_while_playing:
            # what the interpreter does at exit (voicekit's atexit hook): streams finished with done() play out
            for stream in streams:
                assert stream.wait_until_done(timeout=30)
            for tts in made:
                tts.cleanup()
        else:
            left = wait_for_threads([t for t in voicekit_threads() if t not in before])
            assert not left, f"{script} left voicekit threads running: {left}"
        with wave.open(str(tmp_path / "out.wav")) as wav:
            assert (wav.getsampwidth(), wav.getnchannels()) == (2, 1)
            audio = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
            samplerate = wav.getframerate()
        return Run(capsys.readouterr().out, list(streams), fake_polly.speech_requests(), audio, samplerate, namespace)

    yield run
    for tts in made:
        tts.cleanup()


def assert_played_exactly(run: Run, fake: FakePolly, requests: list[Exchange] | None = None) -> None:
    """The WAV holds the fake's audio of ``requests`` (default: all, in play order), one after another, to the sample."""
    requests = run.in_play_order() if requests is None else requests
    assert run.samplerate == RATE
    sent = np.concatenate([np.zeros(0, np.float32), *map(fake.audio_of, requests)])
    np.testing.assert_array_equal(run.audio, as_wav(sent))


# -- the snippets -------------------------------------------------------------------------------


def test_simple_streaming(run_example, fake_polly):
    run = run_example("simple_streaming.py")
    assert run.texts == ["This text will be processed and played in real-time."]
    assert run.heard == ["This text will be processed and played in real-time."]
    assert_played_exactly(run, fake_polly)
    assert run.stdout == ""


def test_the_guides_own_polly_construction(fake_polly, monkeypatch, no_thread_leak):
    """The one line every script replaces (credentials): PollyTTS(PollyClient(credentials=(...))) as written."""
    from voicekit import MemorySink

    monkeypatch.setenv("AWS_ENDPOINT_URL_POLLY", fake_polly.url)
    client = PollyClient(credentials=("us-east-1", "key_id", "access_key"))
    tts = PollyTTS(client)
    try:
        sink = MemorySink()
        stream = tts.speak_streamed("This text will be processed and played in real-time.", sink=sink)
    finally:
        tts.cleanup()
    [request] = fake_polly.speech_requests()
    signed = request.headers["authorization"]
    assert "Credential=key_id/" in signed and "/us-east-1/polly/" in signed
    assert stream.heard_text == request.body["Text"] == "This text will be processed and played in real-time."
    np.testing.assert_array_equal(sink.audio, fake_polly.audio_of(request))


def test_streaming_with_callbacks(run_example, fake_polly):
    run = run_example("streaming_callbacks.py")
    assert run.texts == ["This text will trigger callbacks for each chunk.", "Every sentence is one chunk."]
    # one callback per chunk, in order, each with its text and the exact duration of its audio
    assert run.stdout == "".join(
        f"Processed chunk: {r.body['Text']}\nDuration: {len(fake_polly.audio_of(r)) / RATE}s\n" for r in run.requests
    )
    assert run.heard == ["This text will trigger callbacks for each chunk. Every sentence is one chunk."]
    assert_played_exactly(run, fake_polly)


def test_custom_stream_configuration(run_example, fake_polly):
    import soxr

    run = run_example("custom_stream_config.py")
    assert run.samplerate == 44100 and run.audio.dtype == np.int16  # 16-bit mono at 44.1 kHz, as set up
    assert " ".join(run.texts) == "This sentence is played at forty four point one kilohertz, in sixteen bit mono."
    # Polly's 16 kHz, resampled chunk by chunk: every sample there, and the same sound
    resampled = np.concatenate([soxr.resample(fake_polly.audio_of(r), RATE, 44100, quality="HQ") for r in run.requests])
    assert len(run.audio) == len(resampled) == sum(len(fake_polly.audio_of(r)) for r in run.requests) * 44100 // RATE
    assert np.abs(run.audio / 32767 - resampled).max() < 0.01


def test_stream_control(run_example, fake_polly):
    run = run_example("stream_control.py")
    assert run.heard == ["First part of the text. Second part of the text."]
    assert " ".join(run.texts) == "First part of the text. Second part of the text."
    assert_played_exactly(run, fake_polly)


def test_async_streaming(run_example, fake_polly):
    run = run_example("async_streaming.py")
    assert run.heard == ["First part. Second part."]
    assert " ".join(run.texts) == "First part. Second part."
    assert_played_exactly(run, fake_polly)


def test_efficient_chunking(run_example, fake_polly):
    run = run_example("efficient_chunking.py")
    text = (
        "With a limit of one hundred characters per chunk, this rather long sentence, "
        "which keeps going well past that limit, is cut into smaller pieces that are "
        "synthesized one after another without a gap."
    )
    # the long sentence is cut into chunks of at most 100 characters, none lost
    assert len(run.texts) >= 3 and all(len(t) <= 100 for t in run.texts)
    assert " ".join(run.texts) == text and run.heard == [text]
    assert_played_exactly(run, fake_polly)  # without a gap


def test_memory_efficient_processing(run_example, fake_polly, tmp_path):
    (tmp_path / "large_text.txt").write_text("Line one is here.\n\nLine two follows.\nAnd line three.\n")
    # as in the guide, the script does not wait: its streams play out at exit
    run = run_example("memory_efficient.py", "large_text.txt", exits_while_playing=True)
    assert run.heard == ["Line one is here.", "", "Line two follows.", "And line three."]
    # one stream per line, played in call order
    assert [r.body["Text"] for r in run.in_play_order()] == ["Line one is here.", "Line two follows.", "And line three."]
    assert_played_exactly(run, fake_polly)


def test_memory_efficient_processing_of_the_shipped_file(run_example, fake_polly):
    run = run_example("memory_efficient.py", exits_while_playing=True)
    lines = (EXAMPLES / "large_text.txt").read_text().splitlines()
    assert run.heard == lines and [r.body["Text"] for r in run.in_play_order()] == [line for line in lines if line]
    assert_played_exactly(run, fake_polly)


def test_interactive_chat_bot(run_example, fake_polly):
    run = run_example("chat_bot.py")
    first, second, unused = run.streams  # finish_response() starts the next response's stream at once
    assert (first.heard_text, second.heard_text) == ("Hello! I am a chat bot. I speak while I think.",
                                                     "This is my second answer.")
    assert unused.fed_text == unused.heard_text == ""
    played = " ".join(r.body["Text"] for r in run.in_play_order())
    assert played == "Hello! I am a chat bot. I speak while I think. This is my second answer."
    assert_played_exactly(run, fake_polly)  # the second answer after the first


def test_live_text_processing(run_example, fake_polly):
    run = run_example("live_text_processing.py")
    text = "Live text arrives word by word and is spoken as soon as a sentence is complete."
    assert run.heard == [text] and " ".join(run.texts) == text
    assert_played_exactly(run, fake_polly)


def test_stream_error_management(run_example, fake_polly):
    assert issubclass(BufferError, StreamError)  # in the guide's order, the StreamError clause catches both
    run = run_example("error_handling.py")
    out = run.stdout.splitlines()
    assert len(out) == 2, run.stdout
    # feed() after done(): a StreamError; close() in the guide's finally still speaks what was fed
    assert out[0].startswith("Streaming error: feed() after done()")
    assert "Buffer error: more than max_queued_chars" in out[1] and "100" in out[1]
    guide, capped = run.streams
    assert guide.heard_text == "Text to stream"
    # past the cap nothing more was taken; everything taken was spoken
    sentence = "This sentence is fed faster than it can be spoken."
    taken = capped.fed_text.split(sentence)
    assert len(taken) >= 2 and not "".join(taken).strip() and capped.heard_text == capped.fed_text.strip()
    assert " ".join(run.texts) == " ".join(["Text to stream"] + [sentence] * (len(taken) - 1))
    assert_played_exactly(run, fake_polly)


def test_recovery_strategies(run_example, fake_polly):
    fake_polly.faults = ["500"] * 4  # more than the client's own retries (3 attempts): the first stream fails
    run = run_example("robust_streaming.py")
    text = "If this fails, it is tried again, up to three times."
    failed, recovered = run.streams
    assert failed.heard_text == "" and recovered.heard_text == text
    # the first chunk: the client's 3 attempts, then the retry's 500 and its success; then the rest once
    assert run.texts[:4] == [run.texts[4]] * 4 and " ".join(run.texts[4:]) == text
    assert_played_exactly(run, fake_polly, run.requests[4:])
    assert run.stdout == ""


def test_resource_cleanup(run_example, fake_polly):
    run = run_example("resource_cleanup.py")
    assert run.heard == ["Text", "Closed by the with block."]
    assert run.texts == ["Text", "Closed by the with block."]
    assert_played_exactly(run, fake_polly)


def test_complete_streaming_application(run_example, fake_polly):
    before = set(threading.enumerate())
    run = run_example("stream_manager.py")
    manager = run.namespace["manager"]
    assert manager.stream is None and not manager.is_active and not manager.monitor.is_alive()
    # no thread outlives the manager: the monitor was joined, voicekit's threads ended, and the fake's
    # threads serving its connections end as they close
    left = wait_for_threads([t for t in threading.enumerate() if t not in before], timeout=5)
    assert not left, left
    [stream] = run.streams
    assert stream.heard_text == "First part of the speech. Second part of the speech. Final part of the speech."
    assert " ".join(run.texts) == stream.heard_text
    assert_played_exactly(run, fake_polly)
    assert set(run.stdout.splitlines()) <= {"Buffer full, waiting..."}


class StreamManager:
    """The guide's "Complete Streaming Application" exactly as the guide writes it (credentials
    aside). examples/stream_manager.py differs in three lines (its monitor holds the stream it was
    started for and is joined), so the guide's own code is kept runnable here too."""

    def __init__(self):
        self.client = PollyClient(credentials=("us-east-1", "key_id", "access_key"))
        self.tts = PollyTTS(self.client)
        self.stream = None
        self.is_active = False

    def start_stream(self):
        self.stream = self.tts.create_stream()
        self.is_active = True

        # Start monitoring thread
        threading.Thread(target=self._monitor_stream).start()

    def _monitor_stream(self):
        while self.is_active:
            if self.stream.buffer_full():
                print("Buffer full, waiting...")
                time.sleep(0.1)
            time.sleep(0.01)

    def feed_text(self, text):
        if not self.stream:
            self.start_stream()
        self.stream.feed(text)

    def stop_stream(self):
        if self.stream:
            self.stream.done()
            self.stream.wait_until_done()
            self.stream.close()
            self.is_active = False
            self.stream = None

    def cleanup(self):
        self.stop_stream()
        self.tts.cleanup()


def test_the_guides_own_stream_manager_as_written(fake_polly, monkeypatch, no_thread_leak):
    from voicekit import MemorySink, set_default_output

    monkeypatch.setenv("AWS_ENDPOINT_URL_POLLY", fake_polly.url)
    sink = MemorySink()
    set_default_output(sink)
    try:
        # Usage example
        manager = StreamManager()
        try:
            manager.start_stream()

            # Feed text in chunks
            manager.feed_text("First part of the speech. ")
            time.sleep(1)
            manager.feed_text("Second part of the speech. ")
            time.sleep(1)
            manager.feed_text("Final part of the speech.")

            # Stop streaming
            manager.stop_stream()
        finally:
            manager.cleanup()
    finally:
        set_default_output(None)
    spoken = " ".join(request.body["Text"] for request in fake_polly.speech_requests())
    assert spoken == "First part of the speech. Second part of the speech. Final part of the speech."
    np.testing.assert_array_equal(sink.audio, fake_polly.sent_audio())
