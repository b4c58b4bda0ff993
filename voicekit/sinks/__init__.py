"""Sinks: where the stream's audio goes. Each only takes PCM blocks.

- ``DeviceSink(device=None)``: a sound card through PortAudio, paced in real time.
- ``WavSink(path, dtype="int16")``: a WAV file (16-bit PCM, 32-bit PCM or 32-bit float).
- ``MemorySink(realtime=False)``: a numpy array (optionally paced like a device).
- ``NullSink()``: nowhere.
- ``RecordingSink(sink)``: plays through ``sink`` and keeps what was heard (a ``Recording``).
- ``WavPipeSink(file)``: a WAV streamed to a pipe such as stdout.

Write your own by implementing the ``Sink`` protocol (see ``voicekit.sinks.base``).
"""

from .base import Sink
from .device import DeviceSink
from .memory import MemorySink, NullSink
from .pipe import WavPipeSink
from .recording import Recording, RecordingSink
from .wav import WavSink

__all__ = ["DeviceSink", "MemorySink", "NullSink", "Recording", "RecordingSink", "Sink", "WavPipeSink", "WavSink"]
