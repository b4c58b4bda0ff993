"""``voicekit serve`` as a real process: bind refusal, token from the environment, workers."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2 as httpx
import psutil
import pytest

from tests.fixtures.web import free_port, server_env, server_process
from voicekit.registry import default_engine


@contextmanager
def serving(*args: str, env: dict[str, str]) -> Iterator[str]:
    with server_process([sys.executable, "-m", "voicekit", "serve", *args], env) as (url, _):
        yield url


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "example.com"])
def test_non_loopback_bind_without_token_refuses_in_one_line(host: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voicekit", "serve", "--host", host], env=server_env(), capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("voicekit serve: refusing to serve on") and "--token" in lines[0]
    assert "Traceback" not in done.stderr


def test_token_from_the_environment_and_the_default_engine() -> None:
    with serving(env=server_env(VOICEKIT_TOKEN="from-env")) as url:
        assert httpx.get(url + "/health").status_code == 401
        auth = {"Authorization": "Bearer from-env"}
        ok = httpx.get(url + "/v1/audio/voices", headers=auth)
        assert ok.status_code == 200 and ok.json()["voices"]
        # the same default as every other verb: Piper when installed, else eSpeak
        assert httpx.get(url + "/health", headers=auth).json()["engine"] == default_engine()
        speech = httpx.post(url + "/v1/audio/speech", json={"input": "Hello.", "response_format": "pcm"}, headers=auth, timeout=30)
        assert speech.status_code == 200 and len(speech.content) > 24000


def test_workers_serve_from_several_processes() -> None:
    with server_process([sys.executable, "-m", "voicekit", "serve", "--workers", "2", "--engine", "espeak"], server_env()) as (url, proc):
        parent = psutil.Process(proc.pid)
        body = {"input": "Hello from a worker.", "response_format": "pcm"}
        for _ in range(4):
            assert httpx.post(url + "/v1/audio/speech", json=body, timeout=10).content
        workers = [c for c in parent.children(recursive=True) if "python" in c.name()]
        assert len(workers) >= 2


def test_bad_engine_setting_fails_before_serving() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voicekit", "serve", "--engine", "espeak", "--voice", "no-such-voice-xyz", "--port", str(free_port())],
        env=server_env(), capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "no-such-voice-xyz" in done.stderr and "Traceback" not in done.stderr


def test_the_chat_backend_can_be_an_openai_compatible_llm(fake_llm) -> None:
    command = [sys.executable, "-m", "voicekit", "serve", "--engine", "espeak", "--base-url", fake_llm.base_url, "--model", "fake-model"]
    with server_process(command, server_env()) as (url, _):
        history = [{"role": "user", "content": "Hi"}]
        with httpx.stream("POST", url + "/v1/chat", json={"messages": history}, timeout=10) as r:
            pieces = list(r.iter_text())
    assert "".join(pieces) == "".join(fake_llm.pieces)
    assert fake_llm.requests[-1]["model"] == "fake-model" and fake_llm.requests[-1]["messages"] == history


def test_ctrl_c_stops_the_server_without_a_traceback() -> None:
    with server_process([sys.executable, "-m", "voicekit", "serve", "--engine", "espeak"], server_env()) as (url, proc):
        assert httpx.get(url + "/health").status_code == 200
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)  # an impatient user presses it twice
        output, _ = proc.communicate(timeout=15)
    assert "Shutting down" in output and "Traceback" not in output, output


def test_the_server_freezes_its_start_up_heap_before_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full garbage collections then skip what lives as long as the server (see docs/server.md, Scale)."""
    import gc

    import uvicorn

    from voicekit.cli import build_parser
    from voicekit.server import command

    frozen_at_start: list[int] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: frozen_at_start.append(gc.get_freeze_count()))
    args = build_parser().parse_args(["serve", "--engine", "espeak"])
    gc.unfreeze()
    try:
        assert command.run(args) == 0
    finally:
        gc.unfreeze()
    assert frozen_at_start and frozen_at_start[0] > 10_000


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--token", "  "], 2, "--token must not be blank"),
        (["--lookahead", "nan"], 2, "--lookahead must be a positive number"),
        (["--lookahead", "0"], 2, "--lookahead must be a positive number"),
        (["--allow-origin", "*"], 2, "--allow-origin takes origins like"),
        (["--send-timeout", "inf"], 2, "--send-timeout must be a positive number"),
        (["--shutdown-timeout", "-1"], 2, "--shutdown-timeout must be"),
    ],
)
def test_bad_settings_are_one_usage_line(args: list[str], code: int, says: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voicekit", "serve", "--engine", "espeak", "--port", str(free_port()), *args],
        env=server_env(), capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == code, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"voicekit serve: {says}"), done.stderr
    assert not done.stdout


def test_a_port_in_use_is_one_line_and_exit_1() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "voicekit", "serve", "--engine", "espeak", "--port", str(port)],
            env=server_env(), capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr == f"voicekit serve: can't listen on 127.0.0.1:{port}: Address already in use\n"


def test_sigterm_does_not_wait_for_a_client_that_stopped_reading() -> None:
    long = " ".join(f"Sentence number {i} makes the reply long enough to fill every buffer." for i in range(400))
    command = [sys.executable, "-m", "voicekit", "serve", "--engine", "espeak", "--shutdown-timeout", "1", "--send-timeout", "60"]
    with server_process(command, server_env()) as (url, proc), httpx.Client(base_url=url) as http:
        with http.stream("POST", "/v1/audio/speech", json={"input": long, "response_format": "pcm"}) as r:
            assert r.status_code == 200
            time.sleep(1)  # the server's sends now wait on this reader
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
            took = time.monotonic() - started
    assert took < 5, f"shutdown took {took:.1f} s with --shutdown-timeout 1"
