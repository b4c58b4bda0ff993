"""The built-in offline responder: a stand-in LLM for ``voicekit chat``.

It streams markdown-rich replies (headings, bold, lists, a code fence, a
link) token by token at an LLM-like pace, so the speech filter, the chunker
and barge-in can all be seen and heard without a model, a key or a network.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence

__all__ = ["Responder", "tokenize"]

# LLM tokenizers emit word pieces with their leading space; pieces of at most
# five characters give about the same count as BPE for English prose.
_TOKEN = re.compile(r"\s*\S{1,5}|\s+")

_REPLIES = (
    """## {topic}

Here is a **short answer**. I am speaking this reply *while* it is still being written:

1. Text arrives token by token, like this.
2. Each sentence is cut as soon as it ends.
3. Audio starts long before the reply is complete.

```python
stream.feed(token)
```

The code above is shown but not spoken. The streaming guide, `docs/streaming.md` in voicekit's repository, has the details. Press **Esc** to stop me at any time.
""",
    """### A few thoughts on: {topic}

**First**, the markdown you see is cleaned before it is spoken: no stars, no hashes, no pipes.

- Bullets are read as plain sentences.
- `inline code` is read as its content.
- Links such as [the voicekit README](README.md) are read as their text.

```bash
voicekit say "Hello there."
```

*Second*, if you type while I talk, I stop within one audio block and only keep what you heard.
""",
    """# {topic}: step by step

Let me walk through it **slowly**, so you have time to interrupt.

1. Feed the text with `stream.feed()`.
2. Call `stream.done()` at the end of the reply.
3. Call `stream.interrupt()` when the user barges in.

```python
heard = stream.heard_text
```

That is all there is to it. See [the examples](examples/) for more, and ask me about anything else.
""",
)


def tokenize(text: str) -> list[str]:
    """Cut ``text`` into LLM-like pieces whose concatenation is ``text``."""
    return _TOKEN.findall(text)


def _topic(messages: Sequence[Mapping[str, str]]) -> str:
    last = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    words = re.sub(r"[#*_`\[\]<>|~]", "", last).split()
    if not words:
        return "Your question"
    topic = " ".join(words[:6]).rstrip(".?!,;:")
    return topic[:1].upper() + topic[1:]


class Responder:
    """Streams canned replies about the user's last message: the offline :class:`~voicekit.backends.ChatBackend`.

    ``script`` replaces the built-in replies (cycled in order by the number of
    replies in the history; ``{topic}`` is filled in). ``tokens_per_second=None``
    streams without pacing. It keeps no state, so any number of chats share one.
    """

    name = "offline responder"

    def __init__(
        self, *, tokens_per_second: float | None = 30.0, script: Sequence[str] | None = None
    ) -> None:
        if tokens_per_second is not None and not tokens_per_second > 0:
            raise ValueError(f"tokens_per_second must be positive, got {tokens_per_second!r}")
        if script is not None and not script:
            raise ValueError("script must hold at least one reply")
        self.tokens_per_second = tokens_per_second
        self._script = tuple(script) if script is not None else _REPLIES

    def reply(
        self, messages: Sequence[Mapping[str, str]], cancel: threading.Event | None = None
    ) -> Iterator[str]:
        """Yield the next reply's tokens; stops early once ``cancel`` is set."""
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        template = self._script[turn % len(self._script)]
        text = template.replace("{topic}", _topic(messages))
        return self._paced(tokenize(text), cancel or threading.Event())

    def _paced(self, tokens: list[str], cancel: threading.Event) -> Iterator[str]:
        delay = 1.0 / self.tokens_per_second if self.tokens_per_second else 0.0
        for token in tokens:
            # Waiting on the event instead of sleeping lets a barge-in end the reply at once.
            if cancel.wait(delay) if delay else cancel.is_set():
                return
            yield token
