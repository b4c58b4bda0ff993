"""The guide's "Stream Error Management": voicekit's errors and a graceful close.

Both errors are provoked on purpose: feeding after ``done()`` is a
``StreamError``; a producer that ignores ``buffer_full()`` and passes the hard
cap on queued text (``max_queued_chars``) gets a ``BufferError``.
"""

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

# voicekit's BufferError subclasses StreamError (and the builtin BufferError): in
# the guide's order above, the StreamError clause would catch it first.
tts.set_stream_config({"max_queued_chars": 100})
stream = tts.create_stream()
try:
    for _ in range(20):
        stream.feed("This sentence is fed faster than it can be spoken. ")
except BufferError as e:
    print(f"Buffer error: {e}")
finally:
    stream.close()

tts.cleanup()
