"""The guide's "Simple Streaming": speak a text while it is still being synthesized."""

from _common import make_tts

# Initialize TTS (offline Piper, or eSpeak NG, by default; Polly would be
# PollyTTS(PollyClient(credentials=('region', 'key_id', 'access_key'))): see _common.py)
tts = make_tts()

# Stream text
tts.speak_streamed("This text will be processed and played in real-time.")

tts.cleanup()
