"""Schema migrations with Alembic, run from code (`voice-agent db upgrade`, and on start-up)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Bring the schema to ``revision``; safe to run on every start (a no-op when current).

    A schema already at the heads is left alone before Alembic reads and executes every
    migration file to find that out (~15 ms on each start, and on each test's services)."""
    if revision == "heads" and current_revisions(engine) == head_revisions():
        return
    config = _config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revisions(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


@cache
def head_revisions() -> frozenset[str]:
    """The heads of the migration history: one (a test keeps it so; a branch added beside
    another is joined with a merge revision, as 0005 joined the first three)."""
    return frozenset(ScriptDirectory.from_config(_config_without_engine()).get_heads())


def _config_without_engine() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def make_revision(engine: Engine, message: str) -> None:
    """Developer tool: autogenerate a new revision from the difference with the tables."""
    config = _config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)
