"""Migrations build exactly the tables the code declares, keep data across upgrades, and the
clinic can be re-loaded without losing appointments."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from tests.conftest import RUSSIAN_CLINIC_FILE
from voice_agent.clinic import load_clinic_file
from voice_agent.clinic.repository import load_active_clinic, save_clinic
from voice_agent.scheduling.booking import BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services
from voice_agent.store.migrate import current_revisions, head_revisions, upgrade


def test_migrations_match_the_tables(any_services: Services) -> None:
    engine = any_services.engine
    assert len(head_revisions()) == 1, f"join the migration heads: {sorted(head_revisions())}"
    assert current_revisions(engine) == head_revisions()
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == []
    upgrade(engine)  # idempotent


async def test_reloading_the_clinic_keeps_appointments(any_services: Services) -> None:
    patient = await any_services.patients.find_or_create("+5511987659999")
    offers = await any_services.booking.find_offers(
        "clinico-consulta", Preferences(), holder="conv"
    )
    request = BookingRequest(patient_id=patient.id, channel="test", holder="conv")
    appointment = await any_services.booking.book(request, offers[0].hold_id)
    warnings = save_clinic(any_services.engine, load_clinic_file(RUSSIAN_CLINIC_FILE), "ru.yaml")
    assert any("removed doctors" in w for w in warnings)
    assert load_active_clinic(any_services.engine).country == "RU"
    kept = await any_services.booking.list_for_patient(patient.id)
    assert [a.id for a in kept] == [appointment.id]
