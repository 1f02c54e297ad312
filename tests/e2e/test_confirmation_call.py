"""A confirmation call end to end: a due step → `calls.create` with asynchronous AMD on the
Twilio REST fake → signed answer and AMD callbacks → the media stream through the real app →
the fake Realtime server (every client event validated) → the patient confirms by voice → the
appointment is confirmed, the interaction logged, the step done; the call ends through REST."""

from __future__ import annotations

import json
import re
from datetime import date, time

from sqlalchemy import select

from tests.e2e.harness import ACCOUNT_SID, AUTH_TOKEN, CALLER, live_app, live_call
from tests.fakes.audio import load_fixture
from tests.fakes.realtime_script import FunctionCallTurn, SpeakTurn, UserTurn
from tests.fakes.twilio_media import TwilioMediaSimulator
from tests.fakes.twilio_rest_fake import TwilioRestFake
from voice_agent.confirmations.runner import ConfirmationRunner
from voice_agent.integrations.twilio_rest import make_twilio_client
from voice_agent.scheduling.booking import BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services
from voice_agent.store.confirmation_tables import StepStatus
from voice_agent.store.db import transaction
from voice_agent.store.tables import (
    Appointment,
    AppointmentStatus,
    CallRecord,
    Interaction,
    InteractionKind,
)


async def book(services: Services) -> Appointment:
    patient = await services.patients.find_or_create(CALLER, "pt-BR")
    await services.patients.update(patient.id, full_name="Maria da Silva")
    offers = await services.booking.find_offers(
        "clinico-consulta",
        Preferences(dates=[date(2026, 11, 27)], earliest=time(10, 0)),
        holder="setup",
        limit=1,
    )
    request = BookingRequest(patient_id=patient.id, channel="whatsapp", holder="setup")
    return await services.booking.book(request, offers[0].hold_id)


def call_params(sid: str, **extra: str) -> dict[str, str]:
    return {
        "CallSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": "+551134567800",
        "To": CALLER,
        "Direction": "outbound-api",
        **extra,
    }


async def test_the_patient_confirms_by_voice_on_the_confirmation_call(tmp_path, clock) -> None:
    with TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        async with live_app(tmp_path, clock, None, twilio_api_base=twilio.base_url) as setup:
            appointment = await book(setup.services)
            call_step = next(s for s in _steps(setup.services) if s.via == "call")
        script = [
            SpeakTurn("Olá, Maria, aqui é da Clínica São Lucas. A senhora confirma?", audio_ms=600),
            UserTurn("Sim, confirmo."),
            FunctionCallTurn(
                "confirm_appointment",
                {"appointment_id": appointment.id, "confirmed_by_patient": True},
            ),
            FunctionCallTurn(
                "end_call", {"reason": "confirmed"}, say="Confirmado, obrigada! Até logo!"
            ),
        ]
        async with live_call(tmp_path, clock, script, twilio_api_base=twilio.base_url) as (
            realtime,
            app,
        ):
            runner = ConfirmationRunner(app.services, make_twilio_client(app.services.settings))
            clock.set(call_step.due_at)
            ran = dict(await runner.run_due())
            assert ran[call_step.id] == "placed"
            [call] = twilio.calls()
            assert call["form"]["MachineDetection"] == ["DetectMessageEnd"]
            assert call["form"]["AsyncAmd"] == ["true"]
            sid = call["sid"]
            step = f"?step={call_step.id}"

            answer = await app.post_twilio(f"/twilio/confirm/answer{step}", call_params(sid))
            assert answer.status_code == 200 and "<Connect><Stream" in answer.text
            token = re.search(r'<Parameter name="token" value="([^"]+)"', answer.text)
            assert token, answer.text
            amd = await app.post_twilio(
                f"/twilio/confirm/amd{step}", call_params(sid, AnsweredBy="human")
            )
            assert amd.status_code == 204

            sim = TwilioMediaSimulator(
                app.media_url, call_sid=sid, custom_parameters={"token": token[1]}, speed=0.05
            )
            await sim.connect()
            await sim.wait_for(lambda s: len(s.played) > 0, timeout=10)
            await sim.wait_idle(timeout=10)
            await sim.send_audio(load_fixture("pt_br_yes"))
            await sim.send_silence(800)
            code = await sim.wait_closed(timeout=20)
            status = await app.post_twilio(
                f"/twilio/confirm/status{step}", call_params(sid, CallStatus="completed")
            )
            assert status.status_code == 204

        assert code == 1000
        assert realtime.violations == [] and sim.violations == []
        config = realtime.sessions[0].config
        assert "confirmar" in config["instructions"] and appointment.id in config["instructions"]
        assert "sexta-feira" in config["instructions"]
        tools = {t["name"] for t in config["tools"]}
        assert "confirm_appointment" in tools and "book_appointment" not in tools
        output = json.loads(next(iter(realtime.tool_outputs.values())))
        assert "error" not in output, output
        with transaction(app.services.engine) as db:
            confirmed = db.get(Appointment, appointment.id)
            record = db.get(CallRecord, sid)
            logged = db.execute(
                select(Interaction).where(
                    Interaction.appointment_id == appointment.id,
                    Interaction.kind == InteractionKind.confirmation,
                )
            ).scalar_one()
        assert confirmed.status == AppointmentStatus.confirmed
        assert logged.channel == "voice"
        assert record.mode == "confirmation" and record.direction == "outbound"
        assert record.appointment_id == appointment.id
        done = runner.store.get(call_step.id)
        assert (done.status, done.outcome, done.answered_by) == (
            StepStatus.done,
            "confirmed",
            "human",
        )
        # end_call completed the call through Twilio REST.
        assert twilio.calls()[0]["status"] == "completed"


def _steps(services: Services):  # type: ignore[no-untyped-def]
    from voice_agent.confirmations.steps import StepStore

    return StepStore(services.engine, services.interactions).listing()


async def test_a_confirmation_call_falls_back_to_the_keypad_when_realtime_fails(
    tmp_path, clock
) -> None:
    """OpenAI is configured but unreachable: the stream ends, Twilio asks what next, and the call
    goes on with `<Gather>`: the patient confirms with a key. Twilio alone suffices."""
    with TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        async with live_app(
            tmp_path, clock, "http://127.0.0.1:9/v1", twilio_api_base=twilio.base_url
        ) as app:
            appointment = await book(app.services)
            runner = ConfirmationRunner(app.services, make_twilio_client(app.services.settings))
            step_id, outcome = await runner.trigger(appointment.id, "call")
            assert outcome == "placed"
            sid = twilio.calls()[0]["sid"]
            answer = await app.post_twilio(
                f"/twilio/confirm/answer?step={step_id}", call_params(sid)
            )
            token = re.search(r'<Parameter name="token" value="([^"]+)"', answer.text)
            assert token, answer.text
            sim = TwilioMediaSimulator(
                app.media_url, call_sid=sid, custom_parameters={"token": token[1]}, speed=0.05
            )
            await sim.connect()
            await sim.wait_closed(timeout=20)
            after = await app.post_twilio("/twilio/after-stream", call_params(sid))
            assert "/twilio/confirm/keypad" in after.text
            keypad = await app.post_twilio("/twilio/confirm/keypad", call_params(sid))
            assert "<Gather" in keypad.text and "tecle 1" in keypad.text.lower()
            done = await app.post_twilio("/twilio/confirm/gather", call_params(sid, Digits="1"))
            assert "confirmada" in done.text
        with transaction(app.services.engine) as db:
            assert db.get(Appointment, appointment.id).status == AppointmentStatus.confirmed
