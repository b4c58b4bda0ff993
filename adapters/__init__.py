"""voicekit.adapters: feed generator and LLM output straight into a stream."""
