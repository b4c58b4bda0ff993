"""voicekit.adapters with real parts: the tone engine of voicekit.testing, MemorySink, the real openai SDK.

The OpenAI tests talk HTTP to the fake chat server of tests/fixtures/llm.py,
which streams deltas slowly and records when it sent its last byte and whether
the client hung up early.
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
import time

import pytest

from voicekit.adapters import INTERRUPTED_MARK, astream_chat, speak_aiter, speak_iter, stream_chat

openai = pytest.importorskip("openai", reason="needs the openai SDK: pip install 'voicekit[openai]'")

from tests import helpers  # noqa: E402
from voicekit import MemorySink, StreamError  # noqa: E402 - after the skip above
from voicekit.testing import ToneTTS  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_thread_leak")

wait_for = functools.partial(helpers.wait_for, timeout=20.0)  # a reply through the fake LLM, on a busy machine

PIECES = ["Hello", " there.", " This", " is", " a", " short", " reply", " from", " the", " fake", " model."]
LONG_PIECES = [f" Sentence number {i} has a few words." for i in range(40)]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def assert_heard_prefix(heard: str, text: str, *, strict: bool = True) -> None:
    heard_words, all_words = words(heard), words(text)
    assert heard_words == all_words[: len(heard_words)], (heard, text)
    if strict:
        assert len(heard_words) < len(all_words), "the interrupt came after everything was heard"


@pytest.fixture
def tts():
    engine = ToneTTS()
    yield engine
    engine.cleanup()


class Source:
    """A generator that paces its pieces and records whether it was closed."""

    def __init__(self, pieces: list[str], delay: float = 0.0) -> None:
        self.pieces, self.delay = pieces, delay
        self.closed = threading.Event()

    def __iter__(self):
        try:
            for piece in self.pieces:
                time.sleep(self.delay)
                yield piece
        finally:
            self.closed.set()

    async def __aiter__(self):
        try:
            for piece in self.pieces:
                await asyncio.sleep(self.delay)
                yield piece
        finally:
            self.closed.set()


def test_speak_iter_yields_pieces_and_speaks_them(tts):
    sink = MemorySink()
    stream = tts.create_stream(sink=sink)
    reply = speak_iter(stream, iter(PIECES))
    assert list(reply) == PIECES
    stream.done()
    assert stream.wait_until_done(timeout=30)
    assert reply.text == "".join(PIECES)
    assert words(reply.heard_text) == words(reply.text)
    assert not reply.interrupted
    assert reply.as_message() == {"role": "assistant", "content": "".join(PIECES)}
    assert sink.seconds > 1.0
    stream.close()


def test_speak_iter_close_stops_feeding_and_closes_source(tts):
    stream = tts.create_stream(sink=MemorySink())
    source = Source(PIECES)
    with speak_iter(stream, iter(source)) as reply:
        got = [next(reply), next(reply)]
    assert source.closed.is_set()
    assert list(reply) == []
    assert reply.text == "".join(got) == "Hello there."
    stream.done()
    assert stream.wait_until_done(timeout=30)
    stream.close()


def test_speak_iter_rejects_non_text_and_closes_source(tts):
    stream = tts.create_stream(sink=MemorySink())
    source = Source(["fine", 42])  # type: ignore[list-item]
    reply = speak_iter(stream, iter(source))
    assert next(reply) == "fine"
    with pytest.raises(TypeError, match="str"):
        next(reply)
    assert source.closed.is_set()
    stream.interrupt()
    stream.close()


def test_speak_iter_stream_errors_propagate_and_close_source(tts):
    stream = tts.create_stream(sink=MemorySink())
    stream.done()
    source = Source(PIECES)
    with pytest.raises(StreamError, match="after done"):
        next(speak_iter(stream, iter(source)))
    assert source.closed.is_set()
    stream.close()


def test_speak_iter_close_from_another_thread_while_the_source_blocks(tts):
    stream = tts.create_stream(sink=MemorySink())
    source = Source(["First piece. ", "Second piece. ", "Third piece. "], delay=0.3)
    reply = speak_iter(stream, iter(source))
    consumer = threading.Thread(target=reply.run, name="test-consumer")
    consumer.start()
    wait_for(lambda: reply.text)
    reply.close()  # the consumer is asleep inside the generator: it closes it on return
    consumer.join(timeout=5)
    assert not consumer.is_alive()
    assert source.closed.is_set()
    assert reply.text == "First piece. "  # the piece that arrived after close() was not fed
    assert not reply.interrupted
    stream.done()
    assert stream.wait_until_done(timeout=30)
    stream.close()


def test_speak_iter_interrupt_from_another_thread(tts):
    sink = MemorySink(realtime=True)
    stream = tts.create_stream(sink=sink)
    source = Source(LONG_PIECES, delay=0.05)
    reply = speak_iter(stream, iter(source))
    consumer = threading.Thread(target=reply.run, name="test-consumer")
    consumer.start()
    wait_for(lambda: sink.seconds > 0.3)
    unheard = reply.interrupt()
    consumer.join(timeout=5)
    assert not consumer.is_alive()
    assert source.closed.is_set()
    assert reply.interrupted
    assert unheard  # plenty of text was still queued
    assert_heard_prefix(reply.heard_text, reply.text)
    assert reply.as_message()["content"].endswith(INTERRUPTED_MARK)
    stream.close()


def test_speak_aiter_yields_pieces_and_closes_source(tts):
    async def main():
        sink = MemorySink()
        stream = await tts.create_async_stream(sink=sink)
        reply = speak_aiter(stream, Source(PIECES))
        assert [piece async for piece in reply] == PIECES
        await stream.done()
        assert await stream.wait_until_done(timeout=30)
        assert words(reply.heard_text) == words("".join(PIECES))

        await stream.close()

        stream = await tts.create_async_stream(sink=MemorySink())
        source = Source(PIECES, delay=0.01)
        async with speak_aiter(stream, source) as second:
            async for _ in second:
                break
        assert source.closed.is_set()
        assert second.text == PIECES[0]
        await stream.interrupt()
        await stream.close()
        return sink.seconds

    assert asyncio.run(main()) > 1.0


def test_speak_aiter_interrupt_cancels_a_pending_read(tts):
    async def main():
        sink = MemorySink(realtime=True)
        stream = await tts.create_async_stream(sink=sink)
        async def slow():
            yield "One short sentence. And"
            await asyncio.sleep(3600)  # the producer stalls: interrupt must not wait for it
            yield "Never spoken."

        reply = speak_aiter(stream, slow())
        consumer = asyncio.ensure_future(reply.run())
        while sink.seconds < 0.2:
            await asyncio.sleep(0.01)
        await reply.interrupt()
        await asyncio.wait_for(consumer, timeout=5)
        assert reply.interrupted
        assert reply.text == "One short sentence. And"
        assert_heard_prefix(reply.heard_text, reply.text, strict=False)
        await stream.close()

    asyncio.run(main())


def test_speak_aiter_over_a_sync_stream(tts):
    async def main():
        sink = MemorySink()
        stream = tts.create_stream(sink=sink)
        reply = speak_aiter(stream, Source(PIECES))
        assert [piece async for piece in reply] == PIECES
        stream.close()
        return sink.seconds

    assert asyncio.run(main()) > 1.0


def openai_client(fake_llm):
    return openai.OpenAI(base_url=fake_llm.base_url, api_key="test-key", max_retries=0)


def test_stream_chat_speaks_before_the_reply_ends(tts, fake_llm):
    fake_llm.pieces = PIECES + LONG_PIECES[:10]
    fake_llm.delay = 0.1
    sink = MemorySink()
    stream = tts.create_stream(sink=sink)
    messages = [{"role": "user", "content": "Say something."}]
    first_audio_at = None
    with openai_client(fake_llm) as client:
        reply = stream_chat(client, messages, stream=stream, model="fake-model", temperature=0)
        for _ in reply:
            if first_audio_at is None and sink.seconds > 0:
                first_audio_at = time.monotonic()
    stream.done()
    assert stream.wait_until_done(timeout=60)
    stream.close()
    assert fake_llm.finished.is_set() and not fake_llm.disconnected.is_set()
    assert first_audio_at is not None and first_audio_at < fake_llm.last_byte_at
    # role-only, empty, tool-call and usage chunks were skipped
    assert reply.text == "".join(fake_llm.pieces)
    assert reply.as_message() == {"role": "assistant", "content": reply.text}
    request = fake_llm.requests[0]
    assert request["model"] == "fake-model" and request["messages"] == messages
    assert request["stream"] is True and request["temperature"] == 0


def test_stream_chat_interrupt_closes_the_connection(tts, fake_llm):
    fake_llm.pieces = LONG_PIECES
    fake_llm.delay = 0.05
    sink = MemorySink(realtime=True)
    stream = tts.create_stream(sink=sink)
    with openai_client(fake_llm) as client:
        reply = stream_chat(client, [{"role": "user", "content": "Talk."}], stream=stream, model="m")
        consumer = threading.Thread(target=reply.run, name="test-consumer")
        consumer.start()
        wait_for(lambda: sink.seconds > 0.3)
        reply.interrupt()
        consumer.join(timeout=5)
        assert not consumer.is_alive()
        assert fake_llm.disconnected.wait(timeout=5)
    assert not fake_llm.finished.is_set()
    assert reply.interrupted
    assert_heard_prefix(reply.heard_text, reply.text)
    content = reply.as_message()["content"]
    assert content.endswith(INTERRUPTED_MARK)
    assert_heard_prefix(content.removesuffix(INTERRUPTED_MARK), reply.text)
    # the stream stays usable: the next feed starts a new reply
    stream.feed("Still here.")
    stream.done()
    assert stream.wait_until_done(timeout=30)
    stream.close()


def test_stream_chat_takes_an_existing_response(tts, fake_llm):
    stream = tts.create_stream(sink=MemorySink())
    with openai_client(fake_llm) as client:
        response = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        reply = stream_chat(None, stream=stream, response=response)
        assert list(reply) == fake_llm.pieces
    stream.done()
    assert stream.wait_until_done(timeout=30)
    stream.close()


def test_stream_chat_bad_arguments(tts, fake_llm):
    stream = tts.create_stream(sink=MemorySink())
    with openai_client(fake_llm) as client:
        with pytest.raises(ValueError, match="model"):
            stream_chat(client, [{"role": "user", "content": "Hi"}], stream=stream)
        with pytest.raises(ValueError, match="client and messages"):
            stream_chat(client, stream=stream)
        with pytest.raises(ValueError, match="not both"):
            stream_chat(client, [], stream=stream, response=object())
    assert fake_llm.requests == []
    stream.close()


def test_astream_chat_interrupt_closes_the_connection(tts, fake_llm):
    fake_llm.pieces = LONG_PIECES
    fake_llm.delay = 0.05

    async def main():
        sink = MemorySink(realtime=True)
        stream = await tts.create_async_stream(sink=sink)
        async with openai.AsyncOpenAI(base_url=fake_llm.base_url, api_key="test-key", max_retries=0) as client:
            reply = astream_chat(client, [{"role": "user", "content": "Talk."}], stream=stream, model="m")
            consumer = asyncio.ensure_future(reply.run())
            while sink.seconds < 0.3:
                await asyncio.sleep(0.01)
            await reply.interrupt()
            await asyncio.wait_for(consumer, timeout=5)
        await stream.close()
        return reply

    reply = asyncio.run(main())
    assert fake_llm.disconnected.wait(timeout=5)
    assert not fake_llm.finished.is_set()
    assert reply.interrupted
    assert_heard_prefix(reply.heard_text, reply.text)


def test_astream_chat_takes_an_existing_response(tts, fake_llm):
    async def main():
        sink = MemorySink()
        stream = await tts.create_async_stream(sink=sink)
        async with openai.AsyncOpenAI(base_url=fake_llm.base_url, api_key="test-key", max_retries=0) as client:
            response = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "Hi"}], stream=True
            )
            reply = await astream_chat(None, stream=stream, response=response).run()
        await stream.done()
        assert await stream.wait_until_done(timeout=30)
        await stream.close()
        return reply, sink.seconds

    reply, seconds = asyncio.run(main())
    assert reply.text == "".join(fake_llm.pieces)
    assert not reply.interrupted and fake_llm.finished.is_set()
    assert seconds > 1.0
