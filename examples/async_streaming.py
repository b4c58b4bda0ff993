"""The guide's "Async Streaming": the same stream control from asyncio."""

import asyncio

from _common import make_tts

tts = make_tts()


async def stream_text():
    # Create async stream
    stream = await tts.create_async_stream()

    # Feed text asynchronously
    await stream.feed("First part. ")
    await stream.feed("Second part. ")

    # Complete stream
    await stream.done()

    # Wait for completion
    await stream.wait_until_done()

    await stream.close()


# Run async stream
asyncio.run(stream_text())

tts.cleanup()
