"""Booking for a child or relative, as the caller meets it: the appointment records who attends
(encrypted at rest), the caller stays the patient and the contact; staff see it in
`voice-agent appointments`, `patient export` includes it and `patient erase` removes it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import select
from typer.testing import CliRunner

from tests.conftest import NOW, make_settings
from tests.integration.test_tools import call, context
from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.cli import app
from voice_agent.cli.context import CliRuntime
from voice_agent.clock import FixedClock
from voice_agent.services import Services, build_services
from voice_agent.settings import Settings
from voice_agent.store.db import make_engine, transaction
from voice_agent.store.tables import Appointment, Patient

PHONE = "+5511987654201"
LOCAL = ("127.0.0.1", 50000)


def _cli(settings: Settings, *args: str) -> Any:
    runtime = CliRuntime(clock=FixedClock(NOW), settings=settings)
    return CliRunner().invoke(app, list(args), obj=runtime)


def _book_for_daughter(settings: Settings) -> dict:
    services = build_services(
        settings,
        clock=FixedClock(NOW),
        alerter=ConsoleAlerter(),
        engine=make_engine(settings.database_url),
    )
    with TestClient(create_app(settings, services), client=LOCAL) as client:

        def say(text: str) -> dict:
            response = client.post(
                "/api/chat", json={"session_id": "mother", "text": text, "phone": PHONE}
            )
            assert response.status_code == 200, response.text
            return response.json()

        offered = say(
            "Olá, meu nome é Carla Dias, quero marcar pediatria para minha filha Sofia Costa"
        )
        assert offered["state"]["stage"] == "offering", offered["reply"]
        assert say("1")["state"]["stage"] == "confirm"
        booked = say("sim")
    services.close()
    return booked


def test_a_relatives_booking_records_who_attends_with_the_caller_as_contact(
    tmp_path: Path,
) -> None:
    db = tmp_path / "relatives.db"
    settings = make_settings(f"sqlite:///{db}")
    booked = _book_for_daughter(settings)
    assert booked["state"]["appointment"]["action"] == "booked"
    assert booked["state"]["appointment"]["for_whom"] == "Sofia Costa"
    assert "Sofia Costa" in booked["reply"]

    services = build_services(settings, clock=FixedClock(NOW), alerter=ConsoleAlerter())
    with transaction(services.engine) as session:
        appointment = session.execute(select(Appointment)).scalar_one()
        patient = session.get(Patient, appointment.patient_id)
        assert appointment.attendee_name == "Sofia Costa"
        assert patient is not None and patient.full_name == "Carla Dias"  # the contact
    services.close()
    with sqlite3.connect(db) as raw:  # encrypted at rest like the patient's own name
        (stored,) = raw.execute("SELECT attendee_name FROM appointment").fetchone()
    assert stored and "Sofia" not in stored

    listed = _cli(settings, "appointments", "--phone", PHONE)
    assert listed.exit_code == 0, listed.output
    assert "attendee_name=Sofia Costa" in listed.output

    exported = _cli(settings, "patient", "export", PHONE)
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.output)["appointments"][0]["attendee_name"] == "Sofia Costa"

    erased = _cli(settings, "patient", "erase", PHONE, "--yes")
    assert erased.exit_code == 0, erased.output
    services = build_services(settings, clock=FixedClock(NOW), alerter=ConsoleAlerter())
    with transaction(services.engine) as session:
        kept = session.execute(select(Appointment)).scalar_one()
        assert kept.attendee_name is None and kept.status.value == "booked"
    services.close()


async def test_book_appointment_takes_the_attendee_for_the_llm_paths(services: Services) -> None:
    ctx = context(services, phone="+5511987654202")
    await call(services, ctx, "register_patient", full_name="Pedro Alves")
    offers = await call(services, ctx, "find_slots", service="pediatria")
    assert offers["ok"], offers
    booked = await call(
        services,
        ctx,
        "book_appointment",
        option="1",
        confirmed_by_patient=True,
        for_whom="  Lucas   Alves ",
    )
    assert booked["ok"], booked
    assert booked["booked"]["for_whom"] == "Lucas Alves"
    listed = await call(services, ctx, "list_my_appointments")
    assert listed["appointments"][0]["for_whom"] == "Lucas Alves"
    too_long = await call(
        services, ctx, "book_appointment", option="2", confirmed_by_patient=True, for_whom="x" * 500
    )
    assert not too_long["ok"]  # a clear refusal, not a truncated name
    own = await call(services, ctx, "find_slots", service="cardiologia")
    mine = await call(
        services,
        ctx,
        "book_appointment",
        option=own["options"][0]["option"],
        confirmed_by_patient=True,
    )
    assert mine["ok"] and "for_whom" not in mine["booked"]
    with transaction(services.engine) as session:
        names = {a.attendee_name for a in session.execute(select(Appointment)).scalars()}
    assert names == {"Lucas Alves", None}
