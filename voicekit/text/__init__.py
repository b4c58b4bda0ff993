"""Text pipeline: LLM markdown -> speakable text -> sentence chunks.

For each piece of an utterance, run it through both stages, then flush both at its end::

    speech, chunker = SpeechFilter(), SentenceChunker(max_chars=200)
    for piece in llm_tokens:
        for chunk in chunker.feed(speech.feed(piece)):
            synthesize(chunk)
    for chunk in chunker.feed(speech.flush()) + chunker.flush():
        synthesize(chunk)
"""

from .chunker import SentenceChunker, split_sentences
from .sanitize import Sanitizer, sanitize
from .speech_filter import SpeechFilter, clean_for_speech

__all__ = ["Sanitizer", "SentenceChunker", "SpeechFilter", "clean_for_speech", "sanitize", "split_sentences"]
