"""The privacy commands as staff use them: `keys rotate`, `privacy purge` (and its job),
`patient export` and `patient erase`, on a database filled through the services."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from cryptography.fernet import Fernet
from sqlmodel import select
from typer.testing import CliRunner

from tests.conftest import NOW, TEST_LOOKUP_KEY, make_settings
from voice_agent.cli import app
from voice_agent.cli.context import CliRuntime
from voice_agent.clock import FixedClock
from voice_agent.conversation.state import ConversationState, ConversationStore
from voice_agent.crypto.keys import Keyring, keyring_from_values
from voice_agent.privacy.jobs import purge_expired_data
from voice_agent.scheduling.booking import BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services, build_services
from voice_agent.settings import DEFAULT_CLINIC_FILE, Settings
from voice_agent.store.conversation_tables import ConversationRecord
from voice_agent.store.db import make_engine, transaction
from voice_agent.store.encrypted_fields import encrypted_tables, rewrite
from voice_agent.store.outbox_tables import OutboxRow, OutboxStatus
from voice_agent.store.tables import (
    Appointment,
    CallEvent,
    CallRecord,
    Interaction,
    InteractionKind,
    Patient,
)

PHONE = "+5511987650002"
NAME = "João Pereira"
EMAIL = "joao@example.com"
CALL = "CA" + "5" * 32
OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
NEW_LOOKUP = "another-lookup-key-of-at-least-32-chars"


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return make_settings(f"sqlite:///{tmp_path / 'clinic.db'}", **overrides)


def _cli(settings: Settings, *args: str, **kwargs: Any) -> Any:
    runtime = CliRuntime(clock=FixedClock(NOW), settings=settings)
    return CliRunner().invoke(app, list(args), obj=runtime, **kwargs)


def _services(settings: Settings) -> Services:
    return build_services(
        settings, clock=FixedClock(NOW), engine=make_engine(settings.database_url)
    )


def _fill(services: Services) -> str:
    """A patient with a booking, a call with its transcript and a conversation."""

    async def go() -> str:
        patient = await services.patients.find_or_create(PHONE, "pt-BR")
        await services.patients.update(
            patient.id, full_name=NAME, email=EMAIL, birth_date=date(1975, 3, 9), today=NOW.date()
        )
        offers = await services.booking.find_offers(
            "clinico-consulta", Preferences(), holder="conv-x"
        )
        request = BookingRequest(patient_id=patient.id, channel="chat", holder="conv-x")
        await services.booking.book(request, offers[0].hold_id)
        state = ConversationState(channel="whatsapp", conversation_id="conv-x", phone=PHONE)
        await ConversationStore(services.engine).save(f"whatsapp:{PHONE}", state)
        return patient.id

    patient_id = asyncio.run(go())
    with transaction(services.engine) as session:
        session.add(CallRecord(call_sid=CALL, caller=PHONE, started_at=NOW, patient_id=None))
        session.add(CallEvent(call_sid=CALL, seq=1, at=NOW, kind="caller", content=f"Sou {NAME}"))
    return patient_id


def _raw_tokens(services: Services) -> list[str]:
    tokens: list[str] = []
    with services.engine.connect() as db:
        for table in encrypted_tables(Patient.metadata):
            columns = ", ".join(table.columns)
            for row in db.execute(sa.text(f"SELECT {columns} FROM {table.name}")):
                tokens += [value for value in row if value is not None]
    return tokens


def _opens_with(keyring: Keyring, tokens: list[str]) -> bool:
    try:
        for token in tokens:
            keyring.decrypt(token)
    except Exception:
        return False
    return True


def test_rotate_re_encrypts_everything_with_the_newest_key_and_resumes(tmp_path: Path) -> None:
    old = _settings(tmp_path, encryption_keys=OLD_KEY, lookup_key=TEST_LOOKUP_KEY)
    services = _services(old)
    _fill(services)
    services.close()
    new_only = keyring_from_values(NEW_KEY, NEW_LOOKUP, source="test")
    both = _settings(tmp_path, encryption_keys=f"{NEW_KEY},{OLD_KEY}", lookup_key=NEW_LOOKUP)

    # Interrupted half way: a rotation that dies after a few values keeps what it did.
    services = _services(both)
    from voice_agent.crypto.binding import engine_keyring

    keyring = engine_keyring(services.engine)
    budget = iter(range(4))

    class Died(Exception):
        pass

    def dying(token: str) -> str | None:
        if next(budget, None) is None:
            raise Died  # the process stops here
        return keyring.rotate(token)

    with pytest.raises(Died):
        for table in encrypted_tables(Patient.metadata):
            rewrite(services.engine, table, dying, batch_size=1)
    tokens = _raw_tokens(services)
    on_new = [t for t in tokens if _opens_with(new_only, [t])]
    assert 0 < len(on_new) < len(tokens)  # pages before the stop were committed
    services.close()

    rotated = _cli(both, "keys", "rotate", "--batch-size", "2")
    assert rotated.exit_code == 0, rotated.output
    assert "phone hashes updated" in rotated.output
    assert "1 phone hashes updated" in rotated.output
    services = _services(both)
    tokens = _raw_tokens(services)
    assert tokens and _opens_with(new_only, tokens)
    services.close()

    again = _cli(both, "keys", "rotate")
    assert "re-encrypted 0 values" in again.output and "0 phone hashes updated" in again.output

    # The old key can go now: everything reads back, and the phone is found by its new hash.
    services = _services(_settings(tmp_path, encryption_keys=NEW_KEY, lookup_key=NEW_LOOKUP))
    patient = asyncio.run(services.patients.find_by_phone(PHONE))
    assert patient is not None and patient.full_name == NAME
    services.close()


def _age(services: Services) -> None:
    """Rows of several ages, stamped against the fixed clock."""
    days = timedelta(days=1)
    with transaction(services.engine) as session:
        session.add(CallRecord(call_sid="CAold", caller=PHONE, started_at=NOW - 400 * days))
        session.add(
            CallRecord(
                call_sid="CAmid", caller=PHONE, started_at=NOW - 100 * days, transfer_summary=NAME
            )
        )
        session.add(
            CallEvent(call_sid="CAmid", seq=1, at=NOW - 100 * days, kind="caller", content="x")
        )
        session.add(
            CallEvent(call_sid="CAmid", seq=2, at=NOW - 100 * days, kind="tool", content="y")
        )
        session.add(
            CallEvent(call_sid="CAold", seq=1, at=NOW - 400 * days, kind="tool", content="z")
        )
        session.add(CallEvent(call_sid=CALL, seq=2, at=NOW - 10 * days, kind="caller", content="w"))
        session.add(
            ConversationRecord(key="old", channel="chat", state="{}", updated_at=NOW - 200 * days)
        )
        session.add(
            ConversationRecord(key="new", channel="chat", state="{}", updated_at=NOW - 1 * days)
        )
        session.add(
            Interaction(
                at=NOW - 800 * days,
                kind=InteractionKind.booking,
                channel="chat",
                details=json.dumps({"note": NAME}),
            )
        )
        for key, status, age in (
            ("done", OutboxStatus.done, 40),
            ("pending", OutboxStatus.pending, 40),
        ):
            session.add(
                OutboxRow(
                    kind="alert",
                    key=key,
                    payload=json.dumps({"to": PHONE}),
                    status=status,
                    next_attempt_at=NOW,
                    updated_at=NOW - age * days,
                )
            )


def test_purge_deletes_each_kind_past_its_retention(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    services = _services(settings)
    _fill(services)
    _age(services)
    services.close()

    purged = _cli(settings, "privacy", "purge")
    assert purged.exit_code == 0, purged.output
    counts = {
        " ".join(line.split()[:-1]): int(line.split()[-1]) for line in purged.output.splitlines()
    }
    assert counts == {
        "transcript turns": 1,
        "transfer summaries": 1,
        "call events": 1,
        "calls": 1,
        "conversations": 1,
        "interaction details": 1,
        "outbox rows": 1,
        "conversation turns": 0,
        "work items": 0,
    }
    services = _services(settings)
    with transaction(services.engine) as session:
        calls = {c.call_sid for c in session.execute(select(CallRecord)).scalars()}
        events = {(e.call_sid, e.kind) for e in session.execute(select(CallEvent)).scalars()}
        old_interaction = session.execute(
            select(Interaction).where(Interaction.at < NOW - timedelta(days=700))
        ).scalar_one()
        outbox = {r.key for r in session.execute(select(OutboxRow)).scalars()}
        conversations = {r.key for r in session.execute(select(ConversationRecord)).scalars()}
        assert session.get(CallRecord, "CAmid").transfer_summary is None  # type: ignore[union-attr]
    assert calls == {CALL, "CAmid"}
    assert events == {(CALL, "caller"), ("CAmid", "tool")}
    assert old_interaction.details == "{}" and old_interaction.kind == InteractionKind.booking
    assert "done" not in outbox and "pending" in outbox
    assert "old" not in conversations and "new" in conversations
    # The scheduled job runs the same purge against the injected clock: nothing left to do.
    report = asyncio.run(purge_expired_data(services))
    assert report is not None and report.total == 0
    services.close()


def test_the_clinic_file_sets_the_retention(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_CLINIC_FILE.read_text(encoding="utf-8"))
    data["retention"] = {"transcripts_days": 5}
    clinic_file = tmp_path / "clinic.yaml"
    clinic_file.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    settings = _settings(tmp_path, clinic_file=clinic_file)
    services = _services(settings)
    assert services.clinic().retention.transcripts_days == 5
    assert services.clinic().retention.conversations_days == 180
    _fill(services)
    _age(services)
    report = asyncio.run(purge_expired_data(services))
    assert report is not None and report.transcript_turns == 2  # 100 and 10 days old
    services.close()


def test_export_gives_everything_held_about_the_person(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    services = _services(settings)
    patient_id = _fill(services)
    services.close()

    out = tmp_path / "export.json"
    exported = _cli(settings, "patient", "export", "11 98765-0002", "--output", str(out))
    assert exported.exit_code == 0, exported.output
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["patient"]["id"] == patient_id
    assert data["patient"]["full_name"] == NAME and data["patient"]["email"] == EMAIL
    assert data["patient"]["birth_date"] == "1975-03-09" and data["patient"]["phone"] == PHONE
    assert len(data["appointments"]) == 1
    assert [i["kind"] for i in data["interactions"]] == ["booking"]
    assert data["calls"][0]["caller"] == PHONE
    assert data["calls"][0]["transcript"][0]["content"] == f"Sou {NAME}"
    assert data["conversations"][0]["state"]["phone"] == PHONE
    assert "phone_hash" not in data["patient"]
    to_stdout = _cli(settings, "patient", "export", PHONE)
    assert json.loads(to_stdout.output)["patient"]["id"] == patient_id


def test_erase_keeps_anonymised_appointments_and_records_the_erasure(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    services = _services(settings)
    patient_id = _fill(services)
    services.close()

    refused = _cli(settings, "patient", "erase", PHONE, input="n\n")
    assert refused.exit_code == 1 and "nothing erased" in refused.output
    assert _cli(settings, "patient", "export", PHONE).exit_code == 0  # still there

    erased = _cli(settings, "patient", "erase", PHONE, "--yes")
    assert erased.exit_code == 0, erased.output
    assert "appointments kept 1" in erased.output and "transcript events 1" in erased.output

    services = _services(settings)
    assert asyncio.run(services.patients.find_by_phone(PHONE)) is None
    with transaction(services.engine) as session:
        patient = session.get(Patient, patient_id)
        assert patient is not None
        assert (patient.phone, patient.full_name, patient.email, patient.birth_date) == (
            "",
            None,
            None,
            None,
        )
        appointment = session.execute(select(Appointment)).scalar_one()
        assert appointment.patient_id == patient_id
        assert session.execute(select(CallEvent)).first() is None
        assert session.execute(select(ConversationRecord)).first() is None
        call = session.get(CallRecord, CALL)
        assert call is not None and call.caller == ""
        logged = list(session.execute(select(Interaction).order_by(Interaction.id)).scalars())
    assert [i.kind for i in logged] == [InteractionKind.booking, InteractionKind.erasure]
    assert logged[0].details == "{}"
    assert NAME not in logged[1].details and PHONE not in logged[1].details
    assert json.loads(logged[1].details)["request"] == "erasure"
    # A new contact from the same phone starts a new patient, with nothing of the old one.
    fresh = asyncio.run(services.patients.find_or_create(PHONE))
    assert fresh.id != patient_id and fresh.full_name is None
    services.close()

    gone = _cli(settings, "patient", "erase", "+5511987650099", "--yes")
    assert gone.exit_code == 1 and "no patient has that phone number" in gone.output
    bad = _cli(settings, "patient", "export", "not a phone")
    assert bad.exit_code == 2


def test_keys_generate_prints_keys_the_settings_accept(tmp_path: Path) -> None:
    generated = _cli(_settings(tmp_path), "keys", "generate")
    values = dict(line.split("=", 1) for line in generated.output.splitlines())
    settings = _settings(
        tmp_path,
        encryption_keys=values["VOICE_AGENT_ENCRYPTION_KEYS"],
        lookup_key=values["VOICE_AGENT_LOOKUP_KEY"],
    )
    assert settings.encryption_keys is not None


def test_a_backup_is_0600_and_holds_no_patient_data_in_clear(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    services = _services(settings)
    patient_id = _fill(services)
    services.close()
    target = tmp_path / "backups" / "clinic-copy.db"
    target.parent.mkdir()

    made = _cli(settings, "backup", str(target))
    assert made.exit_code == 0, made.output
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    raw = target.read_bytes()
    for secret in (PHONE, NAME, EMAIL, "Sou "):
        assert secret.encode() not in raw
    with sqlite3.connect(target) as copy:
        assert copy.execute("SELECT id FROM patient").fetchall() == [(patient_id,)]
    copy.close()
    again = _cli(settings, "backup", str(target))
    assert again.exit_code == 1 and "exists" in again.output
