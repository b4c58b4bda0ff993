"""Every snippet of the user's guide (docs "Streaming" page), run as written.

The only changes are the import line, the credentials, and one line choosing
where audio goes (``set_default_output``): the guide's own Polly code talks,
through the real boto3 client, to the fake Polly server on 127.0.0.1
(``AWS_ENDPOINT_URL_POLLY``, boto3's standard endpoint variable).
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from voicekit import BufferError, MemorySink, PollyClient, PollyTTS, StreamError, set_default_output


@pytest.fixture
def sink(fake_polly, monkeypatch, no_thread_leak):
    monkeypatch.setenv("AWS_ENDPOINT_URL_POLLY", fake_polly.url)
    fake_polly.piece_interval = 0.0
    sink = MemorySink()
    set_default_output(sink)
    yield sink
    set_default_output(None)


@pytest.fixture
def tts(sink):
    client = PollyClient(credentials=("us-east-1", "key_id", "access_key"))
    tts = PollyTTS(client)
    yield tts
    tts.cleanup()


def spoken_seconds(sink):
    audio = sink.audio.reshape(len(sink.audio), -1)[:, 0].astype(np.float32)
    return np.count_nonzero(np.abs(audio) > (30 if sink.audio.dtype == np.int16 else 1e-3)) / sink.samplerate


def test_simple_streaming(sink):
    # Initialize TTS
    client = PollyClient(credentials=("us-east-1", "key_id", "access_key"))
    tts = PollyTTS(client)

    # Stream text
    tts.speak_streamed("This text will be processed and played in real-time.")
    assert spoken_seconds(sink) > 1.0
    tts.cleanup()


def test_streaming_with_callbacks(tts, sink, capsys):
    def on_chunk_processed(chunk_info):
        print(f"Processed chunk: {chunk_info['text']}")
        print(f"Duration: {chunk_info['duration']}s")

    # Stream with callback
    tts.speak_streamed(
        "This text will trigger callbacks for each chunk.",
        on_chunk_processed=on_chunk_processed,
    )
    out = capsys.readouterr().out
    assert "Processed chunk: This text will trigger callbacks for each chunk." in out
    assert float(out.split("Duration: ")[1].split("s")[0]) > 1.0


def test_custom_stream_configuration(tts, sink):
    # Configure stream parameters
    tts.setup_stream(
        chunk_size=1024,  # Size of audio chunks
        buffer_size=4096,  # Audio buffer size
        samplerate=44100,  # Sample rate
        channels=1,  # Mono audio
        dtype="int16",  # Audio data type
    )
    tts.speak_streamed("Configured output.")
    assert sink.samplerate == 44100 and sink.audio.dtype == np.int16
    assert spoken_seconds(sink) > 0.5


def test_stream_control(tts, sink):
    # Start a stream
    stream = tts.create_stream()

    # Feed text in chunks
    stream.feed("First part of the text. ")
    stream.feed("Second part of the text. ")

    # Indicate no more text
    stream.done()

    # Wait for completion
    stream.wait_until_done()
    assert stream.heard_text == "First part of the text. Second part of the text."
    assert spoken_seconds(sink) > 2.0


def test_async_streaming(tts, sink):
    async def stream_text():
        # Create async stream
        stream = await tts.create_async_stream()

        # Feed text asynchronously
        await stream.feed("First part. ")
        await stream.feed("Second part. ")

        # Complete stream
        await stream.done()

        # Wait for completion
        await stream.wait_until_done()
        return stream.heard_text

    # Run async stream
    assert asyncio.run(stream_text()) == "First part. Second part."


def test_efficient_chunking(tts, sink):
    # Configure chunk settings
    tts.set_stream_config(
        {
            "chunk_size": 1024,  # Audio chunk size
            "max_text_chunk": 100,  # Maximum text characters per chunk
            "buffer_threshold": 0.75,  # Buffer fullness threshold
        }
    )
    chunks = []
    tts.speak_streamed("word " * 80, on_chunk_processed=chunks.append)
    assert len(chunks) >= 4 and all(len(c["text"]) <= 100 for c in chunks)


def test_memory_efficient_processing(tts, sink, fake_polly, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "large_text.txt").write_text("Line one is here.\n\nLine two follows.\nAnd line three.\n")
    # Process large text efficiently
    with open("large_text.txt") as f:
        # Stream text line by line
        for line in f:
            tts.speak_streamed(line.strip(), wait=False)
            # Optional: Add delay between lines
            time.sleep(0.1)
    deadline = time.monotonic() + 20
    while len(fake_polly.speech_requests()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    texts = sorted(r.body["Text"] for r in fake_polly.speech_requests())
    assert texts == ["And line three.", "Line one is here.", "Line two follows."]
    while spoken_seconds(sink) < 2.0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spoken_seconds(sink) > 2.0


class ChatBot:
    def __init__(self):
        self.tts = PollyTTS(PollyClient(credentials=("us-east-1", "key_id", "access_key")))
        self.stream = self.tts.create_stream()

    def respond(self, text):
        # Stream response immediately
        self.stream.feed(text)

    def finish_response(self):
        self.stream.done()
        self.stream = self.tts.create_stream()


def test_interactive_chat_bot(sink):
    bot = ChatBot()
    bot.respond("Hello! ")
    bot.respond("How can I help?")
    first = bot.stream
    bot.finish_response()
    bot.respond("Second reply.")
    second = bot.stream
    bot.finish_response()
    assert first.wait_until_done(timeout=20) and second.wait_until_done(timeout=20)
    assert (first.heard_text, second.heard_text) == ("Hello! How can I help?", "Second reply.")
    bot.tts.cleanup()


def test_live_text_processing(tts, sink):
    def process_live_text(text_generator):
        stream = tts.create_stream()

        for text in text_generator:
            # Process and stream in real-time
            stream.feed(text)

            # Check if we should pause
            if stream.buffer_full():
                time.sleep(0.1)

        stream.done()
        return stream

    stream = process_live_text(word + " " for word in "The quick brown fox jumps over the lazy dog.".split())
    assert stream.wait_until_done(timeout=20)
    assert stream.heard_text == "The quick brown fox jumps over the lazy dog."


def test_stream_error_management(tts, sink, capsys):
    try:
        stream = tts.create_stream()
        stream.feed("Text to stream")
    except StreamError as e:
        print(f"Streaming error: {e}")
    except BufferError as e:
        print(f"Buffer error: {e}")
    finally:
        stream.close()
    assert stream.heard_text == "Text to stream"
    assert capsys.readouterr().out == ""


def test_stream_error_management_reports_a_full_buffer(tts, sink, capsys):
    tts.set_stream_config({"max_queued_chars": 10})
    try:
        stream = tts.create_stream()
        stream.feed("Text to stream, longer than the cap")
    except StreamError as e:
        print(f"Streaming error: {e}")
    except BufferError as e:
        print(f"Buffer error: {e}")
    finally:
        stream.close()
    # our BufferError is a StreamError too: the first clause that matches wins
    assert "max_queued_chars" in capsys.readouterr().out


def test_recovery_strategies(tts, sink, fake_polly):
    fake_polly.faults = ["500", "500", "500", "500"]  # more than the client's own retries

    def robust_streaming(text):
        max_retries = 3
        retry_count = 0

        while retry_count < max_retries:
            try:
                return tts.speak_streamed(text)
            except StreamError:
                retry_count += 1
                time.sleep(1)  # Wait before retry

        raise Exception("Failed to stream after multiple attempts")

    stream = robust_streaming("Recovered after a failure.")
    assert stream.heard_text == "Recovered after a failure."


def test_resource_cleanup(tts, sink):
    # Always clean up streams
    stream = tts.create_stream()
    try:
        stream.feed("Text")
        stream.done()
    finally:
        stream.close()
    assert stream.heard_text == "Text" and spoken_seconds(sink) > 0.2


class StreamManager:
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


def test_complete_streaming_application(sink):
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
    assert spoken_seconds(sink) > 3.0
    assert threading.active_count() < 10


def test_ssml_reply_goes_to_polly_whole(tts, sink, fake_polly):
    ssml = '<speak>Hello, <break time="300ms"/> world. Second sentence &amp; more.</speak>'
    stream = tts.create_stream()
    for piece in (ssml[:20], ssml[20:45], ssml[45:]):
        stream.feed(piece)
    stream.done()
    assert stream.wait_until_done(timeout=20)
    (request,) = fake_polly.speech_requests()
    assert request.body["TextType"] == "ssml" and request.body["Text"] == ssml
    assert spoken_seconds(sink) > 1.0


def test_plain_text_with_markup_characters_is_spoken_literally(tts, sink, fake_polly):
    tts.speak_streamed("Use a < b & c > d here.")
    tts.set_property("rate", 1.5)  # prosody needs SSML: the text is escaped into it
    tts.speak_streamed("Use a < b & c > d here.")
    plain, wrapped = fake_polly.speech_requests()
    assert (plain.body["TextType"], plain.body["Text"]) == ("text", "Use a < b & c > d here.")
    assert wrapped.body["TextType"] == "ssml"
    assert wrapped.body["Text"] == '<speak><prosody rate="150%">Use a &lt; b &amp; c &gt; d here.</prosody></speak>'
