"""The chat page in real headless Chromium (Debian chromium + chromedriver, driven by selenium).

One test per state a user sees: the welcome, a reply being spoken (markdown
rendered, the word being heard lit inside it), an interrupted reply (the unheard
rest greyed out, only the heard part kept in the history), the token prompt,
reconnecting after the server went away, and a phone-width window. Each checks
what is on screen and saves a screenshot under the test's tmp path, copied to
/tmp/page-shots/ and tmp/artifacts/ for people to look at.
"""

from __future__ import annotations

import functools
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psutil
import pytest
import uvicorn

from tests import helpers
from tests.fixtures.web import Running, free_port, running
from voicekit.server import create_app

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SHOT_COPIES = [Path("/tmp/page-shots"), Path(__file__).resolve().parent.parent / "tmp" / "artifacts"]
QUESTION = "How does streaming speech work?"
# each look is a WebDriver round trip to the browser
wait_for = functools.partial(helpers.wait_for, timeout=15.0, interval=0.05)

pytestmark = [
    pytest.mark.skipif(
        not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
        reason="needs the Debian packages chromium and chromium-driver (installed by .ci/run)",
    ),
    pytest.mark.usefixtures("no_thread_leak"),
]

# what a user sees: the status line, the buttons, and the pickers
LOOK = """
const $ = (id) => document.getElementById(id);
const shown = (el) => Boolean(el && el.offsetParent);
return {
  status: $("status").textContent, state: $("status").dataset.state,
  send: !$("send").disabled, suggest: !document.querySelector(".suggestion").disabled, stop: !$("stop").disabled, newChat: !$("new-chat").disabled,
  mute: $("mute").textContent, welcome: shown($("welcome")) ? $("welcome").innerText : null,
  token: shown($("token-panel")) ? $("token-panel").innerText : null,
  voices: [...$("voice").options].map((o) => o.textContent), voice: $("voice").value,
  rates: [...$("rate").options].map((o) => o.value), rate: $("rate").value,
  bots: [...document.querySelectorAll(".bot")].map((e) => e.innerText),
  notes: [...document.querySelectorAll(".note")].map((e) => e.innerText),
};
"""

# the reply on screen: its rendered markdown, the lit word, the greyed-out rest
REPLY = """
const bot = [...document.querySelectorAll(".bot .md")].pop();
const spans = [...bot.querySelectorAll(".w")];
return {
  heard: window.voicekitStats.heard,
  html: bot.innerHTML,
  now: spans.filter((s) => s.classList.contains("now")).map((s) => s.textContent),
  placed: spans.filter((s) => s.dataset.start).map((s) => [s.textContent, Number(s.dataset.start), s.classList.contains("now")]),
  clear: spans.filter((s) => !s.closest(".unheard")).map((s) => s.textContent),
  faded: spans.filter((s) => s.closest(".unheard")).map((s) => s.textContent),
  codeFaded: Boolean(bot.querySelector("pre .unheard")),
  mark: bot.parentElement.querySelector(".mark")?.textContent ?? null,
};
"""

# every /v1/chat request the page makes, for checking the history it sends
RECORD_CHAT = """
window.chatBodies = [];
const fetch = window.fetch;
window.fetch = (url, options) => {
  if (url === "/v1/chat") window.chatBodies.push(JSON.parse(options.body));
  return fetch(url, options);
};
"""


# every message the page sends on its WebSockets, this one and any it opens later
RECORD_SOCKET = """
window.socketSent = [];
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  window.socketSent.push(JSON.parse(data));
  return send.call(this, data);
};
"""


def key(word: str) -> str:
    return re.sub(r"[\W_]", "", word.lower())


@pytest.fixture
def open_browser(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``open_browser(width, height)``: a headless Chromium with that window; all quit after the test."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers: list[tuple[Any, list[psutil.Process]]] = []

    def start(width: int = 1000, height: int = 800) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / f'profile{len(drivers)}'}",
            f"--window-size={width},{height}",
        ):  # fmt: skip
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        service = psutil.Process(driver.service.process.pid)
        drivers.append((driver, [service, *service.children(recursive=True)]))
        return driver

    try:
        yield start
    finally:
        for driver, processes in drivers:
            driver.quit()
            _, alive = psutil.wait_procs(processes, timeout=10)
            assert not alive, f"chromium processes left behind: {alive}"


@pytest.fixture
def browser(open_browser: Callable[..., Any]) -> Any:
    return open_browser()


@pytest.fixture
def shot(tmp_path: Path) -> Callable[[Any, str], Path]:
    def save(driver: Any, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        assert driver.save_screenshot(str(path))
        for folder in SHOT_COPIES:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, folder / path.name)
        return path

    return save


@pytest.fixture(params=[None, "page-t0ken/+="], ids=["no-token", "token"])
def server(request: pytest.FixtureRequest) -> Iterator[Running]:
    with running(create_app("espeak", chat_tokens_per_second=80, token=request.param)) as srv:
        yield srv


@pytest.fixture
def plain_server() -> Iterator[Running]:
    with running(create_app("espeak", chat_tokens_per_second=80)) as srv:
        yield srv


@contextmanager
def serving_on(port: int) -> Iterator[str]:
    """A server on a fixed port, so one stopped and started again is the same address to the page."""
    config = uvicorn.Config(create_app("espeak", chat_tokens_per_second=80), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="off", ws_per_message_deflate=False)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), what="uvicorn's start")
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        assert not thread.is_alive(), "uvicorn did not stop"


def look(browser: Any) -> dict[str, Any]:
    return browser.execute_script(LOOK)


def stats(browser: Any) -> dict[str, Any]:
    return browser.execute_script("return window.voicekitStats")


def configs(browser: Any) -> list[dict[str, Any]]:
    return browser.execute_script("return window.socketSent.filter((m) => m.type === 'config')")


def page_errors(browser: Any) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def ready(browser: Any) -> dict[str, Any]:
    return wait_for(lambda: (state := look(browser))["status"] == "Ready" and state, what="the page's Ready")


def test_welcome_and_settings(plain_server: Running, browser: Any, shot: Callable[[Any, str], Path]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(plain_server.url + "/")
    ready(browser)
    # the voice list comes once the connection is up
    state = wait_for(lambda: (s := look(browser))["voices"][1:] and s, what="the voice list")
    assert state["state"] == "ok"
    assert "Type a message and I’ll answer out loud" in state["welcome"]
    assert "Esc" in state["welcome"] and QUESTION in state["welcome"]
    assert state["send"] and state["suggest"] and not state["stop"] and state["newChat"] and state["mute"] == "Mute"
    # the engine's own voices, not OpenAI's other names for them
    assert state["voices"][0] == "Default voice" and state["voice"] == ""
    assert "English (America) · en-us" in state["voices"] and not any(v.startswith("alloy") for v in state["voices"])
    assert state["rates"] == ["0.75", "1", "1.25", "1.5"] and state["rate"] == "1"
    assert browser.execute_script("return document.querySelector('link[rel=icon]').href").endswith("/static/favicon.svg")
    assert browser.execute_script("return document.querySelector('h1 img').naturalWidth") > 0
    assert not page_errors(browser), "the page broke its own Content-Security-Policy or failed to load a file"
    shot(browser, "welcome")

    # muted, a reply still plays (silently) in time, so its words still light up
    browser.execute_script(RECORD_SOCKET)
    browser.find_element(By.ID, "mute").click()
    assert look(browser)["mute"] == "Unmute"
    browser.find_element(By.CSS_SELECTOR, ".suggestion").click()
    wait_for(lambda: stats(browser)["rendered"] > 24000, what="the muted reply playing")
    assert look(browser)["status"] == "Speaking (muted) · Esc to interrupt"

    # voice and speed go to the server between replies, never during one
    Select(browser.find_element(By.ID, "voice")).select_by_visible_text("English (America) · en-us")
    Select(browser.find_element(By.ID, "rate")).select_by_value("1.25")
    assert not configs(browser)
    # New chat stops the reply and brings the welcome back
    browser.find_element(By.ID, "new-chat").click()
    wait_for(lambda: configs(browser) == [{"type": "config", "voice": "gmw/en-US", "rate": 1.25}], what="the config")
    state = look(browser)
    assert state["welcome"] and state["bots"] == [] and state["status"] == "Ready" and not state["stop"]
    # the engine's default voice has no id to send: a fresh session speaks with it
    Select(browser.find_element(By.ID, "voice")).select_by_visible_text("Default voice")
    wait_for(lambda: configs(browser)[-1] == {"type": "config", "rate": 1.25}, what="the speed in the new session")
    assert ready(browser) and not stats(browser)["errors"]
    # the choices outlast a reload
    browser.refresh()
    state = ready(browser)
    assert state["mute"] == "Unmute" and state["rate"] == "1.25" and state["voice"] == ""


def test_speaking_highlight_and_interrupt(server: Running, browser: Any, shot: Callable[[Any, str], Path]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    token = server.app.state.voicekit.settings.token
    # with a token, it rides in the fragment: the browser never sends that part to the server
    browser.get(server.url + "/" + (f"#token={token}" if token else ""))
    ready(browser)
    browser.execute_script(RECORD_CHAT)
    box = browser.find_element(By.ID, "input")
    box.send_keys(QUESTION, Keys.ENTER)

    # it plays: the worklet renders the reply's samples in real time, and a word is lit
    wait_for(lambda: stats(browser)["rendered"] > 24000 * 2.0, what="two seconds of rendered audio")
    reply = wait_for(lambda: (r := browser.execute_script(REPLY))["now"] and r, what="a lit word")
    # the markdown is rendered, and the lit word is inside it: there is no second copy of the text
    assert "<h2>" in reply["html"] and "<strong>" in reply["html"] and "<ol>" in reply["html"]
    assert "<pre><code" in reply["html"] and "**" not in reply["html"]
    assert not browser.find_elements(By.CSS_SELECTOR, ".spoken")
    # the lit word is the last placed word that started before the heard position
    started = [(w, start, lit) for w, start, lit in reply["placed"] if start < reply["heard"]]
    assert started and started[-1][2] and reply["now"][0] == started[-1][0], reply
    assert not any(lit for _, start, lit in reply["placed"] if start >= reply["heard"]), reply
    state = look(browser)
    assert state["status"] == "Speaking · Esc to interrupt" and state["stop"] and state["send"]
    shot(browser, f"speaking{'-token' if token else ''}")
    assert not page_errors(browser)

    # barge-in: Esc stops local playback at once and the server reports what was heard
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    stopped_at = stats(browser)["rendered"]
    end = wait_for(lambda: stats(browser)["ends"], what="the interrupted event")[-1]
    time.sleep(0.5)
    assert stats(browser)["rendered"] - stopped_at < 24000 * 0.1, "audio kept playing after Esc"
    assert end["type"] == "interrupted" and end["heard_text"] and end["unspoken_text"]

    # what was heard stays as it is; the rest of the reply is greyed out
    reply = browser.execute_script(REPLY)
    heard = [key(w) for w in re.findall(r"\w+(?:'\w+)*", end["heard_text"])]
    clear = [key(w) for w in reply["clear"]]
    assert clear and reply["faded"] and not reply["now"], reply
    # the words left clear are the heard ones; only list numbers (spoken, not text) are missing
    assert clear == [w for w in heard if not w.isdigit()], (clear, heard)
    assert reply["faded"][-8:] == "Press Esc to stop me at any time".split() and reply["codeFaded"], reply
    assert reply["mark"] == "Interrupted · the grey part was not heard"
    state = look(browser)
    assert state["status"] == "Ready" and not state["stop"] and state["send"]
    shot(browser, f"interrupted{'-token' if token else ''}")

    # the next message gets a new reply on the same connection; the history kept only what was heard
    box.send_keys("And then?", Keys.ENTER)
    wait_for(lambda: stats(browser)["replies"] == 2 and stats(browser)["played"] > 24000 * 0.5, what="the second reply playing")
    sent = browser.execute_script("return window.chatBodies")[-1]["messages"]
    # a reply's relative link ("README.md") would open a page this server does not have: it is text
    links_js = "return [...document.querySelectorAll('.bot .md a')].map((a) => [a.textContent, a.getAttribute('href')])"
    links = wait_for(lambda: (found := browser.execute_script(links_js)) and found, what="the second reply's link")
    assert ["the voicekit README", None] in links and all(h is None or h.startswith(("http", "mailto:")) for _, h in links), links
    assert sent[-2:] == [
        {"role": "assistant", "content": end["heard_text"] + " [interrupted]"},
        {"role": "user", "content": "And then?"},
    ]
    # typing barges in, too
    box.send_keys("x")
    wait_for(lambda: len(stats(browser)["ends"]) == 2, what="the second interrupted event")
    assert stats(browser)["ends"][-1]["type"] == "interrupted"
    assert not stats(browser)["errors"]


def test_token_prompt(browser: Any, shot: Callable[[Any, str], Path]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with running(create_app("espeak", chat_tokens_per_second=80, token="s3cret-t0ken")) as srv:
        # the page, its files and the favicon are public; the API is not
        assert httpx.get(srv.url + "/favicon.ico").headers["content-type"] == "image/svg+xml"
        assert httpx.get(srv.url + "/static/markdown-it.min.js").status_code == 200
        browser.get(srv.url + "/")
        state = wait_for(lambda: (s := look(browser))["token"] and s, what="the token prompt")
        assert state["status"] == "Access token needed" and state["state"] == "down"
        assert f"{srv.url}/#token=YOUR_TOKEN" in state["token"] and "has no token" in state["token"]
        assert not state["send"] and not state["stop"] and state["welcome"] is None and state["bots"] == []
        shot(browser, "token-missing")

        # a wrong token is refused in so many words; the right one connects
        prompt = browser.find_element(By.ID, "token-input")
        prompt.send_keys("wrong", Keys.ENTER)
        wait_for(lambda: "not accepted" in (look(browser)["token"] or ""), what="the wrong token refused")
        browser.find_element(By.ID, "token-input").send_keys("s3cret-t0ken", Keys.ENTER)
        state = ready(browser)
        assert state["token"] is None and state["send"] and state["welcome"]
        assert browser.execute_script("return location.hash") == "#token=s3cret-t0ken"
        browser.find_element(By.ID, "input").send_keys("Hello", Keys.ENTER)
        wait_for(lambda: stats(browser)["rendered"] > 24000 * 0.5, what="the reply playing")


def test_reconnects_after_server_restart(browser: Any, shot: Callable[[Any, str], Path]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    port = free_port()
    with serving_on(port) as url:
        browser.get(url + "/")
        ready(browser)
    state = wait_for(lambda: (s := look(browser))["status"] == "Connection lost · reconnecting…" and s, what="reconnecting")
    assert state["state"] == "down" and not state["send"] and not state["stop"] and not state["suggest"]
    shot(browser, "reconnecting")
    # Enter does nothing while there is no connection: no reply waits forever on "Thinking…"
    browser.find_element(By.ID, "input").send_keys("Anyone there?", Keys.ENTER)
    assert look(browser)["bots"] == []
    with serving_on(port):
        state = ready(browser)
        assert state["send"]
        browser.find_element(By.ID, "input").send_keys(Keys.ENTER)
        wait_for(lambda: stats(browser)["rendered"] > 24000 * 0.5, what="a reply over the new connection")
        browser.find_element(By.ID, "stop").click()
        wait_for(lambda: stats(browser)["ends"], what="the interrupted event")


def test_phone_width(plain_server: Running, open_browser: Callable[..., Any], shot: Callable[[Any, str], Path]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    phone = open_browser()
    # a desktop window can't be narrower than 500 px: emulate the phone's screen instead
    phone.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    phone.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    phone.get(plain_server.url + "/")
    ready(phone)
    layout = """
    const box = document.getElementById("input");
    const style = getComputedStyle(box);
    const ctx = document.createElement("canvas").getContext("2d");
    ctx.font = style.font;
    const inner = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    return {
      width: innerWidth, overflow: document.documentElement.scrollWidth - innerWidth,
      placeholder: [ctx.measureText(box.placeholder).width, inner],
      // each control is on screen and is what a tap at its centre reaches
      controls: ["voice", "rate", "mute", "new-chat", "input", "stop", "send"].map((id) => {
        const r = document.getElementById(id).getBoundingClientRect();
        const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
        return [id, r.left >= 0 && r.right <= innerWidth && r.top >= 0 && r.bottom <= innerHeight && r.width >= 40 && r.height >= 24,
                hit === document.getElementById(id) || document.getElementById(id).contains(hit)];
      }),
    };
    """
    seen = phone.execute_script(layout)
    assert seen["width"] == 390 and seen["overflow"] <= 0, seen
    assert seen["placeholder"][0] <= seen["placeholder"][1], seen
    assert all(on_screen and reachable for _, on_screen, reachable in seen["controls"]), seen
    assert phone.find_element(By.CSS_SELECTOR, "#welcome .hint").text == "To interrupt me, tap Stop or just start typing."
    shot(phone, "phone-welcome")

    phone.find_element(By.ID, "input").send_keys(QUESTION, Keys.ENTER)
    wait_for(lambda: stats(phone)["rendered"] > 24000 * 1.5, what="the reply playing")
    seen = phone.execute_script(layout)
    assert seen["overflow"] <= 0 and all(on_screen and reachable for _, on_screen, reachable in seen["controls"]), seen
    assert look(phone)["stop"] and look(phone)["status"] == "Speaking · tap Stop to interrupt"
    shot(phone, "phone-speaking")
    phone.find_element(By.ID, "stop").click()
    wait_for(lambda: stats(phone)["ends"], what="the interrupted event")
    assert not look(phone)["stop"]
