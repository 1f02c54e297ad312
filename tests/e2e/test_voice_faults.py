"""The bridge under interruption and faults: barge-in, OpenAI dropping, slow tools, hang-ups,
bad frames, keypad presses and emergencies — through the real app and the local fakes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import select

from tests.e2e.harness import live_app, live_call
from tests.e2e.test_voice_call import CALL_SID, call_events, call_record, speak
from tests.fakes.audio import load_fixture
from tests.fakes.realtime_script import FailedTurn, FunctionCallTurn, SpeakTurn, UserTurn
from tests.fakes.realtime_server import FakeRealtimeServer
from tests.fakes.twilio_media import TwilioMediaSimulator
from voice_agent.store.db import transaction
from voice_agent.store.tables import Appointment, Interaction
from voice_agent.tools.context import ToolContext


async def connect(app, **options: Any) -> TwilioMediaSimulator:
    token = await app.incoming_call(CALL_SID)
    sim = TwilioMediaSimulator(
        app.media_url,
        call_sid=CALL_SID,
        custom_parameters={"token": token},
        speed=options.pop("speed", 0.05),
        **options,
    )
    await sim.connect()
    return sim


async def test_barge_in_clears_twilio_and_truncates_at_the_played_position(
    tmp_path, clock, relay_fast_path
) -> None:
    script = [
        SpeakTurn("Bom dia! " * 30, audio_ms=8000),
        UserTurn("Espera, espera."),
        SpeakTurn("Pois não?", audio_ms=300),
    ]
    fast = relay_fast_path
    async with live_call(tmp_path, clock, script, relay_fast_path=fast) as (realtime, app):
        sim = await connect(app, speed=0.2)
        await sim.wait_for(lambda s: len(s.played) > 8 * 500, timeout=10)  # 0.5 s heard
        await speak(sim, "pt_br_wait")
        await sim.wait_for(lambda s: s.clears, timeout=10)
        await realtime.wait_for(lambda r: r.truncations, timeout=10)
        played_at_clear = sim.clears[0].played_bytes
        media_after_clear = sim.media_received_bytes
        await sim.wait_idle(timeout=10)
        await sim.hangup()
    truncation = realtime.truncations[0]
    assert sim.clears[0].dropped_bytes > 0  # the caller really was cut off mid-sentence
    assert 0 < truncation.audio_end_ms <= truncation.audio_sent_ms
    assert truncation.audio_end_ms <= played_at_clear // 8 + 1  # never more than was heard
    assert realtime.violations == [] and sim.violations == []
    # Late audio of the interrupted item never reached the caller: only the next reply did.
    assert sim.media_received_bytes - media_after_clear <= 8 * 400
    assert not any("already shorter" in json.dumps(e) for e in realtime.sessions[0].errors_sent)


async def test_openai_dropping_mid_call_reconnects_once_with_the_conversation(
    tmp_path, clock, relay_fast_path
) -> None:
    script = [
        SpeakTurn("Olá, em que posso ajudar?", audio_ms=400),
        UserTurn("Quero marcar uma consulta."),
        SpeakTurn("Claro, para qual especialidade?", audio_ms=400),
    ]
    fast = relay_fast_path
    async with live_call(tmp_path, clock, script, relay_fast_path=fast) as (realtime, app):
        sim = await connect(app)
        await sim.wait_idle(timeout=10)
        await speak(sim, "pt_br_greeting_cardiology")
        await realtime.wait_for(lambda r: len(r.sessions[0].transcripts) >= 1, timeout=10)
        await sim.wait_idle(timeout=10)
        realtime.drop_after(events=1)
        await sim.send_silence(200)
        await realtime.wait_for(lambda r: len(r.sessions) == 2, timeout=10)
        heard_before = len(sim.played)
        await sim.wait_for(lambda s: len(s.played) > heard_before, timeout=10)
        await sim.hangup()
        await asyncio.sleep(0.2)
    resumed = realtime.sessions[1].config["instructions"]
    assert "A conexão caiu" in resumed and "Quero marcar uma consulta." in resumed
    assert realtime.violations == []
    events = [e.kind for e in call_events(app)]
    assert "error" in events
    assert call_record(app).outcome == "caller_hung_up"


async def test_openai_failing_twice_apologises_transfers_and_alerts(tmp_path, clock) -> None:
    script = [SpeakTurn("Olá!", audio_ms=300), UserTurn("Alô?"), SpeakTurn("Sim?", audio_ms=300)]
    async with live_call(tmp_path, clock, script) as (realtime, app):
        sim = await connect(app)
        await sim.wait_for(lambda s: s.played, timeout=10)
        await sim.wait_idle(timeout=10)
        realtime.drop_after(events=1)
        realtime.refuse_connections = True
        await sim.send_silence(200)
        code = await sim.wait_closed(timeout=15)
        after = await app.post_twilio("/twilio/after-stream", {"CallSid": CALL_SID})
    assert code == 1000
    record = call_record(app)
    assert record.outcome == "failed" and record.next_action == "fallback"
    assert record.ended_at is not None
    assert "/twilio/gather/start" in after.text and "Desculpe" in after.text
    assert [kind for kind, _ in app.services.alerter.sent] == ["call_failure"]
    items = app.services.worklist.items()  # the caller may need calling back
    assert [(i.kind, i.call_sid) for i in items] == [("failure", CALL_SID)]
    assert items[0].asked  # the reason, for the staff


async def test_a_failed_response_is_asked_again_so_the_caller_is_answered(tmp_path, clock) -> None:
    script = [
        SpeakTurn("Olá, em que posso ajudar?", audio_ms=300),
        UserTurn("Quero marcar uma consulta."),
        FailedTurn(),
        SpeakTurn("Claro, para qual especialidade?", audio_ms=400),
    ]
    async with live_call(tmp_path, clock, script) as (realtime, app):
        sim = await connect(app)
        await sim.wait_idle(timeout=10)
        heard_greeting = len(sim.played)
        await speak(sim, "pt_br_greeting_cardiology")
        await sim.wait_for(lambda s: len(s.played) > heard_greeting, timeout=10)
        await sim.wait_idle(timeout=10)
        await sim.hangup()
        await asyncio.sleep(0.2)
    assert realtime.violations == [] and sim.violations == []
    statuses = [r.status for r in realtime.session.responses]
    assert statuses[1:] == ["failed", "completed"]  # the greeting may be cut by the caller
    errors = [json.loads(e.content) for e in call_events(app) if e.kind == "error"]
    assert errors == [{"realtime_response_failed": {"type": "server_error", "code": None}}]
    assert call_record(app).outcome == "caller_hung_up"
    assert app.services.alerter.sent == []


async def test_responses_failing_twice_in_a_row_hand_the_call_over(tmp_path, clock) -> None:
    script = [
        SpeakTurn("Olá, em que posso ajudar?", audio_ms=300),
        UserTurn("Quero marcar uma consulta."),
        FailedTurn(),
        FailedTurn(code="overloaded"),
    ]
    async with live_call(tmp_path, clock, script) as (realtime, app):
        sim = await connect(app)
        await sim.wait_idle(timeout=10)
        await speak(sim, "pt_br_greeting_cardiology")
        code = await sim.wait_closed(timeout=15)
        after = await app.post_twilio("/twilio/after-stream", {"CallSid": CALL_SID})
    assert code == 1000
    assert realtime.violations == [] and sim.violations == []
    record = call_record(app)
    assert record.outcome == "failed" and record.next_action == "fallback"
    assert "/twilio/gather/start" in after.text and "Desculpe" in after.text
    assert [kind for kind, _ in app.services.alerter.sent] == ["call_failure"]
    items = app.services.worklist.items()  # the caller may need calling back
    assert [(i.kind, i.call_sid) for i in items] == [("failure", CALL_SID)]
    assert items[0].asked  # the reason, for the staff


async def test_openai_unreachable_at_start_hands_the_call_to_staff(tmp_path, clock) -> None:
    async with (
        FakeRealtimeServer([]) as realtime,
        live_app(tmp_path, clock, realtime.base_url) as app,
    ):
        realtime.refuse_connections = True
        sim = await connect(app)
        assert await sim.wait_closed(timeout=15) == 1000
        after = await app.post_twilio("/twilio/after-stream", {"CallSid": CALL_SID})
        handed = await app.post_twilio(
            "/twilio/gather/start", {"CallSid": CALL_SID, "From": "+5511987654321"}
        )
    assert "/twilio/gather/start" in after.text
    assert "<Gather" in handed.text  # the no-AI receptionist takes the call over
    record = call_record(app)
    assert record.next_action == "fallback" and record.outcome == "failed" and record.ended_at


def slow_registry(app, seconds: float) -> None:
    async def check_insurance_system(ctx: ToolContext) -> dict:
        """Looks the caller up in the insurer's slow system."""
        await asyncio.sleep(seconds)
        return {"eligible": True}

    app.voice.registry.add(check_insurance_system)


async def test_a_slow_tool_gets_a_spoken_filler(tmp_path, clock) -> None:
    script = [
        SpeakTurn("Olá!", audio_ms=200),
        UserTurn("Meu convênio cobre?"),
        FunctionCallTurn("check_insurance_system", {}),
        SpeakTurn("Um momento, por favor.", audio_ms=300),
        SpeakTurn("Sim, cobre.", audio_ms=300),
    ]
    async with live_call(tmp_path, clock, script, tool_filler_after_seconds=0.2) as (realtime, app):
        slow_registry(app, 1.0)
        sim = await connect(app)
        await sim.wait_idle(timeout=10)
        await speak(sim, "pt_br_greeting_cardiology")
        await realtime.wait_for(lambda r: r.tool_outputs, timeout=10)
        await realtime.wait_for(lambda r: len(r.events_of_type("response.create")) >= 3, 10)
        await sim.hangup()
    creates = [e for e in realtime.client_events if e.type == "response.create"]
    filler = creates[1].response
    assert filler.tool_choice == "none" and "verificando" in filler.instructions
    assert filler.conversation == "none"
    order = [e.type for e in realtime.client_events if e.type != "input_audio_buffer.append"]
    assert order.index("conversation.item.create") > order.index("response.create", 1)
    assert realtime.violations == []


async def test_caller_hanging_up_mid_tool_call_ends_cleanly(tmp_path, clock) -> None:
    script = [
        SpeakTurn("Olá!", audio_ms=200),
        UserTurn("Quero marcar."),
        FunctionCallTurn("register_patient", {"full_name": "Ana Lima"}),
        FunctionCallTurn("check_insurance_system", {}),
    ]
    async with live_call(tmp_path, clock, script) as (realtime, app):
        slow_registry(app, 0.5)
        before = {t for t in asyncio.all_tasks()}
        sim = await connect(app)
        await sim.wait_idle(timeout=10)
        await speak(sim, "pt_br_greeting_cardiology")
        await realtime.wait_for(
            lambda r: any(
                s.responses
                and s.responses[-1].step
                and getattr(s.responses[-1].step, "name", "") == "check_insurance_system"
                for s in r.sessions
            ),
            timeout=10,
        )
        await sim.hangup()
        await asyncio.sleep(1.0)
        leaked = {
            t
            for t in asyncio.all_tasks() - before
            if not t.done() and t.get_name().startswith(("tool-", "twilio-", "openai-", "watch"))
        }
    assert leaked == set()
    record = call_record(app)
    assert record.outcome == "caller_hung_up" and record.ended_at is not None
    tools = [json.loads(e.content)["name"] for e in call_events(app) if e.kind == "tool"]
    assert tools == ["register_patient", "check_insurance_system"]  # the running tool finished


async def test_malformed_and_out_of_order_frames_never_kill_the_call(
    tmp_path, clock, relay_fast_path
) -> None:
    script = [SpeakTurn("Olá!", audio_ms=200), UserTurn("Alô"), SpeakTurn("Pois não", 200)]
    fast = relay_fast_path
    async with live_call(tmp_path, clock, script, relay_fast_path=fast) as (realtime, app):
        sim = await connect(app)
        await sim.wait_idle(timeout=10)
        for junk in (
            "not json",
            "{}",
            '{"event":"media"}',
            '{"event":"unknown"}',
            '{"event":"media","media":{"payload":"%%%"}}',
            "[1,2]",
            "\x00" * 50,
        ):
            await sim.send_raw(junk)
        await sim.send_media(load_fixture("pt_br_yes")[:160], sequence_number=999)
        await sim.send_media(load_fixture("pt_br_yes")[160:320], sequence_number=3)
        await speak(sim, "pt_br_greeting_cardiology")
        await realtime.wait_for(lambda r: len(r.sessions[0].responses) >= 2, timeout=10)
        await sim.hangup()
    assert realtime.violations == []
    errors = [e for e in call_events(app) if e.kind == "error"]
    assert len(errors) >= 5
    assert call_record(app).outcome == "caller_hung_up"


async def test_dtmf_zero_transfers_to_staff_with_a_summary(tmp_path, clock) -> None:
    script = [SpeakTurn("Olá!", audio_ms=200), SpeakTurn("Transferindo.", audio_ms=300)]
    async with live_call(tmp_path, clock, script) as (realtime, app):
        sim = await connect(app)
        await sim.wait_idle(timeout=10)
        await sim.send_dtmf("0")
        assert await sim.wait_closed(timeout=10) == 1000
        after = await app.post_twilio("/twilio/after-stream", {"CallSid": CALL_SID})
        whisper = await app.post_twilio(
            "/twilio/whisper", {"CallSid": "CA" + "9" * 32, "ParentCallSid": CALL_SID}
        )
    assert call_record(app).outcome == "transferred"
    assert "<Dial" in after.text and "/twilio/whisper" in after.text
    assert "pressed 0" in whisper.text
    assert realtime.violations == []
    # No tool was called, yet the staff hear of it as from the transfer tool: told, and a
    # hand-over in the to-do pointing at this call (in case nobody picks up).
    assert "transfer" in [kind for kind, _ in app.services.alerter.sent]
    items = app.services.worklist.items()
    assert [(i.kind, i.call_sid, i.asked) for i in items] == [
        ("handover", CALL_SID, "caller pressed 0 for staff")
    ]


async def test_an_emergency_is_flagged_and_the_call_ends_after_the_advice(tmp_path, clock) -> None:
    script = [
        SpeakTurn("Olá!", audio_ms=200),
        UserTurn("Estou com muita dor no peito."),
        FunctionCallTurn("report_emergency", {"summary": "dor no peito"}),
        SpeakTurn("Desligue e ligue agora para o 192.", audio_ms=500),
    ]
    async with live_call(tmp_path, clock, script) as (realtime, app):
        sim = await connect(app)
        await sim.wait_idle(timeout=10)
        await speak(sim, "pt_br_greeting_cardiology")
        assert await sim.wait_closed(timeout=15) == 1000
    record = call_record(app)
    assert record.flagged and record.outcome == "emergency"
    output = json.loads(next(iter(realtime.tool_outputs.values())))
    assert output["emergency_number"] == "192"
    assert "emergency" in [kind for kind, _ in app.services.alerter.sent]
    with transaction(app.services.engine) as session:
        kinds = [i.kind for i in session.execute(select(Interaction)).scalars()]
        assert "emergency" in kinds
        assert session.execute(select(Appointment)).first() is None
