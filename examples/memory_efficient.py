"""The guide's "Memory-Efficient Processing": speak a file line by line without waiting.

``speak_streamed(..., wait=False)`` returns at once; the calls play one after
another, in call order. Usage: ``python memory_efficient.py [FILE]``.
"""

import sys
import time
from pathlib import Path

from _common import make_tts

tts = make_tts()
path = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("large_text.txt")

# Process large text efficiently
last = None
with open(path) as f:
    # Stream text line by line
    for line in f:
        last = tts.speak_streamed(line.strip(), wait=False)
        # Optional: Add delay between lines
        time.sleep(0.1)

# The streams play in order, so the last one ending means all of them have.
if last is not None:
    last.wait_until_done()
tts.cleanup()
