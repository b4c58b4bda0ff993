"""Small helpers shared by the engine tests."""

from __future__ import annotations

import re
import time


def collect(chunks):
    """(chunks, monotonic time of the first one)."""
    first, out = None, []
    for chunk in chunks:
        first = first or time.monotonic()
        out.append(chunk)
    return out, first


async def acollect(chunks):
    """``collect`` for async iterators."""
    first, out = None, []
    async for chunk in chunks:
        first = first or time.monotonic()
        out.append(chunk)
    return out, first


def words(text: str) -> list[str]:
    return re.findall(r"\S+", text)
