"""Stream settings, shared by ``setup_stream`` and ``set_stream_config``.

Every knob of the guide is here with its meaning in one place:

=================== =========================================================
``chunk_size``      output block in frames: the unit the playback thread
                    writes and the device callback plays. An interrupt is
                    silent within one block. Default: 20 ms of output.
``buffer_size``     frames the sink holds ahead of the speaker (the device's
                    ring buffer). Larger survives scheduling hiccups; smaller
                    makes ``pause()`` quicker. Default: 4 blocks.
``samplerate``      output rate, 8000-192000 Hz; default: the sink's preferred
                    rate (the device's), else the engine's own.
``channels``        output channels, 1-32 (mono is copied to each).
``dtype``           output sample type: ``float32``, ``int16`` or ``int32``.
                    Default: ``float32`` for playback, 16-bit for the WAV of
                    ``synth_to_bytes``/``synth_to_file`` (which honour it
                    when set: 32-bit PCM for int32, IEEE float for float32).
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
``language``        sentence rules for the chunker ("de", "pt-BR", "zh"...);
                    default None: the engine's voice language when it reports
                    one, else English.
=================== =========================================================

Settings are checked where they are set (``StreamConfig(...)``,
``setup_stream``, ``set_stream_config``): a bad value raises ``ValueError``
naming the setting and what it accepts, before anything is allocated. Counts
are ints (an integral float such as ``48000.0`` is taken as its int), switches
are bools, and every number is finite.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields, replace
from typing import Any

from .contract import PROPERTY_RANGES, check_property
from .text.rules import resolve

__all__ = ["StreamConfig", "normalize_property"]

_DTYPES = ("float32", "int16", "int32")

# (low, high) of each int setting; None values are allowed where the default is None
_INTS = {
    "chunk_size": (1, 1 << 16),
    "buffer_size": (1, 1 << 20),
    "samplerate": (8000, 192_000),
    "channels": (1, 32),
    "max_text_chunk": (1, 100_000),
    "min_text_chunk": (0, 100_000),
    "max_queued_chars": (1, 1 << 40),
}
# (low, high, low_inclusive) of each float setting
_FLOATS = {
    "lookahead": (0.0, 86_400.0, False),
    "buffer_threshold": (0.0, 1.0, False),
    "chars_per_second": (0.0, 1e6, False),
}
_BOOLS = ("first_fragment", "speech_filter")


def _as_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        number = int(value)
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    if not low <= number <= high:
        raise ValueError(f"{name} must be from {low} to {high}, got {value!r}")
    return number


def _as_float(name: str, value: Any, low: float, high: float, low_inclusive: bool) -> float:
    bound = f"from {low:g} to {high:g}" if low_inclusive else f"above {low:g} up to {high:g}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number {bound}, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or not (low <= number if low_inclusive else low < number) or number > high:
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return number


@dataclass(frozen=True)
class StreamConfig:
    chunk_size: int | None = None
    buffer_size: int | None = None
    samplerate: int | None = None
    channels: int = 1
    dtype: str | None = None
    max_text_chunk: int = 250
    min_text_chunk: int = 0
    first_fragment: bool = True
    lookahead: float = 10.0
    buffer_threshold: float = 0.75
    chars_per_second: float = 15.0
    max_queued_chars: int = 16_000_000
    speech_filter: bool = True
    language: str | None = None

    def __post_init__(self) -> None:
        for name, (low, high) in _INTS.items():
            value = getattr(self, name)
            if value is not None or name not in ("chunk_size", "buffer_size", "samplerate"):
                object.__setattr__(self, name, _as_int(name, value, low, high))
        for name, (flow, fhigh, inclusive) in _FLOATS.items():
            object.__setattr__(self, name, _as_float(name, getattr(self, name), flow, fhigh, inclusive))
        for name in _BOOLS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.dtype is not None and self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES} (or None for the default), got {self.dtype!r}")
        if self.language is not None:
            try:
                resolve(self.language)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"language: {exc} (or None for the voice's language)") from None
        if self.min_text_chunk >= self.max_text_chunk:
            raise ValueError(
                f"min_text_chunk must be below max_text_chunk ({self.max_text_chunk}), got {self.min_text_chunk!r}"
            )

    def updated(self, changes: dict[str, Any]) -> StreamConfig:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown stream setting(s) {unknown}; known: {sorted(known)}")
        return replace(self, **changes)

    def block_frames(self, samplerate: int) -> int:
        return self.chunk_size or max(1, round(samplerate * 0.02))

    def buffer_frames(self, samplerate: int) -> int:
        return self.buffer_size or 4 * self.block_frames(samplerate)


# the guide's and py3-tts-wrapper's named values, mapped onto the engine contract's scales
_RATES = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "fast": 1.35, "x-fast": 1.75}
_LEVELS = {"silent": 0.0, "x-low": 10.0, "low": 30.0, "medium": 50.0, "high": 75.0, "x-high": 100.0, "loud": 90.0}


def normalize_property(name: str, value: Any) -> float:
    """``set_property``'s value on the engine contract's scale, or ValueError naming the range.

    ``rate`` is a speed factor from 0.1 to 10 or x-slow..x-fast; ``volume`` and
    ``pitch`` are 0-100 or x-low..x-high.
    """
    if name not in PROPERTY_RANGES:
        raise ValueError(f"unknown property {name!r}; use 'rate', 'volume' or 'pitch'")
    table = _RATES if name == "rate" else _LEVELS
    if isinstance(value, str) and value.strip().lower() in table:
        return table[value.strip().lower()]
    number = value
    if isinstance(value, str):  # py3-tts-wrapper style: set_property("volume", "80")
        try:
            number = float(value)
        except ValueError:
            pass
    try:
        return check_property(name, number)
    except ValueError:
        low, high = PROPERTY_RANGES[name]
        # one plain line, as a user reads it (chat's /rate, the CLI's --rate): the value as given
        raise ValueError(
            f"{name} must be a number from {low:g} to {high:g} or one of {', '.join(table)}, got {value!r}"
        ) from None
