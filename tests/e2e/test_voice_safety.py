"""The red-flag guard on a live call: the caller's transcript carries a red flag; the model is
told (a system item and a response with instructions) to say the number and offer the transfer;
the call is flagged, the staff alerted with the caller's number, and booking tools are refused —
through the real app, the Twilio media simulator and the fake Realtime server."""

from __future__ import annotations

import json

from sqlalchemy import select

from tests.e2e.harness import CALLER
from tests.e2e.test_voice_call import call_events, call_record, speak
from tests.e2e.test_voice_faults import connect, live_call
from tests.fakes.realtime_script import FunctionCallTurn, SpeakTurn, UserTurn
from voice_agent.store.db import transaction
from voice_agent.store.tables import Appointment, Interaction


def _system_items(realtime) -> list[str]:
    items = [e.item for e in realtime.events_of_type("conversation.item.create")]
    return [
        part.text
        for item in items
        if item.type == "message" and item.role == "system"
        for part in item.content
    ]


def _response_instructions(realtime) -> list[str]:
    return [
        e.response.instructions
        for e in realtime.events_of_type("response.create")
        if e.response is not None and e.response.instructions
    ]


async def test_a_red_flag_in_the_callers_words_reaches_the_model_and_flags_the_call(
    tmp_path, clock
) -> None:
    script = [
        SpeakTurn("Olá! Clínica São Lucas, em que posso ajudar?", audio_ms=200),
        UserTurn("Socorro, meu filho não está respirando"),
        SpeakTurn("Claro! Para qual especialidade deseja marcar?", audio_ms=2000),
        SpeakTurn(
            "Ligue agora para o SAMU, 192. Quer que eu transfira para a equipe?", audio_ms=400
        ),
    ]
    async with live_call(tmp_path, clock, script) as (realtime, app):
        sim = await connect(app)
        await sim.wait_idle(timeout=10)
        await speak(sim, "pt_br_greeting_cardiology")
        await realtime.wait_for(lambda r: _response_instructions(r), timeout=10)
        await realtime.wait_for(lambda r: len(r.session.responses) >= 3, timeout=10)
        await sim.wait_idle(timeout=10)
        live = call_record(app)
        await sim.hangup()
        await sim.wait_closed(timeout=10)
    assert live.flagged  # flagged during the call, so staff see it at once
    system = _system_items(realtime)
    assert len(system) == 1 and "192" in system[0] and "SEGURANÇA" in system[0]
    assert "transfer_to_staff" in system[0]
    instructions = _response_instructions(realtime)
    assert len(instructions) == 1 and "192" in instructions[0] and "SAMU" in instructions[0]
    assert realtime.violations == [] and sim.violations == []
    record = call_record(app)
    assert record.flagged and record.outcome == "emergency"
    safety = [json.loads(e.content) for e in call_events(app) if e.kind == "safety"]
    assert safety == [{"red_flag": "breathing", "rule": "pt-not-breathing"}]
    alerts = [m for k, m in app.services.alerter.sent if k.startswith("emergency")]
    assert len(alerts) == 1 and CALLER in alerts[0] and "ligação" in alerts[0]
    with transaction(app.services.engine) as session:
        rows = list(session.execute(select(Interaction)).scalars())
    assert [json.loads(r.details)["category"] for r in rows if r.kind == "emergency"] == [
        "breathing"
    ]


async def test_booking_tools_are_refused_after_a_red_flag(tmp_path, clock) -> None:
    script = [
        SpeakTurn("Olá!", audio_ms=200),
        UserTurn("I want to kill myself"),
        FunctionCallTurn("find_slots", {"service": "clínico geral"}),
        SpeakTurn("Please call 188 now.", audio_ms=300),
        SpeakTurn("I'm here with you.", audio_ms=300),
    ]
    async with live_call(tmp_path, clock, script) as (realtime, app):
        sim = await connect(app)
        await sim.wait_idle(timeout=10)
        await speak(sim, "pt_br_greeting_cardiology")
        await realtime.wait_for(lambda r: r.tool_outputs, timeout=10)
        await realtime.wait_for(lambda r: _response_instructions(r), timeout=10)
        await sim.wait_idle(timeout=10)
        await sim.hangup()
        await sim.wait_closed(timeout=10)
    output = json.loads(next(iter(realtime.tool_outputs.values())))
    assert output["error"].startswith("emergency") and output["emergency_number"] == "192"
    instructions = _response_instructions(realtime)
    assert "188" in instructions[0] and "CVV" in instructions[0]
    assert realtime.violations == []
    assert call_record(app).flagged
    with transaction(app.services.engine) as session:
        assert session.execute(select(Appointment)).first() is None
