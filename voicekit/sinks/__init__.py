"""Sinks: each only takes PCM."""
