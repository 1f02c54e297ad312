"""Migrations build exactly the tables the code declares, keep data across upgrades, and the
clinic can be re-loaded without losing appointments."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel

from tests.conftest import RUSSIAN_CLINIC_FILE
from voice_agent.clinic import load_clinic_file
from voice_agent.clinic.repository import load_active_clinic, save_clinic
from voice_agent.scheduling.booking import BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services
from voice_agent.store.db import make_engine, reading
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


def test_a_reading_transaction_neither_waits_for_a_writer_nor_blocks_one(tmp_path: Path) -> None:
    """SQLite: every other transaction begins IMMEDIATE (the write lock at once); ``reading``
    begins deferred, so a text turn's read goes on while another connection writes (it would
    wait for the 30 s busy timeout, then fail), and a writer is not held up by it."""
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite")
    upgrade(engine)
    with engine.begin() as writer:
        writer.execute(text("CREATE TABLE probe (n INTEGER)"))
        with reading(engine) as reader:
            assert reader.execute(text("SELECT count(*) FROM patient")).scalar() == 0
        with pytest.raises(OperationalError, match="locked"), engine.connect() as other:
            other.connection.driver_connection.execute("PRAGMA busy_timeout=200")  # type: ignore[union-attr]
            other.begin()  # BEGIN IMMEDIATE: another writer waits for the lock, then gives up
    with reading(engine) as reader:
        assert reader.execute(text("SELECT count(*) FROM probe")).scalar() == 0
        with engine.begin() as writer:
            writer.execute(text("INSERT INTO probe VALUES (1)"))
    engine.dispose()
