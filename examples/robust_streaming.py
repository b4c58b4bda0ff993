"""The guide's "Recovery Strategies": retry a failed stream a few times.

Every voicekit failure is a ``StreamError`` (``EngineError`` included), so the
guide's ``except StreamError`` catches engine and network errors too; each
attempt is a new stream, and the one that succeeded is returned.
"""

import time

from _common import make_tts

from voicekit import StreamError

tts = make_tts()


def robust_streaming(text):
    max_retries = 3
    retry_count = 0

    while retry_count < max_retries:
        try:
            return tts.speak_streamed(text)
        except StreamError:
            retry_count += 1
            time.sleep(1)  # Wait before retry

    raise Exception("Failed to stream after multiple attempts")


robust_streaming("If this fails, it is tried again, up to three times.")
tts.cleanup()
