"""The guide's "Stream Error Management": voicekit's errors and a graceful close."""

from _common import make_tts

from voicekit import BufferError, StreamError

tts = make_tts()

stream = None
try:
    stream = tts.create_stream()
    stream.feed("Text to stream")
    stream.done()
    stream.feed("Feeding after done() is a stream error.")
except StreamError as e:
    print(f"Streaming error: {e}")
except BufferError as e:
    print(f"Buffer error: {e}")
finally:
    if stream is not None:
        stream.close()  # graceful: what was fed before the error is still spoken

tts.cleanup()
