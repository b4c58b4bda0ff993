"""voicekit.testing: the tone engine's audio, marks, latency and failures are exact and deterministic."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest

from tests.helpers import audio, marks, synth
from voicekit import EngineError, MemorySink
from voicekit.contract import Cancel, Engine, Voice
from voicekit.testing import ToneEngine, ToneSettings, ToneTTS

TEXT = "Tones stand in for words here, exactly."


def peak_hz(pcm: np.ndarray, samplerate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.argmax(spectrum) * samplerate / len(pcm))


def test_each_word_is_a_tone_that_starts_at_its_mark_to_the_sample() -> None:
    engine = ToneEngine()
    chunks = synth(engine, TEXT)
    pcm, plan = audio(chunks), engine.plan(TEXT)
    assert [TEXT[w.offset : w.offset + w.length] for w in plan] == TEXT.split()
    assert [(m.offset, m.length, round(m.time * 24000)) for m in marks(chunks)] == [
        (w.offset, w.length, w.start) for w in plan
    ]
    assert all(m.time == w.start / 24000 for m, w in zip(marks(chunks), plan))
    # 60 ms per character, 40 ms between words, nothing before the first or after the last
    assert [(w.start, w.frames) for w in plan[:2]] == [(0, 5 * 1440), (5 * 1440 + 960, 5 * 1440)]
    assert len(pcm) == engine.frames(TEXT) == plan[-1].end
    silent = np.ones(len(pcm), bool)
    for i, word in enumerate(plan):
        tone = pcm[word.start : word.end]
        assert word.frequency == ToneEngine.frequencies[i % 5]
        assert abs(peak_hz(tone, 24000) - word.frequency) < 24000 / len(tone)
        expected = 0.5 * np.sin(2 * np.pi * word.frequency / 24000 * np.arange(word.frames))
        np.testing.assert_allclose(tone, expected, atol=1e-6)
        silent[word.start : word.end] = False
    assert not pcm[silent].any()
    assert pcm.dtype == np.float32 and np.abs(pcm).max() <= 0.5


def test_chunks_hold_chunk_seconds_each_and_marks_ride_in_the_chunk_where_the_word_starts() -> None:
    engine = ToneEngine(samplerate=16000, chunk_seconds=0.02)
    chunks = synth(engine, TEXT)
    assert {len(c.pcm) for c in chunks[:-1]} == {320} and 0 < len(chunks[-1].pcm) <= 320
    assert {c.samplerate for c in chunks} == {16000} and not any(c.engine for c in chunks)
    for n, chunk in enumerate(chunks):
        for mark in chunk.marks:
            assert n * 320 <= round(mark.time * 16000) < (n + 1) * 320


def test_the_same_text_sounds_the_same_every_time() -> None:
    engine = ToneEngine()
    first, second = synth(engine, TEXT), synth(ToneEngine(), TEXT)
    np.testing.assert_array_equal(audio(first), audio(second))
    assert marks(first) == marks(second)
    assert engine.texts == [TEXT]


def test_blank_text_is_silence_and_any_run_of_non_spaces_is_a_word() -> None:
    engine = ToneEngine()
    assert synth(engine, " \n\t ") == [] and engine.frames("") == 0
    text = "\U0001f642 <b>&amp; \x00\ud800 \u202edone"
    assert [text[w.offset : w.offset + w.length] for w in engine.plan(text)] == text.split()
    assert len(audio(synth(engine, text))) == engine.frames(text)
    with pytest.raises(TypeError):
        synth(engine, b"bytes")


def test_latency_comes_before_the_first_chunk_and_cancel_cuts_it_short() -> None:
    engine = ToneEngine(latency=0.2)
    started = time.monotonic()
    pieces = engine.synthesize("Late.", Cancel())
    next(pieces)
    assert 0.2 <= time.monotonic() - started < 0.5
    list(pieces)  # the rest comes at once: the latency is only before the first chunk

    engine.latency = 30.0
    cancel = Cancel()
    got: list[object] = []
    ended = threading.Event()

    def speak() -> None:
        got.extend(engine.synthesize("Never said.", cancel))
        ended.set()

    threading.Thread(target=speak).start()
    time.sleep(0.1)
    cancelled = time.monotonic()
    cancel.set()
    assert ended.wait(1.0)
    assert time.monotonic() - cancelled < 0.02 and got == []


def test_cancel_stops_between_chunks() -> None:
    cancel = Cancel()
    got = []
    for chunk in ToneEngine().synthesize(TEXT, cancel):
        got.append(chunk)
        cancel.set()
    assert len(got) == 1


def test_a_marker_breaks_the_text_off_before_its_word() -> None:
    engine = ToneEngine(fail="Boom")
    text = "Fine so far. Boom goes the rest."
    boom = engine.plan(text)[3]
    chunks: list = []
    with pytest.raises(EngineError, match="broke off") as caught:
        for chunk in engine.synthesize(text, Cancel()):
            chunks.append(chunk)
    assert caught.value.unspoken_text == "Boom goes the rest." and caught.value.engine == "tone"
    # every word before it, and the silence up to where it would start
    assert len(audio(chunks)) == boom.start
    assert [text[m.offset : m.offset + m.length] for m in marks(chunks)] == ["Fine", "so", "far."]
    assert synth(engine, "No marker, no failure.") and engine.texts == [text, "No marker, no failure."]


def test_a_break_inside_a_word_plays_part_of_it_with_its_mark() -> None:
    text = "Fine so far. Boom goes the rest."
    engine = ToneEngine(fail=lambda t: t.find("oom"))
    chunks: list = []
    with pytest.raises(EngineError) as caught:
        chunks.extend(engine.synthesize(text, Cancel()))
    boom = engine.plan(text)[3]
    assert len(audio(chunks)) == boom.start + 1440  # the "B" of "Boom"
    assert marks(chunks)[-1].offset == boom.offset
    assert caught.value.unspoken_text == "Boom goes the rest."  # the cut word is spoken again by whoever continues


def test_fail_rules_earliest_marker_start_end_and_changing_the_rule() -> None:
    text = "Alpha beta gamma delta."
    engine = ToneEngine(fail={"delta", "beta"})
    with pytest.raises(EngineError) as caught:
        synth(engine, text)
    assert caught.value.unspoken_text == "beta gamma delta."
    engine.fail = lambda t: 0  # before any audio, after the latency
    pieces = engine.synthesize(text, Cancel())
    with pytest.raises(EngineError) as caught:
        next(pieces)
    assert caught.value.unspoken_text == text
    engine.fail = lambda t: None
    assert len(audio(synth(engine, text))) == engine.frames(text)
    engine.fail = lambda t: len(t)  # after the last word: all of it plays, then the error
    chunks: list = []
    with pytest.raises(EngineError) as caught:
        chunks.extend(engine.synthesize(text, Cancel()))
    assert caught.value.unspoken_text == "" and len(audio(chunks)) == engine.frames(text)
    engine.fail = ()
    assert synth(engine, text)


def test_properties_go_through_the_same_checks_as_every_engine() -> None:
    engine = ToneEngine()
    base = engine.plan(TEXT)
    engine.set_property("rate", 2.0)
    assert [(w.start, w.frames) for w in engine.plan(TEXT)] == [(w.start // 2, w.frames // 2) for w in base]
    engine.set_property("rate", "x-slow")  # the named values of BaseTTS.set_property work here too
    assert engine.settings.rate == 0.5 and engine.frames(TEXT) == 2 * base[-1].end
    engine.set_property("rate", 1.0)
    engine.set_property("pitch", 100)
    assert [w.frequency for w in engine.plan(TEXT)] == [2 * w.frequency for w in base]
    engine.set_property("volume", 50)
    assert np.abs(audio(synth(engine, "Quiet."))).max() == pytest.approx(0.25, abs=1e-3)
    for name, value, message in (("rate", 0, "rate must be"), ("volume", 101, "volume must be"),
                                 ("pitch", float("nan"), "pitch must be"), ("speed", 1.0, "unknown property")):
        with pytest.raises(ValueError, match=message):
            engine.set_property(name, value)
    assert engine.settings == ToneSettings("tone-en", 1.0, 50.0, 100.0)  # nothing half-applied


def test_voices_set_the_language_and_ids_are_checked() -> None:
    engine = ToneEngine()
    assert [v.id for v in engine.voices()] == ["tone-en", "tone-de"] and engine.language == "en"
    engine.set_voice("tone-de")
    assert (engine.settings.voice, engine.language) == ("tone-de", "de")
    for bad in ("../../etc/passwd", "tone-fr"):
        with pytest.raises(ValueError):
            engine.set_voice(bad)
    own = ToneEngine(voices=[Voice("robot", "Robot", "pt-BR", "neutral")])
    assert own.language == "pt-BR" and own.voices() == [Voice("robot", "Robot", "pt-BR", "neutral")]


def test_a_closed_engine_refuses_with_the_text_unspoken() -> None:
    engine = ToneEngine()
    engine.close()
    engine.close()
    with pytest.raises(EngineError, match="closed") as caught:
        synth(engine, "Too late.")
    assert caught.value.unspoken_text == "Too late."


def test_options_are_checked() -> None:
    for options in ({"samplerate": 0}, {"char_seconds": 0}, {"gap_seconds": -1}, {"latency": float("inf")},
                    {"chunk_seconds": 0}, {"max_chars": 0}, {"voices": []}):
        with pytest.raises(ValueError):
            ToneEngine(**options)


def test_tone_tts_is_built_like_the_other_tts_classes(no_thread_leak: None) -> None:
    tts = ToneTTS(samplerate=16000, name="beep")
    assert isinstance(tts.client, ToneEngine) and isinstance(tts.client, Engine)
    assert (tts.client.samplerate, tts.client.name) == (16000, "beep")
    own = ToneEngine()
    assert ToneTTS(own).client is own
    with pytest.raises(TypeError):
        ToneTTS(own, latency=1.0)
    sink, words, reports = MemorySink(), [], []
    stream = tts.create_stream(sink=sink, on_word=words.append, on_chunk_processed=reports.append)
    stream.feed(TEXT)
    stream.close()
    # the first fragment ends at the comma: two calls, each chunk's audio right after the one before
    first, second = "Tones stand in for words here,", "exactly."
    assert tts.client.texts == [r["text"] for r in reports] == [first, second]
    assert {r["engine"] for r in reports} == {"beep"}
    # at the engine's own rate the stream passes the audio through untouched
    np.testing.assert_array_equal(sink.audio, audio(synth(tts.client, first) + synth(tts.client, second)))
    starts = [w.start for w in tts.client.plan(first)]
    starts += [tts.client.frames(first) + w.start for w in tts.client.plan(second)]
    assert [(w["word"], w["offset"], w["time"]) for w in words] == [
        (m.group(), m.start(), frame / 16000) for m, frame in zip(re.finditer(r"\S+", TEXT), starts, strict=True)
    ]
    assert stream.heard_text == TEXT
    tts.set_property("rate", "fast")
    assert tts.client.settings.rate == 1.35
    tts.cleanup()
