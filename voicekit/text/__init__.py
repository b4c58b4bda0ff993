"""Text pipeline: LLM markdown -> speakable text -> sentence chunks."""

from .chunker import SentenceChunker, split_sentences
from .speech_filter import SpeechFilter, clean_for_speech

__all__ = ["SentenceChunker", "SpeechFilter", "clean_for_speech", "split_sentences"]
