"""Amazon Polly as a voicekit engine, streamed as the response body arrives.

Each text chunk makes two requests: the audio (``OutputFormat="pcm"``) and its
word speech marks (``OutputFormat="json"``, on a ``voicekit-polly-marks``
thread). Audio is yielded piece by piece while the body is still downloading.
The marks request starts as soon as the first piece is out, concurrently with
the rest of the body: started earlier, its request signing competed with the
audio request for the GIL and delayed the first audio by ~1.5 ms. Marks are
attached to the piece in which they start or, when they arrive after that
piece, to the next piece (or a final empty chunk); the stream places them by
their time, so late ones still fire on time or, at worst, as they arrive.

An interrupt cuts the transfer at once: from the interrupting thread
(:func:`~voicekit.engines.transfer.cut_on_cancel`), or by closing the generator.
botocore hides the socket until the response headers arrive, so the audio
request waits for them on a ``voicekit-polly-request`` thread, and an
interrupt or ``close()`` returns at once. That thread and the marks thread
end at once too: the client's connections report the socket a request is
sent on (:class:`_Watch`), and an interrupt or ``close()`` shuts it down while
the headers are awaited. Only a ``client=`` whose connection pools botocore
made before voicekit saw it, or a botocore whose internals differ, keeps such
a thread until the headers come or botocore's read timeout ends it. Nothing is
sent after ``close()``.

Retries: throttling and 5xx answers get ``max_retries`` retries with jittered
exponential backoff, or after the answer's ``Retry-After`` seconds (at most
``_MAX_RETRY_AFTER``), always before any audio of the chunk was yielded (the
request itself is what is retried); an interrupt ends the wait at once.
Network failures (refused connection, connection dropped mid-body, timeouts)
fail at once with ``EngineError`` so a fallback engine can take over quickly,
and so does a body that is not PCM (another ``Content-Type``, or half a sample
at its end). botocore's own retries are turned off for clients we build, so
the two policies never multiply.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import json
import logging
import math
import random
import re
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from ..contract import (
    AudioChunk,
    Cancel,
    EngineCapabilities,
    Voice,
    WordMark,
    check_property,
    check_voice_id,
    speakable,
)
from ..errors import EngineError
from .transfer import Pcm16Decoder, check_audio_type, cut_on_cancel, shut_down

__all__ = ["PollyClient"]

log = logging.getLogger(__name__)

ENGINES = ("standard", "neural", "long-form", "generative")
_RETRYABLE_CODES = {"ThrottlingException", "Throttling", "TooManyRequestsException", "ServiceFailureException",
                    "ServiceUnavailableException", "RequestLimitExceeded"}
#: seconds of audio per read of the body: small, so the first audio leaves early.
_PIECE_SECONDS = 0.02
#: how long to wait for speech marks once the audio is complete, or once it broke off
#: (shorter: a fallback engine is waiting to take over).
_MARKS_TIMEOUT = 10.0
_MARKS_AFTER_FAILURE = 1.0
#: the longest ``Retry-After`` waited for: a fallback engine serves better than a long silence
_MAX_RETRY_AFTER = 10.0


class _RedactAwsCredentials(logging.Filter):
    """Masks the access key id that botocore's DEBUG logs print in signed headers.

    The secret key is never logged by botocore (only signatures are), but the
    ``Authorization: ... Credential=<key id>/...`` header and session tokens are.
    """

    _PATTERNS = (
        re.compile(r"(Credential=)[^/\s'\"]+"),
        re.compile(r"(?i)(x-amz-security-token['\"]?:\s*b?['\"]?)[^'\"\s,]+"),
    )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for pattern in self._PATTERNS:
            redacted = pattern.sub(r"\1***", redacted)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _install_log_redaction() -> None:
    # Filters do not apply to records propagated from child loggers, so the
    # filter sits on each botocore logger that prints signed requests.
    for name in ("botocore.endpoint", "botocore.auth"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactAwsCredentials) for f in logger.filters):
            logger.addFilter(_RedactAwsCredentials())


@dataclass(frozen=True)
class _Request:
    """The text as sent to Polly, and where each character of the user's text landed in it.

    ``starts[i]`` is the UTF-8 byte offset in ``body`` of character ``i`` of the
    original text; Polly's speech marks are byte offsets into ``body``.
    """

    body: str
    text_type: str
    starts: tuple[int, ...]
    length: int

    @classmethod
    def build(cls, text: str, prosody: dict[str, str], *, ssml: bool) -> _Request:
        # SSML only when the caller said so: text that merely starts with "<speak" is text
        if ssml:
            return cls(text, "ssml", _byte_starts(text, 0), len(text))
        if not prosody:
            return cls(text, "text", _byte_starts(text, 0), len(text))
        attributes = "".join(f' {k}="{v}"' for k, v in sorted(prosody.items()))
        prefix = f"<speak><prosody{attributes}>"
        parts, starts, position = [prefix], [], len(prefix.encode())
        for char in text:
            starts.append(position)
            escaped = escape(char, {'"': "&quot;"})
            parts.append(escaped)
            position += len(escaped.encode())
        parts.append("</prosody></speak>")
        return cls("".join(parts), "ssml", tuple(starts), len(text))

    def char_index(self, byte_offset: int, *, end: bool = False) -> int:
        """Index in the original text of the character at ``byte_offset`` (or just after it, for an end)."""
        if end:
            return min(bisect.bisect_left(self.starts, byte_offset), self.length)
        return max(bisect.bisect_right(self.starts, byte_offset) - 1, 0)

    def mark(self, raw: dict[str, Any]) -> WordMark:
        start = self.char_index(int(raw["start"]))
        return WordMark(start, max(self.char_index(int(raw["end"]), end=True) - start, 0), raw["time"] / 1000.0)


def _byte_starts(text: str, base: int) -> tuple[int, ...]:
    starts, position = [], base
    for char in text:
        starts.append(position)
        position += len(char.encode())
    return tuple(starts)


class _PendingMarks:
    """Speech marks still to be attached: requested by ``start()``, filled in when that request finishes."""

    def __init__(self, request: Callable[[], Future[list[WordMark]]]) -> None:
        self._request = request
        self._future: Future[list[WordMark]] | None = None
        self._marks: list[WordMark] | None = None

    def start(self) -> None:
        if self._future is None:
            try:
                self._future = self._request()
            except RuntimeError:  # the client was closed: no marks, the audio is what counts
                self._future = Future()
                self._future.set_result([])

    def _ready(self, wait: float | None) -> list[WordMark]:
        if self._marks is None:
            if self._future is None or (wait is None and not self._future.done()):
                return []
            try:
                self._marks = sorted(self._future.result(timeout=wait), key=lambda m: m.time)
            except Exception as exc:  # noqa: BLE001 - audio without marks beats no audio
                log.warning("Polly speech marks unavailable, words will not be tracked: %s", exc)
                self._marks = []
        return self._marks

    def take_before(self, seconds: float) -> tuple[WordMark, ...]:
        """Marks starting before ``seconds``, if they have arrived yet."""
        marks = self._ready(None)
        cut = bisect.bisect_left([m.time for m in marks], seconds)
        taken, marks[:] = marks[:cut], marks[cut:]
        return tuple(taken)

    def take_rest(self, seconds: float | None, wait: float) -> tuple[WordMark, ...]:
        """Waits up to ``wait`` s for the marks; all of them, or those before ``seconds``."""
        marks = self._ready(wait)
        return tuple(marks) if seconds is None else self.take_before(seconds)


class PollyClient:
    """Amazon Polly through boto3; implements :class:`voicekit.contract.Engine`.

    ``credentials=(region, key_id, secret)``, or a ready boto3 ``session`` or
    ``client``, or nothing for boto3's standard chain (environment, profile,
    instance role). ``engine`` is one of standard, neural, long-form,
    generative; ``language`` picks the language of a bilingual voice.

    ``set_property`` applies to plain text by wrapping it (escaped) in an SSML
    ``<prosody>``; text the user wrote as SSML is sent as given. Which prosody
    attributes a voice honours is Polly's rule (neural and generative voices
    support fewer, e.g. no pitch).
    """

    name = "polly"
    max_chars = 3000  # Polly's limit on billed characters per request
    # synthesize() takes ssml=True for the chunks of an SSML reply; speech marks give word times
    capabilities = EngineCapabilities(ssml=True, word_marks=True)

    def __init__(
        self,
        credentials: tuple[str, str, str] | None = None,
        *,
        endpoint_url: str | None = None,
        session: Any = None,
        client: Any = None,
        voice: str = "Joanna",
        engine: str = "neural",
        language: str | None = None,
        samplerate: int = 16000,
        max_retries: int = 2,
        backoff: float = 0.25,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"Polly engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        if samplerate not in (8000, 16000):
            raise ValueError(f"Polly PCM samplerate must be 8000 or 16000, not {samplerate!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or not 0 <= max_retries <= 10:
            raise ValueError(f"max_retries must be a whole number from 0 to 10, got {max_retries!r}")
        if not 0 <= backoff <= 60:  # also refuses NaN
            raise ValueError(f"backoff must be from 0 to 60 seconds, got {backoff!r}")
        self.voice, self.engine, self.language, self.samplerate = check_voice_id(voice), engine, language, samplerate
        self._max_retries, self._backoff = max_retries, backoff
        self._prosody: dict[str, str] = {}
        self._owns_client = client is None
        self._polly = client if client is not None else _make_client(credentials, session, endpoint_url)
        _install_log_redaction()
        self._errors = self._polly.exceptions.ClientError
        _watch_connections(self._polly)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="voicekit-polly-marks")
        self._closed = False
        self._waiting: set[Future[None]] = set()  # synthesize calls waiting for response headers
        self._watches: set[_Watch] = set()  # requests not yet answered: close() hangs them up
        self._waiting_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PollyClient(region={self._polly.meta.region_name!r}, voice={self.voice!r}, engine={self.engine!r})"

    # -- Engine protocol -------------------------------------------------

    def synthesize(self, text: str, cancel: threading.Event, *, ssml: bool = False) -> Iterator[AudioChunk]:
        """Speak ``text``; with ``ssml=True`` it is one well-formed ``<speak>`` document, sent as SSML.

        Plain text is always sent as text, or escaped inside voicekit's own
        ``<prosody>`` when ``set_property`` changed rate, volume or pitch.
        """
        text = speakable(text, engine=self.name, closed=self._closed)
        if not text.strip():
            return
        request = _Request.build(text, dict(self._prosody), ssml=ssml)
        params: dict[str, Any] = {"Engine": self.engine, "VoiceId": self.voice, "Text": request.body,
                                  "TextType": request.text_type, "SampleRate": str(self.samplerate)}
        if self.language:
            params["LanguageCode"] = self.language
        marks = _PendingMarks(lambda: self._executor.submit(self._fetch_marks, params, request, cancel))
        response = self._request(cancel, OutputFormat="pcm", **params)
        if response is None:
            return
        body = response["AudioStream"]
        piece_bytes = 2 * round(self.samplerate * _PIECE_SECONDS)
        decoder, produced = Pcm16Decoder(self.name), 0
        with contextlib.closing(body), cut_on_cancel(cancel, lambda: _socket_of(body)):
            check_audio_type(response.get("ContentType"), self.name)
            while True:
                if cancel.is_set():
                    return
                try:
                    data = body.read(piece_bytes)
                except Exception as exc:  # noqa: BLE001 - botocore/urllib3 stream errors vary
                    if cancel.is_set():
                        return
                    # Hand over the words already started so a fallback resumes at the right one.
                    late = marks.take_rest(produced / self.samplerate, wait=_MARKS_AFTER_FAILURE)
                    if late:
                        yield AudioChunk(np.zeros(0, np.float32), self.samplerate, late)
                    raise EngineError(f"Polly audio stream broke off: {exc}", engine=self.name) from exc
                if not data:
                    if cancel.is_set():
                        return
                    decoder.finish()
                    break
                pcm = decoder.decode(data)
                produced += len(pcm)
                yield AudioChunk(pcm, self.samplerate, marks.take_before(produced / self.samplerate))
                marks.start()
            rest = marks.take_rest(None, wait=_MARKS_TIMEOUT)
            if rest:
                yield AudioChunk(np.zeros(0, np.float32), self.samplerate, rest)

    def voices(self) -> list[Voice]:
        found, token = [], None
        while True:
            more: dict[str, str] = {"NextToken": token} if token else {}
            page = self._call("describe_voices", threading.Event(), Engine=self.engine, **more)
            found += [Voice(v["Id"], v.get("Name", v["Id"]), v.get("LanguageCode", ""), v.get("Gender", ""))
                      for v in page.get("Voices", [])]
            token = page.get("NextToken")
            if not token:
                return found

    def set_voice(self, voice_id: str) -> None:
        self.voice = check_voice_id(voice_id)

    def set_property(self, name: str, value: float) -> None:
        value = check_property(name, value, rate=(0.2, 2.0))  # SSML prosody's rate: 20% to 200%
        if name == "rate":
            self._prosody["rate"] = f"{round(value * 100)}%"
        elif name == "volume":
            # Polly's volume is relative to the voice's own, in dB; 100 keeps it unchanged.
            self._prosody["volume"] = "silent" if value == 0 else f"{20 * math.log10(value / 100):+.1f}dB"
        else:
            # 50 is the voice's own pitch; Polly accepts about -33% .. +50%.
            self._prosody["pitch"] = f"{round((value - 50) * (0.66 if value < 50 else 1.0)):+d}%"

    def close(self) -> None:
        """Release the client at once: calls waiting for Polly raise ``EngineError``; nothing more is sent."""
        with self._waiting_lock:
            if self._closed:
                return
            self._closed = True
            waiting, self._waiting = self._waiting, set()
            watches, self._watches = self._watches, set()
        for woken in waiting:
            _wake(woken)
        for watch in watches:
            watch.cut()
        # never wait: a request thread whose socket could not be watched is stuck until the read timeout
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._owns_client:
            self._polly.close()

    # -- internals -------------------------------------------------------

    def _fetch_marks(self, params: dict[str, Any], request: _Request, cancel: threading.Event) -> list[WordMark]:
        with self._watched(cancel):
            response = self._call("synthesize_speech", cancel, OutputFormat="json", SpeechMarkTypes=["word"],
                                  **params)
        if response is None:
            return []
        body = response["AudioStream"]
        with contextlib.closing(body), cut_on_cancel(cancel, lambda: _socket_of(body)):
            lines = body.read().decode("utf-8").splitlines()
        return [request.mark(json.loads(line)) for line in lines if line.strip()]

    def _request(self, cancel: threading.Event, **params: Any) -> Any:
        """``synthesize_speech`` that an interrupt or ``close()`` stops waiting for; None if interrupted."""
        if not isinstance(cancel, Cancel):  # no way to be woken: block, checking between reads
            return self._call("synthesize_speech", cancel, **params)
        response: Future[Any] = Future()
        woken: Future[None] = Future()
        with self._waiting_lock:
            if self._closed:
                raise EngineError("PollyClient is closed", engine=self.name)
            self._waiting.add(woken)
        cancel.call_on_set(functools.partial(_wake, woken))

        def request() -> None:
            try:
                with self._watched(cancel):
                    response.set_result(self._call("synthesize_speech", cancel, **params))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                response.set_exception(exc)

        threading.Thread(target=request, name="voicekit-polly-request", daemon=True).start()
        try:
            futures.wait([response, woken], return_when=futures.FIRST_COMPLETED)
        finally:
            with self._waiting_lock:
                self._waiting.discard(woken)
        if cancel.is_set() or self._closed:
            response.add_done_callback(_hang_up)  # nobody will read the body
            if cancel.is_set():
                return None
            raise EngineError("PollyClient is closed", engine=self.name)
        return response.result()

    @contextlib.contextmanager
    def _watched(self, cancel: threading.Event) -> Iterator[None]:
        """While the block runs, ``cancel`` or ``close()`` hangs up the request this thread sends."""
        watch = _Watch()
        with self._waiting_lock:
            if self._closed:
                raise EngineError("PollyClient is closed", engine=self.name)
            self._watches.add(watch)
        if isinstance(cancel, Cancel):
            cancel.call_on_set(watch.cut)
        _current.watch = watch
        try:
            yield
        finally:
            _current.watch = None
            watch.disarm()  # the connection goes back to the pool: a later cut must not reach it
            with self._waiting_lock:
                self._watches.discard(watch)

    def _call(self, operation: str, cancel: threading.Event, **params: Any) -> Any:
        """``operation`` with bounded retries; None if ``cancel`` was set while waiting to retry."""
        from botocore.exceptions import BotoCoreError

        attempt = 0
        while True:
            if self._closed:  # also between retries: nothing reaches Polly after close()
                raise EngineError("PollyClient is closed", engine=self.name)
            if cancel.is_set():
                return None
            try:
                return getattr(self._polly, operation)(**params)
            except self._errors as exc:
                error = exc.response.get("Error", {})
                metadata = exc.response.get("ResponseMetadata", {})
                status = metadata.get("HTTPStatusCode", 0)
                retryable = error.get("Code") in _RETRYABLE_CODES or status >= 500 or status == 429
                if not retryable or attempt == self._max_retries:
                    raise EngineError(f"Polly {operation} failed: {error.get('Code')}: {error.get('Message')}",
                                      engine=self.name) from exc
                delay = _retry_after(metadata.get("HTTPHeaders", {}))
            except BotoCoreError as exc:
                raise EngineError(f"Polly {operation} failed: {exc}", engine=self.name) from exc
            if delay is None:
                delay = self._backoff * 2**attempt * random.uniform(0.5, 1.0)
            attempt += 1
            log.info("Polly %s throttled or failed, retry %d in %.2fs", operation, attempt, delay)
            if cancel.wait(delay):
                return None


def _retry_after(headers: dict[str, str]) -> float | None:
    """The wait an answer asks for, in seconds (AWS sends delta-seconds, never a date), bounded."""
    try:
        seconds = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    return min(seconds, _MAX_RETRY_AFTER) if seconds >= 0 else None  # also refuses NaN


_current = threading.local()  # the _Watch of the request this thread is sending, if any


class _Watch:
    """The socket one request is sent on, so another thread can hang it up before the headers come."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._cut = False
        self._armed = True

    def use(self, sock: socket.socket) -> None:
        with self._lock:
            if not self._armed:
                return
            self._sock = sock
            if self._cut:
                shut_down(sock)

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            if self._armed and self._sock is not None:
                shut_down(self._sock)

    def disarm(self) -> None:
        with self._lock:
            self._armed = False
            self._sock = None


class _WatchedConnection:
    """Mixed into botocore's connection classes: tells the sending thread's :class:`_Watch` its socket."""

    sock: socket.socket | None

    def send(self, data: Any) -> None:
        super().send(data)  # type: ignore[misc]  # connects first if needed
        watch: _Watch | None = getattr(_current, "watch", None)
        if watch is not None and self.sock is not None:
            watch.use(self.sock)


@functools.cache
def _watched_pool(pool: Any) -> type:
    connection = type(f"Watched{pool.ConnectionCls.__name__}", (_WatchedConnection, pool.ConnectionCls), {})
    return type(f"Watched{pool.__name__}", (pool,), {"ConnectionCls": connection})


def _watch_connections(client: Any) -> None:
    """Make ``client``'s new connections report their sockets (botocore keeps them private until the headers).

    Its pool classes are one dict shared by the pool and proxy managers; a
    botocore that no longer has it keeps its own classes, and requests are
    then hung up only once their headers arrive.
    """
    session: Any = getattr(getattr(client, "_endpoint", None), "http_session", None)
    pools = getattr(session, "_pool_classes_by_scheme", None)
    if not isinstance(pools, dict):
        log.debug("Polly: botocore's connection pools are not where voicekit looks; requests hang up late")
        return
    swapped = False
    for scheme, pool in list(pools.items()):
        if isinstance(pool, type) and hasattr(pool, "ConnectionCls") and not issubclass(
                pool.ConnectionCls, _WatchedConnection):
            pools[scheme] = _watched_pool(pool)
            swapped = True
    if swapped:
        # pools an app's client made before keep their class: drop them (idle connections only;
        # requests in flight finish) so that the next requests go out on watched connections
        session.close()


def _wake(waiter: Future[None]) -> None:
    with contextlib.suppress(futures.InvalidStateError):  # an interrupt and close() may both wake it
        waiter.set_result(None)


def _hang_up(response: Future[Any]) -> None:
    if not response.cancelled() and response.exception() is None and response.result() is not None:
        response.result()["AudioStream"].close()


def _socket_of(body: Any) -> socket.socket | None:
    # botocore keeps urllib3's response private; urllib3 drops ``connection`` once the body is read.
    connection = getattr(getattr(body, "_raw_stream", None), "connection", None)
    return getattr(connection, "sock", None)


def _make_client(credentials: tuple[str, str, str] | None, session: Any, endpoint_url: str | None) -> Any:
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError
    except ImportError as exc:
        raise EngineError("Amazon Polly needs boto3: pip install 'voicekit[polly]'", engine="polly") from exc
    if credentials is not None:
        if session is not None:
            raise ValueError("pass credentials or session, not both")
        if len(credentials) != 3 or not all(isinstance(c, str) and c for c in credentials):
            raise ValueError("credentials must be (region, key_id, secret), three non-empty strings")
        region, key_id, secret = credentials
        session = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=region)
    session = session or boto3.session.Session()
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)
    try:
        return session.client("polly", endpoint_url=endpoint_url, config=config)
    except BotoCoreError as exc:
        raise EngineError(f"can't create the Polly client: {exc}", engine="polly") from exc
