"""Twilio Media Streams wire format: parse inbound frames, build outbound ones.

Pure and on the hot path: every call sends 50 ``media`` frames per second, so parsing is
``json.loads`` plus direct field access and one base64 decode, with no model validation.
A malformed frame never raises: it comes back as a :class:`FrameError` value that the bridge
logs and skips, because one bad frame must not end a patient's call. The bridge reads frames
with :func:`read_inbound` (audio as bytes, mark echoes as names, no value object for either)
and writes them with :class:`OutboundFrames` (the stream's JSON prefix built once per call).

Inbound (Twilio -> server): ``connected``, ``start``, ``media``, ``dtmf``, ``mark``, ``stop``.
Outbound (server -> Twilio): ``media``, ``mark``, ``clear``; anything else is Twilio error 31924.
Counters (``sequenceNumber``, ``chunk``, ``timestamp``) travel as JSON strings.
"""

from __future__ import annotations

import binascii
import json
from binascii import a2b_base64
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

__all__ = [
    "BadFrameGuard",
    "Connected",
    "Dtmf",
    "FrameError",
    "Mark",
    "Media",
    "MediaFormat",
    "OutboundFrames",
    "Start",
    "Stop",
    "TwilioEvent",
    "clear_frame",
    "mark_frame",
    "media_frame",
    "parse_twilio_frame",
    "read_inbound",
]


@dataclass(frozen=True, slots=True)
class Connected:
    """First frame of a stream; carries no sequence number."""

    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class MediaFormat:
    """Audio format Twilio announces in ``start`` (always 8 kHz mono μ-law for voice calls)."""

    encoding: str
    sample_rate: int
    channels: int


@dataclass(frozen=True, slots=True)
class Start:
    """Stream metadata; ``custom_parameters`` carries the TwiML ``<Parameter>`` values."""

    sequence_number: int
    stream_sid: str
    account_sid: str
    call_sid: str
    tracks: tuple[str, ...]
    media_format: MediaFormat
    custom_parameters: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )


@dataclass(frozen=True, slots=True)
class Media:
    """20 ms of caller audio.

    ``payload_b64`` is kept next to the decoded bytes so the bridge can forward it to the
    Realtime API (which also wants base64) without re-encoding.
    """

    sequence_number: int
    stream_sid: str
    track: str
    chunk: int
    timestamp: int
    payload: bytes
    payload_b64: str


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A keypad digit pressed by the caller."""

    sequence_number: int
    stream_sid: str
    track: str
    digit: str


@dataclass(frozen=True, slots=True)
class Mark:
    """Echo of a mark we sent: the audio queued before it has been played to the caller."""

    sequence_number: int
    stream_sid: str
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    """The stream ended (caller hung up or the call was redirected)."""

    sequence_number: int
    stream_sid: str
    account_sid: str
    call_sid: str


@dataclass(frozen=True, slots=True)
class FrameError:
    """A frame that could not be understood; ``reason`` is safe to log (no payload data)."""

    reason: str
    event: str | None = None


TwilioEvent: TypeAlias = Connected | Start | Media | Dtmf | Mark | Stop


class _BadFrame(Exception):
    """Internal signal for a structurally invalid frame; never escapes this module."""


def _obj(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key)
    if type(value) is not dict:
        raise _BadFrame(f"missing or non-object field {key!r}")
    return value


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if type(value) is not str:
        raise _BadFrame(f"missing or non-string field {key!r}")
    return value


def _counter(data: dict[str, Any], key: str) -> int:
    """Counters are JSON strings on the wire; a bare integer is tolerated."""
    value = data.get(key)
    if type(value) is str and value.isdigit() and value.isascii() and len(value) <= 18:
        return int(value)
    if type(value) is int and value >= 0:
        return value
    raise _BadFrame(f"missing or non-numeric counter {key!r}")


def _parse_media(data: dict[str, Any]) -> Media:
    """Hot path (50 frames/s per call): checks are inlined rather than delegated to helpers."""
    media = data.get("media")
    if type(media) is not dict:
        raise _BadFrame("missing or non-object field 'media'")
    payload_b64 = media.get("payload")
    stream_sid = data.get("streamSid")
    track = media.get("track")
    if type(payload_b64) is not str or type(stream_sid) is not str or type(track) is not str:
        raise _BadFrame("media payload, track or streamSid missing or not a string")
    try:
        payload = a2b_base64(payload_b64, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise _BadFrame("media payload is not valid base64") from exc
    return Media(
        _counter(data, "sequenceNumber"),
        stream_sid,
        track,
        _counter(media, "chunk"),
        _counter(media, "timestamp"),
        payload,
        payload_b64,
    )


def _parse_start(data: dict[str, Any]) -> Start:
    start = _obj(data, "start")
    tracks = start.get("tracks", [])
    if type(tracks) is not list or not all(type(t) is str for t in tracks):
        raise _BadFrame("start.tracks is not a list of strings")
    params = start.get("customParameters") or {}
    if type(params) is not dict or not all(type(v) is str for v in params.values()):
        raise _BadFrame("start.customParameters is not a string map")
    fmt = _obj(start, "mediaFormat")
    sample_rate, channels = fmt.get("sampleRate"), fmt.get("channels")
    if type(sample_rate) is not int or type(channels) is not int:
        raise _BadFrame("start.mediaFormat sampleRate/channels are not integers")
    stream_sid = _str(start, "streamSid")
    outer_sid = data.get("streamSid", stream_sid)
    if outer_sid != stream_sid:
        raise _BadFrame("start.streamSid differs from the frame streamSid")
    return Start(
        sequence_number=_counter(data, "sequenceNumber"),
        stream_sid=stream_sid,
        account_sid=_str(start, "accountSid"),
        call_sid=_str(start, "callSid"),
        tracks=tuple(tracks),
        media_format=MediaFormat(_str(fmt, "encoding"), sample_rate, channels),
        custom_parameters=MappingProxyType(dict(params)),
    )


def _parse_dtmf(data: dict[str, Any]) -> Dtmf:
    dtmf = _obj(data, "dtmf")
    return Dtmf(
        _counter(data, "sequenceNumber"),
        _str(data, "streamSid"),
        _str(dtmf, "track"),
        _str(dtmf, "digit"),
    )


def _parse_mark(data: dict[str, Any]) -> Mark:
    return Mark(
        _counter(data, "sequenceNumber"),
        _str(data, "streamSid"),
        _str(_obj(data, "mark"), "name"),
    )


def _parse_stop(data: dict[str, Any]) -> Stop:
    stop = _obj(data, "stop")
    return Stop(
        _counter(data, "sequenceNumber"),
        _str(data, "streamSid"),
        _str(stop, "accountSid"),
        _str(stop, "callSid"),
    )


def _parse_connected(data: dict[str, Any]) -> Connected:
    return Connected(_str(data, "protocol"), _str(data, "version"))


_PARSERS: dict[str, Callable[[dict[str, Any]], TwilioEvent]] = {
    "media": _parse_media,
    "mark": _parse_mark,
    "start": _parse_start,
    "dtmf": _parse_dtmf,
    "stop": _parse_stop,
    "connected": _parse_connected,
}


def parse_twilio_frame(text: str | bytes) -> TwilioEvent | FrameError:
    """Parse one inbound text frame; never raises, returns :class:`FrameError` instead."""
    try:
        data = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return FrameError("frame is not valid JSON")
    if type(data) is not dict:
        return FrameError("frame is not a JSON object")
    event = data.get("event")
    parser = _PARSERS.get(event) if type(event) is str else None
    if parser is None:
        return FrameError("unknown or missing event type")
    try:
        return parser(data)
    except _BadFrame as exc:
        return FrameError(str(exc), event)


# scan_once is set by JSONDecoder.__init__ (the C scanner); typeshed does not declare it.
_scan: Callable[[str | bytes, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads(text: str | bytes) -> Any:
    """``json.loads`` without its per-call wrapper cost (two regex matches) for compact JSON;
    anything the bare scanner does not take whole goes through ``json.loads`` itself."""
    if type(text) is str:
        try:
            data, end = _scan(text, 0)
        except (StopIteration, ValueError, RecursionError):
            pass
        else:
            if end == len(text):
                return data
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return FrameError("frame is not valid JSON")


def read_inbound(text: str | bytes) -> bytes | str | TwilioEvent | FrameError:
    """Hot-path parse for the bridge: ``media`` → its decoded audio (``bytes``), ``mark`` → the
    echoed mark's name (``str``), any other frame → exactly what :func:`parse_twilio_frame`
    returns. No value object is built for the two frames that make up nearly all traffic
    (100 a second per call); a ``media``/``mark`` frame that lacks the one field needed here
    goes through the full parser and comes back as its :class:`FrameError`.
    """
    data = _loads(text)
    if type(data) is not dict:
        return data if type(data) is FrameError else FrameError("frame is not a JSON object")
    event = data.get("event")
    if event == "media":
        media = data.get("media")
        if type(media) is dict:
            payload = media.get("payload")
            if type(payload) is str:
                try:
                    return a2b_base64(payload, strict_mode=True)
                except (binascii.Error, ValueError):
                    pass
    elif event == "mark":
        mark = data.get("mark")
        if type(mark) is dict:
            name = mark.get("name")
            if type(name) is str:
                return name
    parser = _PARSERS.get(event) if type(event) is str else None
    if parser is None:
        return FrameError("unknown or missing event type")
    try:
        return parser(data)
    except _BadFrame as exc:
        return FrameError(str(exc), event)


class OutboundFrames:
    """Outbound frames of one stream, with the stream's JSON prefix built once.

    The bridge sends a ``media`` and (at most every ~100 ms of audio) a ``mark`` for each audio
    delta. Base64 needs no JSON escaping and mark names are ours, so both are concatenated
    into a prefix quoted once per call; :meth:`media` checks nothing and must only be given
    base64 (the Realtime API's ``delta``), :meth:`mark` only names the bridge made.
    """

    __slots__ = ("_clear", "_mark", "_media")

    def __init__(self, stream_sid: str) -> None:
        sid = _quote(stream_sid)
        self._media = '{"event":"media","streamSid":' + sid + ',"media":{"payload":"'
        self._mark = '{"event":"mark","streamSid":' + sid + ',"mark":{"name":"'
        self._clear = clear_frame(stream_sid)

    def media(self, payload_b64: str) -> str:
        return self._media + payload_b64 + '"}}'

    def mark(self, name: str) -> str:
        return self._mark + name + '"}}'

    def clear(self) -> str:
        return self._clear


def _quote(value: str) -> str:
    """JSON string literal via the C encoder json.dumps uses, without its per-call overhead."""
    return encode_basestring_ascii(value)


def media_frame(stream_sid: str, payload_b64: str) -> str:
    """Outbound audio: base64 of raw 8 kHz μ-law, any length."""
    return (
        f'{{"event":"media","streamSid":{_quote(stream_sid)},'
        f'"media":{{"payload":{_quote(payload_b64)}}}}}'
    )


def mark_frame(stream_sid: str, name: str) -> str:
    """Ask Twilio to echo ``name`` once the audio queued before it has been played."""
    return f'{{"event":"mark","streamSid":{_quote(stream_sid)},"mark":{{"name":{_quote(name)}}}}}'


def clear_frame(stream_sid: str) -> str:
    """Drop all audio buffered at Twilio; pending marks are echoed right away."""
    return f'{{"event":"clear","streamSid":{_quote(stream_sid)}}}'


BadFrameVerdict: TypeAlias = Literal["report", "count", "close"]


class BadFrameGuard:
    """Bad frames of one stream (unparseable JSON, unknown events, bad base64): the first few
    are reported (logged and recorded), the rest only counted; a stream that keeps sending
    them is closed.

    Twilio itself sends none, but it may add an event type one day, so a few unknown frames
    must not end a patient's call: a token bucket allows a burst of ``burst`` bad frames and
    ``per_second`` after that. A stream past it is garbage (one authorised stream once wrote
    78,912 log lines and database rows). Pure: the caller hands in a monotonic time.
    """

    __slots__ = ("_level", "_seen_at", "burst", "count", "per_second", "reasons", "report_first")

    def __init__(self, *, report_first: int = 5, burst: int = 50, per_second: float = 5.0) -> None:
        self.report_first = report_first
        self.burst = burst
        self.per_second = per_second
        self.count = 0
        self.reasons: Counter[str] = Counter()
        self._level = 0.0
        self._seen_at: float | None = None

    def add(self, reason: str, now: float) -> BadFrameVerdict:
        self.count += 1
        self.reasons[reason] += 1
        if self._seen_at is not None:
            self._level = max(0.0, self._level - (now - self._seen_at) * self.per_second)
        self._seen_at = now
        self._level += 1
        if self._level > self.burst:
            return "close"
        return "report" if self.count <= self.report_first else "count"

    @property
    def unreported(self) -> int:
        return max(0, self.count - self.report_first)

    def summary(self) -> dict[str, Any]:
        """Safe to log and store: counts and reasons, never a frame's content."""
        return {"bad_frames": self.count, "reasons": dict(self.reasons.most_common(5))}
