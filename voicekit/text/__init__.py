"""Text pipeline: LLM markdown -> speakable text -> sentence chunks."""

from .chunker import SentenceChunker, split_sentences

__all__ = ["SentenceChunker", "split_sentences"]
