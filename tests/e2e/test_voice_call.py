"""Phone calls end to end: signed webhook → TwiML with a token → media stream through the real
app (uvicorn) → the fake Realtime server (every client event validated) → tools → database."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from websockets.exceptions import InvalidStatus

from tests.e2e.harness import CALLER, live_app, live_call
from tests.fakes.audio import load_fixture
from tests.fakes.realtime_script import FunctionCallTurn, SpeakTurn, UserTurn
from tests.fakes.realtime_server import FakeRealtimeServer
from tests.fakes.twilio_media import TwilioMediaSimulator
from voice_agent.store.db import transaction
from voice_agent.store.tables import Appointment, CallEvent, CallRecord, Interaction, Patient

CALL_SID = "CA" + "1" * 32


def call_record(app, call_sid: str = CALL_SID) -> CallRecord:
    with transaction(app.services.engine) as session:
        return session.get(CallRecord, call_sid)


def call_events(app, call_sid: str = CALL_SID) -> list[CallEvent]:
    with transaction(app.services.engine) as session:
        rows = session.execute(
            select(CallEvent).where(CallEvent.call_sid == call_sid).order_by(CallEvent.seq)
        )
        return list(rows.scalars())


async def speak(sim: TwilioMediaSimulator, fixture: str) -> None:
    await sim.send_audio(load_fixture(fixture))
    await sim.send_silence(800)


async def test_a_caller_books_an_appointment_by_voice(tmp_path, clock, relay_fast_path) -> None:
    script = [
        SpeakTurn("Clínica São Lucas, bom dia! Em que posso ajudar?", audio_ms=600),
        UserTurn("Quero marcar uma consulta com cardiologista."),
        FunctionCallTurn("register_patient", {"full_name": "Maria da Silva"}),
        FunctionCallTurn("find_slots", {"service": "cardiologia"}),
        SpeakTurn("Tenho terça às nove com o Dr. Carlos. Pode ser?", audio_ms=600),
        UserTurn("Sim, pode ser."),
        FunctionCallTurn("book_appointment", {"option": "1", "confirmed_by_patient": True}),
        SpeakTurn("Pronto, está agendado.", audio_ms=400),
        UserTurn("Obrigada, tchau."),
        FunctionCallTurn("end_call", {"reason": "booked"}, say="Até logo!"),
    ]
    async with live_call(tmp_path, clock, script, relay_fast_path=relay_fast_path) as (
        realtime,
        app,
    ):
        token = await app.incoming_call(CALL_SID)
        sim = TwilioMediaSimulator(
            app.media_url, call_sid=CALL_SID, custom_parameters={"token": token}, speed=0.05
        )
        await sim.connect()
        await sim.wait_for(lambda s: len(s.played) > 0, timeout=10)
        await sim.wait_idle(timeout=10)
        await speak(sim, "pt_br_greeting_cardiology")
        await realtime.wait_for(lambda r: len(r.tool_outputs) >= 2, timeout=15)
        await sim.wait_idle(timeout=10)
        await speak(sim, "pt_br_yes")
        await realtime.wait_for(lambda r: len(r.tool_outputs) >= 3, timeout=15)
        await sim.wait_idle(timeout=10)
        await speak(sim, "pt_br_goodbye")
        code = await sim.wait_closed(timeout=20)

    assert code == 1000
    assert realtime.violations == [], realtime.violations
    assert sim.violations == [], sim.violations
    session = realtime.sessions[0]
    config = session.config
    assert config["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert config["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert "Clínica São Lucas" in config["instructions"]
    assert {t["name"] for t in config["tools"]} >= {"find_slots", "book_appointment", "end_call"}
    outputs = [json.loads(o) for o in realtime.tool_outputs.values()]
    assert outputs[1]["options"] and "booked" in outputs[2], outputs
    with transaction(app.services.engine) as db:
        by_phone = Patient.phone_hash == app.services.patients.phone_hash(CALLER)
        patient = db.execute(select(Patient).where(by_phone)).scalar_one()
        appointment = db.execute(select(Appointment)).scalar_one()
        kinds = [i.kind for i in db.execute(select(Interaction)).scalars()]
    assert patient.full_name == "Maria da Silva"
    assert appointment.patient_id == patient.id and appointment.channel == "voice"
    assert "booking" in kinds
    record = call_record(app)
    assert record.outcome == "booked" and record.ended_at is not None
    assert record.next_action == "hangup"
    kinds = [e.kind for e in call_events(app)]
    assert kinds.count("tool") == 4 and "receptionist" in kinds and "caller" in kinds


async def test_unsigned_forged_and_replayed_streams_are_refused(
    tmp_path, clock, relay_fast_path
) -> None:
    async with (
        FakeRealtimeServer([SpeakTurn("Olá", audio_ms=200)]) as realtime,
        live_app(tmp_path, clock, realtime.base_url, relay_fast_path=relay_fast_path) as app,
    ):
        token = await app.incoming_call(CALL_SID)
        unsigned = TwilioMediaSimulator(
            app.media_url,
            call_sid=CALL_SID,
            custom_parameters={"token": token},
            signature="none",
            auto_start=False,
        )
        with pytest.raises(InvalidStatus) as refused:  # refused before the upgrade
            await unsigned.connect()
        assert refused.value.response.status_code == 403
        wrong = TwilioMediaSimulator(
            app.media_url,
            call_sid=CALL_SID,
            custom_parameters={"token": token},
            signature="wrong",
            auto_start=False,
        )
        with pytest.raises(InvalidStatus) as refused:  # refused before the upgrade
            await wrong.connect()
        assert refused.value.response.status_code == 403
        forged = TwilioMediaSimulator(
            app.media_url, call_sid=CALL_SID, custom_parameters={"token": token[:-4] + "AAAA"}
        )
        await forged.connect()
        assert await forged.wait_closed() == 1008
        other_call = TwilioMediaSimulator(
            app.media_url, call_sid="CA" + "2" * 32, custom_parameters={"token": token}
        )
        await other_call.connect()
        assert await other_call.wait_closed() == 1008
        assert realtime.sessions == []  # not a byte reached OpenAI
        good = TwilioMediaSimulator(
            app.media_url, call_sid=CALL_SID, custom_parameters={"token": token}
        )
        await good.connect()
        await good.wait_for(lambda s: len(s.played) > 0, timeout=10)
        replay = TwilioMediaSimulator(
            app.media_url, call_sid=CALL_SID, custom_parameters={"token": token}
        )
        await replay.connect()
        assert await replay.wait_closed() == 1008
        await good.hangup()
        await good.wait_closed()
        assert len(realtime.sessions) == 1


async def test_unsigned_voice_webhook_is_refused(tmp_path, clock) -> None:
    async with live_app(tmp_path, clock, None) as app:
        import httpx

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.port}") as client:
            response = await client.post("/twilio/voice", data={"CallSid": CALL_SID})
            assert response.status_code == 403
            forged = await client.post(
                "/twilio/voice",
                data={"CallSid": CALL_SID},
                headers={"X-Twilio-Signature": "bm9wZQ=="},
            )
            assert forged.status_code == 403


async def test_without_openai_the_call_goes_to_the_no_ai_receptionist(tmp_path, clock) -> None:
    async with live_app(tmp_path, clock, None) as app:
        response = await app.post_twilio(
            "/twilio/voice", {"CallSid": CALL_SID, "From": CALLER, "To": "+551134567800"}
        )
    assert response.status_code == 200
    assert "<Redirect" in response.text and "/twilio/gather/start" in response.text
