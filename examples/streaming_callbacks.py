"""The guide's "Streaming with Callbacks": hear about each chunk as it is synthesized."""

from _common import make_tts

tts = make_tts()


def on_chunk_processed(chunk_info):
    print(f"Processed chunk: {chunk_info['text']}")
    print(f"Duration: {chunk_info['duration']}s")


# Stream with callback
tts.speak_streamed(
    "This text will trigger callbacks for each chunk. Every sentence is one chunk.",
    on_chunk_processed=on_chunk_processed,
)

tts.cleanup()
