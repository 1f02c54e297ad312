"""Engine and sessions for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, create_engine

from voice_agent.crypto.binding import install_key_slot, protect_sqlite_file


def normalize_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever spelling the deployment gives."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


_ADVISORY_XACT_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:key))")


def advisory_xact_lock(db: Connection | Session, key: str) -> None:
    """PostgreSQL: wait for the advisory lock named ``key``, held until the transaction ends.

    Nothing on SQLite, whose ``BEGIN IMMEDIATE`` already serializes every writing transaction.
    """
    dialect = db.dialect if isinstance(db, Connection) else db.get_bind().dialect
    if dialect.name != "sqlite":
        db.execute(_ADVISORY_XACT_LOCK, {"key": key})


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """Create the engine; SQLite gets WAL, a busy timeout and write-ahead ``BEGIN IMMEDIATE``.

    ``BEGIN IMMEDIATE`` takes SQLite's write lock at the start of each transaction, so two
    threads racing for a slot wait for each other instead of failing on a lock upgrade.

    ``hide_parameters``: a failing statement's error (logged, alerted, shown in a traceback)
    names the statement but never its values, which are patients' phones, names and notes.
    """
    url = normalize_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)  # the per-user data folder
        protect_sqlite_file(url)  # 0600 before SQLite creates the file, its WAL and SHM
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
            hide_parameters=True,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Any) -> None:
            # On the driver's connection: a statement through SQLAlchemy's execution machinery
            # cost more than the BEGIN itself, on every transaction. Errors are wrapped as
            # SQLAlchemy's own (a busy database is an ``OperationalError`` as elsewhere).
            sql = "BEGIN" if connection.get_execution_options().get(READ_ONLY) else _IMMEDIATE
            try:
                connection.connection.driver_connection.execute(sql)
            except sqlite3.Error as exc:
                raise DBAPIError.instance(
                    sql, None, exc, sqlite3.Error, hide_parameters=True, dialect=engine.dialect
                ) from exc

    else:
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            hide_parameters=True,
        )
    install_key_slot(engine)  # the encrypted columns' keys (voice_agent.crypto.binding)
    return engine


_IMMEDIATE = "BEGIN IMMEDIATE"
READ_ONLY = "voice_agent_read_only"
"""Execution option of :func:`reading`'s connections."""


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A transaction that only reads: on SQLite a deferred ``BEGIN`` (a WAL reader takes no lock,
    so it neither waits for a writer nor makes one wait), elsewhere a plain one."""
    with engine.connect() as connection:
        connection.execution_options(**{READ_ONLY: True})
        with connection.begin():
            yield connection


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """An ORM session that only reads, in a :func:`reading` transaction (deferred on SQLite).
    Nothing is committed; loaded objects stay readable after it closes."""
    with reading(engine) as connection, Session(bind=connection, expire_on_commit=False) as session:
        yield session


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: committed on success, rolled back on any exception."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
