"""A confirmation call on the openai_sip transport: the runner places the call through Twilio
REST (the fake), answering-machine detection stays with Twilio and us, the answer dials OpenAI
over SIP with the headers that identify the call and its appointment, and the patient confirms
to the receptionist on the sideband (confirmation mode: its prompt, its few tools)."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs

from tests.e2e.harness import ACCOUNT_SID, AUTH_TOKEN
from tests.e2e.sip_harness import CALLER, SIP_URI, live_sip
from tests.e2e.test_confirmation_call import book, call_params
from tests.fakes.realtime_script import FunctionCallTurn, SpeakTurn, UserTurn
from tests.fakes.twilio_rest_fake import TwilioRestFake
from voice_agent.confirmations.runner import ConfirmationRunner
from voice_agent.integrations.twilio_rest import make_twilio_client
from voice_agent.store.confirmation_tables import StepStatus
from voice_agent.store.db import transaction
from voice_agent.store.tables import Appointment, AppointmentStatus, CallRecord


async def test_the_patient_confirms_on_a_sip_confirmation_call(db_kind, make_engine_for, clock):
    with TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        engine = make_engine_for(db_kind)
        async with live_sip(
            engine, clock, [], twilio_api_base=twilio.base_url, voice_transport="openai_sip"
        ) as setup:
            appointment = await book(setup.services)
        script = [
            SpeakTurn("Olá, Maria, aqui é da Clínica São Lucas. A senhora confirma?"),
            UserTurn("Sim, confirmo."),
            FunctionCallTurn(
                "confirm_appointment",
                {"appointment_id": appointment.id, "confirmed_by_patient": True},
            ),
            FunctionCallTurn("end_call", {"reason": "confirmed"}, say="Confirmado! Até logo!"),
        ]
        async with live_sip(
            engine, clock, script, twilio_api_base=twilio.base_url, voice_transport="openai_sip"
        ) as app:
            runner = ConfirmationRunner(app.services, make_twilio_client(app.services.settings))
            step_id, outcome = await runner.trigger(appointment.id, "call")
            assert outcome == "placed"
            [placed] = twilio.calls()
            assert placed["form"]["MachineDetection"] == ["DetectMessageEnd"]
            sid = placed["sid"]
            answer = await app.post_twilio(
                f"/twilio/confirm/answer?step={step_id}", call_params(sid)
            )
            amd = await app.post_twilio(
                f"/twilio/confirm/amd?step={step_id}", call_params(sid, AnsweredBy="human")
            )
            assert amd.status_code == 204
            match = re.search(r"<Sip>([^<]+)</Sip>", answer.text)
            assert match and "<Connect>" not in answer.text, answer.text
            uri, _, query = html.unescape(match.group(1)).partition("?")
            headers = {k: v[0] for k, v in parse_qs(query).items()}
            assert uri == SIP_URI
            assert headers["X-VA-Call"] == sid and headers["X-VA-Appointment"] == appointment.id
            call_id, _ = await app.fake.ring(
                app.webhook_url,
                [
                    ("From", "<sip:+551134567800@voiceagent.pstn.twilio.com>;tag=9"),
                    ("To", f"<{SIP_URI}>"),
                    *headers.items(),
                ],
            )
            await app.call_ended(call_id)
            after = await app.post_twilio(
                "/twilio/sip-dial-done", call_params(sid, DialCallStatus="completed")
            )
            await app.post_twilio(
                f"/twilio/confirm/status?step={step_id}", call_params(sid, CallStatus="completed")
            )
    assert app.fake.violations == []
    config = app.fake.call(call_id).accept_config
    assert config is not None and appointment.id in config["instructions"]
    tools = {t["name"] for t in config["tools"]}
    assert "confirm_appointment" in tools and "book_appointment" not in tools
    assert "<Hangup" in after.text
    with transaction(engine) as db:
        confirmed = db.get(Appointment, appointment.id)
        record = db.get(CallRecord, sid)
    assert confirmed.status == AppointmentStatus.confirmed
    assert record.mode == "confirmation" and record.outcome == "completed"
    assert record.caller == CALLER
    done = runner.store.get(step_id)
    assert (done.status, done.outcome, done.answered_by) == (StepStatus.done, "confirmed", "human")
