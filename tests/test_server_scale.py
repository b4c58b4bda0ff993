"""30 WebSocket sessions at once on one process: each gets its own, complete audio."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import websockets

from tests.fixtures.web import running
from tests.test_server_ws import read_reply, say
from voicekit.server import create_app

pytestmark = pytest.mark.usefixtures("no_thread_leak")

NOUNS = ["river", "garden", "window", "engine", "pencil", "rocket", "candle", "forest", "ladder", "violin"]


def text_for(i: int) -> str:
    return f"Session {i} is talking about the {NOUNS[i % 10]} and the {NOUNS[(i * 3 + 1) % 10]}. It says {i * 7} things."


async def speak(url: str, text: str):
    async with websockets.connect(url, max_queue=None) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        await say(ws, text, pieces=5)
        return await read_reply(ws)


def test_thirty_concurrent_sessions_match_their_solo_runs() -> None:
    texts = [text_for(i) for i in range(30)]
    # lookahead above a reply's length: each reply is sent as fast as it is made
    with running(create_app("espeak", lookahead=12.0)) as srv:
        url = srv.ws_url + "/v1/speak"

        async def go():
            solo = [await speak(url, t) for t in texts]
            together = await asyncio.gather(*(speak(url, t) for t in texts), return_exceptions=True)
            return solo, together

        solo, together = asyncio.run(asyncio.wait_for(go(), 90))
    failures = [r for r in together if isinstance(r, BaseException)]
    assert not failures, failures
    for text, alone, crowd in zip(texts, solo, together):
        assert alone.end == {"type": "reply_done", "text": text}
        assert crowd.end == {"type": "reply_done", "text": text}
        assert not crowd.events("error")
        assert crowd.seconds == pytest.approx(alone.seconds, rel=0.02), text
        # its own words, not a neighbour's (eSpeak's samples vary run to run, so no sample compare)
        assert [w["word"] for w in crowd.events("word")] == [w["word"] for w in alone.events("word")]
        assert np.abs(np.frombuffer(crowd.audio, "<i2")).max() > 1000
