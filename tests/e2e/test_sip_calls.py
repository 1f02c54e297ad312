"""Calls on the openai_sip transport, end to end: the fake OpenAI project signs a
``realtime.call.incoming`` webhook, the real app (uvicorn) verifies it with the SDK, accepts the
call through ``client.realtime.calls`` (bodies checked against the SDK's param types) and runs
the receptionist on the sideband (every client event validated with ``RealtimeClientEvent``),
with the same tools, record, limits and safety as the Media Streams bridge."""

from __future__ import annotations

import asyncio
import html
import json
import re
from urllib.parse import parse_qs

from sqlalchemy import select

from tests.e2e.harness import ACCOUNT_SID
from tests.e2e.sip_harness import CALLER, SIP_URI, live_sip, trunk_headers
from tests.fakes.openai_sip import CallerHangsUp, CallerPresses
from tests.fakes.realtime_script import FunctionCallTurn, SpeakTurn, UserTurn
from voice_agent.store.db import transaction
from voice_agent.store.tables import Appointment

STAFF_URI = "tel:+551134567801"  # the sample clinic's staff_phone


def _booking_script() -> list:
    return [
        SpeakTurn("Clínica São Lucas, bom dia! Em que posso ajudar?"),
        UserTurn("Quero marcar uma consulta com cardiologista."),
        FunctionCallTurn("register_patient", {"full_name": "Maria da Silva"}),
        FunctionCallTurn("find_slots", {"service": "cardiologia"}),
        SpeakTurn("Tenho terça às nove com o Dr. Carlos. Pode ser?"),
        UserTurn("Sim, pode ser."),
        FunctionCallTurn("book_appointment", {"option": "1", "confirmed_by_patient": True}),
        SpeakTurn("Pronto, está agendado."),
        UserTurn("Obrigada, tchau."),
        FunctionCallTurn("end_call", {"reason": "booked"}, say="Até logo!"),
    ]


def _system_items(realtime) -> list[str]:
    items = [e.item for e in realtime.events_of_type("conversation.item.create")]
    return [
        part.text
        for item in items
        if item.type == "message" and item.role == "system"
        for part in item.content
    ]


async def test_a_caller_books_over_sip_and_the_call_hangs_up_after_the_goodbye(
    db_kind, make_engine_for, clock
) -> None:
    engine = make_engine_for(db_kind)
    async with live_sip(engine, clock, _booking_script(), sip_trust_trunk_caller_id=True) as app:
        call_id, response = await app.fake.ring(app.webhook_url, trunk_headers())
        assert response.status_code == 200, response.text
        await app.call_ended(call_id)
        call = app.fake.call(call_id)
        record = app.record(call_id)
        events = app.events(call_id)
    assert app.fake.violations == []
    assert call.state == "ended" and call.hung_up_by == "app" and call.hangups == 1
    accept = call.accept_config
    assert accept is not None and accept["type"] == "realtime"
    assert "Clínica São Lucas" in accept["instructions"]
    assert {t["name"] for t in accept["tools"]} >= {"find_slots", "book_appointment", "end_call"}
    assert "format" not in accept["audio"]["input"]  # the codec is negotiated in SDP
    # The hang-up came after OpenAI had played the goodbye out, not when it was generated.
    hangup_at = call.ended_at
    assert call.audio_stopped_at and hangup_at is not None
    assert hangup_at >= call.audio_stopped_at[-1]
    assert record is not None and record.outcome == "booked" and record.next_action == "hangup"
    assert record.caller == CALLER and record.patient_id is not None
    kinds = [e.kind for e in events]
    assert kinds.count("caller") == 3 and kinds.count("receptionist") >= 4
    tools = [json.loads(e.content) for e in events if e.kind == "tool"]
    assert [t["name"] for t in tools] == [
        "register_patient",
        "find_slots",
        "book_appointment",
        "end_call",
    ]
    assert all(t["ok"] for t in tools)
    with transaction(app.services.engine) as session:
        booked = list(session.execute(select(Appointment)).scalars())
    assert len(booked) == 1 and booked[0].patient_id == record.patient_id


async def test_a_transfer_is_a_sip_refer_to_the_staff_number(make_engine_for, clock) -> None:
    script = [
        SpeakTurn("Clínica São Lucas, bom dia!"),
        UserTurn("Quero falar com uma pessoa."),
        FunctionCallTurn(
            "transfer_to_staff", {"summary": "paciente quer falar com a equipe"}, say="Um momento."
        ),
        SpeakTurn("Vou transferir."),
    ]
    async with live_sip(make_engine_for("sqlite"), clock, script) as app:
        call_id, _ = await app.fake.ring(app.webhook_url, trunk_headers())
        await app.call_ended(call_id)
        call = app.fake.call(call_id)
        record = app.record(call_id)
    assert app.fake.violations == []
    assert call.refer_targets == [STAFF_URI] and call.hung_up_by == "refer"
    assert record is not None and record.outcome == "transferred"
    assert record.next_action == "transfer"
    assert record.transfer_summary == "paciente quer falar com a equipe"


async def test_the_caller_hanging_up_ends_the_session(make_engine_for, clock) -> None:
    script = [
        SpeakTurn("Clínica São Lucas, bom dia!"),
        UserTurn("Qual o endereço?"),
        FunctionCallTurn("clinic_info", {"topic": "contact"}),
        SpeakTurn("Rua Vergueiro, 1421."),
        CallerHangsUp(),
    ]
    async with live_sip(make_engine_for("sqlite"), clock, script) as app:
        call_id, _ = await app.fake.ring(app.webhook_url, trunk_headers())
        await app.call_ended(call_id)
        call = app.fake.call(call_id)
        record = app.record(call_id)
        events = app.events(call_id)
    assert app.fake.violations == []
    assert call.hung_up_by == "caller" and call.hangups == 0
    assert record is not None and record.outcome == "caller_hung_up"
    assert record.ended_at is not None
    tools = [json.loads(e.content) for e in events if e.kind == "tool"]
    assert [(t["name"], t["ok"]) for t in tools] == [("clinic_info", True)]
    # A withheld-trust trunk caller: the number is on the record, no patient is assumed.
    assert record.caller == CALLER and record.patient_id is None


async def test_a_red_flag_on_a_sip_call_flags_it_and_refuses_booking(
    make_engine_for, clock
) -> None:
    script = [
        SpeakTurn("Olá! Clínica São Lucas, em que posso ajudar?"),
        UserTurn("Socorro, meu filho não está respirando"),
        FunctionCallTurn("find_slots", {"service": "pediatria"}),
        SpeakTurn("Ligue agora para o SAMU, 192. Quer que eu transfira para a equipe?"),
        CallerHangsUp(),
    ]
    async with live_sip(
        make_engine_for("sqlite"), clock, script, sip_trust_trunk_caller_id=True
    ) as app:
        call_id, _ = await app.fake.ring(app.webhook_url, trunk_headers())
        await app.call_ended(call_id)
        record = app.record(call_id)
        events = app.events(call_id)
        outputs = app.fake.realtime.tool_outputs
    assert app.fake.violations == []
    system = _system_items(app.fake.realtime)
    assert len(system) == 1 and "192" in system[0]
    assert record is not None and record.flagged and record.outcome == "emergency"
    safety = [json.loads(e.content) for e in events if e.kind == "safety"]
    assert safety == [{"red_flag": "breathing", "rule": "pt-not-breathing"}]
    refused = [json.loads(e.content) for e in events if e.kind == "tool"]
    assert refused == [{"name": "find_slots", "refused": "red flag"}]
    assert any("emergency" in json.loads(v).get("error", "") for v in outputs.values())
    alerts = [m for k, m in app.services.alerter.sent if k.startswith("emergency")]
    assert len(alerts) == 1 and CALLER in alerts[0]


async def test_a_dropped_sideband_reconnects_to_the_same_call(make_engine_for, clock) -> None:
    script = [
        SpeakTurn("Clínica São Lucas, bom dia!"),
        UserTurn("Qual o endereço?"),
        FunctionCallTurn("clinic_info", {"topic": "contact"}),
        SpeakTurn("Rua Vergueiro, 1421."),
        UserTurn("Obrigado, tchau."),
        FunctionCallTurn("end_call", {"reason": "done"}, say="Até logo!"),
    ]
    # The caller takes half a second to answer, longer than the first reconnect's backoff: what
    # OpenAI sends while no sideband is attached is lost (see docs/sip.md).
    async with live_sip(make_engine_for("sqlite"), clock, script, caller_pause=0.5) as app:
        app.fake.realtime.drop_after(events=1)  # right after the greeting's response.create
        call_id, _ = await app.fake.ring(app.webhook_url, trunk_headers())
        await app.call_ended(call_id)
        call = app.fake.call(call_id)
        record = app.record(call_id)
        events = app.events(call_id)
    assert app.fake.violations == []
    assert call.sidebands == 2 and call.session is not None and call.session.dropped is False
    assert call.hung_up_by == "app"
    assert record is not None and record.outcome == "completed"
    errors = [json.loads(e.content) for e in events if e.kind == "error"]
    assert errors == [{"sideband": "dropped; reconnect 1"}]
    # The conversation went on in the same session: both caller turns were heard.
    assert [e.content for e in events if e.kind == "caller"] == [
        "Qual o endereço?",
        "Obrigado, tchau.",
    ]


async def test_a_sideband_that_cannot_come_back_hands_the_caller_to_staff(
    make_engine_for, clock
) -> None:
    script = [SpeakTurn("Clínica São Lucas, bom dia!"), UserTurn("Alô?")]
    async with live_sip(make_engine_for("sqlite"), clock, script, sip_sideband_retries=2) as app:
        app.fake.realtime.drop_after(events=1)
        app.fake.realtime.max_sidebands = 1  # every reconnect is refused
        call_id, _ = await app.fake.ring(app.webhook_url, trunk_headers())
        await app.call_ended(call_id, timeout=20)
        call = app.fake.call(call_id)
        record = app.record(call_id)
    assert call.refer_targets == [STAFF_URI]
    assert record is not None and record.outcome == "failed"
    assert record.next_action == "fallback" and "sideband" in (record.error or "")
    assert any(k == "call_failure" for k, _ in app.services.alerter.sent)
    items = app.services.worklist.items()
    assert [(i.kind, i.call_sid) for i in items] == [("failure", record.call_sid)]


async def test_dtmf_zero_puts_the_caller_through_to_staff(make_engine_for, clock) -> None:
    script = [
        SpeakTurn("Clínica São Lucas, bom dia!"),
        CallerPresses("0"),
        SpeakTurn("Vou transferir você para a equipe."),
    ]
    async with live_sip(make_engine_for("sqlite"), clock, script) as app:
        call_id, _ = await app.fake.ring(app.webhook_url, trunk_headers())
        await app.call_ended(call_id)
        call = app.fake.call(call_id)
        record = app.record(call_id)
        events = app.events(call_id)
    assert app.fake.violations == []
    assert [e.content for e in events if e.kind == "dtmf"] == ["0"]
    assert call.refer_targets == [STAFF_URI]
    assert record is not None and record.outcome == "transferred"
    assert "transfer" in [kind for kind, _ in app.services.alerter.sent]
    items = app.services.worklist.items()
    assert [(i.kind, i.call_sid) for i in items] == [("handover", record.call_sid)]


async def test_a_replayed_webhook_is_acknowledged_and_starts_nothing(
    db_kind, make_engine_for, clock
) -> None:
    script = [SpeakTurn("Clínica São Lucas, bom dia!"), CallerHangsUp()]
    async with live_sip(make_engine_for(db_kind), clock, script) as app:
        call_id, first = await app.fake.ring(app.webhook_url, trunk_headers())
        again = await app.fake.deliver(app.webhook_url, app.fake.deliveries[-1])
        await app.call_ended(call_id)
    assert first.status_code == 200 and again.status_code == 200
    accepts = [r for r in app.fake.requests if r[0] == "accept"]
    assert len(accepts) == 1 and app.fake.call(call_id).sidebands == 1


async def test_two_deliveries_of_one_call_start_one_session(
    db_kind, make_engine_for, clock
) -> None:
    script = [SpeakTurn("Clínica São Lucas, bom dia!"), CallerHangsUp()]
    async with live_sip(make_engine_for(db_kind), clock, script) as app:
        call_id, first = await app.fake.ring(app.webhook_url, trunk_headers())
        # OpenAI announces the same call again under a new webhook-id, and both race.
        body = app.fake.incoming_event(call_id, trunk_headers())
        second, third = await asyncio.gather(
            app.fake.deliver(app.webhook_url, app.fake.signed(body)),
            app.fake.deliver(app.webhook_url, app.fake.signed(body)),
        )
        await app.call_ended(call_id)
    assert {first.status_code, second.status_code, third.status_code} == {200}
    assert len([r for r in app.fake.requests if r[0] == "accept"]) == 1
    assert app.fake.call(call_id).sidebands == 1


async def test_a_forged_or_stale_webhook_is_refused(make_engine_for, clock) -> None:
    import time

    script = [SpeakTurn("Clínica São Lucas, bom dia!")]
    async with live_sip(make_engine_for("sqlite"), clock, script) as app:
        forged_secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
        _, forged = await app.fake.ring(app.webhook_url, trunk_headers(), secret=forged_secret)
        _, stale = await app.fake.ring(
            app.webhook_url, trunk_headers(), timestamp=int(time.time()) - 600
        )
        body = app.fake.incoming_event("rtc_tampered", trunk_headers())
        delivery = app.fake.signed(body)
        tampered = await app.fake.deliver(
            app.webhook_url,
            type(delivery)(body.replace(b"rtc_tampered", b"rtc_other0000"), delivery.headers),
        )
        unsigned = await app.fake.deliver(
            app.webhook_url, type(delivery)(body, {"content-type": "application/json"})
        )
    assert forged.status_code == 400 and stale.status_code == 400
    assert tampered.status_code == 400 and unsigned.status_code == 400
    assert app.fake.requests == []  # nothing accepted, nothing rejected: not OpenAI's call


async def test_a_call_beyond_capacity_is_refused_with_486(make_engine_for, clock) -> None:
    script = [SpeakTurn("Clínica São Lucas, bom dia!"), UserTurn("Alô?"), SpeakTurn("Pois não?")]
    async with live_sip(make_engine_for("sqlite"), clock, script, sip_max_calls=1) as app:
        first_id, _ = await app.fake.ring(app.webhook_url, trunk_headers())
        second_id, second = await app.fake.ring(app.webhook_url, trunk_headers("+5511911112222"))
        assert second.status_code == 200
        assert app.fake.call(second_id).state == "rejected"
        assert app.fake.call(second_id).reject_status == 486
        assert app.fake.call(first_id).state == "accepted"
        await app.fake.caller_hangs_up(first_id)
        await app.call_ended(first_id)
    assert app.record(second_id) is None  # refused before anything was recorded


async def test_openai_refusing_the_accept_is_recorded_and_alerted(make_engine_for, clock) -> None:
    async with live_sip(make_engine_for("sqlite"), clock, []) as app:
        app.fake.refuse_accept = 500
        call_id, response = await app.fake.ring(app.webhook_url, trunk_headers())
        record = app.record(call_id)
    assert response.status_code == 200
    assert record is not None and record.outcome == "failed" and record.next_action == "fallback"
    assert any(k == "call_failure" for k, _ in app.services.alerter.sent)


def _dial_sip(twiml: str) -> tuple[str, dict[str, str]]:
    """The SIP URI and X- headers of a ``<Dial><Sip>`` TwiML answer."""
    match = re.search(r"<Sip>([^<]+)</Sip>", twiml)
    assert match, twiml
    uri, _, query = html.unescape(match.group(1)).partition("?")
    return uri, {k: v[0] for k, v in parse_qs(query).items()}


async def _twilio_voice(app, call_sid: str) -> str:
    response = await app.post_twilio(
        "/twilio/voice",
        {
            "CallSid": call_sid,
            "From": CALLER,
            "To": "+551134567800",
            "AccountSid": ACCOUNT_SID,
            "Direction": "inbound",
        },
    )
    assert response.status_code == 200, response.text
    return response.text


async def test_a_twilio_number_on_openai_sip_dials_openai_and_gets_the_call_back(
    make_engine_for, clock
) -> None:
    call_sid = "CA" + "7" * 32
    script = [
        SpeakTurn("Clínica São Lucas, bom dia!"),
        UserTurn("Quero falar com a recepção."),
        FunctionCallTurn("transfer_to_staff", {"summary": "quer falar com a recepção"}),
        SpeakTurn("Vou transferir, um momento."),
    ]
    async with live_sip(
        make_engine_for("sqlite"), clock, script, voice_transport="openai_sip"
    ) as app:
        twiml = await _twilio_voice(app, call_sid)
        assert (
            "<Connect>" not in twiml
            and 'action="https://clinic.example/twilio/sip-dial-done"' in twiml
        )
        uri, headers = _dial_sip(twiml)
        assert uri == SIP_URI and headers["X-VA-Call"] == call_sid
        invite = [
            ("From", f"<sip:{CALLER}@voiceagent.pstn.twilio.com>;tag=1"),
            ("To", f"<{SIP_URI}>"),
            ("X-VA-Call", call_sid),
            ("X-VA-Token", headers["X-VA-Token"]),
        ]
        call_id, _ = await app.fake.ring(app.webhook_url, invite)
        await app.call_ended(call_id)
        # The same token in another INVITE (a replayed capture) is refused.
        replay_id, _ = await app.fake.ring(app.webhook_url, invite)
        after = await app.post_twilio(
            "/twilio/sip-dial-done",
            {"CallSid": call_sid, "AccountSid": ACCOUNT_SID, "DialCallStatus": "completed"},
        )
        record = app.record(call_sid)
    assert app.fake.violations == []
    call = app.fake.call(call_id)
    # The SIP leg was ended by us (not REFERred): Twilio takes the call back and asks what next.
    assert call.hung_up_by == "app" and call.refer_targets == []
    assert app.fake.call(replay_id).state == "rejected"
    assert app.fake.call(replay_id).reject_status == 603
    # One call record, the Twilio call's, with the caller vouched for by the carrier.
    assert record is not None and record.patient_id is not None and app.record(call_id) is None
    assert record.outcome == "transferred" and record.next_action == "transfer"
    # Twilio then puts the caller through to staff with the whispered summary, as on Media Streams.
    assert "+551134567801" in after.text and "/twilio/whisper" in after.text


async def test_a_failed_sip_leg_falls_back_to_the_media_streams_bridge(
    make_engine_for, clock
) -> None:
    call_sid = "CA" + "8" * 32
    async with live_sip(make_engine_for("sqlite"), clock, [], voice_transport="openai_sip") as app:
        await _twilio_voice(app, call_sid)
        busy = await app.post_twilio(
            "/twilio/sip-dial-done",
            {"CallSid": call_sid, "AccountSid": ACCOUNT_SID, "DialCallStatus": "busy"},
        )
        ended = await app.post_twilio(
            "/twilio/sip-dial-done",
            {"CallSid": "CA" + "9" * 32, "AccountSid": ACCOUNT_SID, "DialCallStatus": "completed"},
        )
    assert "<Connect>" in busy.text and '<Parameter name="token"' in busy.text
    assert "<Hangup" in ended.text


async def test_calls_live_when_the_app_stops_are_handed_over(make_engine_for, clock) -> None:
    script = [SpeakTurn("Clínica São Lucas, bom dia!"), UserTurn("Alô?"), SpeakTurn("Pois não?")]
    async with live_sip(make_engine_for("sqlite"), clock, script) as app:
        call_id, _ = await app.fake.ring(app.webhook_url, trunk_headers())
        await app.fake.realtime.wait_for(lambda r: len(r.sessions[-1].responses) >= 2, 10)
    # The app stopped (a deploy) with the call up: without it the call would go on at OpenAI
    # with no tools, so it was put through to the staff first.
    call = app.fake.call(call_id)
    record = app.record(call_id)
    assert call.refer_targets == [STAFF_URI]
    assert record is not None and record.outcome == "failed" and record.next_action == "fallback"
    assert record.error == "the app stopped"


async def test_a_caller_who_hangs_up_while_the_sideband_is_down_ends_the_call(
    make_engine_for, clock
) -> None:
    script = [SpeakTurn("Clínica São Lucas, bom dia!"), CallerHangsUp()]
    async with live_sip(make_engine_for("sqlite"), clock, script, caller_pause=0.05) as app:
        app.fake.realtime.drop_after(events=1)  # the caller hangs up before the reconnect
        call_id, _ = await app.fake.ring(app.webhook_url, trunk_headers())
        await app.call_ended(call_id)
        record = app.record(call_id)
    assert app.fake.call(call_id).hung_up_by == "caller"
    assert app.fake.call(call_id).refer_targets == []  # nobody to hand over
    assert record is not None and record.outcome == "caller_hung_up" and record.error is None
    assert app.services.alerter.sent == []
