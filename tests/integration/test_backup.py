"""`voice-agent backup FILE` / `voice-agent restore FILE` through the CLI, on SQLite (the backup
API) and on PostgreSQL (pg_dump/pg_restore, when installed): a booking made after the backup is
gone after the restore, the one before it is back, and the file is private (0600)."""

from __future__ import annotations

import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from tests.conftest import make_settings
from voice_agent.alerts import ConsoleAlerter
from voice_agent.cli import app
from voice_agent.cli.context import CliRuntime
from voice_agent.clock import FixedClock
from voice_agent.scheduling.booking import BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services, build_services
from voice_agent.settings import Settings
from voice_agent.store.db import transaction
from voice_agent.store.migrate import head_revisions
from voice_agent.store.tables import Appointment


async def _book(services: Services, phone: str) -> None:
    patient = await services.patients.find_or_create(phone)
    offers = await services.booking.find_offers("clinico-consulta", Preferences(), holder=phone)
    request = BookingRequest(patient_id=patient.id, channel="voice", holder=phone)
    await services.booking.book(request, offers[0].hold_id)


def _count(services: Services) -> int:
    with transaction(services.engine) as session:
        return int(session.execute(select(func.count()).select_from(Appointment)).scalar_one())


def _cli(args: list[str], settings: Settings, clock: FixedClock):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, args, obj=CliRuntime(clock=clock, settings=settings))


async def test_backup_and_restore(
    db_kind: str, make_engine_for: Callable[[str], Engine], clock: FixedClock, tmp_path: Path
) -> None:
    if db_kind == "postgresql" and shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed")
    engine = make_engine_for(db_kind)
    settings = make_settings(engine.url.render_as_string(hide_password=False))
    services = build_services(settings, clock=clock, alerter=ConsoleAlerter(), engine=engine)
    await _book(services, "+5511987650101")
    target = tmp_path / "backups" / "clinic.backup"
    result = _cli(["backup", str(target)], settings, clock)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    again = _cli(["backup", str(target)], settings, clock)
    assert again.exit_code == 1 and "exists; give another file or --force" in again.output
    await _book(services, "+5511987650102")
    assert _count(services) == 2
    engine.dispose()
    result = _cli(["restore", str(target), "--yes"], settings, clock)
    assert result.exit_code == 0, result.output
    [head] = head_revisions()
    assert f"schema at {head}" in result.output
    assert _count(services) == 1
    services.close()


def test_restore_refuses_what_is_not_a_backup(tmp_path: Path, clock: FixedClock) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'live.db'}")
    junk = tmp_path / "junk.backup"
    junk.write_text("not a database")
    result = _cli(["restore", str(junk), "--yes"], settings, clock)
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {junk} is not a backup of this app")
    missing = _cli(["backup", str(tmp_path / "x.backup")], settings, clock)
    assert missing.exit_code == 1 and "does not exist yet" in missing.output


def test_without_pg_dump_the_message_says_what_to_install(
    tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no PostgreSQL client tools here
    settings = make_settings("postgresql://postgres@127.0.0.1:5432/clinic")
    result = _cli(["backup", str(tmp_path / "pg.backup")], settings, clock)
    assert result.exit_code == 1
    assert result.output.startswith("error: pg_dump not found: install the PostgreSQL client")
    assert not (tmp_path / "pg.backup").exists()
