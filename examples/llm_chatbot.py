"""A voice chatbot over any OpenAI-compatible LLM; offline without one.

With ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` set (for example
``OPENAI_BASE_URL=http://localhost:11434/v1`` for Ollama, or a llama.cpp or
vLLM server), replies come from that server's model (``VOICEKIT_LLM_MODEL``,
default ``gpt-4o-mini``). Otherwise a scripted stand-in streams the replies at
an LLM's pace. Each reply is printed and spoken at once; Ctrl-C while the bot
speaks interrupts it, and the history keeps only what was heard.

Usage: ``python llm_chatbot.py ["question" ...]`` (no arguments: type
questions, an empty line quits).
"""

import os
import re
import sys
import time

from _common import make_tts

from voicekit.adapters import speak_iter, stream_chat

MODEL = os.environ.get("VOICEKIT_LLM_MODEL", "gpt-4o-mini")


def llm_client():
    if not (os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")):
        return None
    import openai

    # local servers ignore the key, but the SDK wants one
    return openai.OpenAI(api_key=os.environ.get("OPENAI_API_KEY", "not-needed"))


def offline_reply(messages):
    """Stand-in for a model: a short markdown reply, token by token."""
    text = (
        f"You asked: **{messages[-1]['content']}** I am an offline stand-in for a language model. "
        "Set `OPENAI_BASE_URL` to talk to a real one."
    )
    for token in re.findall(r"\S+\s*", text):
        time.sleep(0.03)
        yield token


def ask(tts, llm, messages):
    """Print and speak one reply; returns its history entry."""
    stream = tts.create_stream()
    if llm is not None:
        reply = stream_chat(llm, messages, stream=stream, model=MODEL)
    else:
        reply = speak_iter(stream, offline_reply(messages))
    try:
        for piece in reply:
            print(piece, end="", flush=True)
        stream.done()
        stream.wait_until_done()
    except KeyboardInterrupt:
        reply.interrupt()
    finally:
        stream.close()
    print(" [interrupted]" if reply.interrupted else "")
    return reply.as_message()


def questions():
    if len(sys.argv) > 1:
        yield from sys.argv[1:]
        return
    try:
        while question := input("you> ").strip():
            yield question
    except (EOFError, KeyboardInterrupt):
        print()


def main():
    tts = make_tts()
    llm = llm_client()
    messages = [{"role": "system", "content": "You are a friendly voice assistant. Answer in two sentences."}]
    try:
        for question in questions():
            messages.append({"role": "user", "content": question})
            print("bot> ", end="")
            messages.append(ask(tts, llm, messages))
    finally:
        tts.cleanup()
        if llm is not None:
            llm.close()


if __name__ == "__main__":
    main()
