"""The guide's "Resource Cleanup": always close a stream, even when feeding fails."""

from _common import make_tts

tts = make_tts()

# Always clean up streams
stream = tts.create_stream()
try:
    stream.feed("Text")
    stream.done()
finally:
    stream.close()

# The same with a context manager: close() on exit, after an interrupt if the block raised.
with tts.create_stream() as stream:
    stream.feed("Closed by the with block.")

tts.cleanup()
