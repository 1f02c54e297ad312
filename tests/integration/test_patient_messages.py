"""Patients are told in writing: booking, reschedule and cancellation each send a WhatsApp
message (free text inside the 24-hour window, the event's template for the patient's language
outside it), through the outbox and the twilio SDK against the local Twilio REST fake; a message
that fails after Twilio accepted it (signed status callback, 63016) is resent as a template or
escalated to the staff, never counted as delivered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from twilio.request_validator import RequestValidator

from tests.fakes.twilio_rest_fake import TwilioRestFake
from tests.integration.integration_env import ACCOUNT_SID, AUTH_TOKEN, build, twilio_settings
from voice_agent.app import create_app
from voice_agent.clock import FixedClock
from voice_agent.scheduling.booking import BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services
from voice_agent.store.outbox_tables import OutboxStatus
from voice_agent.store.tables import Appointment, InteractionKind

PUBLIC = "https://clinic.example"
DOCTOR = "whatsapp:+5511987654321"
BOOKED = {"pt-BR": "HX" + "1" * 32, "ru": "HX" + "2" * 32}
MOVED = {"pt-BR": "HX" + "3" * 32}
CANCELLED = {"pt-BR": "HX" + "4" * 32}
PHONE = "+5511987658001"


@pytest.fixture
def twilio(clock: FixedClock) -> Iterator[TwilioRestFake]:
    with TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN, clock) as fake:
        fake.add_template(BOOKED["pt-BR"], "Consulta marcada, {{1}}: {{2}}, {{3}}.")
        fake.add_template(BOOKED["ru"], "Вы записаны, {{1}}: {{2}}, {{3}}.")
        fake.add_template(MOVED["pt-BR"], "Consulta remarcada, {{1}}: de {{4}} para {{2}}.")
        fake.add_template(CANCELLED["pt-BR"], "Consulta cancelada, {{1}}: {{2}}.")
        yield fake


@pytest.fixture
def pservices(
    db_kind: str,
    make_engine_for: Callable[[str], Engine],
    clock: FixedClock,
    twilio: TwilioRestFake,
) -> Services:
    return build(
        make_engine_for(db_kind),
        clock,
        **twilio_settings(twilio.base_url),
        public_url=PUBLIC,
        whatsapp_booked_templates=BOOKED,
        whatsapp_rescheduled_templates=MOVED,
        whatsapp_cancelled_templates=CANCELLED,
        outbox_max_attempts=3,
    )


async def _book(services: Services, phone: str, language: str = "pt-BR") -> Appointment:
    patient = await services.patients.find_or_create(phone, language)
    await services.patients.update(patient.id, full_name="Maria Aparecida Silva")
    offers = await services.booking.find_offers("clinico-consulta", Preferences(), holder=phone)
    request = BookingRequest(patient_id=patient.id, channel="voice", holder=phone)
    return await services.booking.book(request, offers[0].hold_id)


async def _move_and_cancel(services: Services, appointment: Appointment, phone: str) -> None:
    offers = await services.booking.find_offers(
        "clinico-consulta", Preferences(periods=["afternoon"]), holder=phone
    )
    request = BookingRequest(patient_id=appointment.patient_id, channel="voice", holder=phone)
    await services.booking.reschedule(request, appointment.id, offers[0].hold_id)
    await services.outbox.drain()
    await services.booking.cancel(appointment.patient_id, appointment.id, channel="voice")
    await services.outbox.drain()


async def test_booking_moving_and_cancelling_are_written_inside_the_window(
    pservices: Services, twilio: TwilioRestFake
) -> None:
    services = pservices
    appointment = await _book(services, PHONE)
    await services.interactions.record(
        InteractionKind.information, channel="whatsapp", patient_id=appointment.patient_id
    )  # the patient wrote to us a moment ago: free text is allowed
    twilio.open_window(PHONE)
    await services.outbox.drain()
    await _move_and_cancel(services, appointment, PHONE)
    bodies = [m["body"] for m in twilio.messages(f"whatsapp:{PHONE}")]
    assert len(bodies) == 3
    assert bodies[0].startswith("Olá, Maria! Sua consulta na Clínica São Lucas está marcada para")
    assert bodies[1].startswith("Olá, Maria! Sua consulta na Clínica São Lucas mudou de ")
    assert "às 08:00 para " in bodies[1]
    assert "foi cancelada" in bodies[2]
    assert all(m["content_sid"] is None for m in twilio.messages(f"whatsapp:{PHONE}"))


async def test_outside_the_window_each_event_uses_its_template_in_the_patient_language(
    pservices: Services, twilio: TwilioRestFake
) -> None:
    services = pservices
    appointment = await _book(services, PHONE)
    await services.outbox.drain()
    await _move_and_cancel(services, appointment, PHONE)
    await _book(services, "+5511987658002", language="ru")
    await services.outbox.drain()
    sent = twilio.messages(f"whatsapp:{PHONE}")
    assert [m["content_sid"] for m in sent] == [BOOKED["pt-BR"], MOVED["pt-BR"], CANCELLED["pt-BR"]]
    assert sent[1]["body"].startswith("Consulta remarcada, Maria: de terça-feira, 24 de novembro")
    russian = twilio.messages("whatsapp:+5511987658002")
    assert [m["content_sid"] for m in russian] == [BOOKED["ru"]]
    assert services.outbox.counts()["dead"] == 0


def _callback(client: TestClient, url: str, form: dict[str, str], token: str = AUTH_TOKEN) -> int:
    path = url.removeprefix(PUBLIC)
    signature = RequestValidator(token).compute_signature(url, form)
    response = client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    return response.status_code


async def test_a_message_failing_after_acceptance_is_resent_as_a_template_then_escalated(
    pservices: Services, twilio: TwilioRestFake
) -> None:
    services = pservices
    twilio.open_window(DOCTOR)
    appointment = await _book(services, PHONE)
    await services.interactions.record(
        InteractionKind.information, channel="whatsapp", patient_id=appointment.patient_id
    )
    twilio.open_window(PHONE)  # Twilio accepts the free text …
    await services.outbox.drain()
    [first] = twilio.messages(f"whatsapp:{PHONE}")
    assert first["content_sid"] is None
    url, form = twilio.fail_message(first["sid"], 63016)  # … and WhatsApp refuses it later
    assert url == f"{PUBLIC}/twilio/message-status"
    with TestClient(create_app(services.settings, services)) as client:
        assert _callback(client, url, form, token="wrong") == 403
        assert _callback(client, url, dict(form, MessageSid="nope", SmsSid="")) in (400, 403)
        assert _callback(client, url, form) == 204
        assert _callback(client, url, form) == 204  # Twilio retries: nothing changes twice
        row = next(r for r in services.outbox.rows() if r.kind == "whatsapp")
        assert row.status == OutboxStatus.pending and "63016" in (row.last_error or "")
        await services.outbox.drain()
        sent = twilio.messages(f"whatsapp:{PHONE}")
        assert [m["content_sid"] for m in sent] == [None, BOOKED["pt-BR"]]
        # The template fails too: a dead letter, and the staff are told whom to call.
        url, form = twilio.fail_message(sent[1]["sid"], 63024)
        assert _callback(client, url, form) == 204
        await services.outbox.drain()
    row = next(r for r in services.outbox.rows() if r.kind == "whatsapp")
    assert row.status == OutboxStatus.dead and row.delivered_at is None
    [alert] = twilio.messages(DOCTOR)
    assert "A mensagem para Maria Aparecida Silva (+5511987658001)" in alert["body"]
    assert "Avise o paciente por telefone." in alert["body"]


def test_delivered_status_callbacks_change_nothing(tmp_path: Path) -> None:
    """A 'delivered' or 'sent' status for an unknown message is acknowledged and ignored."""
    from tests.conftest import NOW, make_settings
    from voice_agent.services import build_services
    from voice_agent.store.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'status.db'}")
    settings = make_settings(
        str(engine.url),
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        public_url=PUBLIC,
    )
    services = build_services(settings, clock=FixedClock(NOW), engine=engine)
    url = f"{PUBLIC}/twilio/message-status"
    with TestClient(create_app(settings, services)) as client:
        for status in ("sent", "delivered", "read", "failed"):
            form = {"MessageSid": "SM" + "a" * 32, "MessageStatus": status}
            assert _callback(client, url, form) == 204
    assert asyncio.run(asyncio.sleep(0, services.outbox.counts()))["pending"] == 0
    services.close()


async def test_patients_can_be_told_by_sms(
    make_engine_for: Callable[[str], Engine], clock: FixedClock, twilio: TwilioRestFake
) -> None:
    """With the SMS channel there is no window and no template: the text always goes."""
    services = build(
        make_engine_for("sqlite"),
        clock,
        **twilio_settings(twilio.base_url),
        twilio_from_number="+551134567800",
        patient_message_channel="sms",
    )
    appointment = await _book(services, PHONE)
    await services.outbox.drain()
    await services.booking.cancel(appointment.patient_id, appointment.id, channel="voice")
    await services.outbox.drain()
    sent = twilio.messages(PHONE)
    assert [m["from"] for m in sent] == ["+551134567800", "+551134567800"]
    assert "está marcada para" in sent[0]["body"] and "foi cancelada" in sent[1]["body"]
    assert services.outbox.counts()["pending"] == 0
