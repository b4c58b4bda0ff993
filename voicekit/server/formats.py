"""The speech endpoint's audio formats: one container per response, encoded as the PCM arrives.

Every format but ``pcm`` goes through PyAV (FFmpeg's muxers and encoders, in
its wheel), so each response is one well-formed file with one header, gapless
across sentences, whatever the engine's chunking. The muxer writes to an
in-memory sink that the response drains after every piece of PCM, and
``flush_packets`` makes it hand each packet over at once, so the first bytes
leave as soon as the encoder has a frame (after about 50 ms of audio for mp3,
130 ms for aac).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FORMATS", "AudioFormat", "Encoder"]


@dataclass(frozen=True)
class AudioFormat:
    name: str
    content_type: str
    container: str | None = None  # None: raw PCM, no container
    codec: str | None = None
    bit_rate: int | None = None
    # muxer options; "bitexact" keeps FFmpeg's version tag out of the headers
    options: dict[str, str] = field(default_factory=dict)
    # encoder options: each server session encodes in real time, so speed counts as much as size
    codec_options: dict[str, str] = field(default_factory=dict)


#: OpenAI's ``response_format`` values. Bit rates suit 24 kHz mono speech.
FORMATS: dict[str, AudioFormat] = {
    f.name: f
    for f in (
        # LAME's level 7 and Opus' complexity 5 take half and a third of the default's CPU, same size
        AudioFormat("mp3", "audio/mpeg", "mp3", "libmp3lame", 64_000, codec_options={"compression_level": "7"}),
        # Ogg's default page is a second long: a tenth keeps the first bytes early
        AudioFormat("opus", "audio/ogg", "ogg", "libopus", 32_000, {"page_duration": "100000"}, {"compression_level": "5"}),
        AudioFormat("aac", "audio/aac", "adts", "aac", 64_000, codec_options={"aac_coder": "fast"}),
        AudioFormat("flac", "audio/flac", "flac", "flac"),
        # sizes unknown while streaming: the muxer writes 0xFFFFFFFF, as players expect of a live WAV
        AudioFormat("wav", "audio/wav", "wav", "pcm_s16le", options={"fflags": "+bitexact"}),
        AudioFormat("pcm", "audio/pcm"),
    )
}


class _Collector(io.RawIOBase):
    """The muxer's output file: bytes wait here until the response takes them."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.data += b
        return len(b)

    def take(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out


class Encoder:
    """Mono s16le PCM in, one continuous file of ``fmt`` out, piece by piece.

    ``encode`` returns what the container has ready (maybe nothing yet),
    ``finish`` the rest; ``close`` frees the codec whether or not it finished.
    Not thread-safe: one response uses it from one task at a time.
    """

    def __init__(self, fmt: AudioFormat, samplerate: int) -> None:
        self.format = fmt
        self.samplerate = samplerate
        self.frames = 0
        self._out = _Collector()
        self._container: Any = None
        self._stream: Any = None
        if fmt.container is None:
            return
        import av

        self._container = av.open(
            self._out, mode="w", format=fmt.container, options={"flush_packets": "1", **fmt.options}, buffer_size=4096
        )
        try:
            self._stream = self._container.add_stream(fmt.codec, rate=samplerate, layout="mono")
            if fmt.bit_rate:
                self._stream.codec_context.bit_rate = fmt.bit_rate
            self._stream.codec_context.options = dict(fmt.codec_options)
        except BaseException:
            self._container.close()
            raise

    def encode(self, pcm: bytes) -> bytes:
        samples = np.frombuffer(pcm, dtype="<i2")
        start, self.frames = self.frames, self.frames + len(samples)
        if self._stream is None:
            return pcm
        if not len(samples):
            return b""
        import av

        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.samplerate
        frame.pts = start
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        return self._out.take()

    def finish(self) -> bytes:
        """The encoder's last frames and the container's trailer."""
        if self._stream is not None:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        self.close()
        return self._out.take()

    def close(self) -> None:
        if self._container is not None:
            container, self._container, self._stream = self._container, None, None
            container.close()
