"""Sinks: where the stream's audio goes. Each only takes PCM blocks.

- ``DeviceSink(device=None)``: a sound card through PortAudio, paced in real time.
- ``WavSink(path, dtype="int16")``: a WAV file (16-bit PCM, 32-bit PCM or 32-bit float).
- ``MemorySink(realtime=False)``: a numpy array (optionally paced like a device).
- ``NullSink()``: nowhere.

Write your own by implementing the ``Sink`` protocol (see ``voicekit.sinks.base``).
"""

from .base import Sink
from .device import DeviceSink
from .memory import MemorySink, NullSink
from .wav import WavSink

__all__ = ["DeviceSink", "MemorySink", "NullSink", "Sink", "WavSink"]
