"""Helpers shared by the bench sections: percentiles, peak-RSS sampling, a private jackd.

The jackd recipe is the one of issue 3 (dummy driver, no realtime scheduling),
reached through ALSA's ``jack`` PCM from libasound2-plugins, which aborts fast
and is paced in real time.
"""

from __future__ import annotations

import ctypes.util
import glob
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

import numpy as np

JACK_RATE = 48000
JACK_PERIOD = 480
JACK_PACKAGES = "jackd2 libportaudio2 libasound2-plugins"
SERVER_NAMES = [f"voicekit-bench-{i}" for i in range(4)]


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


@dataclass(frozen=True)
class JackDevice:
    """The PortAudio output (ALSA ``jack`` PCM) that plays into a private jackd."""

    index: int
    samplerate: int
    server: str

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should reach the same jackd."""
        return {**os.environ, "JACK_DEFAULT_SERVER": self.server, "JACK_NO_AUDIO_RESERVATION": "1"}


def jack_missing() -> list[str]:
    """The packages missing for the JACK device measures (empty when all are there)."""
    missing = [tool for tool in ("jackd", "jack_wait") if shutil.which(tool) is None]
    if ctypes.util.find_library("portaudio") is None:
        missing.append("libportaudio2")
    if not glob.glob("/usr/lib/*/alsa-lib/libasound_module_pcm_jack.so") + glob.glob(
        "/usr/lib/alsa-lib/libasound_module_pcm_jack.so"
    ):
        missing.append("libasound2-plugins")
    return missing


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _start_jackd(log: IO[bytes]) -> tuple[subprocess.Popen, str]:
    """Start jackd under the first name of a small fixed set that no live server uses.

    JACK's registry in /dev/shm holds at most 8 servers, and an entry left by a
    jackd that died is reclaimed only when a server of the same name starts: a
    fresh name per run (say, with the pid) would fill it up for good.
    """
    for name in SERVER_NAMES:
        env = {**os.environ, "JACK_DEFAULT_SERVER": name, "JACK_NO_START_SERVER": "1"}
        check = subprocess.run(["jack_wait", "-c"], env=env, capture_output=True, text=True, timeout=20)
        if check.stdout.strip() == "running":
            continue
        proc = subprocess.Popen(
            ["jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", str(JACK_RATE), "-p", str(JACK_PERIOD)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        waited = subprocess.run(["jack_wait", "-w", "-t", "10"], env=env, capture_output=True, timeout=20)
        if waited.returncode == 0 and proc.poll() is None:
            return proc, name
        _stop(proc)
    log.seek(0)
    raise RuntimeError(f"jackd did not start: {log.read().decode(errors='replace')[-500:]}")


@contextmanager
def jack_device() -> Iterator[JackDevice]:
    """Run a private ``jackd -d dummy`` and yield the PortAudio device that reaches it.

    Raises RuntimeError (naming what to install) when it can't.
    """
    missing = jack_missing()
    if missing:
        raise RuntimeError(f"needs {JACK_PACKAGES} (apt-get install them); missing: {', '.join(missing)}")
    saved = {key: os.environ.get(key) for key in ("JACK_DEFAULT_SERVER", "JACK_NO_AUDIO_RESERVATION")}
    os.environ["JACK_NO_AUDIO_RESERVATION"] = "1"
    log = tempfile.TemporaryFile()
    proc = None
    import sounddevice as sd

    try:
        proc, server = _start_jackd(log)
        # libjack inside this process (via the ALSA plugin) finds the server by this name
        os.environ["JACK_DEFAULT_SERVER"] = server
        # PortAudio lists devices only when initialised: rescan now that jackd runs.
        sd._terminate()
        sd._initialize()
        found = [
            d
            for d in sd.query_devices()
            if d["name"] == "jack" and d["max_output_channels"] > 0
            and sd.query_hostapis(d["hostapi"])["name"] == "ALSA"
        ]
        if not found:
            raise RuntimeError("jackd runs but PortAudio shows no ALSA 'jack' device (libasound2-plugins?)")
        yield JackDevice(found[0]["index"], int(found[0]["default_samplerate"]), server)
    finally:
        # PortAudio's JACK host API holds a client of this server: stop it before the server.
        sd._terminate()
        if proc is not None:
            _stop(proc)
        log.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        sd._initialize()
