"""Stream settings, shared by ``setup_stream`` and ``set_stream_config``.

Every knob of the guide is here with its meaning in one place:

=================== =========================================================
``chunk_size``      output block in frames: the unit the playback thread
                    writes and the device callback plays. An interrupt is
                    silent within one block. Default: 20 ms of output.
``buffer_size``     frames the sink holds ahead of the speaker (the device's
                    ring buffer). Larger survives scheduling hiccups; smaller
                    makes ``pause()`` quicker. Default: 4 blocks.
``samplerate``      output rate; default: the sink's preferred rate (the
                    device's), else the engine's own.
``channels``        output channels (mono is copied to each).
``dtype``           output sample type: ``float32``, ``int16`` or ``int32``.
``max_text_chunk``  hard cap on characters per synthesized text chunk (also
                    capped by the engine's own limit).
``min_text_chunk``  tiny fragments shorter than this are merged.
``first_fragment``  cut the first chunk of a reply at a clause break so
                    speech starts sooner.
``lookahead``       seconds of audio synthesized ahead of playback; bounds
                    memory whatever the input length.
``buffer_threshold`` ``buffer_full()`` is True once queued audio plus queued
                    text (estimated at ``chars_per_second``) reach this
                    fraction of ``lookahead``.
``chars_per_second`` speaking-rate estimate used for queued text.
``max_queued_chars`` hard cap on text fed but not yet synthesized; ``feed``
                    raises ``BufferError`` past it.
``speech_filter``   turn LLM markdown into speakable text before chunking.
=================== =========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["StreamConfig"]

_DTYPES = ("float32", "int16", "int32")


@dataclass(frozen=True)
class StreamConfig:
    chunk_size: int | None = None
    buffer_size: int | None = None
    samplerate: int | None = None
    channels: int = 1
    dtype: str = "float32"
    max_text_chunk: int = 250
    min_text_chunk: int = 0
    first_fragment: bool = True
    lookahead: float = 10.0
    buffer_threshold: float = 0.75
    chars_per_second: float = 15.0
    max_queued_chars: int = 16_000_000
    speech_filter: bool = True

    def updated(self, changes: dict[str, Any]) -> StreamConfig:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown stream setting(s) {unknown}; known: {sorted(known)}")
        new = replace(self, **changes)
        new.validate()
        return new

    def validate(self) -> None:
        def positive(name: str, allow_none: bool = True) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")

        for name in ("chunk_size", "buffer_size", "samplerate"):
            positive(name)
        for name in ("channels", "max_text_chunk", "lookahead", "chars_per_second", "max_queued_chars"):
            positive(name, allow_none=False)
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {self.dtype!r}")
        if not 0 < self.buffer_threshold <= 1:
            raise ValueError(f"buffer_threshold must be in (0, 1], got {self.buffer_threshold!r}")
        if self.min_text_chunk < 0 or self.min_text_chunk >= self.max_text_chunk:
            raise ValueError("min_text_chunk must be >= 0 and below max_text_chunk")

    def block_frames(self, samplerate: int) -> int:
        return int(self.chunk_size or max(1, round(samplerate * 0.02)))

    def buffer_frames(self, samplerate: int) -> int:
        return int(self.buffer_size or 4 * self.block_frames(samplerate))
