"""DeviceSink: play on a sound card through PortAudio (the sounddevice package)."""

from __future__ import annotations

import threading
import time
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import OutputError
from ._format import AudioFormat, ClosesOnExit, require_open

__all__ = ["DeviceSink"]

_NO_PORTAUDIO = (
    "the PortAudio library is missing, so voicekit can't play audio: install it "
    "(Debian/Ubuntu: `apt-get install libportaudio2`, Fedora: `dnf install portaudio`, "
    "macOS: `brew install portaudio`), or use a WavSink, MemorySink or NullSink"
)

# A write that sees no callback for this long means the device or sound server died.
_STALL_SECONDS = 2.0


def _portaudio() -> ModuleType:
    """Import sounddevice on first use, so ``import voicekit`` works without PortAudio."""
    try:
        import sounddevice
    except OSError as e:  # sounddevice raises OSError when it can't load libportaudio
        raise OutputError(f"{_NO_PORTAUDIO} ({e})") from e
    except ImportError as e:
        raise OutputError(f"the sounddevice package is missing: pip install sounddevice ({e})") from e
    return sounddevice


class DeviceSink(ClosesOnExit):
    """Plays on an audio output device, paced by the device's clock.

    ``device`` is None for the system's default output, a device index, or a
    part of a device name, as listed by ``python -m sounddevice``. A missing
    PortAudio library, an unknown device or a format the device refuses raise
    ``OutputError`` saying what to do.

    While open, a PortAudio stream runs in callback mode with blocks of
    ``blocksize`` frames, pulling from a ring buffer of ``buffer_frames`` frames
    allocated at ``open``; when the ring is empty it plays silence. ``write``
    blocks while the ring is full, which paces the writer to real time.
    ``abort()`` empties the ring and, if audio may still be on its way to the
    speaker, closes the PortAudio stream (on a helper thread, so ``abort``
    returns at once): closing drops what the host audio API still holds. Merely
    aborting is not enough: with ALSA plugins such as ``jack``, PortAudio's abort
    leaves the plugin playing its buffer. The next ``write`` opens the stream
    again. ``pending_frames`` counts frames in the ring; PortAudio's own
    ``latency`` (seconds) comes on top.
    Devices usually accept only their own rate (``preferred_samplerate``): the
    stream resamples to it.

    Diagnostics, readable any time:

    - ``underruns``: times the ring ran dry after a ``write`` and before the
      writer called ``drain()`` or ``abort()`` (i.e. while more audio was
      expected), plus PortAudio's output-underflow reports.
    - ``frames_played``: frames handed to PortAudio from the ring since ``open``.
    - ``last_audible_time``: ``time.monotonic()`` when a non-silent sample was
      last handed to PortAudio (None before any).
    """

    def __init__(self, device: int | str | None = None) -> None:
        self.device = device
        self._samplerate: int | None = None
        self._stream: Any = None
        self._format: AudioFormat | None = None
        self._lock = threading.Lock()  # writer commits vs abort(); the callback never takes it
        self._control = threading.Lock()  # PortAudio open/close, never two at once
        self._closing: threading.Thread | None = None  # a stream dropped by abort(), being closed
        self._space = threading.Event()  # set by the callback whenever it frees ring space
        self._reset(np.zeros((1, 1), np.float32))

    def _reset(self, ring: np.ndarray) -> None:
        self.underruns = 0
        self.frames_played = 0
        self.last_audible_time: float | None = None
        # Frame counters only grow; positions in the ring are counter % capacity.
        self._ring = ring
        self._written = 0  # committed by the writer (under _lock)
        self._read = 0  # consumed by the callback (its only writer)
        self._flush_to = 0  # abort(): the callback skips everything before this
        self._end_mark = 0  # written count at the last drain()/abort(): running dry there is fine
        self._dry_mark = 0  # written count when the callback last ran dry
        self._callbacks = 0
        self._generation = 0  # bumped by abort() so a blocked write drops its frames

    def __repr__(self) -> str:
        return f"DeviceSink(device={self.device!r})"

    @property
    def preferred_samplerate(self) -> int | None:
        """The device's default rate, the one it surely accepts (queried on first use).

        None when there is no usable device; ``open`` then raises the reason.
        Not raising here keeps ``isinstance(sink, Sink)`` safe.
        """
        if self._samplerate is None:
            try:
                self._samplerate = int(self._device_info(_portaudio())["default_samplerate"])
            except OutputError:
                return None
        return self._samplerate

    @property
    def latency(self) -> float:
        """PortAudio's output latency in seconds (0.0 when closed)."""
        stream = self._stream
        return float(stream.latency) if stream is not None else 0.0

    def _device_info(self, sd: ModuleType) -> dict[str, Any]:
        try:
            return sd.query_devices(self.device, kind="output")
        except (ValueError, sd.PortAudioError) as e:
            try:
                outputs = [f"{d['index']}: {d['name']}" for d in sd.query_devices() if d["max_output_channels"]]
            except sd.PortAudioError:
                outputs = []
            which = "no default output device" if self.device is None else f"no output device {self.device!r}"
            raise OutputError(
                f"{which} ({e}). Output devices: {', '.join(outputs) or 'none'}. Pass one of "
                f"them as DeviceSink(device=index or name), connect a sound card or start a "
                f"sound server, or use a WavSink, MemorySink or NullSink"
            ) from e

    def open(
        self, samplerate: int, channels: int, dtype: str, *, blocksize: int, buffer_frames: int
    ) -> None:
        fmt = AudioFormat.create(samplerate, channels, dtype, blocksize, buffer_frames)
        if self._format is not None:
            if fmt == self._format:
                return
            self.close()
        self._reset(np.zeros((max(fmt.buffer_frames, fmt.blocksize), fmt.channels), fmt.dtype))
        with self._control:
            self._stream = self._start_stream(fmt)
            self._format = fmt

    def _start_stream(self, fmt: AudioFormat) -> Any:
        """A started PortAudio stream for ``fmt``."""
        sd = _portaudio()
        info = self._device_info(sd)
        stream = None
        try:
            stream = sd.OutputStream(
                device=info["index"],
                samplerate=fmt.samplerate,
                channels=fmt.channels,
                dtype=fmt.dtype,
                blocksize=fmt.blocksize,
                callback=self._callback,
            )
            stream.start()
        except (sd.PortAudioError, ValueError) as e:
            if stream is not None:
                stream.close(ignore_errors=True)
            raise OutputError(
                f"output device {info['name']!r} refused {fmt.samplerate} Hz, {fmt.channels} "
                f"channel(s), {fmt.dtype} ({e}); its own rate is "
                f"{info['default_samplerate']:.0f} Hz and it has {info['max_output_channels']} "
                f"output channel(s)"
            ) from e
        return stream

    def _callback(self, outdata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        # Runs on PortAudio's thread every block: no locks, no new arrays.
        self._callbacks += 1
        if status.output_underflow:
            self.underruns += 1
        read = max(self._read, self._flush_to)
        written = self._written
        n = min(written - read, frames)
        if n > 0:
            ring = self._ring
            start = read % len(ring)
            first = min(n, len(ring) - start)
            outdata[:first] = ring[start : start + first]
            outdata[first:n] = ring[: n - first]
            self._read = read + n
            self.frames_played += n
            if outdata[:n].any():
                self.last_audible_time = time.monotonic()
            self._space.set()
        if n < frames:
            outdata[n:] = 0
            if written != self._end_mark and written != self._dry_mark:
                self.underruns += 1
            self._dry_mark = written

    @property
    def pending_frames(self) -> int:
        return self._written - max(self._read, self._flush_to)

    def write(self, frames: np.ndarray) -> None:
        """Copy ``frames`` into the ring, blocking while it is full.

        If ``abort()`` or ``close()`` is called meanwhile, the frames not yet
        queued are dropped and ``write`` returns.
        """
        require_open(self._format, self).check(frames)
        generation = self._generation
        self._start()
        ring = self._ring
        done = 0
        while done < len(frames):
            free = self._wait_for_space(generation)
            if free == 0:
                return
            n = min(free, len(frames) - done)
            start = self._written % len(ring)
            first = min(n, len(ring) - start)
            ring[start : start + first] = frames[done : done + first]
            ring[: n - first] = frames[done + first : done + n]
            with self._lock:
                if generation != self._generation:
                    return
                self._written += n
            done += n

    def _start(self) -> None:
        """Have a PortAudio stream again after an ``abort()`` closed it (usually reopened already)."""
        if self._stream is not None:
            return
        closing = self._closing
        if closing is not None:
            closing.join()  # it reopens the stream; an exclusive device opens only once closed
        with self._control:
            if self._stream is None and self._format is not None:
                self._stream = self._start_stream(self._format)

    def _reopen(self, old: Any) -> None:
        """On a helper thread: close the stream abort() dropped, then open the next one ahead
        of the next reply, so its first block plays at once."""
        old.close(ignore_errors=True)
        with self._control:
            if self._closing is not threading.current_thread():
                return
            self._closing = None
            if self._stream is None and self._format is not None:
                try:
                    self._stream = self._start_stream(self._format)
                except OutputError:
                    pass  # the next write tries again and reports it

    def _wait_for_space(self, generation: int) -> int:
        """Free frames in the ring once there are some; 0 if aborted meanwhile."""
        while generation == self._generation:
            self._space.clear()  # before looking, so a callback right after wakes us
            free = len(self._ring) - self.pending_frames
            if free > 0:
                return free
            self._wait_for_callback()
        return 0

    def _wait_for_callback(self) -> None:
        calls = self._callbacks
        if not self._space.wait(_STALL_SECONDS) and self._callbacks == calls:
            raise OutputError(
                f"the audio device stopped playing: no audio block requested for "
                f"{_STALL_SECONDS:.0f} s (device unplugged or sound server stopped?)"
            )

    def abort(self) -> None:
        with self._lock:
            self._generation += 1
            self._end_mark = self._written  # before _flush_to: the callback reads them in this order
            self._flush_to = self._written
        self._space.set()
        with self._control:
            stream = self._stream
            if stream is None or not self._may_sound(stream):
                return
            self._stream = None
            # closing deactivates the host API's side at once; the rest of the close is slow (~30 ms)
            self._closing = threading.Thread(
                target=self._reopen, args=(stream,), name="voicekit-device-reopen", daemon=True
            )
            self._closing.start()

    def _may_sound(self, stream: Any) -> bool:
        """Whether the host API may still hold audible frames (so abort must drop them)."""
        last = self.last_audible_time
        held = float(stream.latency) + 2 * self._ring_seconds()
        return last is not None and time.monotonic() - last < held

    def _ring_seconds(self) -> float:
        fmt = self._format
        return fmt.buffer_frames / fmt.samplerate if fmt is not None else 0.0

    def drain(self) -> None:
        """Wait until the ring is empty and its last block has left the speaker."""
        stream, fmt = self._stream, self._format
        if stream is None or fmt is None:
            return
        with self._lock:
            self._end_mark = self._written
            generation = self._generation
        while self.pending_frames > 0 and generation == self._generation:
            self._space.clear()
            if self.pending_frames > 0:
                self._wait_for_callback()
        if generation == self._generation:
            time.sleep(stream.latency + fmt.blocksize / fmt.samplerate)

    def close(self) -> None:
        """Stop the PortAudio stream at once (unplayed audio is dropped); idempotent."""
        if self._format is None:
            return
        self.abort()
        with self._control:
            stream, self._stream, self._format = self._stream, None, None
            closing, self._closing = self._closing, None
        if closing is not None:
            closing.join()  # it sees the sink closed and opens nothing
        if stream is not None:
            stream.close(ignore_errors=True)
