"""Shared fixtures: a fixed clock, the sample clinic, services on SQLite and (when configured)
PostgreSQL. PostgreSQL tests run when VOICE_AGENT_TEST_DATABASE_URL is set (CI sets it)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from tests.migrated import PostgresSchema, migrated_sqlite
from voice_agent.alerts import ConsoleAlerter
from voice_agent.clinic import Clinic, load_clinic_file
from voice_agent.clock import FixedClock
from voice_agent.services import Services, build_services
from voice_agent.settings import DEFAULT_CLINIC_FILE, SAMPLES_DIR, Settings
from voice_agent.store.db import make_engine

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
for _name in ("TWILIO_EDGE", "TWILIO_REGION", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
    os.environ.pop(_name, None)

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
# Monday 23 November 2026, 10:00 in São Paulo: "tomorrow" is Tuesday the 24th.
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=SAO_PAULO)
PG_URL = os.environ.get("VOICE_AGENT_TEST_DATABASE_URL")
RUSSIAN_CLINIC_FILE = SAMPLES_DIR / "klinika_zdorovye.yaml"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture(scope="session")
def sample_clinic() -> Clinic:
    return load_clinic_file(DEFAULT_CLINIC_FILE)


_schemas: dict[str, PostgresSchema] = {}


def _pg_schema(worker: str) -> PostgresSchema:
    """A schema per xdist worker, so parallel workers never see each other's rows."""
    if worker not in _schemas:
        schema = "t_" + re.sub(r"[^a-z0-9]", "", worker.lower())
        _schemas[worker] = PostgresSchema(PG_URL, schema)  # type: ignore[arg-type]
    return _schemas[worker]


def _worker(request: pytest.FixtureRequest) -> str:
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


def database_params() -> list[object]:
    params: list[object] = ["sqlite"]
    params.append(
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(PG_URL is None, reason="VOICE_AGENT_TEST_DATABASE_URL unset"),
        )
    )
    return params


@pytest.fixture
def make_engine_for(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Engine]]:
    engines: list[Engine] = []

    def factory(kind: str, *, migrated: bool = True) -> Engine:
        """A database of ``kind`` at the head migration with no rows (``migrated=False``: an
        empty one, for a test of the migrations themselves)."""
        if kind == "sqlite":
            path = tmp_path / "test.db"
            url = migrated_sqlite(path) if migrated else f"sqlite:///{path}"
        else:
            schema = _pg_schema(_worker(request))
            url = schema.migrated() if migrated else schema.empty()
        engine = make_engine(url)
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        engine.dispose()


TEST_ENCRYPTION_KEY = "x2Yq3n0mQeGkD2sV9tB8cW1zR4uJ6hL0pA7fE5iN3oM="
TEST_LOOKUP_KEY = "test-lookup-key-of-at-least-32-characters"


def make_settings(database_url: str = "sqlite://", **overrides: object) -> Settings:
    # argon2's cheapest parameters: the suite hashes and checks staff passwords hundreds of
    # times (0.4 s each with the default); test_accounts checks the default and the upgrade.
    overrides.setdefault("staff_password_profile", "CHEAPEST")
    if not database_url.startswith("sqlite"):  # a server database has no embedded default keys
        overrides.setdefault("encryption_keys", TEST_ENCRYPTION_KEY)
        overrides.setdefault("lookup_key", TEST_LOOKUP_KEY)
    return Settings(
        database_url=database_url,
        clinic_file=overrides.pop("clinic_file", DEFAULT_CLINIC_FILE),  # type: ignore[arg-type]
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture(params=database_params())
def db_kind(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def any_services(
    db_kind: str, make_engine_for: Callable[[str], Engine], clock: FixedClock
) -> Iterator[Services]:
    """Services on SQLite and, when configured, on PostgreSQL."""
    engine = make_engine_for(db_kind)
    services = build_services(
        make_settings(str(engine.url)), clock=clock, alerter=ConsoleAlerter(), engine=engine
    )
    yield services


@pytest.fixture
def services(make_engine_for: Callable[[str], Engine], clock: FixedClock) -> Iterator[Services]:
    """Services on a fresh SQLite file with the sample clinic and a fixed clock."""
    engine = make_engine_for("sqlite")
    yield build_services(
        make_settings(str(engine.url)), clock=clock, alerter=ConsoleAlerter(), engine=engine
    )
