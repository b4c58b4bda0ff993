"""The chat page in real headless Chromium (Debian chromium + chromedriver, driven by selenium).

It plays the reply (the AudioWorklet's rendered samples are counted), lights up
the words as they are heard, and Esc barges in: playback stops at once and the
server answers ``interrupted`` with the heard text. A screenshot is kept in
tmp/artifacts/.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests import helpers
from tests.fixtures.web import Running, running
from voicekit.server import create_app

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent.parent / "tmp" / "artifacts"
# each look is a WebDriver round trip to the browser
wait_for = functools.partial(helpers.wait_for, timeout=15.0, interval=0.05)

pytestmark = [
    pytest.mark.skipif(
        not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
        reason="needs the Debian packages chromium and chromium-driver (installed by .ci/run)",
    ),
    pytest.mark.usefixtures("no_thread_leak"),
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1000,800",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    service = psutil.Process(driver.service.process.pid)
    processes = [service, *service.children(recursive=True)]
    try:
        yield driver
    finally:
        driver.quit()
        _, alive = psutil.wait_procs(processes, timeout=10)
        assert not alive, f"chromium processes left behind: {alive}"


@pytest.fixture(params=[None, "page-t0ken/+="], ids=["no-token", "token"])
def server(request: pytest.FixtureRequest) -> Iterator[Running]:
    with running(create_app("espeak", chat_tokens_per_second=80, token=request.param)) as srv:
        yield srv


def test_page_plays_highlights_heard_words_and_barges_in(server: Running, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    def stats() -> dict:
        return browser.execute_script("return window.voicekitStats")

    token = server.app.state.voicekit.settings.token
    # with a token, it rides in the fragment: the browser never sends that part to the server
    browser.get(server.url + "/" + (f"#token={token}" if token else ""))
    wait_for(lambda: "ready" in browser.find_element(By.ID, "status").text, what="the WebSocket's ready")
    box = browser.find_element(By.ID, "input")
    box.send_keys("How does streaming speech work?", Keys.ENTER)

    # it plays: the worklet renders the reply's samples in real time
    wait_for(lambda: stats()["rendered"] > 24000 * 2.0, what="two seconds of rendered audio")
    # it shows the words as they are heard: lit exactly when they started before the worklet's played position
    seen = browser.execute_script(
        "const spans = [...document.querySelectorAll('.bot .spoken span')];"
        "return {heard: window.voicekitStats.heard,"
        " words: spans.map(e => [e.textContent, Number(e.dataset.start), e.classList.contains('heard')])}"
    )
    words = seen["words"]
    heard = [w for w, _, lit in words if lit]
    assert seen["heard"] > 1.5 and heard and len(heard) < len(words), seen
    assert all(lit == (start < seen["heard"]) for _, start, lit in words), seen
    assert [w for w, _, _ in words[: len(heard)]] == heard, "heard words must be the leading ones"
    assert "now" in browser.execute_script("return document.querySelector('.bot .spoken').innerHTML")

    # barge-in: Esc stops local playback at once and the server reports what was heard
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    stopped_at = stats()["rendered"]
    end = wait_for(lambda: stats()["ends"], what="the interrupted event")[-1]
    time.sleep(0.5)
    assert stats()["rendered"] - stopped_at < 24000 * 0.1, "audio kept playing after Esc"
    assert end["type"] == "interrupted"
    assert end["heard_text"] and end["unspoken_text"]
    heard_words = end["heard_text"].split()
    assert len(heard_words) in range(len(heard) - 1, len(heard) + 15)
    assert "[interrupted]" in browser.find_element(By.CSS_SELECTOR, ".bot").text

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / f"server-page{'-token' if token else ''}.png"))

    # the next message gets a new reply on the same connection; typing barges in on it
    box.send_keys("And then?", Keys.ENTER)
    wait_for(lambda: stats()["replies"] == 2 and stats()["played"] > 24000 * 0.5, what="the second reply playing")
    box.send_keys("x")
    wait_for(lambda: len(stats()["ends"]) == 2, what="the second interrupted event")
    assert stats()["ends"][-1]["type"] == "interrupted"
    assert not stats()["errors"]
