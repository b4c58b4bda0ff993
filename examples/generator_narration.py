"""Narrate a generator: each line is printed and spoken as it is produced.

``speak_iter`` feeds every piece into the stream the moment the generator
yields it and hands it back for printing; the ``with`` block then waits until
everything was heard.
"""

import time

from _common import make_tts

from voicekit.adapters import speak_iter


def build_log():
    """A slow producer, like a build or a long computation."""
    for step, name in enumerate(["fetching sources", "compiling", "running the tests"], start=1):
        time.sleep(0.2)  # work happens here
        yield f"Step {step}: {name}.\n"
    yield "Build finished.\n"


tts = make_tts()
with tts.create_stream() as stream:
    for line in speak_iter(stream, build_log()):
        print(line, end="", flush=True)
tts.cleanup()
