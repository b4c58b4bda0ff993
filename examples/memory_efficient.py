"""The guide's "Memory-Efficient Processing": speak a file line by line without waiting.

``speak_streamed(..., wait=False)`` returns at once; the calls play one after
another, in call order. Nothing waits for them here, as in the guide: streams
finished with ``done()`` (as ``speak_streamed`` does) play to the end before
the interpreter exits. Usage: ``python memory_efficient.py [FILE]`` (default:
``large_text.txt`` beside this script).
"""

import sys
import time
from pathlib import Path

from _common import make_tts

tts = make_tts()
path = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("large_text.txt")

# Process large text efficiently
with open(path) as f:
    # Stream text line by line
    for line in f:
        tts.speak_streamed(line.strip(), wait=False)
        # Optional: Add delay between lines
        time.sleep(0.1)
