"""The local fakes behave like the services they stand in for (and catch what they should).

The Realtime fake is driven through the official openai SDK; the Twilio simulator is checked
against a tiny scripted websocket server that plays the bridge's role.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import pytest
from openai import AsyncOpenAI
from twilio.request_validator import RequestValidator
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.fakes.audio import load_fixture, rms, silence, tone
from tests.fakes.realtime_server import (
    FakeRealtimeServer,
    FunctionCallTurn,
    SpeakTurn,
    UserTurn,
)
from tests.fakes.twilio_media import TwilioMediaSimulator
from voice_agent.voice.playback import PlaybackTracker
from voice_agent.voice.twilio.protocol import (
    Connected,
    FrameError,
    Media,
    Start,
    clear_frame,
    mark_frame,
    media_frame,
    parse_twilio_frame,
)

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

MODEL = "gpt-realtime"

GA_SESSION: dict[str, Any] = {
    "type": "realtime",
    "instructions": "Você é a recepcionista da Clínica Exemplo.",
    "output_modalities": ["audio"],
    "audio": {
        "input": {
            "format": {"type": "audio/pcmu"},
            "turn_detection": {
                "type": "server_vad",
                "silence_duration_ms": 500,
                "prefix_padding_ms": 300,
                "threshold": 0.5,
                "create_response": True,
                "interrupt_response": True,
            },
            "transcription": {"model": "gpt-4o-mini-transcribe"},
        },
        "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
    },
    "tools": [
        {
            "type": "function",
            "name": "find_slots",
            "description": "Find free appointment slots.",
            "parameters": {"type": "object", "properties": {"specialty": {"type": "string"}}},
        }
    ],
    "tool_choice": "auto",
}


def _b64(audio: bytes) -> str:
    return base64.b64encode(audio).decode("ascii")


async def _next_of(conn: Any, event_type: str, timeout: float = 5.0) -> Any:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while True:
            event = await conn.recv()
            if event.type == event_type:
                return event


async def _collect_until(conn: Any, event_type: str, timeout: float = 5.0) -> list[Any]:  # noqa: ASYNC109
    events = []
    async with asyncio.timeout(timeout):
        while True:
            event = await conn.recv()
            events.append(event)
            if event.type == event_type:
                return events


async def _append(conn: Any, audio: bytes, chunk: int = 160) -> None:
    for offset in range(0, len(audio), chunk):
        await conn.input_audio_buffer.append(audio=_b64(audio[offset : offset + chunk]))


@asynccontextmanager
async def _realtime(server: FakeRealtimeServer, api_key: str = "test") -> AsyncIterator[Any]:
    client = AsyncOpenAI(api_key=api_key, base_url=server.base_url)
    async with client.realtime.connect(model=MODEL) as conn:
        yield conn
    await client.close()


# ------------------------------------------------------------------ Realtime fake


async def test_sdk_connects_and_ga_session_update_with_pcmu_validates() -> None:
    async with FakeRealtimeServer() as server, _realtime(server) as conn:
        created = await _next_of(conn, "session.created")
        assert created.session.type == "realtime"
        await conn.session.update(session=GA_SESSION)
        updated = await _next_of(conn, "session.updated")
        assert updated.session.audio.input.format.type == "audio/pcmu"

    assert server.violations == []
    session = server.session
    assert session.model == MODEL
    assert session.headers["Authorization"] == "Bearer test"
    assert "OpenAI-Beta" not in session.headers
    assert session.config["instructions"] == GA_SESSION["instructions"]
    assert session.config["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert session.config["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500
    assert [tool["name"] for tool in session.config["tools"]] == ["find_slots"]
    assert [event.type for event in server.client_events] == ["session.update"]


async def test_partial_session_update_merges() -> None:
    async with FakeRealtimeServer() as server, _realtime(server) as conn:
        await conn.session.update(session=GA_SESSION)
        await _next_of(conn, "session.updated")
        await conn.session.update(session={"type": "realtime", "instructions": "Nova."})
        await _next_of(conn, "session.updated")
    config = server.session.config
    assert config["instructions"] == "Nova."
    assert config["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert server.violations == []


async def test_misspelled_field_is_a_violation_and_answered_with_error() -> None:
    bad = json.loads(json.dumps(GA_SESSION))
    turn_detection = bad["audio"]["input"]["turn_detection"]
    turn_detection["silence_duraton_ms"] = turn_detection.pop("silence_duration_ms")
    async with FakeRealtimeServer() as server, _realtime(server) as conn:
        await conn.session.update(session=bad)
        error = await _next_of(conn, "error")
    assert error.error.code == "unknown_parameter"
    assert "silence_duraton_ms" in error.error.message
    assert len(server.violations) == 1
    assert "session.audio.input.turn_detection.silence_duraton_ms" in server.violations[0]
    # Rejected whole, like the real API: the session keeps its defaults.
    assert server.session.config["audio"]["input"]["format"]["type"] == "audio/pcm"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
                "format": {"type": "g711_ulaw"}}}}},
            "format",
        ),  # beta format name
        ({"type": "input_audio_buffer.apend", "audio": ""}, "input_audio_buffer.apend"),
        ({"type": "conversation.item.truncate", "item_id": "x"}, "audio_end_ms"),
        ({"type": "response.create", "respones": {}}, "respones"),
        ({"type": "input_audio_buffer.append", "audio": "not base64!"}, "base64"),
    ],
    ids=["beta-format", "unknown-type", "missing-field", "unknown-top-level", "bad-base64"],
)  # fmt: skip
async def test_invalid_client_events_are_violations(raw: dict[str, Any], expected: str) -> None:
    async with FakeRealtimeServer() as server, _realtime(server) as conn:
        await conn.send_raw(json.dumps(raw))
        error = await _next_of(conn, "error")
    assert expected in error.error.message or expected == error.error.param
    assert len(server.violations) == 1


async def test_wrong_api_key_and_refused_connections_fail_the_upgrade() -> None:
    async with FakeRealtimeServer() as server:
        with pytest.raises(InvalidStatus) as unauthorized:
            async with _realtime(server, api_key="wrong"):
                pass
        assert unauthorized.value.response.status_code == 401
        server.refuse_connections = True
        with pytest.raises(InvalidStatus) as refused:
            async with _realtime(server):
                pass
        assert refused.value.response.status_code == 500
    assert server.rejected == ["authorization", "refused"]
    assert server.sessions == []


async def test_vad_ignores_silence_and_detects_a_spoken_fixture() -> None:
    script = [UserTurn("Quero marcar com o cardiologista."), SpeakTurn("Claro!", audio_ms=400)]
    utterance = load_fixture("pt_br_greeting_cardiology")
    async with FakeRealtimeServer(script) as server, _realtime(server) as conn:
        await conn.session.update(session=GA_SESSION)
        await _next_of(conn, "session.updated")

        await _append(conn, silence(1500))
        await server.wait_for(lambda s: len(s.audio_in) == 1500 * 8)
        assert not any(
            e["type"].startswith("input_audio_buffer.speech") for e in server.session.server_events
        )

        await _append(conn, utterance + silence(700))
        events = await _collect_until(conn, "response.done")

    types = [e.type for e in events]
    for expected in (
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
    ):
        assert expected in types
    assert types.index("input_audio_buffer.speech_started") < types.index("response.created")
    started = next(e for e in events if e.type == "input_audio_buffer.speech_started")
    # Speech begins ~300 ms into the fixture, which followed 1500 ms of silence; minus padding.
    assert 1400 <= started.audio_start_ms <= 1700
    stopped = next(e for e in events if e.type == "input_audio_buffer.speech_stopped")
    assert stopped.item_id == started.item_id
    transcript = next(
        e for e in events if e.type == "conversation.item.input_audio_transcription.completed"
    )
    assert transcript.transcript == "Quero marcar com o cardiologista."
    audio = b"".join(
        base64.b64decode(e.delta) for e in events if e.type == "response.output_audio.delta"
    )
    assert len(audio) == 400 * 8
    assert rms(audio) > 1000
    assert server.violations == []


async def test_function_call_turn_waits_for_the_tool_output() -> None:
    script = [
        FunctionCallTurn("find_slots", {"specialty": "cardiology"}, say="Um momento."),
        SpeakTurn("Tenho amanhã às 15h.", audio_ms=200),
    ]
    async with FakeRealtimeServer(script) as server, _realtime(server) as conn:
        await conn.response.create()
        events = await _collect_until(conn, "response.done")
        call = next(e for e in events if e.type == "response.function_call_arguments.done")
        assert call.name == "find_slots"
        assert json.loads(call.arguments) == {"specialty": "cardiology"}
        assert events[-1].response.status == "completed"
        assert [item.type for item in events[-1].response.output] == ["message", "function_call"]

        await conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": call.call_id, "output": '{"ok":1}'}
        )
        await conn.response.create()
        done = await _next_of(conn, "response.done")
        assert done.response.output[0].content[0].transcript == "Tenho amanhã às 15h."

    assert server.tool_outputs == {call.call_id: '{"ok":1}'}
    assert server.violations == []


async def test_missing_or_unknown_tool_output_is_a_violation() -> None:
    script = [FunctionCallTurn("find_slots", call_id="call_1"), SpeakTurn("Ok.", audio_ms=100)]
    async with FakeRealtimeServer(script) as server, _realtime(server) as conn:
        await conn.response.create()
        await _next_of(conn, "response.done")
        await conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": "call_nope", "output": "{}"}
        )
        error = await _next_of(conn, "error")
        assert "call_nope" in error.error.message
        await conn.response.create()  # call_1 still has no output
        await _next_of(conn, "response.done")
    assert len(server.violations) == 2
    assert "call_1" in server.violations[1]


async def test_truncate_beyond_sent_audio_is_rejected() -> None:
    async with FakeRealtimeServer([SpeakTurn("Olá!", audio_ms=500)]) as server:
        async with _realtime(server) as conn:
            await conn.session.update(session=GA_SESSION)
            await conn.response.create()
            done = await _next_of(conn, "response.done")
            item_id = done.response.output[0].id

            await conn.conversation.item.truncate(
                item_id=item_id, content_index=0, audio_end_ms=300
            )
            truncated = await _next_of(conn, "conversation.item.truncated")
            assert truncated.audio_end_ms == 300

            await conn.conversation.item.truncate(
                item_id=item_id, content_index=0, audio_end_ms=900
            )
            error = await _next_of(conn, "error")
        assert "already shorter" in error.error.message
        assert [t.audio_end_ms for t in server.truncations] == [300]
        assert server.truncations[0].audio_sent_ms == 500
        assert len(server.violations) == 1


async def test_response_cancel_stops_the_audio() -> None:
    script = [SpeakTurn("Uma resposta bem longa.", audio_ms=5000)]
    async with FakeRealtimeServer(script, audio_pace=0.2, chunk_ms=100) as server:
        async with _realtime(server) as conn:
            await conn.response.create()
            await _next_of(conn, "response.output_audio.delta")
            await conn.response.cancel()
            done = await _next_of(conn, "response.done")
            assert done.response.status == "cancelled"
            assert done.response.status_details.reason == "client_cancelled"
            await conn.response.cancel()  # nothing active: an error, but not a violation
            error = await _next_of(conn, "error")
            assert error.error.code == "response_cancel_not_active"
        record = server.session.responses[0]
        assert record.status == "cancelled"
        assert 0 < record.audio_bytes < 5000 * 8
        assert server.violations == []


async def test_caller_speech_interrupts_the_active_response() -> None:
    script = [SpeakTurn("Bom dia, aqui é a clínica...", audio_ms=5000), UserTurn("Espera!")]
    async with FakeRealtimeServer(script, audio_pace=0.2) as server, _realtime(server) as conn:
        await conn.session.update(session=GA_SESSION)
        await _next_of(conn, "session.updated")
        await conn.response.create()
        await _next_of(conn, "response.output_audio.delta")
        await _append(conn, tone(300))
        done = await _next_of(conn, "response.done")
    assert done.response.status == "cancelled"
    assert done.response.status_details.reason == "turn_detected"
    assert server.violations == []


async def test_second_response_create_while_active_is_a_violation() -> None:
    script = [SpeakTurn("Um.", audio_ms=3000), SpeakTurn("Dois.", audio_ms=100)]
    async with FakeRealtimeServer(script, audio_pace=0.2) as server, _realtime(server) as conn:
        await conn.response.create()
        await _next_of(conn, "response.output_audio.delta")
        await conn.response.create()
        error = await _next_of(conn, "error")
    assert error.error.code == "conversation_already_has_active_response"
    assert len(server.violations) == 1


async def test_drop_after_events_aborts_the_socket() -> None:
    async with FakeRealtimeServer() as server:
        server.drop_after(events=3)
        async with _realtime(server) as conn:
            await _next_of(conn, "session.created")
            with pytest.raises(ConnectionClosed):
                for _ in range(10):
                    await conn.input_audio_buffer.append(audio=_b64(silence(20)))
                    await asyncio.sleep(0.01)
                await conn.recv()
        assert server.session.dropped
        assert server.session.received_count == 3
        async with _realtime(server) as conn:  # the next connection is healthy
            await _next_of(conn, "session.created")
        assert len(server.sessions) == 2
        assert not server.sessions[1].dropped


async def test_drop_after_seconds_on_a_live_session() -> None:
    async with FakeRealtimeServer() as server, _realtime(server) as conn:
        await _next_of(conn, "session.created")
        server.drop_after(seconds=0.05)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(conn.recv(), 2)
    assert server.session.dropped


async def test_response_delay_is_applied() -> None:
    server = FakeRealtimeServer([SpeakTurn("Oi", audio_ms=100)], response_delay=0.2)
    async with server, _realtime(server) as conn:
        started = time.monotonic()
        await conn.response.create()
        await _next_of(conn, "response.created")
        assert time.monotonic() - started >= 0.2
    assert server.violations == []


# --------------------------------------------------------------- Twilio simulator

Handler = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def _stream_server(handler: Handler) -> AsyncIterator[str]:
    """A stand-in for the bridge's /twilio/media-stream endpoint."""
    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/twilio/media-stream"


async def _until_start(ws: ServerConnection) -> Start:
    while True:
        event = parse_twilio_frame(await ws.recv())
        if isinstance(event, Start):
            return event


@pytest.mark.parametrize("mode", ["valid", "none", "wrong"])
async def test_simulator_signs_the_upgrade_like_twilio(
    mode: Literal["valid", "none", "wrong"],
) -> None:
    seen: dict[str, str | None] = {}

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen["signature"] = ws.request.headers.get("X-Twilio-Signature")
        await ws.close()

    async with _stream_server(handler) as url:
        sim = TwilioMediaSimulator(url, signature=mode, auth_token="tok", auto_start=False)
        async with sim:
            await sim.wait_closed()
    public = "wss://clinic.example/twilio/media-stream"
    valid = RequestValidator("tok").validate(public, {}, seen["signature"] or "")
    assert valid is (mode == "valid")
    assert (seen["signature"] is None) is (mode == "none")


async def test_simulator_sends_twilio_shaped_inbound_frames() -> None:
    frames: list[Any] = []

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            frames.append(parse_twilio_frame(message))

    audio = load_fixture("en_yes")[:1000]
    async with _stream_server(handler) as url:
        sim = TwilioMediaSimulator(url, speed=0, custom_parameters={"token": "abc"})
        async with sim:
            await sim.send_audio(audio)
            await sim.send_dtmf("5")
            await sim.send_stop()
            await sim.send_raw("{not json")

    assert isinstance(frames[0], Connected)
    start = frames[1]
    assert isinstance(start, Start)
    assert dict(start.custom_parameters) == {"token": "abc"}
    assert start.call_sid == sim.call_sid and start.stream_sid == sim.stream_sid
    media = [f for f in frames if isinstance(f, Media)]
    assert [len(m.payload) for m in media] == [160] * 7
    sent = b"".join(m.payload for m in media)
    assert sent[:1000] == audio
    assert sent[1000:] == b"\xff" * 120  # the last frame is padded with silence
    assert [m.chunk for m in media] == list(range(1, 8))
    assert [m.timestamp for m in media] == [20 * i for i in range(7)]
    sequence = [f.sequence_number for f in frames[1:-1]]
    assert sequence == list(range(1, len(sequence) + 1))
    assert [type(f).__name__ for f in frames[-3:]] == ["Dtmf", "Stop", "FrameError"]
    assert isinstance(frames[-1], FrameError)


async def test_simulator_paces_caller_audio() -> None:
    stamps: list[float] = []

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            if isinstance(parse_twilio_frame(message), Media):
                stamps.append(time.monotonic())

    async with _stream_server(handler) as url, TwilioMediaSimulator(url, speed=0.25) as sim:
        await sim.send_audio(silence(1000))  # 50 frames x 20 ms x 0.25 = 250 ms
        await sim.wait_for(lambda _: len(stamps) == 50)
    assert 0.2 <= stamps[-1] - stamps[0] <= 0.6


async def test_simulator_echoes_marks_only_after_playback() -> None:
    echoes: list[tuple[str, float]] = []
    sent_at: list[float] = []

    async def handler(ws: ServerConnection) -> None:
        start = await _until_start(ws)
        sid = start.stream_sid
        sent_at.append(time.monotonic())
        await ws.send(media_frame(sid, _b64(tone(200))))  # 200 ms -> 100 ms at speed 0.5
        await ws.send(mark_frame(sid, "1"))
        await ws.send(media_frame(sid, _b64(tone(200))))
        await ws.send(mark_frame(sid, "2"))
        async for message in ws:
            event = parse_twilio_frame(message)
            if not isinstance(event, FrameError) and event.__class__.__name__ == "Mark":
                echoes.append((event.name, time.monotonic()))  # type: ignore[union-attr]

    async with _stream_server(handler) as url, TwilioMediaSimulator(url, speed=0.5) as sim:
        await sim.wait_for(lambda _: len(echoes) == 2, timeout=3)
        assert len(sim.played) == 3200
    (first, t1), (second, t2) = echoes
    assert (first, second) == ("1", "2")
    assert t1 - sent_at[0] >= 0.09
    assert t2 - sent_at[0] >= 0.19
    assert sim.marks_echoed == ["1", "2"]
    assert sim.violations == []


async def test_simulator_clear_drops_audio_and_echoes_pending_marks() -> None:
    echoes: list[str] = []
    send_clear = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        sid = (await _until_start(ws)).stream_sid
        for name in ("a", "b", "c"):
            await ws.send(media_frame(sid, _b64(tone(1000))))
            await ws.send(mark_frame(sid, name))
        await send_clear.wait()
        await ws.send(clear_frame(sid))
        async for message in ws:
            event = parse_twilio_frame(message)
            if type(event).__name__ == "Mark":
                echoes.append(event.name)  # type: ignore[union-attr]

    async with _stream_server(handler) as url, TwilioMediaSimulator(url, speed=0.5) as sim:
        await sim.wait_played(800, timeout=2)
        assert echoes == []  # nothing echoed while the first second is still playing
        send_clear.set()
        await sim.wait_for(lambda _: len(echoes) == 3, timeout=1)
        assert not sim.is_playing
        played_at_clear = len(sim.played)
        await asyncio.sleep(0.05)
        assert len(sim.played) <= played_at_clear + 160  # at most the frame in flight
    assert echoes == ["a", "b", "c"]
    (record,) = sim.clears
    assert record.marks_echoed == ("a", "b", "c")
    assert 0 < record.played_bytes < 8000
    assert record.played_bytes + record.dropped_bytes <= 24000
    assert record.dropped_bytes > 15000
    assert sim.violations == []


async def test_simulator_flags_frames_twilio_would_reject() -> None:
    async def handler(ws: ServerConnection) -> None:
        sid = (await _until_start(ws)).stream_sid
        await ws.send(json.dumps({"event": "media", "media": {"payload": _b64(tone(20))}}))
        await ws.send(json.dumps({"event": "speak", "streamSid": sid}))
        await ws.send(json.dumps({"event": "media", "streamSid": sid, "media": {}}))
        await ws.send(json.dumps({"event": "mark", "streamSid": sid}))
        await ws.send(b"\x00\x01")
        await ws.send("not json")
        await ws.send(media_frame(sid, _b64(tone(20))))
        await ws.close(1008, "bad signature")

    async with _stream_server(handler) as url, TwilioMediaSimulator(url, speed=0) as sim:
        assert await sim.wait_closed() == 1008
    assert len(sim.violations) == 6
    assert all(v.startswith("31924") for v in sim.violations)
    assert sim.media_received_bytes == 160
    assert sim.close_reason == "bad signature"


async def test_simulator_out_of_order_and_hangup() -> None:
    received: list[Any] = []

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            received.append(parse_twilio_frame(message))

    async with _stream_server(handler) as url:
        sim = TwilioMediaSimulator(url, speed=0)
        await sim.connect()
        await sim.send_media(silence(20), sequence_number="9", chunk="9", timestamp="180")
        await sim.send_media(silence(20))
        await sim.hangup()
        await asyncio.sleep(0.05)
    media = [e for e in received if isinstance(e, Media)]
    assert [m.sequence_number for m in media] == [9, 2]  # start was 1
    assert type(received[-1]).__name__ == "Stop"


async def test_manual_commit_without_vad_and_transcription_only_when_configured() -> None:
    manual = {
        "type": "realtime",
        "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": None}},
    }
    script = [UserTurn("Sim."), UserTurn("Não.")]
    async with FakeRealtimeServer(script) as server, _realtime(server) as conn:
        await conn.session.update(session=manual)
        await _next_of(conn, "session.updated")
        await _append(conn, tone(60))
        await conn.input_audio_buffer.commit()
        error = await _next_of(conn, "error")
        assert error.error.code == "input_audio_buffer_commit_empty"

        await _append(conn, tone(200))
        await conn.input_audio_buffer.commit()
        await _next_of(conn, "input_audio_buffer.committed")

        await conn.session.update(
            session={
                "type": "realtime",
                "audio": {"input": {"transcription": {"model": "whisper-1"}}},
            }
        )
        await _append(conn, tone(200))
        await conn.input_audio_buffer.commit()
        done = await _next_of(conn, "conversation.item.input_audio_transcription.completed")
        assert done.transcript == "Não."
    session = server.session
    assert session.transcripts == ["Sim.", "Não."]
    sent = [e["type"] for e in session.server_events]
    assert sent.count("conversation.item.input_audio_transcription.completed") == 1
    assert not any(t.startswith("input_audio_buffer.speech") for t in sent)
    assert server.violations == ["input_audio_buffer_commit_empty: " + error.error.message]


async def test_playback_tracker_never_claims_more_than_the_simulator_played() -> None:
    """The bridge's bookkeeping against a faithful Twilio: truncation <= audio really played."""
    tracker = PlaybackTracker()
    outcome: dict[str, Any] = {}
    barge_in = asyncio.Event()

    async def bridge(ws: ServerConnection) -> None:
        sid = (await _until_start(ws)).stream_sid

        async def read_marks() -> None:
            async for message in ws:
                event = parse_twilio_frame(message)
                if type(event).__name__ == "Mark":
                    tracker.on_mark(event.name)  # type: ignore[union-attr]

        reader = asyncio.create_task(read_marks())
        for _ in range(20):  # 20 x 100 ms of audio for one item, a mark after each chunk
            chunk = tone(100)
            await ws.send(media_frame(sid, _b64(chunk)))
            await ws.send(mark_frame(sid, tracker.on_audio_sent("item_1", len(chunk))))
        await barge_in.wait()
        outcome["truncation"] = tracker.barge_in()
        await ws.send(clear_frame(sid))
        await asyncio.sleep(0.05)
        reader.cancel()

    async with _stream_server(bridge) as url, TwilioMediaSimulator(url, speed=0.25) as sim:
        await sim.wait_played(4000, timeout=3)  # ~500 ms of the 2 s answer heard
        barge_in.set()
        await sim.wait_for(lambda s: len(s.clears) == 1)
        await asyncio.sleep(0.05)
    truncation = outcome["truncation"]
    assert truncation is not None and truncation.item_id == "item_1"
    heard_ms = sim.clears[0].played_bytes // 8
    assert 0 < truncation.audio_end_ms <= heard_ms
    assert heard_ms - truncation.audio_end_ms <= 200  # mark granularity plus one frame in flight
    assert tracker.played_ms("item_1") == truncation.audio_end_ms  # stale echoes were ignored
    assert tracker.should_drop("item_1")
    assert sim.violations == []


async def test_voice_cannot_change_once_audio_was_produced() -> None:
    async with FakeRealtimeServer([SpeakTurn("Oi", audio_ms=100)]) as server:
        async with _realtime(server) as conn:
            await conn.session.update(session=GA_SESSION)
            await conn.response.create()
            await _next_of(conn, "rate_limits.updated")  # sent after every response.done
            await conn.session.update(
                session={"type": "realtime", "audio": {"output": {"voice": "cedar"}}}
            )
            error = await _next_of(conn, "error")
        assert error.error.code == "cannot_update_voice"
        assert server.session.config["audio"]["output"]["voice"] == "marin"
        assert len(server.violations) == 1


async def test_simulator_stops_streaming_when_the_server_hangs_up() -> None:
    async def handler(ws: ServerConnection) -> None:
        await _until_start(ws)
        for _ in range(5):
            await ws.recv()
        await ws.close()

    async with _stream_server(handler) as url, TwilioMediaSimulator(url, speed=0.05) as sim:
        sent = await sim.send_audio(silence(2000))
        assert await sim.wait_closed() == 1000
    assert 5 * 160 <= sent < 2000 * 8
