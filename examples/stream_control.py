"""The guide's "Stream Control": feed text in pieces, then say it is done."""

from _common import make_tts

tts = make_tts()

# Start a stream
stream = tts.create_stream()

# Feed text in chunks
stream.feed("First part of the text. ")
stream.feed("Second part of the text. ")

# Indicate no more text
stream.done()

# Wait for completion
stream.wait_until_done()

stream.close()
tts.cleanup()
