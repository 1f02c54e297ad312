"""Opening a media stream: the ``start`` frame is awaited a few frames and seconds at most
(voice/twilio/stream.py), so a stream that never sends it costs nothing for long."""

from __future__ import annotations

import asyncio
import json

import pytest

from voice_agent.voice.twilio import stream
from voice_agent.voice.twilio.stream import FRAMES_BEFORE_START, read_start

CONNECTED = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
START = json.dumps(
    {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": "MZ1",
        "start": {
            "accountSid": "AC1",
            "streamSid": "MZ1",
            "callSid": "CA1",
            "tracks": ["inbound"],
            "customParameters": {"token": "t0k"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    }
)


class Frames:
    """A websocket that hands out the given frames, then waits forever (or raises)."""

    def __init__(self, *frames: str, then: BaseException | None = None) -> None:
        self.frames = list(frames)
        self.then = then
        self.read = 0

    async def receive_text(self) -> str:
        if self.frames:
            self.read += 1
            return self.frames.pop(0)
        if self.then is not None:
            raise self.then
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_connected_then_start_gives_the_start_frame() -> None:
    start = await read_start(Frames(CONNECTED, START))
    assert start is not None
    assert (start.call_sid, start.stream_sid) == ("CA1", "MZ1")
    assert start.custom_parameters == {"token": "t0k"}


async def test_a_stray_frame_or_two_before_start_is_tolerated() -> None:
    assert await read_start(Frames(CONNECTED, "garbage", "{}", START)) is not None


async def test_no_start_within_the_frame_cap_is_refused_without_reading_more() -> None:
    socket = Frames(*([CONNECTED] * 10), START)
    assert await read_start(socket) is None
    assert socket.read == FRAMES_BEFORE_START


async def test_a_socket_that_closes_before_start_is_refused() -> None:
    assert await read_start(Frames(CONNECTED, then=ConnectionResetError())) is None


async def test_a_silent_socket_is_refused_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stream, "START_TIMEOUT", 0.05)
    assert await read_start(Frames(CONNECTED)) is None
