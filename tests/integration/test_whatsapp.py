"""WhatsApp through the twilio SDK against the local Twilio REST fake: confirmations in the
patient's language (Body inside the 24-hour window, template outside), alerts deduplicated and
rate-limited, dead letters alerted, and nothing sent twice when an answer is lost."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.fakes.twilio_rest_fake import TwilioRestFake
from tests.integration.integration_env import ACCOUNT_SID, AUTH_TOKEN, build, twilio_settings
from voice_agent.clock import FixedClock
from voice_agent.scheduling.booking import BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services
from voice_agent.store.tables import InteractionKind

CONFIRM = "HX" + "c" * 32
ALERT = "HX" + "d" * 32
DOCTOR = "whatsapp:+5511987654321"


@pytest.fixture
def twilio(clock: FixedClock) -> Iterator[TwilioRestFake]:
    with TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN, clock) as fake:
        fake.add_template(CONFIRM, "Consulta confirmada, {{1}}: {{2}}, {{3}}.")
        fake.add_template(ALERT, "Alerta: {{1}}")
        yield fake


@pytest.fixture
def wservices(
    make_engine_for: Callable[[str], Engine], clock: FixedClock, twilio: TwilioRestFake
) -> Services:
    return build(
        make_engine_for("sqlite"),
        clock,
        **twilio_settings(twilio.base_url),
        whatsapp_confirmation_template_sid=CONFIRM,
        whatsapp_alert_template_sid=ALERT,
        outbox_max_attempts=3,
        alert_max_per_hour=3,
    )


async def book(services: Services, phone: str, language: str | None = None) -> str:
    patient = await services.patients.find_or_create(phone, language)
    await services.patients.update(patient.id, full_name="Ivan Petrov")
    offers = await services.booking.find_offers("clinico-consulta", Preferences(), holder=phone)
    request = BookingRequest(patient_id=patient.id, channel="voice", holder=phone)
    return (await services.booking.book(request, offers[0].hold_id)).patient_id


async def test_confirmation_is_a_template_outside_the_window_and_body_inside(
    wservices: Services, twilio: TwilioRestFake
) -> None:
    services = wservices
    await book(services, "+5511987657001")
    patient_id = await book(services, "+5511987657002", language="ru")
    # The second patient wrote to us on WhatsApp a moment ago: the window is open.
    await services.interactions.record(
        InteractionKind.information, channel="whatsapp", patient_id=patient_id
    )
    twilio.open_window("+5511987657002")
    await services.outbox.drain()
    first = twilio.messages("whatsapp:+5511987657001")
    assert len(first) == 1 and first[0]["content_sid"] == CONFIRM
    assert first[0]["body"].startswith("Consulta confirmada, Ivan: ")
    assert first[0]["from"] == "whatsapp:+14155238886"
    second = twilio.messages("whatsapp:+5511987657002")
    assert len(second) == 1 and second[0]["content_sid"] is None
    assert second[0]["body"].startswith("Здравствуйте, Ivan! Вы записаны в Clínica São Lucas")


async def test_a_closed_window_falls_back_to_the_template(
    wservices: Services, twilio: TwilioRestFake
) -> None:
    services = wservices
    patient_id = await book(services, "+5511987657003", language="en")
    await services.interactions.record(
        InteractionKind.information, channel="whatsapp", patient_id=patient_id
    )  # we think the window is open, Twilio says 63016
    await services.outbox.drain()
    sent = twilio.messages("whatsapp:+5511987657003")
    assert [m["content_sid"] for m in sent] == [CONFIRM]
    assert (63016, f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json") in twilio.state.rejected


async def test_lost_answers_and_outages_send_each_message_once(
    wservices: Services, twilio: TwilioRestFake, clock: FixedClock
) -> None:
    services = wservices
    await book(services, "+5511987657004")
    await book(services, "+5511987657005")
    twilio.fail_next(1, 500, apply=True)  # sent, but the answer is a 500
    twilio.fail_next(1, 429)
    await services.outbox.drain()
    for _ in range(3):
        clock.advance(timedelta(minutes=5))
        await services.outbox.drain()
    assert len(twilio.messages("whatsapp:+5511987657004")) == 1
    assert len(twilio.messages("whatsapp:+5511987657005")) == 1
    assert services.outbox.counts()["pending"] == 0


async def test_one_outage_is_one_alert_and_alerts_are_rate_limited(
    wservices: Services, twilio: TwilioRestFake, clock: FixedClock
) -> None:
    services = wservices
    twilio.open_window(DOCTOR)
    for _ in range(100):
        await services.alerter.alert("integration", "Google Calendar is not answering")
    await services.outbox.drain()
    doctor = twilio.messages(DOCTOR)
    assert len(doctor) == 1
    assert doctor[0]["body"] == "⚠️ Clínica São Lucas: Google Calendar is not answering"
    for kind in ("failure", "booking_failed", "dead_letter", "calendar_drift"):
        await services.alerter.alert(kind, f"{kind} happened")
    await services.outbox.drain()
    assert len(twilio.messages(DOCTOR)) == 3  # at most 3 per hour in this test
    clock.advance(timedelta(hours=1, minutes=1))
    await services.alerter.alert("integration", "Google Calendar is not answering")
    await services.outbox.drain()
    assert len(twilio.messages(DOCTOR)) == 4  # a new window, a new alert


async def test_dead_letters_alert_the_doctor_once_with_a_template(
    wservices: Services, twilio: TwilioRestFake, clock: FixedClock
) -> None:
    services = wservices
    for i in range(3):
        await book(services, f"+551198765710{i}")
    twilio.fail_next(9, 503)  # three attempts each, then dead letters
    await services.outbox.drain()
    for _ in range(3):
        clock.advance(timedelta(minutes=10))
        await services.outbox.drain()
    counts = services.outbox.counts()
    assert counts["dead"] == 3 and counts["pending"] == 0
    alerts = twilio.messages(DOCTOR)  # the doctor's window is closed: the alert template
    assert len(alerts) == 3 and {a["content_sid"] for a in alerts} == {ALERT}
    numbers = {f"+551198765710{i}" for i in range(3)}
    for alert in alerts:  # one per appointment, saying whom to call, in the clinic's language
        assert "A mensagem para Ivan Petrov (+551198765710" in alert["body"]
        assert "confirmação da marcação" in alert["body"]
        assert "Avise o paciente por telefone." in alert["body"]
        numbers -= {n for n in numbers if n in alert["body"]}
    assert not numbers
    dead = services.outbox.rows("dead")
    assert {json.loads(r.payload)["appointment_id"] for r in dead} and len(dead) == 3
    assert services.outbox.retry(all_dead=True) == 3
    await services.outbox.drain()
    assert len([m for m in twilio.messages() if m["to"] != DOCTOR]) == 3


async def test_alerts_never_raise_into_the_caller(wservices: Services, tmp_path: Path) -> None:
    services = wservices
    services.engine.dispose()
    broken = services.alerter
    broken._engine = None  # type: ignore[attr-defined]
    await broken.alert("failure", "the database is gone")  # logged, not raised
