"""The sink contract: sinks only take PCM.

The stream's playback thread writes blocks of ``chunk_size`` frames, shaped
``(frames, channels)`` in the output dtype, at the rate given to ``open``. A
sink that plays in real time blocks in ``write`` while its own buffer is full;
that is what paces the playback thread. The playback clock comes back through
``pending_frames`` (frames written, not yet handed to the hardware) and ``latency``
(seconds from the hardware to the speaker): a word is heard when both have passed.
The playback line checks that a sink has every member before it plays into it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Sink", "missing_members"]


@runtime_checkable
class Sink(Protocol):
    @property
    def preferred_samplerate(self) -> int | None:
        """The rate the sink wants, or None to take the engine's own rate."""
        ...

    def open(
        self, samplerate: int, channels: int, dtype: str, *, blocksize: int, buffer_frames: int
    ) -> None:
        """Prepare for audio in this format. Called again after ``close``.

        ``blocksize`` is the output block (the guide's ``chunk_size``): the
        playback thread writes blocks of at most this many frames, and a device
        sink should run its callback at this size so an abort is silent within
        one block. ``buffer_frames`` (the guide's ``buffer_size``) bounds what the
        sink itself holds ahead of the speaker.
        """
        ...

    def write(self, frames: np.ndarray) -> None:
        """Queue ``frames`` for output; may block to pace real time."""
        ...

    @property
    def pending_frames(self) -> int:
        """Frames accepted by ``write`` that have not been played yet."""
        ...

    @property
    def latency(self) -> float:
        """Seconds a frame takes from leaving ``pending_frames`` to the speaker; 0.0 for files and memory."""
        ...

    def abort(self) -> None:
        """Drop pending audio now: silence within one output block."""
        ...

    def drain(self) -> None:
        """Block until every written frame has been played."""
        ...

    def close(self) -> None:
        """Stop output and free the device/file. Idempotent."""
        ...


_MEMBERS = tuple(name for name in vars(Sink) if not name.startswith("_"))


def missing_members(sink: object) -> list[str]:
    """The :class:`Sink` members ``sink`` lacks, so a hand-written sink fails with their names, not mid-reply."""
    return [name for name in _MEMBERS if not hasattr(sink, name)]
