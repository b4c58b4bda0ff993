"""Helpers shared by the bench sections: percentiles, peak-RSS sampling, a private jackd.

The private jackd is the test suite's own rig (``tests/fixtures/audio.py``:
dummy driver, reached through ALSA's ``jack`` PCM), so the benchmark measures
the very device the tests check.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from tests.fixtures.audio import JackDevice

__all__ = ["PeakRSS", "jack_env", "jack_server", "summarize"]


def jack_server() -> AbstractContextManager[JackDevice]:
    """The test suite's private jackd; imported on use, since the RealtimeTTS
    child process loads this module in a venv without pytest."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.fixtures.audio import jack_server as start

    return start()


def summarize(values: Sequence[float], scale: float = 1000.0) -> dict[str, float | int]:
    """n, p50, p95 and max of ``values`` times ``scale`` (seconds to ms by default)."""
    if not values:
        return {"n": 0}
    data = np.asarray(values, dtype=float) * scale
    return {
        "n": len(data),
        "p50": round(float(np.percentile(data, 50)), 2),
        "p95": round(float(np.percentile(data, 95)), 2),
        "max": round(float(data.max()), 2),
    }


class PeakRSS:
    """Samples this process's resident set size in a thread; ``growth`` is peak minus start (bytes)."""

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.start_rss = self.peak_rss = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, name="voicekit-bench-rss", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak_rss - self.start_rss


def jack_env(device: JackDevice) -> dict[str, str]:
    """Environment for a subprocess that should reach the same jackd."""
    return {**os.environ, "JACK_DEFAULT_SERVER": device.server, "JACK_NO_AUDIO_RESERVATION": "1"}
