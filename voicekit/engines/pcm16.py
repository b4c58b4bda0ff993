"""Decoding of raw 16-bit PCM bodies that arrive in pieces cut at any byte."""

from __future__ import annotations

import numpy as np

__all__ = ["Pcm16Decoder"]


class Pcm16Decoder:
    """Little-endian signed 16-bit bytes in, float32 samples in [-1, 1) out.

    A network read may end in the middle of a sample; its first byte is kept
    for the next piece instead of shifting every later sample by one byte.
    """

    def __init__(self) -> None:
        self._leftover = b""

    def decode(self, data: bytes) -> np.ndarray:
        data = self._leftover + data
        whole = len(data) - len(data) % 2
        self._leftover = data[whole:]
        return np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0
