"""Patient data at rest: after a full booking conversation (and a call's record), neither the
SQLite file nor its WAL, nor any PostgreSQL row, holds a phone, name, e-mail or transcript in
clear; the files are 0600; the app refuses bad keys; plaintext written before 0009 is
encrypted by the migration."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import SQLModel

from tests.conftest import NOW, make_settings
from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.clock import FixedClock
from voice_agent.crypto.binding import engine_keyring
from voice_agent.crypto.keys import looks_encrypted
from voice_agent.errors import ConfigurationError
from voice_agent.services import Services, build_services
from voice_agent.settings import load_settings
from voice_agent.store.db import make_engine, transaction
from voice_agent.store.migrate import upgrade
from voice_agent.store.tables import CallEvent, CallRecord, Patient

LOCAL = ("127.0.0.1", 50000)
PHONE = "+5511987650001"
NAME = "Maria da Silva"
EMAIL = "maria@example.com"
TURNS = (
    "Olá, bom dia!",
    NAME,
    EMAIL,
    "Quero marcar uma consulta com cardiologista amanhã de manhã",
    "a segunda",
    "sim",
)
SECRETS = (PHONE, PHONE[1:], NAME, "Silva", EMAIL, "cardiologista amanh")


def _book_by_chat(services: Services) -> None:
    with TestClient(create_app(services.settings, services), client=LOCAL) as client:
        for text in TURNS:
            response = client.post(
                "/api/chat", json={"session_id": "privacy-1", "text": text, "phone": PHONE}
            )
            assert response.status_code == 200, response.text
        assert "marcado" in response.json()["reply"]


def _record_a_call(services: Services) -> None:
    """What the voice path writes: a call record with the caller and transcript turns."""
    with transaction(services.engine) as session:
        session.add(CallRecord(call_sid="CA" + "7" * 32, caller=PHONE, transfer_summary=NAME))
        session.add(
            CallEvent(
                call_sid="CA" + "7" * 32, seq=1, kind="caller", content=f"Sou {NAME}, {EMAIL}"
            )
        )


def _build(engine: Engine) -> Services:
    settings = make_settings(engine.url.render_as_string(hide_password=False))
    return build_services(settings, clock=FixedClock(NOW), alerter=ConsoleAlerter(), engine=engine)


@pytest.fixture
def booked(db_kind: str, make_engine_for: Callable[[str], Engine]) -> Iterator[Services]:
    services = _build(make_engine_for(db_kind))
    _book_by_chat(services)
    _record_a_call(services)
    yield services


def test_the_booking_reads_back_in_clear(booked: Services) -> None:
    import asyncio

    patient = asyncio.run(booked.patients.find_by_phone(PHONE))
    assert patient is not None
    assert (patient.phone, patient.full_name, patient.email) == (PHONE, NAME, EMAIL)
    with transaction(booked.engine) as session:
        call = session.get(CallRecord, "CA" + "7" * 32)
        assert call is not None and call.caller == PHONE and call.transfer_summary == NAME


def test_no_patient_data_in_clear_in_any_row(booked: Services) -> None:
    """SQL on either database: every column of every row, as text."""
    found: list[str] = []
    with booked.engine.connect() as db:
        for table in SQLModel.metadata.sorted_tables:
            for row in db.execute(sa.select(sa.table(table.name, *map(sa.column, table.c.keys())))):
                text = " ".join(str(value) for value in row)
                found += [f"{table.name}: {s!r}" for s in SECRETS if s in text]
    assert found == []
    with booked.engine.connect() as db:
        stored = db.execute(sa.text("SELECT phone, full_name, email FROM patient")).one()
    assert all(looks_encrypted(value) for value in stored)


def test_no_patient_data_in_the_sqlite_file_or_its_wal(tmp_path: Path) -> None:
    path = tmp_path / "clinic.db"
    services = _build(make_engine(f"sqlite:///{path}"))
    _book_by_chat(services)
    _record_a_call(services)
    files = [p for p in tmp_path.iterdir() if p.name.startswith("clinic.db")]
    assert {p.name for p in files} >= {"clinic.db", "clinic.db-wal", "clinic.db.keys"}
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name
    for file in files:
        if file.name.endswith(".keys"):
            continue
        raw = file.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in raw, f"{secret!r} in clear in {file.name}"
    services.close()


def test_an_existing_database_file_is_tightened_to_0600(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    make_engine(f"sqlite:///{path}").dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_embedded_default_key_is_created_once_and_reused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    first = _build(make_engine(url))
    asyncio_run(first.patients.find_or_create(PHONE))
    key_file = tmp_path / "a.db.keys"
    content = key_file.read_text()
    first.close()
    second = _build(make_engine(url))
    assert key_file.read_text() == content
    assert asyncio_run(second.patients.find_by_phone(PHONE)) is not None
    second.close()


def asyncio_run(coro):  # type: ignore[no-untyped-def]
    import asyncio

    return asyncio.run(coro)


@pytest.mark.parametrize(
    "env, problem",
    [
        ({"VOICE_AGENT_ENCRYPTION_KEYS": "short"}, "VOICE_AGENT_ENCRYPTION_KEYS"),
        (
            {"VOICE_AGENT_ENCRYPTION_KEYS": "x2Yq3n0mQeGkD2sV9tB8cW1zR4uJ6hL0pA7fE5iN3oM=,abc"},
            "key #2 is not a Fernet key",
        ),
        (
            {
                "VOICE_AGENT_ENCRYPTION_KEYS": "x2Yq3n0mQeGkD2sV9tB8cW1zR4uJ6hL0pA7fE5iN3oM=",
                "VOICE_AGENT_LOOKUP_KEY": "too-short",
            },
            "VOICE_AGENT_LOOKUP_KEY",
        ),
        (
            {"VOICE_AGENT_ENCRYPTION_KEYS": "x2Yq3n0mQeGkD2sV9tB8cW1zR4uJ6hL0pA7fE5iN3oM="},
            "must be set together",
        ),
    ],
)
def test_bad_keys_stop_the_start_with_the_variable_named(
    env: dict[str, str], problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=problem) as raised:
        load_settings()
    assert "x2Yq3n0m" not in str(raised.value)


def test_a_server_database_without_keys_refuses_to_start(
    make_engine_for: Callable[[str], Engine],
) -> None:
    if os.environ.get("VOICE_AGENT_TEST_DATABASE_URL") is None:
        pytest.skip("VOICE_AGENT_TEST_DATABASE_URL unset")
    engine = make_engine_for("postgresql")
    from voice_agent.settings import Settings

    settings = Settings(database_url=engine.url.render_as_string(hide_password=False))
    # another test in this process may have given this database keys: forget them
    from voice_agent.crypto import binding

    binding._KNOWN.pop(binding.engine_url(engine), None)
    fresh = make_engine(binding.engine_url(engine))
    with pytest.raises(ConfigurationError, match="VOICE_AGENT_ENCRYPTION_KEYS"):
        build_services(settings, clock=FixedClock(NOW), engine=fresh)
    fresh.dispose()


def test_migration_0009_encrypts_rows_written_in_clear(
    db_kind: str, make_engine_for: Callable[[str], Engine]
) -> None:
    engine = make_engine_for(db_kind, migrated=False)
    upgrade(engine, "0005_merge_heads")
    with engine.begin() as db:
        db.execute(
            sa.text(
                "INSERT INTO patient (id, phone, full_name, email, birth_date, created_at, "
                "updated_at) VALUES ('p1', :phone, :name, :email, :born, :at, :at)"
            ),
            {"phone": PHONE, "name": NAME, "email": EMAIL, "born": date(1980, 5, 17), "at": NOW},
        )
        db.execute(
            sa.text(
                "INSERT INTO call_event (call_sid, seq, at, kind, content) "
                "VALUES ('CA1', 1, :at, 'caller', :said)"
            ),
            {"at": NOW, "said": f"meu nome é {NAME}"},
        )
        db.execute(
            sa.text(
                "INSERT INTO conversation_state (key, channel, state, updated_at) "
                "VALUES ('plainsha', 'whatsapp', :state, :at)"
            ),
            {"state": f'{{"phone": "{PHONE}"}}', "at": NOW},
        )
    services = _build(engine)  # migrates to 0009 with the configured keys
    with engine.connect() as db:
        row = db.execute(sa.text("SELECT phone, full_name, email, birth_date FROM patient")).one()
        said = db.execute(sa.text("SELECT content FROM call_event")).scalar_one()
        conversations = db.execute(sa.text("SELECT count(*) FROM conversation_state")).scalar()
    assert conversations == 0  # keyed by a plain hash of the phone: dropped
    assert all(looks_encrypted(str(value)) for value in (*row, said))
    patient = asyncio_run(services.patients.find_by_phone(PHONE))
    assert patient is not None
    assert (patient.full_name, patient.email, patient.birth_date) == (
        NAME,
        EMAIL,
        date(1980, 5, 17),
    )
    assert patient.phone_hash == engine_keyring(engine).lookup_hash(PHONE)
    with transaction(engine) as session:
        assert session.get(Patient, "p1") is not None


def test_the_public_clinic_api_serves_no_staff_contacts_or_calendar_ids(tmp_path: Path) -> None:
    import yaml

    from voice_agent.settings import DEFAULT_CLINIC_FILE

    data = yaml.safe_load(DEFAULT_CLINIC_FILE.read_text(encoding="utf-8"))
    data["doctors"][0]["calendar_id"] = "secret-calendar@group.calendar.google.com"
    clinic_file = tmp_path / "clinic.yaml"
    clinic_file.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    engine = make_engine(f"sqlite:///{tmp_path / 'api.db'}")
    settings = make_settings(str(engine.url), clinic_file=clinic_file)
    services = build_services(settings, clock=FixedClock(NOW), engine=engine)
    with TestClient(create_app(settings, services)) as client:
        response = client.get("/api/clinic")
    services.close()
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == data["name"] and body["phone"] == data["phone"]
    assert {s["id"] for s in body["services"]} == {s["id"] for s in data["services"]}
    for private in (data["staff_phone"], data["doctor_whatsapp"], "secret-calendar"):
        assert private not in response.text
    for key in ("staff_phone", "doctor_whatsapp", "calendar_id", "calendar_backend", "retention"):
        assert key not in response.text
