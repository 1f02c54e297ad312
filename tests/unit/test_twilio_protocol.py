"""Twilio Media Streams frames: parsing is total (never raises), builders match Twilio's format."""

from __future__ import annotations

import base64
import json
import random
import time
from typing import Any

import pytest

from voice_agent.voice.twilio.protocol import (
    Connected,
    Dtmf,
    FrameError,
    Mark,
    Media,
    MediaFormat,
    OutboundFrames,
    Start,
    Stop,
    clear_frame,
    mark_frame,
    media_frame,
    parse_twilio_frame,
    read_inbound,
)

SID = "MZ0123456789abcdef0123456789abcdef"
AUDIO = bytes(range(160))
PAYLOAD = base64.b64encode(AUDIO).decode()


def _frames() -> dict[str, dict[str, Any]]:
    return {
        "connected": {"event": "connected", "protocol": "Call", "version": "1.0.0"},
        "start": {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": SID,
            "start": {
                "accountSid": "AC1",
                "streamSid": SID,
                "callSid": "CA1",
                "tracks": ["inbound"],
                "customParameters": {"token": "t0k", "lang": "pt-BR"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        },
        "media": {
            "event": "media",
            "sequenceNumber": "2",
            "streamSid": SID,
            "media": {"track": "inbound", "chunk": "1", "timestamp": "52", "payload": PAYLOAD},
        },
        "dtmf": {
            "event": "dtmf",
            "sequenceNumber": "5",
            "streamSid": SID,
            "dtmf": {"track": "inbound_track", "digit": "1"},
        },
        "mark": {
            "event": "mark",
            "sequenceNumber": "103",
            "streamSid": SID,
            "mark": {"name": "resp_1:7"},
        },
        "stop": {
            "event": "stop",
            "sequenceNumber": "200",
            "streamSid": SID,
            "stop": {"accountSid": "AC1", "callSid": "CA1"},
        },
    }


EXPECTED = {
    "connected": Connected(protocol="Call", version="1.0.0"),
    "start": Start(
        sequence_number=1,
        stream_sid=SID,
        account_sid="AC1",
        call_sid="CA1",
        tracks=("inbound",),
        media_format=MediaFormat("audio/x-mulaw", 8000, 1),
        custom_parameters={"token": "t0k", "lang": "pt-BR"},
    ),
    "media": Media(2, SID, "inbound", 1, 52, AUDIO, PAYLOAD),
    "dtmf": Dtmf(5, SID, "inbound_track", "1"),
    "mark": Mark(103, SID, "resp_1:7"),
    "stop": Stop(200, SID, "AC1", "CA1"),
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_every_inbound_frame_kind_parses(kind: str) -> None:
    text = json.dumps(_frames()[kind])
    assert parse_twilio_frame(text) == EXPECTED[kind]
    assert parse_twilio_frame(text.encode()) == EXPECTED[kind]


def test_start_custom_parameters_are_read_only() -> None:
    start = parse_twilio_frame(json.dumps(_frames()["start"]))
    assert isinstance(start, Start)
    assert dict(start.custom_parameters) == {"token": "t0k", "lang": "pt-BR"}
    with pytest.raises(TypeError):
        start.custom_parameters["token"] = "forged"  # type: ignore[index]


def test_start_without_custom_parameters() -> None:
    frame = _frames()["start"]
    del frame["start"]["customParameters"]
    start = parse_twilio_frame(json.dumps(frame))
    assert isinstance(start, Start)
    assert dict(start.custom_parameters) == {}


def test_integer_counters_are_tolerated() -> None:
    frame = _frames()["media"]
    frame["sequenceNumber"] = 7
    parsed = parse_twilio_frame(json.dumps(frame))
    assert isinstance(parsed, Media)
    assert parsed.sequence_number == 7


def _mutations() -> list[tuple[str, str | bytes]]:
    frames = _frames()
    cases: list[tuple[str, str | bytes]] = [
        ("empty", ""),
        ("not json", "{event: media"),
        ("truncated", json.dumps(frames["media"])[:-3]),
        ("array", "[1, 2]"),
        ("string", '"media"'),
        ("null", "null"),
        ("number", "42"),
        ("bad utf-8", b'{"event": "\xff\xfe"}'),
        ("deep nesting", "[" * 100_000 + "]" * 100_000),
        ("no event", json.dumps({"streamSid": SID})),
        ("unknown event", json.dumps({"event": "clear", "streamSid": SID})),
        ("event not a string", json.dumps({"event": ["media"]})),
    ]

    def mutate(kind: str, label: str, edit: Any) -> None:
        frame = _frames()[kind]
        edit(frame)
        cases.append((f"{kind}: {label}", json.dumps(frame)))

    mutate("media", "payload missing", lambda f: f["media"].pop("payload"))
    mutate("media", "payload not base64", lambda f: f["media"].update(payload="@@@@"))
    mutate("media", "payload bad padding", lambda f: f["media"].update(payload="AAA"))
    mutate("media", "payload not a string", lambda f: f["media"].update(payload=123))
    mutate("media", "payload non-ascii", lambda f: f["media"].update(payload="ção="))
    mutate("media", "media not an object", lambda f: f.update(media="x"))
    mutate("media", "no streamSid", lambda f: f.pop("streamSid"))
    mutate("media", "streamSid null", lambda f: f.update(streamSid=None))
    mutate("media", "chunk not numeric", lambda f: f["media"].update(chunk="one"))
    mutate("media", "timestamp negative", lambda f: f["media"].update(timestamp="-5"))
    mutate("media", "timestamp unicode digits", lambda f: f["media"].update(timestamp="²"))
    mutate("media", "sequence is bool", lambda f: f.update(sequenceNumber=True))
    mutate("media", "sequence is negative", lambda f: f.update(sequenceNumber=-1))
    mutate("media", "sequence is huge", lambda f: f.update(sequenceNumber="9" * 5000))
    mutate("media", "no track", lambda f: f["media"].pop("track"))
    mutate("start", "no start body", lambda f: f.pop("start"))
    mutate("start", "no callSid", lambda f: f["start"].pop("callSid"))
    mutate("start", "params not a map", lambda f: f["start"].update(customParameters=[1]))
    mutate("start", "param not a str", lambda f: f["start"]["customParameters"].update(a=1))
    mutate("start", "tracks not a list", lambda f: f["start"].update(tracks="inbound"))
    mutate("start", "no mediaFormat", lambda f: f["start"].pop("mediaFormat"))
    mutate(
        "start", "rate is a string", lambda f: f["start"]["mediaFormat"].update(sampleRate="8000")
    )
    mutate("start", "sids disagree", lambda f: f.update(streamSid="MZother"))
    mutate("start", "no sequenceNumber", lambda f: f.pop("sequenceNumber"))
    mutate("dtmf", "no digit", lambda f: f["dtmf"].pop("digit"))
    mutate("mark", "no name", lambda f: f["mark"].pop("name"))
    mutate("mark", "mark null", lambda f: f.update(mark=None))
    mutate("stop", "no stop body", lambda f: f.pop("stop"))
    mutate("connected", "no version", lambda f: f.pop("version"))
    return cases


@pytest.mark.parametrize(("label", "text"), _mutations(), ids=[c[0] for c in _mutations()])
def test_malformed_frames_return_frame_error(label: str, text: str | bytes) -> None:
    result = parse_twilio_frame(text)
    assert isinstance(result, FrameError), label
    assert result.reason


def test_frame_error_names_the_event_but_not_the_payload() -> None:
    frame = _frames()["media"]
    frame["media"]["payload"] = "secret!!"
    result = parse_twilio_frame(json.dumps(frame))
    assert result == FrameError("media payload is not valid base64", "media")
    assert "secret" not in result.reason


def test_random_input_never_raises() -> None:
    rng = random.Random(1234)
    seeds = [json.dumps(frame) for frame in _frames().values()]
    for _ in range(3000):
        choice = rng.random()
        if choice < 0.4:
            text: str | bytes = rng.randbytes(rng.randint(0, 300))
        elif choice < 0.8:
            seed = bytearray(rng.choice(seeds).encode())
            for _ in range(rng.randint(1, 5)):
                seed[rng.randrange(len(seed))] = rng.randrange(256)
            text = bytes(seed)
        else:
            seed_text = rng.choice(seeds)
            cut = rng.randrange(len(seed_text))
            text = seed_text[:cut] + seed_text[cut + 1 :]
        result = parse_twilio_frame(text)
        assert isinstance(result, (FrameError, Connected, Start, Media, Dtmf, Mark, Stop))


def test_outbound_frames_match_twilio_format() -> None:
    assert json.loads(media_frame(SID, PAYLOAD)) == {
        "event": "media",
        "streamSid": SID,
        "media": {"payload": PAYLOAD},
    }
    assert json.loads(mark_frame(SID, "7")) == {
        "event": "mark",
        "streamSid": SID,
        "mark": {"name": "7"},
    }
    assert json.loads(clear_frame(SID)) == {"event": "clear", "streamSid": SID}


def test_outbound_frames_escape_strings() -> None:
    odd = 'MZ"}\\\n,"event":"x'
    assert json.loads(media_frame(odd, PAYLOAD))["streamSid"] == odd
    assert json.loads(mark_frame(odd, 'a"b'))["mark"]["name"] == 'a"b'
    assert json.loads(clear_frame(odd)) == {"event": "clear", "streamSid": odd}


def test_outbound_mark_round_trips_through_an_echo() -> None:
    sent = json.loads(mark_frame(SID, "resp:42"))
    echo = {**sent, "sequenceNumber": "9"}
    assert parse_twilio_frame(json.dumps(echo)) == Mark(9, SID, "resp:42")


def test_media_parsing_is_fast_enough() -> None:
    """Budget: 100 calls x 50 frames/s = 5000 frames/s must cost well under one core."""
    text = json.dumps(_frames()["media"])
    n = 5000
    started = time.perf_counter()
    for _ in range(n):
        parse_twilio_frame(text)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"{n} media frames took {elapsed:.3f}s"


def test_read_inbound_gives_audio_and_mark_names_and_else_the_full_parse() -> None:
    frames = _frames()
    assert read_inbound(json.dumps(frames["media"])) == AUDIO
    assert read_inbound(json.dumps(frames["mark"]).encode()) == "resp_1:7"
    for kind in ("connected", "start", "dtmf", "stop"):
        assert read_inbound(json.dumps(frames[kind])) == EXPECTED[kind]


@pytest.mark.parametrize(("label", "text"), _mutations(), ids=[c[0] for c in _mutations()])
def test_read_inbound_never_raises_on_malformed_frames(label: str, text: str | bytes) -> None:
    result = read_inbound(text)
    # Only the fields the hot path needs are checked; anything else is the full parser's error.
    assert isinstance(result, (FrameError, bytes, str)), label
    if isinstance(result, bytes):
        assert result == AUDIO and label.startswith("media:")
    if isinstance(result, str):
        assert result == "resp_1:7" and label.startswith("mark:")


def test_read_inbound_rejects_what_parse_rejects_for_payload_and_name() -> None:
    frame = _frames()["media"]
    frame["media"]["payload"] = "secret!!"
    assert read_inbound(json.dumps(frame)) == FrameError(
        "media payload is not valid base64", "media"
    )
    mark = _frames()["mark"]
    mark["mark"]["name"] = 7
    assert isinstance(read_inbound(json.dumps(mark)), FrameError)


def test_outbound_frames_of_a_stream_match_the_single_frame_builders() -> None:
    for sid in (SID, 'MZ"}\\\n,"event":"x'):
        frames = OutboundFrames(sid)
        assert json.loads(frames.media(PAYLOAD)) == json.loads(media_frame(sid, PAYLOAD))
        assert json.loads(frames.mark("42")) == json.loads(mark_frame(sid, "42"))
        assert frames.clear() == clear_frame(sid)
