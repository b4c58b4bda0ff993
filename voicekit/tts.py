"""BaseTTS: the guide's whole API over any engine.

Every engine's TTS class (``EspeakTTS``, ``PollyTTS``, ``OpenAITTS``,
``FallbackTTS``) is this class around a different client. The TTS object owns
its settings and remembers its live streams so ``cleanup()`` can stop them
all; playback belongs to the sink's process-wide line (:mod:`voicekit.playback`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import StreamConfig, normalize_property
from .contract import Engine, EngineCapabilities, Voice, capabilities_of
from .errors import StreamError
from .playback import PlaybackLine, line_for
from .reply import OnChunk, OnWord
from .sinks._format import AudioFormat
from .stream import SpeechStream

if TYPE_CHECKING:
    from .async_stream import AsyncSpeechStream
    from .sinks.base import Sink

__all__ = ["BaseTTS", "set_default_output"]

_default_output: Sink | None = None


def set_default_output(sink: Sink | None) -> None:
    """The sink for TTS objects without ``set_output``: e.g. a ``WavSink`` on a
    headless server. None restores the default audio device."""
    global _default_output
    _default_output = sink

log = logging.getLogger("voicekit")


class BaseTTS:
    def __init__(self, client: Engine):
        self.client = client
        self._config = StreamConfig()
        self._sink: Sink | None = None
        self._streams: weakref.WeakSet[SpeechStream] = weakref.WeakSet()
        self._lines: weakref.WeakSet[PlaybackLine] = weakref.WeakSet()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.client!r})"

    # -- configuration ------------------------------------------------------------------
    def setup_stream(
        self,
        chunk_size: int | None = None,
        buffer_size: int | None = None,
        samplerate: int | None = None,
        channels: int = 1,
        dtype: str | None = None,
    ) -> None:
        """Output format for streams created from now on (see :mod:`voicekit.config`)."""
        self.set_stream_config(
            {"chunk_size": chunk_size, "buffer_size": buffer_size, "samplerate": samplerate, "channels": channels, "dtype": dtype}
        )

    def set_stream_config(self, config: dict[str, Any]) -> None:
        """Change any stream setting by name; unknown names raise ``ValueError``."""
        with self._lock:
            self._config = self._config.updated(dict(config))

    @property
    def stream_config(self) -> StreamConfig:
        return self._config

    def set_output(self, sink: Sink | None) -> None:
        """Default sink for streams of this TTS; None means the default audio device."""
        self._sink = sink

    # -- streams --------------------------------------------------------------------------
    def create_stream(
        self,
        *,
        sink: Sink | None = None,
        on_chunk_processed: OnChunk | None = None,
        on_word: OnWord | None = None,
    ) -> SpeechStream:
        with self._lock:
            line, fmt, config = self._line_for(sink)
        stream = SpeechStream(
            self.client, line, fmt, config, on_chunk_processed=on_chunk_processed, on_word=on_word
        )
        with self._lock:
            self._streams.add(stream)
        return stream

    async def create_async_stream(
        self,
        *,
        sink: Sink | None = None,
        on_chunk_processed: OnChunk | None = None,
        on_word: OnWord | None = None,
    ) -> AsyncSpeechStream:
        from .async_stream import AsyncSpeechStream

        # off the loop: the first stream on the default device initialises PortAudio (~100 ms);
        # the stream's worker starts there too. Its engine's network I/O never runs on this loop
        # (OpenAI's runs on the engine's own loop thread), so the loop only awaits the finish.
        stream = await asyncio.to_thread(
            self.create_stream, sink=sink, on_chunk_processed=on_chunk_processed, on_word=on_word
        )
        return AsyncSpeechStream(stream)

    def speak_streamed(
        self,
        text: str,
        *,
        on_chunk_processed: OnChunk | None = None,
        wait: bool = True,
        sink: Sink | None = None,
    ) -> SpeechStream:
        """Speak ``text`` as a stream. With ``wait=False`` return at once; calls play in order."""
        stream = self.create_stream(sink=sink, on_chunk_processed=on_chunk_processed)
        try:
            stream.feed(text)
        except BaseException:
            stream.interrupt()
            stream.close()
            raise
        stream.done()
        if wait:
            stream.close()
        return stream

    def speak(self, text: str, sink: Sink | None = None) -> None:
        self.speak_streamed(text, sink=sink)

    # -- whole-text helpers -----------------------------------------------------------------
    def synth_to_bytes(self, text: str) -> bytes:
        """The whole text as WAV bytes at the stream's rate and channels.

        Samples follow ``setup_stream(dtype=...)``: 16-bit PCM unless it was set,
        then 32-bit PCM for int32 or 32-bit float for float32.
        """
        from .sinks import MemorySink
        from .sinks.wav import wav_bytes

        sink = MemorySink()
        self.speak_streamed(text, sink=sink)
        config = self._config
        audio = sink.audio.reshape(-1, sink.channels or config.channels)  # an empty text still gets its layout
        return wav_bytes(audio, sink.samplerate or self.client.samplerate, config.dtype or "int16")

    def synth_to_file(self, text: str, path: str | Path) -> Path:
        """The whole text as a WAV file, like ``synth_to_bytes``."""
        path = Path(path)
        path.write_bytes(self.synth_to_bytes(text))
        return path

    # -- engine pass-through ----------------------------------------------------------------
    @property
    def capabilities(self) -> EngineCapabilities:
        """What the engine declares it can do (SSML, word marks, languages)."""
        return capabilities_of(self.client)

    def get_voices(self) -> list[Voice]:
        return self.client.voices()

    def set_voice(self, voice_id: str) -> None:
        self.client.set_voice(voice_id)

    def set_property(self, name: str, value: Any) -> None:
        """``rate`` (factor or x-slow..x-fast), ``volume`` and ``pitch`` (0-100 or x-low..x-high)."""
        self.client.set_property(name, normalize_property(name, value))

    def cleanup(self) -> None:
        """Stop every stream of this TTS now and release the engine.

        Returns at once: nothing waits for audio, a device or the network.
        """
        streams = list(self._streams)
        for stream in streams:
            stream.interrupt()
        for stream in streams:
            try:
                stream.close()
            except StreamError as exc:
                log.warning("voicekit: %r ended with an error during cleanup: %s", stream, exc)
        with self._lock:
            lines = list(self._lines)
        for line in lines:
            # only a line with nothing left to play: its sink is closed (a WAV file complete) on return
            line.wait_released(timeout=1.0)
        self.client.close()

    def __enter__(self) -> BaseTTS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- internals --------------------------------------------------------------------------
    def _line_for(self, sink: Sink | None) -> tuple[PlaybackLine, AudioFormat, StreamConfig]:
        """The playback line of ``sink`` and the format to play there (lock held)."""
        config = self._config
        if sink is None:
            if self._sink is None:
                from .sinks import DeviceSink

                self._sink = _default_output or DeviceSink()
            sink = self._sink
        rate = config.samplerate or sink.preferred_samplerate or self.client.samplerate
        fmt = AudioFormat(
            rate, config.channels, config.dtype or "float32", config.block_frames(rate), config.buffer_frames(rate)
        )
        line = line_for(sink)
        self._lines.add(line)
        return line, fmt, config
