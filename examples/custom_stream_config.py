"""The guide's "Custom Stream Configuration": the output format and block sizes."""

from _common import make_tts

tts = make_tts()

# Configure stream parameters
tts.setup_stream(
    chunk_size=1024,  # Size of audio chunks (frames per output block: the interrupt granularity)
    buffer_size=4096,  # Audio buffer size (frames the output holds ahead of the speaker)
    samplerate=44100,  # Sample rate (the engine's audio is resampled to it)
    channels=1,  # Mono audio
    dtype="int16",  # Audio data type
)

tts.speak_streamed("This sentence is played at forty four point one kilohertz, in sixteen bit mono.")

tts.cleanup()
