"""The guide's "Efficient Chunking": text chunk size and the backpressure threshold."""

from _common import make_tts

tts = make_tts()

# Configure chunk settings
tts.set_stream_config({
    "chunk_size": 1024,  # Audio chunk size
    "max_text_chunk": 100,  # Maximum text characters per chunk
    "buffer_threshold": 0.75,  # Buffer fullness threshold
})

# A long sentence is cut into pieces of at most 100 characters, at commas or spaces.
tts.speak_streamed(
    "With a limit of one hundred characters per chunk, this rather long sentence, "
    "which keeps going well past that limit, is cut into smaller pieces that are "
    "synthesized one after another without a gap."
)

tts.cleanup()
