"""Shared pytest setup.

Fixture modules live in tests/fixtures/ and are registered here, one per
concern: real audio devices (jackd), fake cloud servers, fake LLM servers.
"""

import os
import threading

import pytest

pytest_plugins = [
    "tests.fixtures.audio",
    "tests.fixtures.servers",
    "tests.fixtures.llm",
]


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """User caches (Piper's patched model, 63 MB) go to a temporary folder, removed with it."""
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if saved is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = saved


def voicekit_threads():
    return [t for t in threading.enumerate() if t.name.startswith("voicekit")]


@pytest.fixture
def no_thread_leak():
    """Fails the test if a voicekit thread outlives it.

    voicekit names every thread it starts ``voicekit-*``, so this is exact.
    """
    before = set(voicekit_threads())
    yield
    leaked = [t for t in voicekit_threads() if t not in before and t.is_alive()]
    for t in leaked:
        t.join(timeout=2.0)
    leaked = [t.name for t in leaked if t.is_alive()]
    assert not leaked, f"voicekit threads still alive: {leaked}"
