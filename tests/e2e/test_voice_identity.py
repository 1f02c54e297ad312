"""Identity on Realtime calls end to end: a caller id the carrier gives is enough to hear one's
appointments; with a withheld number the tools refuse until the birth date on file is given."""

from __future__ import annotations

import json
from datetime import date

from tests.e2e.harness import CALLER, live_call
from tests.fakes.audio import load_fixture
from tests.fakes.realtime_script import FunctionCallTurn, SpeakTurn, UserTurn
from tests.fakes.twilio_media import TwilioMediaSimulator
from voice_agent.scheduling.booking import BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services

CALL_SID = "CA" + "8" * 32


async def _seed(services: Services) -> None:
    patient = await services.patients.find_or_create(CALLER, "pt-BR")
    await services.patients.update(
        patient.id, full_name="Rita Alves", birth_date=date(1970, 1, 31), today=date(2026, 11, 23)
    )
    offers = await services.booking.find_offers(
        "clinico-consulta", Preferences(dates=[date(2026, 11, 26)]), holder="seed"
    )
    request = BookingRequest(patient_id=patient.id, channel="whatsapp", holder="seed")
    await services.booking.book(request, offers[0].hold_id)


async def _call(tmp_path, clock, script, caller: str) -> list[dict]:
    async with live_call(tmp_path, clock, script) as (realtime, app):
        await _seed(app.services)
        token = await app.incoming_call(CALL_SID, caller=caller)
        sim = TwilioMediaSimulator(
            app.media_url, call_sid=CALL_SID, custom_parameters={"token": token}, speed=0.05
        )
        await sim.connect()
        await sim.wait_for(lambda s: len(s.played) > 0, timeout=10)
        await sim.wait_idle(timeout=10)
        await sim.send_audio(load_fixture("pt_br_greeting_cardiology"))
        await sim.send_silence(800)
        calls = sum(isinstance(step, FunctionCallTurn) for step in script)
        await realtime.wait_for(lambda r: len(r.tool_outputs) >= calls, timeout=20)
        await sim.wait_closed(timeout=20)
        assert realtime.violations == [], realtime.violations
        return [json.loads(o) for o in realtime.tool_outputs.values()]


async def test_a_caller_id_known_to_the_carrier_is_not_asked(tmp_path, clock) -> None:
    script = [
        SpeakTurn("Clínica São Lucas, bom dia!", audio_ms=400),
        UserTurn("Quais são as minhas consultas?"),
        FunctionCallTurn("list_my_appointments", {}),
        FunctionCallTurn("end_call", {"reason": "done"}, say="Até logo!"),
    ]
    outputs = await _call(tmp_path, clock, script, CALLER)
    assert outputs[0]["appointments"][0]["date"] == "2026-11-26"


async def test_a_withheld_number_needs_the_birth_date_on_file(tmp_path, clock) -> None:
    script = [
        SpeakTurn("Clínica São Lucas, bom dia!", audio_ms=400),
        UserTurn("Quero cancelar a minha consulta, meu número é 11 98765 4321."),
        FunctionCallTurn("send_verification_code", {"phone": "11 98765-4321"}),
        FunctionCallTurn("list_my_appointments", {}),
        FunctionCallTurn("verify_identity", {"birth_date": "1970-01-30"}),
        FunctionCallTurn("verify_identity", {"birth_date": "1970-01-31"}),
        FunctionCallTurn("list_my_appointments", {}),
        FunctionCallTurn("end_call", {"reason": "done"}, say="Até logo!"),
    ]
    outputs = await _call(tmp_path, clock, script, "anonymous")
    no_codes, refused, wrong, right, listed = outputs[:5]
    assert "codes cannot be sent" in no_codes["error"]  # no WhatsApp/SMS sender configured
    assert "Verify first" in refused["error"] and "appointments" not in refused
    assert wrong == {
        "verified": False,
        "reason": "wrong",
        "attempts_left": 4,
        "next": wrong["next"],
    }
    assert right == {"verified": True, "by": "birth_date"}
    assert listed["appointments"][0]["date"] == "2026-11-26"
