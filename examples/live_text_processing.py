"""The guide's "Live Text Processing": feed a live generator, backing off while the buffer is full."""

import time

from _common import make_tts

tts = make_tts()


def process_live_text(text_generator):
    stream = tts.create_stream()

    for text in text_generator:
        # Process and stream in real-time
        stream.feed(text)

        # Check if we should pause
        if stream.buffer_full():
            time.sleep(0.1)

    stream.done()
    return stream


def live_text():
    """A producer, like a transcript or a log: one word at a time."""
    for word in "Live text arrives word by word and is spoken as soon as a sentence is complete.".split():
        yield word + " "
        time.sleep(0.02)


process_live_text(live_text()).close()  # close() waits until everything was played
tts.cleanup()
