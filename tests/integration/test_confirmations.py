"""Confirmations through the official twilio SDK against the local Twilio REST fake and the app's
signed webhooks: steps move with the booking, WhatsApp requests and their replies, outbound calls
with asynchronous AMD, voicemail and retries, the WhatsApp fallback, the keypad path, the CLI."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import Engine, select
from twilio.request_validator import RequestValidator
from typer.testing import CliRunner

from tests.fakes.twilio_rest_fake import TwilioRestFake
from tests.integration.integration_env import ACCOUNT_SID, AUTH_TOKEN, build, twilio_settings
from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.cli import CliRuntime
from voice_agent.cli import app as cli
from voice_agent.clock import FixedClock
from voice_agent.confirmations.runner import ConfirmationRunner
from voice_agent.integrations.twilio_rest import make_twilio_client
from voice_agent.scheduling.booking import BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services
from voice_agent.store.confirmation_tables import ConfirmationStep, StepStatus
from voice_agent.store.db import transaction
from voice_agent.store.tables import (
    Appointment,
    AppointmentStatus,
    CallRecord,
    Interaction,
    InteractionKind,
    SlotClaim,
)

_MESSAGE_SIDS = itertools.count(1)
PUBLIC = "https://clinic.example"
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
PHONE = "+5511987658001"
REMINDER = "HX" + "e" * 32


@dataclass
class Env:
    services: Services
    twilio: TwilioRestFake
    clock: FixedClock
    client: httpx.AsyncClient
    runner: ConfirmationRunner
    alerts: ConsoleAlerter

    async def post(self, path: str, params: dict[str, str]) -> httpx.Response:
        """A Twilio webhook, signed for the public URL (query string included, as Twilio does)."""
        url = path if path.startswith("http") else PUBLIC + path
        signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        return await self.client.post(
            target, data=params, headers={"X-Twilio-Signature": signature}
        )

    async def whatsapp(self, text: str, phone: str = PHONE) -> str:
        response = await self.post(
            "/twilio/messaging",
            {
                "From": f"whatsapp:{phone}",
                "To": "whatsapp:+14155238886",
                "Body": text,
                "MessageSid": f"SM{next(_MESSAGE_SIDS):032d}",  # one per message, as Twilio
                "AccountSid": ACCOUNT_SID,
            },
        )
        assert response.status_code == 200, response.text
        match = re.search(r"<Message>(.*)</Message>", response.text, re.S)
        assert match, response.text
        return match.group(1)

    def steps(self, appointment_id: str | None = None) -> list[ConfirmationStep]:
        return self.runner.store.listing(appointment_id=appointment_id, limit=1000)[::-1]

    def appointment(self, appointment_id: str) -> Appointment:
        with transaction(self.services.engine) as session:
            found = session.get(Appointment, appointment_id)
            assert found is not None
            return found

    def reminders(self, appointment_id: str) -> list[dict[str, Any]]:
        import json

        with transaction(self.services.engine) as session:
            rows = session.execute(
                select(Interaction)
                .where(
                    Interaction.appointment_id == appointment_id,
                    Interaction.kind == InteractionKind.reminder,
                )
                .order_by(Interaction.id)
            ).scalars()
            return [json.loads(row.details) for row in rows]


@pytest.fixture
def twilio(clock: FixedClock) -> Iterator[TwilioRestFake]:
    with TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN, clock) as fake:
        fake.add_template(REMINDER, "Olá {{1}}! Confirme: {{2}}, {{3}}, {{4}}. 1/2/3")
        yield fake


@pytest.fixture
async def env(
    make_engine_for: Callable[[str], Engine], clock: FixedClock, twilio: TwilioRestFake
) -> AsyncIterator[Env]:
    alerts = ConsoleAlerter()
    services = build(
        make_engine_for("sqlite"),
        clock,
        alerter=alerts,
        **twilio_settings(twilio.base_url),
        public_url=PUBLIC,
        twilio_from_number="+551134567800",
        whatsapp_confirmations=False,  # only the confirmation requests reach the fake here
    )
    app = create_app(services.settings, services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://clinic.local") as client:
        yield Env(services, twilio, clock, client, app.state.confirmations, alerts)


async def book(
    services: Services, phone: str = PHONE, day: date = date(2026, 11, 27), language: str = "pt-BR"
) -> Appointment:
    """An appointment on ``day`` from 10:00 (Friday 27 November: 48 h / 24 h steps are ahead)."""
    patient = await services.patients.find_or_create(phone, language)
    await services.patients.update(patient.id, full_name="Maria Oliveira")
    offers = await services.booking.find_offers(
        "clinico-consulta", Preferences(dates=[day], earliest=time(10, 0)), holder=phone, limit=1
    )
    request = BookingRequest(patient_id=patient.id, channel="whatsapp", holder=phone)
    return await services.booking.book(request, offers[0].hold_id)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=SAO_PAULO).astimezone(UTC)


async def test_steps_are_planned_with_the_booking_and_move_or_vanish_with_it(env: Env) -> None:
    appointment = await book(env.services)
    steps = env.steps(appointment.id)
    assert [(s.via, s.status) for s in steps] == [("whatsapp", "pending"), ("call", "pending")]
    start = appointment.start
    assert [s.due_at for s in steps] == [start - timedelta(hours=48), start - timedelta(hours=24)]

    patient_id = appointment.patient_id
    offers = await env.services.booking.find_offers(
        "clinico-consulta",
        Preferences(dates=[date(2026, 12, 2)], earliest=time(15, 0)),
        holder="move",
        limit=1,
    )
    request = BookingRequest(patient_id=patient_id, channel="voice", holder="move")
    moved = await env.services.booking.reschedule(request, appointment.id, offers[0].hold_id)
    steps = env.steps(appointment.id)
    old, new = steps[:2], steps[2:]
    assert [(s.status, s.outcome) for s in old] == [("cancelled", "rescheduled")] * 2
    assert [s.due_at for s in new] == [
        moved.start - timedelta(hours=48),
        moved.start - timedelta(hours=24),
    ]
    await env.services.booking.cancel(patient_id, appointment.id, channel="voice")
    assert {(s.status, s.outcome) for s in env.steps(appointment.id)[2:]} == {
        ("cancelled", "cancelled")
    }
    assert await env.runner.run_due() == []


async def test_whatsapp_request_then_reply_2_cancels_and_frees_the_slot(env: Env) -> None:
    appointment = await book(env.services)
    assert await env.runner.run_due() == []  # not due yet
    env.clock.set(at(2026, 11, 25, 10, 0))
    env.twilio.open_window(PHONE)  # the patient wrote to us lately (booked on WhatsApp)
    assert await env.runner.run_due() == [(env.steps(appointment.id)[0].id, "sent")]
    [message] = env.twilio.messages(f"whatsapp:{PHONE}")
    body = message["body"]
    assert body.startswith("Olá, Maria! Por favor, confirme sua consulta na Clínica São Lucas")
    assert "sexta-feira" in body and "Responda 1 para confirmar, 2 para cancelar ou 3" in body
    assert message["from"] == "whatsapp:+14155238886"
    assert env.steps(appointment.id)[0].status == StepStatus.waiting

    reask = await env.whatsapp("7")
    assert reask.startswith("Desculpe, não entendi. Responda 1")
    answer = await env.whatsapp("2")
    assert "foi cancelada" in answer
    cancelled = env.appointment(appointment.id)
    assert cancelled.status == AppointmentStatus.cancelled
    with transaction(env.services.engine) as session:
        claims = session.execute(
            select(SlotClaim).where(SlotClaim.appointment_id == appointment.id)
        ).all()
    assert claims == []  # the slot is free again
    steps = env.steps(appointment.id)
    assert [(s.via, s.status, s.outcome) for s in steps] == [
        ("whatsapp", "done", "cancelled"),
        ("call", "cancelled", "cancelled"),
    ]
    # Later messages go to the receptionist, not to the finished confirmation.
    assert "foi cancelada" not in await env.whatsapp("2")


async def test_reply_1_confirms_and_the_call_step_is_dropped(env: Env) -> None:
    appointment = await book(env.services)
    env.clock.set(at(2026, 11, 25, 11, 0))
    await env.runner.run_due()
    # Outside the 24-hour window: the approved template is the only way.
    assert env.twilio.messages(f"whatsapp:{PHONE}") == []
    assert env.steps(appointment.id)[0].outcome == "whatsapp_no_template"
    assert env.alerts.sent and "TEMPLATE_SID" in env.alerts.sent[-1][1]

    appointment = await book(env.services, phone="+5511987658002", day=date(2026, 11, 30))
    env.services.settings.whatsapp_reminder_template_sid = REMINDER
    env.clock.set(env.steps(appointment.id)[0].due_at)  # Saturday, 48 h before
    await env.runner.run_due()
    [message] = env.twilio.messages("whatsapp:+5511987658002")
    assert message["content_sid"] == REMINDER and "Maria" in message["body"]
    answer = await env.whatsapp("1", phone="+5511987658002")
    assert answer.startswith("Obrigado! Sua consulta de")
    assert env.appointment(appointment.id).status == AppointmentStatus.confirmed
    steps = env.steps(appointment.id)
    assert [(s.status, s.outcome) for s in steps] == [
        ("done", "confirmed"),
        ("cancelled", "confirmed"),
    ]


async def test_reply_3_hands_over_to_the_text_receptionist(env: Env) -> None:
    appointment = await book(env.services, language="en")
    env.clock.set(at(2026, 11, 25, 10, 0))
    env.twilio.open_window(PHONE)
    await env.runner.run_due()
    [message] = env.twilio.messages(f"whatsapp:{PHONE}")
    assert "Reply 1 to confirm, 2 to cancel, or 3 to change the time." in message["body"]
    answer = await env.whatsapp("3")
    assert "reply 1" not in answer.lower()
    assert env.steps(appointment.id)[0].outcome == "reschedule_requested"
    assert env.appointment(appointment.id).status == AppointmentStatus.booked


async def test_a_call_with_amd_voicemail_retries_then_whatsapp_fallback(env: Env) -> None:
    appointment = await book(env.services, language="en")
    call_step = env.steps(appointment.id)[1]
    env.clock.set(call_step.due_at)
    env.services.settings.whatsapp_reminder_template_sid = REMINDER
    env.twilio.open_window(PHONE)
    # The 48 h WhatsApp request (its step is overdue too) goes unanswered; the call is placed.
    whatsapp_step = env.steps(appointment.id)[0]
    assert dict(await env.runner.run_due()) == {whatsapp_step.id: "sent", call_step.id: "placed"}
    [call] = env.twilio.calls()
    form = {k: v if len(v) > 1 else v[0] for k, v in call["form"].items()}
    assert form["To"] == PHONE and form["From"] == "+551134567800"
    assert form["MachineDetection"] == "DetectMessageEnd" and form["AsyncAmd"] == "true"
    assert form["Url"] == f"{PUBLIC}/twilio/confirm/answer?step={call_step.id}"
    assert form["AsyncAmdStatusCallback"] == f"{PUBLIC}/twilio/confirm/amd?step={call_step.id}"
    assert form["StatusCallback"] == f"{PUBLIC}/twilio/confirm/status?step={call_step.id}"
    assert sorted(form["StatusCallbackEvent"]) == ["answered", "completed", "initiated", "ringing"]
    sid = call["sid"]
    query = f"?step={call_step.id}"

    # Attempt 1: an answering machine → the voicemail, then the call ends.
    answered = await env.post(f"/twilio/confirm/answer{query}", _call(sid, "in-progress"))
    assert "<Gather" in answered.text  # no OpenAI configured: the keypad path
    await env.post(f"/twilio/confirm/amd{query}", {**_call(sid), "AnsweredBy": "machine_end_beep"})
    [update] = env.twilio.calls()[0]["updates"]
    assert "<Say" in update["Twiml"] and "Maria" in update["Twiml"] and "<Hangup" in update["Twiml"]
    assert "Dr." not in update["Twiml"] and "Clínica" not in update["Twiml"]
    await env.post(f"/twilio/confirm/status{query}", _call(sid, "completed"))
    await env.post(f"/twilio/confirm/status{query}", _call(sid, "completed"))  # a retried callback
    step = env.runner.store.get(call_step.id)
    assert step.status == StepStatus.pending and step.outcome == "voicemail"
    assert step.due_at == call_step.due_at + timedelta(minutes=30)

    # Attempts 2 and 3: no answer, busy → every attempt used → a WhatsApp fallback and an alert.
    for final in ("no-answer", "busy"):
        env.clock.set(env.runner.store.get(call_step.id).due_at)
        assert await env.runner.run_due() == [(call_step.id, "placed")]
        sid = env.twilio.calls()[-1]["sid"]
        await env.post(f"/twilio/confirm/status{query}", _call(sid, "ringing"))
        await env.post(f"/twilio/confirm/status{query}", _call(sid, final))
    step = env.runner.store.get(call_step.id)
    assert (step.status, step.outcome, step.attempts) == ("failed", "unreachable", 3)
    assert any("Não conseguimos falar com" in text for _, text in env.alerts.sent)
    [unreached] = env.services.worklist.items()  # and a to-do item the staff can act on
    assert (unreached.kind, unreached.appointment_id) == ("unreached", appointment.id)
    assert unreached.phone == PHONE and unreached.details["event"] == "busy"
    [fallback] = [s for s in env.steps(appointment.id) if s.seq == 99]
    assert fallback.via == "whatsapp" and fallback.status == StepStatus.pending
    await env.runner.run_due()
    assert len(env.twilio.messages(f"whatsapp:{PHONE}")) == 2
    events = [(r["via"], r["event"]) for r in env.reminders(appointment.id)]
    assert events == [
        ("whatsapp", "sent"),
        ("call", "placed"),
        ("call", "answered"),
        ("call", "voicemail"),
        ("call", "placed"),
        ("call", "no_answer"),
        ("call", "placed"),
        ("call", "busy"),
        ("whatsapp", "sent"),
    ]


async def test_keypad_confirmation_without_openai(env: Env) -> None:
    appointment = await book(env.services)
    step_id, outcome = await env.runner.trigger(appointment.id, "call")
    assert outcome == "placed"
    sid = env.twilio.calls()[-1]["sid"]
    answered = await env.post(f"/twilio/confirm/answer?step={step_id}", _call(sid, "in-progress"))
    assert '<Gather action="https://clinic.example/twilio/confirm/gather?turn=1"' in answered.text
    assert 'input="speech dtmf"' in answered.text and 'language="pt-BR"' in answered.text
    assert "ligando para confirmar sua consulta" in answered.text
    with transaction(env.services.engine) as session:
        record = session.get(CallRecord, sid)
    assert record.mode == "confirmation" and record.appointment_id == appointment.id
    again = await env.post("/twilio/confirm/gather", {**_call(sid), "Digits": "9"})
    assert "Tecle 1 para confirmar" in again.text
    done = await env.post("/twilio/confirm/gather", {**_call(sid), "SpeechResult": "Sim."})
    assert "está confirmada" in done.text and "<Hangup" in done.text
    assert env.appointment(appointment.id).status == AppointmentStatus.confirmed
    await env.post(f"/twilio/confirm/status?step={step_id}", _call(sid, "completed"))
    assert env.runner.store.get(step_id).outcome == "confirmed"


async def test_confirmed_on_whatsapp_while_the_phone_rang(env: Env) -> None:
    appointment = await book(env.services)
    env.twilio.open_window(PHONE)
    await env.runner.trigger(appointment.id, "whatsapp")
    step_id, _ = await env.runner.trigger(appointment.id, "call")
    sid = env.twilio.calls()[-1]["sid"]
    assert "está confirmada" in await env.whatsapp("1")
    answered = await env.post(f"/twilio/confirm/answer?step={step_id}", _call(sid, "in-progress"))
    assert "está confirmada" in answered.text and "<Hangup" in answered.text
    assert "<Gather" not in answered.text


async def test_keypad_cancel_and_staff(env: Env) -> None:
    first = await book(env.services)
    step_id, _ = await env.runner.trigger(first.id, "call")
    sid = env.twilio.calls()[-1]["sid"]
    await env.post(f"/twilio/confirm/answer?step={step_id}", _call(sid, "in-progress"))
    cancelled = await env.post("/twilio/confirm/gather", {**_call(sid), "Digits": "2"})
    assert "foi cancelada" in cancelled.text
    assert env.appointment(first.id).status == AppointmentStatus.cancelled

    second = await book(env.services, phone="+5511987658003")
    step_id, _ = await env.runner.trigger(second.id, "call")
    sid = env.twilio.calls()[-1]["sid"]
    await env.post(f"/twilio/confirm/answer?step={step_id}", _call(sid, "in-progress"))
    staff = await env.post("/twilio/confirm/gather", {**_call(sid), "Digits": "3"})
    assert "<Dial" in staff.text and "<Number>+551134567801</Number>" in staff.text
    assert env.runner.store.get(step_id).outcome == "transferred"


async def test_a_replayed_keypad_answer_is_answered_once(env: Env) -> None:
    appointment = await book(env.services)
    step_id, _ = await env.runner.trigger(appointment.id, "call")
    sid = env.twilio.calls()[-1]["sid"]
    answered = await env.post(f"/twilio/confirm/answer?step={step_id}", _call(sid, "in-progress"))
    action = re.search(r'<Gather action="([^"]+)"', answered.text).group(1)  # type: ignore[union-attr]
    cancelled = await env.post(action, {**_call(sid), "Digits": "2"})
    assert "foi cancelada" in cancelled.text
    again = await env.post(action, {**_call(sid), "Digits": "2"})  # Twilio's retry, a replay
    assert again.text == cancelled.text
    assert env.appointment(appointment.id).status == AppointmentStatus.cancelled


async def test_callbacks_must_be_signed_and_belong_to_the_step(env: Env) -> None:
    appointment = await book(env.services)
    step_id, _ = await env.runner.trigger(appointment.id, "call")
    sid = env.twilio.calls()[-1]["sid"]
    unsigned = await env.client.post(f"/twilio/confirm/status?step={step_id}", data=_call(sid))
    assert unsigned.status_code == 403
    # Signed for another step id: the query string is part of what Twilio signs.
    params = _call(sid, "busy")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        f"{PUBLIC}/twilio/confirm/status?step=999", params
    )
    forged = await env.client.post(
        f"/twilio/confirm/status?step={step_id}",
        data=params,
        headers={"X-Twilio-Signature": signature},
    )
    assert forged.status_code == 403
    other = "CA" + "9" * 32
    await env.post(f"/twilio/confirm/status?step={step_id}", _call(other, "busy"))
    assert env.runner.store.get(step_id).status == StepStatus.waiting
    hangup = await env.post(f"/twilio/confirm/answer?step={step_id}", _call(other, "in-progress"))
    assert "<Hangup" in hangup.text


async def test_twilio_outage_retries_and_a_lost_answer_places_no_second_call(env: Env) -> None:
    appointment = await book(env.services)
    now = env.clock.now()
    call = env.runner.store.add(appointment.id, "call", now, 7, now)
    env.twilio.fail_next(1, 500, method="POST")  # Twilio refuses outright
    assert await env.runner.run_due() == [(call, "error_retry")]
    assert env.twilio.calls() == []
    env.clock.advance(timedelta(minutes=5))
    env.twilio.fail_next(1, 500, method="POST", apply=True)  # created, but the answer is lost
    assert await env.runner.run_due() == [(call, "error_retry")]
    assert len(env.twilio.calls()) == 1
    env.clock.advance(timedelta(minutes=5))
    assert await env.runner.run_due() == [(call, "placed")]
    assert len(env.twilio.calls()) == 1  # found on Twilio, not placed again
    step = env.runner.store.get(call)
    assert step.call_sid == env.twilio.calls()[0]["sid"]
    assert (step.status, step.attempts, step.errors) == ("waiting", 1, 2)


async def test_a_step_claimed_in_quiet_hours_waits_for_the_morning(env: Env) -> None:
    appointment = await book(env.services)
    step_id = env.runner.store.add(
        appointment.id, "whatsapp", at(2026, 11, 24, 22, 0), 5, at(2026, 11, 23, 10, 0)
    )
    env.clock.set(at(2026, 11, 24, 22, 30))  # the server was down; it is night now
    assert (step_id, "pending") in await env.runner.run_due()
    step = env.runner.store.get(step_id)
    assert step.due_at == at(2026, 11, 25, 9, 0) and step.attempts == 0
    assert env.twilio.messages() == []


async def test_lost_callbacks_and_unanswered_requests_do_not_wait_forever(env: Env) -> None:
    appointment = await book(env.services)
    call_id, _ = await env.runner.trigger(appointment.id, "call")
    env.twilio.open_window(PHONE)
    whatsapp_id, _ = await env.runner.trigger(appointment.id, "whatsapp")
    sid = env.twilio.calls()[-1]["sid"]
    env.twilio.set_call_status(sid, "no-answer")  # its status callback never reached us
    await env.runner.sweep()
    assert env.runner.store.get(call_id).status == StepStatus.waiting  # not silent for long yet
    env.clock.advance(timedelta(minutes=31))
    await env.runner.sweep()
    step = env.runner.store.get(call_id)
    assert (step.status, step.outcome) == ("pending", "no_answer")
    assert env.runner.store.get(whatsapp_id).status == StepStatus.waiting
    env.clock.set(appointment.start + timedelta(minutes=1))
    await env.runner.sweep()
    assert env.runner.store.get(whatsapp_id).outcome == "no_reply"


def test_cli_confirm_and_confirmations(
    tmp_path, clock: FixedClock, twilio: TwilioRestFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from voice_agent.store.db import make_engine

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    services = build(make_engine(url), clock, **twilio_settings(twilio.base_url))
    appointment = asyncio.run(book(services))
    services.close()
    env = {
        "VOICE_AGENT_DATABASE_URL": url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "VOICE_AGENT_TWILIO_API_BASE": twilio.base_url,
        "VOICE_AGENT_TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886",
        "VOICE_AGENT_WHATSAPP_REMINDER_TEMPLATE_SID": REMINDER,
        "VOICE_AGENT_PUBLIC_URL": PUBLIC,
    }
    runner = CliRunner()
    on_clock = CliRuntime(clock=clock)  # the CLI runs at the moment the test booked in
    listed = runner.invoke(cli, ["confirmations"], env=env, obj=on_clock)
    assert listed.exit_code == 0, listed.output
    assert "pending: 2" in listed.output and appointment.id in listed.output
    sent = runner.invoke(
        cli, ["confirm", appointment.id, "--via", "whatsapp"], env=env, obj=on_clock
    )
    assert sent.exit_code == 0, sent.output
    assert re.search(r"step \d+: whatsapp sent", sent.output)
    assert len(twilio.messages(f"whatsapp:{PHONE}")) == 1
    called = runner.invoke(cli, ["confirm", appointment.id, "--via", "call"], env=env, obj=on_clock)
    assert called.exit_code == 0 and "call placed" in called.output
    bad = runner.invoke(cli, ["confirm", "nope", "--via", "call"], env=env, obj=on_clock)
    assert bad.exit_code == 1 and "not an active appointment" in bad.output
    waiting = runner.invoke(cli, ["confirmations", "--status", "waiting"], env=env, obj=on_clock)
    assert "waiting: 2" in waiting.output and "Maria" not in waiting.output


def _call(sid: str, status: str = "in-progress") -> dict[str, str]:
    return {
        "CallSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": "+551134567800",
        "To": PHONE,
        "Direction": "outbound-api",
        "CallStatus": status,
    }


async def test_a_dead_process_s_call_is_found_not_placed_again(env: Env) -> None:
    """A process placed the call and died before recording it: after its lease the step is
    claimed again, the call is found on Twilio, and no second call rings the patient."""
    appointment = await book(env.services)
    now = env.clock.now()
    step_id = env.runner.store.add(appointment.id, "call", now, 7, now)
    [claimed] = env.runner.store.claim_due(now, "dead-process", step_id=step_id)
    assert claimed.attempts == 1
    assert env.runner.client is not None
    env.runner.client.calls.create(
        to=PHONE, from_="+551134567800", url=f"{PUBLIC}/twilio/confirm/answer?step={step_id}"
    )
    assert await env.runner.run_due() == []  # still leased to the dead process
    env.clock.advance(timedelta(minutes=4))
    assert await env.runner.run_due() == [(step_id, "placed")]
    assert len(env.twilio.calls()) == 1
    step = env.runner.store.get(step_id)
    assert (step.call_sid, step.attempts) == (env.twilio.calls()[0]["sid"], 1)


async def test_quiet_hours_hold_across_dst_when_steps_run(
    make_engine_for: Callable[[str], Engine], twilio: TwilioRestFake
) -> None:
    """A New York clinic the Monday after the clocks went back: 13:30 UTC was 09:30 last week
    but is 08:30 now, a quiet hour; the message waits for 09:00 EST (14:00 UTC)."""
    clock = FixedClock(datetime(2026, 10, 29, 16, 0, tzinfo=UTC))
    services = build(
        make_engine_for("sqlite"),
        clock,
        **twilio_settings(twilio.base_url),
        timezone="America/New_York",
        whatsapp_confirmations=False,
    )
    patient = await services.patients.find_or_create(PHONE, "en")
    offers = await services.booking.find_offers(
        "clinico-consulta", Preferences(dates=[date(2026, 11, 3)]), holder="h", limit=1
    )
    request = BookingRequest(patient_id=patient.id, channel="voice", holder="h")
    appointment = await services.booking.book(request, offers[0].hold_id)
    runner = ConfirmationRunner(services, make_twilio_client(services.settings))
    step_id = runner.store.add(
        appointment.id, "whatsapp", datetime(2026, 11, 2, 13, 30, tzinfo=UTC), 5, clock.now()
    )
    twilio.open_window(PHONE)
    clock.set(datetime(2026, 11, 2, 13, 30, tzinfo=UTC))
    assert (step_id, "pending") in await runner.run_due()
    assert runner.store.get(step_id).due_at == datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
    assert twilio.messages() == []
    clock.set(datetime(2026, 11, 2, 14, 0, tzinfo=UTC))
    assert (step_id, "sent") in await runner.run_due()
