"""Alerts a person can act on: in the clinic's language, naming the patient, their number, what
they asked and where to read it; dead letters saying what they mean for which appointment; and
never an alert's text in the log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from twilio.request_validator import RequestValidator

from tests.conftest import NOW, make_settings
from tests.fakes.google_fake import GoogleFake
from tests.fakes.twilio_rest_fake import TwilioRestFake
from tests.integration.integration_env import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SHEET_ID,
    build,
    calendar_id,
    google_settings,
    twilio_settings,
)
from tests.integration.test_google import CARLOS, book
from tests.migrated import migrated_sqlite
from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.clock import FixedClock
from voice_agent.scheduling.booking import BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import build_services
from voice_agent.settings import DEFAULT_CLINIC_FILE
from voice_agent.store.db import make_engine

LOCAL = ("127.0.0.1", 50000)
PUBLIC = "https://clinic.example"
URL = f"{PUBLIC}/twilio/messaging"
DOCTOR = "whatsapp:+5511987654321"


def _whatsapp(client: TestClient, body: str, sender: str) -> None:
    params = {"From": sender, "To": "whatsapp:+551134567800", "Body": body}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(URL, params)
    response = client.post(
        "/twilio/messaging", data=params, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def twilio(clock: FixedClock) -> Iterator[TwilioRestFake]:
    with TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN, clock) as fake:
        yield fake


def test_a_hand_over_names_the_patient_the_number_the_question_and_the_conversation(
    tmp_path: Path, twilio: TwilioRestFake, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(migrated_sqlite(tmp_path / "handover.db"))
    settings = make_settings(str(engine.url), public_url=PUBLIC, **twilio_settings(twilio.base_url))
    services = build_services(settings, clock=FixedClock(NOW), engine=engine)
    twilio.open_window(DOCTOR)
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(services.settings, services), client=LOCAL) as client:
        import asyncio

        patient = asyncio.run(services.patients.find_or_create("+5511987653001", "pt-BR"))
        asyncio.run(services.patients.update(patient.id, full_name="Maria Aparecida Silva"))
        _whatsapp(client, "quero falar com uma atendente", "whatsapp:+5511987653001")
        # A second patient a minute later is a second alert (not deduplicated away).
        _whatsapp(client, "quero falar com uma atendente", "whatsapp:+5511987653002")
        asyncio.run(services.outbox.drain())
    sent = [m["body"] for m in twilio.messages(DOCTOR)]
    services.close()
    assert len(sent) == 2
    first, second = sorted(sent, key=lambda body: "Maria" not in body)
    assert first.startswith("⚠️ Clínica São Lucas: Maria Aparecida Silva (+5511987653001, ")
    assert "fala português) pediu para falar com a recepção pelo WhatsApp" in first
    assert "“quero falar com uma atendente”" in first
    assert "Ligue de volta para +5511987653001." in first
    assert "Conversa " in first
    assert "paciente sem nome cadastrado (+5511987653002" in second
    logged = caplog.text
    for secret in ("Maria", "Aparecida", "987653001", "987653002", "atendente"):
        assert secret not in logged


async def test_a_refused_reschedule_says_whom_to_call_and_which_time_still_holds(
    make_engine_for: Callable[[str], Engine], clock: FixedClock, tmp_path: Path
) -> None:
    with GoogleFake() as google, TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN, clock) as twilio:
        google.add_spreadsheet(SHEET_ID)
        clinic = yaml.safe_load(DEFAULT_CLINIC_FILE.read_text(encoding="utf-8"))
        for doctor in clinic["doctors"]:
            google.add_calendar(calendar_id(doctor["id"]))
        twilio.open_window(DOCTOR)
        services = build(
            make_engine_for("sqlite"),
            clock,
            **google_settings(google.base_url, tmp_path),
            **twilio_settings(twilio.base_url),
            whatsapp_confirmations=False,
        )
        appointment = await book(services, "+5511987651111", "conv-1")
        await services.outbox.drain()
        offers = await services.booking.find_offers(
            "cardio-consulta",
            Preferences(doctor_id=CARLOS, periods=["afternoon"]),
            holder="conv-1",
        )
        request = BookingRequest(
            patient_id=appointment.patient_id, channel="voice", holder="conv-1"
        )
        await services.booking.reschedule(request, appointment.id, offers[0].hold_id)
        google.fail_next(1, 400, reason="invalid", path_contains="/events")  # a refusal
        await services.outbox.drain()
        await services.outbox.drain()
        alerts = [m["body"] for m in twilio.messages(DOCTOR)]
        services.close()
    assert len(alerts) == 1
    text = alerts[0]
    assert "a Google Agenda recusou mudar a consulta de Maria Aparecida Silva para " in text
    assert "lá ela continua marcada para terça-feira, 24 de novembro, às 09:00" in text
    assert "Ligue para Maria Aparecida Silva em +5511987651111" in text


async def test_staff_texts_follow_the_clinic_language(tmp_path: Path) -> None:
    from tests.conftest import RUSSIAN_CLINIC_FILE
    from voice_agent.alerts import alert_staff

    engine = make_engine(migrated_sqlite(tmp_path / "ru.db"))
    alerter = ConsoleAlerter()
    services = build_services(
        make_settings(str(engine.url), clinic_file=RUSSIAN_CLINIC_FILE),
        clock=FixedClock(NOW),
        alerter=alerter,
        engine=engine,
    )
    await alert_staff(services, "stream_error", where="`voice-agent call CA1`")
    services.close()
    assert alerter.sent == [
        (
            "stream_error",
            "Во время звонка пропал звук; пациент мог остаться без ответа. Перезвоните. "
            "`voice-agent call CA1`",
        )
    ]


async def test_alerts_command_shows_the_texts_the_log_does_not(
    tmp_path: Path, clock: FixedClock
) -> None:
    from typer.testing import CliRunner

    from voice_agent.alerts import alert_patient_request
    from voice_agent.cli import app
    from voice_agent.cli.context import CliRuntime

    settings = make_settings(f"sqlite:///{tmp_path / 'alerts.db'}")
    services = build_services(settings, clock=clock)  # alerts go through the outbox
    await alert_patient_request(
        services,
        "callback",
        patient=None,
        phone="+5511987650999",
        channel="web",
        conversation_id="conv-9",
        question="posso levar meu filho?",
    )
    services.close()
    result = CliRunner().invoke(app, ["alerts"], obj=CliRuntime(clock=clock, settings=settings))
    assert result.exit_code == 0, result.output
    assert "callback: paciente sem nome cadastrado (+5511987650999" in result.output
    assert "“posso levar meu filho?”. Conversa conv-9." in result.output
