"""Migrated test databases without migrating per test.

Running the fourteen migrations took 0.1-0.2 s per test on SQLite and 0.3-0.5 s on PostgreSQL,
on a thousand tests. Each test process migrates once: an SQLite template file that tests copy,
and a PostgreSQL schema per xdist worker that is emptied between tests (rows deleted, sequences
restarted) instead of dropped and migrated again. What a test gets is what a fresh migration
gives: every table, no rows, no clinic (``build_services`` loads the clinic file as on a new
database). A test that needs an empty database (a migration test) asks for one and the next test
finds the schema rebuilt.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from voice_agent.store.db import make_engine
from voice_agent.store.migrate import head_revisions, upgrade

_template: Path | None = None


def sqlite_template() -> Path:
    """This process's migrated SQLite file (made on first use, removed at exit)."""
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="voice-agent-template-"))
        atexit.register(shutil.rmtree, folder, True)
        path = folder / "migrated.db"
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        engine.dispose()  # the last connection closed: the WAL is folded into the file
        _template = path
    return _template


def migrated_sqlite(path: Path) -> str:
    """The URL of an SQLite file at ``path``: a copy of the migrated template, unless a
    database is already there (a test opening its database again)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sqlite_template(), path)  # with its 0600 mode
    return f"sqlite:///{path}"


class PostgresSchema:
    """One schema of the test database for one test process, reset for each test."""

    def __init__(self, admin_url: str, schema: str) -> None:
        self.admin_url = admin_url
        self.schema = schema
        self.url = f"{admin_url}?options=-csearch_path%3D{schema}"
        self._migrated = False  # the schema holds the head migration and this process's rows

    def empty(self) -> str:
        """A new empty schema (dropped and created again); its URL."""
        admin = make_engine(self.admin_url)
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE"))
            connection.execute(text(f"CREATE SCHEMA {self.schema}"))
        admin.dispose()
        self._migrated = False
        return self.url

    def migrated(self) -> str:
        """The schema at the head migration with no rows; its URL."""
        engine = make_engine(self.url)
        try:
            if not (self._migrated and self._clear(engine)):
                engine.dispose()
                self.empty()
                engine = make_engine(self.url)
                upgrade(engine)
                self._migrated = True
        finally:
            engine.dispose()
        return self.url

    def _clear(self, engine: Engine) -> bool:
        """Delete every row (children first) and restart the sequences; False when the last
        test left the schema other than the head migration made it."""
        with engine.begin() as connection:
            version_rows = connection.execute(text("SELECT version_num FROM alembic_version"))
            versions = {row[0] for row in version_rows}
            if versions != head_revisions():
                return False
            present = {
                row[0]
                for row in connection.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
                )
            }
            ordered = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
            if present - {"alembic_version"} != set(ordered):
                return False
            sequences = [
                row[0]
                for row in connection.execute(
                    text(
                        "SELECT sequence_name FROM information_schema.sequences "
                        "WHERE sequence_schema = current_schema()"
                    )
                )
            ]
            statements = [f'DELETE FROM "{name}"' for name in ordered]
            statements += [f'ALTER SEQUENCE "{name}" RESTART' for name in sequences]
            connection.exec_driver_sql("; ".join(statements))
        return True
