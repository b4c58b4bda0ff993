"""Settings are validated where they are set: a ValueError names the setting and what it accepts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from voicekit import MemorySink, StreamConfig
from voicekit.testing import ToneSettings, ToneTTS

pytestmark = pytest.mark.usefixtures("no_thread_leak")


@pytest.fixture
def tts():
    tts = ToneTTS()
    yield tts
    tts.cleanup()


BAD_SETTINGS = [
    ("lookahead", math.nan, "finite"),
    ("lookahead", math.inf, "finite"),
    ("lookahead", -1.0, "above 0"),
    ("chars_per_second", math.nan, "finite"),
    ("chars_per_second", 0, "above 0"),
    ("buffer_threshold", math.nan, "finite"),
    ("buffer_threshold", 1.5, "up to 1"),
    ("max_text_chunk", 2.5, "whole number"),
    ("max_text_chunk", 0, "from 1"),
    ("max_queued_chars", math.inf, "whole number"),
    ("min_text_chunk", -1, "from 0"),
    ("first_fragment", "no", "True or False"),
    ("first_fragment", 0, "True or False"),
    ("speech_filter", "yes", "True or False"),
    ("samplerate", 44100.5, "whole number"),
    ("samplerate", 2**31 - 1, "8000 to 192000"),
    ("samplerate", 100, "8000 to 192000"),
    ("samplerate", True, "whole number"),
    ("channels", 2.5, "whole number"),
    ("channels", 10**6, "1 to 32"),
    ("channels", 0, "1 to 32"),
    ("chunk_size", 10**9, "1 to"),
    ("buffer_size", -4, "1 to"),
    ("dtype", "float64", "one of"),
    ("lookahead", "10", "number"),
]


@pytest.mark.parametrize("name, value, allowed", BAD_SETTINGS)
def test_set_stream_config_refuses_nonsense_naming_the_setting(tts, name, value, allowed) -> None:
    before = tts.stream_config
    with pytest.raises(ValueError, match=name) as info:
        tts.set_stream_config({name: value})
    assert allowed in str(info.value)
    assert tts.stream_config is before  # nothing half-applied


@pytest.mark.parametrize("name, value, allowed", BAD_SETTINGS)
def test_stream_config_itself_refuses_nonsense(name, value, allowed) -> None:
    with pytest.raises(ValueError, match=name):
        StreamConfig(**{name: value})


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"samplerate": 2**31 - 1}, "samplerate"),
        ({"samplerate": 44100.5}, "samplerate"),
        ({"channels": 2.5}, "channels"),
        ({"channels": 10**6}, "channels"),
        ({"chunk_size": 0.5}, "chunk_size"),
    ],
)
def test_setup_stream_refuses_before_any_stream_exists(tts, kwargs, name) -> None:
    with pytest.raises(ValueError, match=name):
        tts.setup_stream(**kwargs)
    # the TTS still works with its previous, valid format
    sink = MemorySink()
    tts.speak("Still fine.", sink=sink)
    assert sink.samplerate == tts.client.samplerate and len(sink.audio) == tts.client.frames("Still fine.")


def test_valid_settings_are_normalized() -> None:
    config = StreamConfig(samplerate=np.int64(48000), channels=2.0, lookahead=np.float32(2.5), max_text_chunk=100)
    assert (config.samplerate, config.channels, config.lookahead) == (48000, 2, 2.5)
    assert type(config.samplerate) is int and type(config.channels) is int and type(config.lookahead) is float
    assert config.updated({"first_fragment": False}).first_fragment is False


@pytest.mark.parametrize(
    "name, value, allowed",
    [
        ("rate", math.nan, "0.1 to 10"),
        ("rate", math.inf, "0.1 to 10"),
        ("rate", True, "0.1 to 10"),
        ("rate", "nan", "0.1 to 10"),
        ("rate", "quick", "x-slow"),
        ("volume", 101, "0 to 100"),
        ("pitch", -1, "0 to 100"),
        ("pitch", None, "0 to 100"),
    ],
)
def test_set_property_refuses_nonsense(tts, name, value, allowed) -> None:
    with pytest.raises(ValueError, match=name) as info:
        tts.set_property(name, value)
    assert allowed in str(info.value)


def test_set_property_takes_numbers_names_and_numeric_strings(tts) -> None:
    tts.set_property("rate", "fast")
    tts.set_property("volume", "80")
    tts.set_property("pitch", 40)
    assert tts.client.settings == ToneSettings("tone-en", 1.35, 80.0, 40.0)
    sink = MemorySink()
    tts.speak("Hello there.", sink=sink)
    assert len(sink.audio) == tts.client.frames("Hello there.")


@pytest.mark.parametrize("kwargs, name", [({"max_retries": 2.5}, "max_retries"), ({"max_retries": True}, "max_retries"),
                                          ({"max_retries": -1}, "max_retries"), ({"backoff": math.nan}, "backoff")])
def test_polly_retry_settings_are_checked_when_made(aws_env, kwargs, name) -> None:
    from voicekit import PollyClient

    # max_retries=2.5 once meant endless retries: the attempt count never equals it
    with pytest.raises(ValueError, match=name):
        PollyClient(("eu-west-1", "AKIDFAKEKEY1234567", "secret"), endpoint_url="http://127.0.0.1:9", **kwargs)


@pytest.mark.parametrize("kwargs, name", [({"max_retries": 2.5}, "max_retries"), ({"timeout": math.nan}, "timeout"),
                                          ({"timeout": 0}, "timeout"), ({"speed": math.inf}, "speed")])
def test_openai_settings_are_checked_when_made(kwargs, name) -> None:
    from voicekit import OpenAIClient

    with pytest.raises(ValueError, match=name):
        OpenAIClient(api_key="sk-fake", **kwargs)
