"""Call limits and call control end to end: the idle prompt then a polite hang-up, the maximum
call length, hang-up and transfer through the Twilio REST API (the official SDK against the
local Twilio fake), and a caller who speaks another language than the call was opened in."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest

from tests.e2e.harness import ACCOUNT_SID, AUTH_TOKEN, CALLER, LiveApp, live_call
from tests.e2e.test_voice_call import CALL_SID, call_events, call_record, speak
from tests.fakes.realtime_script import FunctionCallTurn, SpeakTurn, UserTurn
from tests.fakes.realtime_server import FakeRealtimeServer
from tests.fakes.twilio_media import TwilioMediaSimulator
from tests.fakes.twilio_rest_fake import TwilioRestFake
from voice_agent.voice.lines import voice_lines


async def connect(
    app: LiveApp, speed: float = 0.05, *, greeted: bool = True
) -> TwilioMediaSimulator:
    """The call's media stream; with ``greeted``, once the greeting has been heard."""
    token = await app.incoming_call(CALL_SID)
    sim = TwilioMediaSimulator(
        app.media_url, call_sid=CALL_SID, custom_parameters={"token": token}, speed=speed
    )
    await sim.connect()
    if greeted:
        await sim.wait_for(lambda s: len(s.played) > 0, timeout=10)
        await sim.wait_idle(timeout=10)
    return sim


def keep_line_open(sim: TwilioMediaSimulator, ms: int = 20_000) -> asyncio.Task[int]:
    """Twilio streams the caller's line all along, silence included."""
    return asyncio.create_task(sim.send_silence(ms))


def line_instructions(realtime: FakeRealtimeServer) -> list[str]:
    """Instructions of the out-of-band responses the bridge asked for (its fixed lines)."""
    return [
        e.response.instructions
        for e in realtime.events_of_type("response.create")
        if e.response is not None and e.response.instructions
    ]


def lines(app: LiveApp, language: str = "pt-BR") -> Any:
    return voice_lines(app.services.settings.prompts_dir, language)


async def test_a_silent_caller_is_prompted_then_politely_hung_up_on(tmp_path, clock) -> None:
    script = [
        SpeakTurn("Clínica São Lucas, bom dia!", audio_ms=200),
        SpeakTurn("Alô? Ainda está na linha?", audio_ms=300),
        SpeakTurn("Vou encerrar a ligação. Até logo!", audio_ms=300),
    ]
    async with live_call(tmp_path, clock, script) as (realtime, app):
        # Below the setting's minimum (5 s), so that the test takes seconds, not half a minute.
        app.services.settings.idle_timeout_seconds = 1
        sim = await connect(app, speed=1.0, greeted=False)
        silence = keep_line_open(sim)
        started = time.monotonic()
        code = await sim.wait_closed(timeout=15)
        elapsed = time.monotonic() - started
        silence.cancel()
        await sim.close()
    assert code == 1000
    assert realtime.violations == [] and sim.violations == []
    expected = lines(app)
    assert line_instructions(realtime) == [
        expected.get("idle_prompt"),
        expected.get("idle_goodbye"),
    ]
    # Greeting, prompt and goodbye were all heard before the hang-up (8 bytes per ms).
    assert len(sim.played) >= 8 * (200 + 300 + 300)
    assert 2.0 <= elapsed < 8.0  # two idle periods of 1 s, plus the audio and the watchdog
    record = call_record(app)
    assert record.outcome == "timed_out" and record.ended_at is not None
    assert record.next_action == "hangup"
    assert len(realtime.audio_in) > 0  # the line was streaming all along: silence is not speech


async def test_a_call_at_its_maximum_length_says_goodbye_and_ends(tmp_path, clock) -> None:
    script = [
        SpeakTurn("Clínica São Lucas, bom dia!", audio_ms=200),
        SpeakTurn("Nosso tempo acabou; a equipe retorna se precisar. Até logo!", audio_ms=400),
    ]
    async with live_call(tmp_path, clock, script) as (realtime, app):
        app.services.settings.max_call_seconds = 2  # below the minimum of 30 s, for speed
        sim = await connect(app, speed=1.0, greeted=False)
        silence = keep_line_open(sim)
        started = time.monotonic()
        code = await sim.wait_closed(timeout=15)
        elapsed = time.monotonic() - started
        silence.cancel()
        await sim.close()
    assert code == 1000
    assert realtime.violations == [] and sim.violations == []
    assert line_instructions(realtime) == [lines(app).get("max_length_goodbye")]
    assert len(sim.played) >= 8 * (200 + 400)  # the goodbye was heard before the hang-up
    assert 2.0 <= elapsed < 6.0
    record = call_record(app)
    assert record.outcome == "timed_out" and record.next_action == "hangup"


def inbound_call(twilio: TwilioRestFake, call_sid: str) -> None:
    """The call in progress at Twilio, as if the caller had dialled the clinic."""
    now = format_datetime(datetime.now(UTC), usegmt=True)
    with twilio.lock:
        twilio.state.calls.append(
            {
                "sid": call_sid,
                "account_sid": twilio.account_sid,
                "to": "+551134567800",
                "from": CALLER,
                "status": "in-progress",
                "direction": "inbound",
                "date_created": now,
                "date_updated": now,
                "form": {},
                "updates": [],
            }
        )


def updates(twilio: TwilioRestFake, call_sid: str) -> list[dict[str, str]]:
    call = next(c for c in twilio.calls() if c["sid"] == call_sid)
    return list(call["updates"])


async def test_end_call_completes_the_call_through_the_twilio_rest_api(tmp_path, clock) -> None:
    script = [
        SpeakTurn("Clínica São Lucas, bom dia!", audio_ms=200),
        UserTurn("Era só isso, obrigada."),
        FunctionCallTurn("end_call", {"reason": "caller is done"}, say="Até logo!"),
    ]
    with TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        inbound_call(twilio, CALL_SID)
        async with live_call(tmp_path, clock, script, twilio_api_base=twilio.base_url) as (
            realtime,
            app,
        ):
            sim = await connect(app)
            await speak(sim, "pt_br_goodbye")
            assert await sim.wait_closed(timeout=15) == 1000
            played = len(sim.played)
        assert updates(twilio, CALL_SID) == [{"Status": "completed"}]
        assert next(c for c in twilio.calls() if c["sid"] == CALL_SID)["status"] == "completed"
        assert twilio.state.rejected == []
    assert realtime.violations == [] and sim.violations == []
    assert played >= 8 * (200 + 600)  # the goodbye was heard before Twilio hung up
    record = call_record(app)
    assert record.outcome == "completed" and record.next_action == "hangup"


async def test_transfer_redirects_the_call_to_a_dial_through_the_twilio_rest_api(
    tmp_path, clock
) -> None:
    summary = "Paciente quer falar com a recepção sobre um reembolso"
    script = [
        SpeakTurn("Clínica São Lucas, bom dia!", audio_ms=200),
        UserTurn("Quero falar com uma pessoa."),
        FunctionCallTurn("transfer_to_staff", {"summary": summary}, say="Vou transferir."),
    ]
    with TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        inbound_call(twilio, CALL_SID)
        async with live_call(tmp_path, clock, script, twilio_api_base=twilio.base_url) as (
            realtime,
            app,
        ):
            sim = await connect(app)
            await speak(sim, "pt_br_wait")
            assert await sim.wait_closed(timeout=15) == 1000
            whisper = await app.post_twilio(
                "/twilio/whisper", {"CallSid": "CA" + "9" * 32, "ParentCallSid": CALL_SID}
            )
        [update] = updates(twilio, CALL_SID)
        assert twilio.state.rejected == []
    assert set(update) == {"Twiml"}
    twiml = update["Twiml"]
    assert "<Dial" in twiml and 'callerId="+551134567800"' in twiml
    assert "+551134567801" in twiml  # the clinic's staff line
    assert 'url="https://clinic.example/twilio/whisper"' in twiml
    assert summary in whisper.text  # staff hear who is calling and why before the caller joins
    assert realtime.violations == [] and sim.violations == []
    record = call_record(app)
    assert record.outcome == "transferred" and record.next_action == "transfer"
    assert record.transfer_summary == summary


@pytest.mark.parametrize(
    "transcript_delay",
    [0.0, 0.4],
    ids=["transcript-first", "transcript-after-the-function-call"],
)
async def test_a_caller_speaking_english_switches_the_call_to_english(
    tmp_path, clock, transcript_delay: float
) -> None:
    script = [
        SpeakTurn("Clínica São Lucas, bom dia! Em que posso ajudar?", audio_ms=300),
        UserTurn("Hello, I would like to see a cardiologist, please.", transcript_delay),
        FunctionCallTurn("find_slots", {"service": "cardiologia"}),
        SpeakTurn("I have Tuesday at nine with Dr. Carlos.", audio_ms=300),
    ]
    async with live_call(tmp_path, clock, script) as (realtime, app):
        sim = await connect(app)
        assert call_record(app).language == "pt-BR"
        await speak(sim, "en_greeting_cardiology")
        await realtime.wait_for(lambda r: r.tool_outputs, timeout=15)
        await sim.wait_idle(timeout=10)
        await sim.hangup()
        await asyncio.sleep(0.2)
    assert realtime.violations == [] and sim.violations == []
    output = json.loads(next(iter(realtime.tool_outputs.values())))
    cardiology = next(s for s in app.services.clinic().services if s.id.startswith("cardio"))
    assert output["service"] == cardiology.name("en") != cardiology.name("pt-BR")
    assert call_record(app).language == "en"
    events = call_events(app)
    assert [e.content for e in events if e.kind == "language"] == ["en"]
    sent = [e["type"] for e in realtime.session.server_events]
    called = sent.index("response.function_call_arguments.done")
    transcribed = sent.index("conversation.item.input_audio_transcription.completed")
    assert (called < transcribed) == (transcript_delay > 0)


async def test_a_transcript_that_is_late_holds_a_tool_call_for_one_second_at_most(
    tmp_path, clock
) -> None:
    script = [
        SpeakTurn("Clínica São Lucas, bom dia! Em que posso ajudar?", audio_ms=300),
        UserTurn("Hello, I would like to see a cardiologist, please.", transcript_delay=4.0),
        FunctionCallTurn("find_slots", {"service": "cardiologia"}),
        SpeakTurn("Tenho terça às nove com o Dr. Carlos.", audio_ms=300),
    ]
    async with live_call(tmp_path, clock, script) as (realtime, app):
        sim = await connect(app)
        await speak(sim, "en_greeting_cardiology")
        await realtime.wait_for(lambda r: r.tool_outputs, timeout=15)
        sent = [e["type"] for e in realtime.session.server_events]
        # The tool ran without the transcript, in the call's language so far.
        assert "conversation.item.input_audio_transcription.completed" not in sent
        await sim.hangup()
        await asyncio.sleep(0.2)
    assert realtime.violations == [] and sim.violations == []
    output = json.loads(next(iter(realtime.tool_outputs.values())))
    cardiology = next(s for s in app.services.clinic().services if s.id.startswith("cardio"))
    assert output["service"] == cardiology.name("pt-BR")
