"""Engines: each turns text chunks into audio chunks with word marks."""
