"""Backups of the database: SQLite through the ``sqlite3`` backup API (a consistent copy while
the app runs), PostgreSQL through ``pg_dump``/``pg_restore`` (custom format). Backup files are
created 0600: they hold patients' data."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy.engine import URL, make_url


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message says why and what to do."""


def _url(database_url: str) -> URL:
    return make_url(database_url)


def is_sqlite_url(database_url: str) -> bool:
    return _url(database_url).get_backend_name() == "sqlite"


def _sqlite_path(database_url: str) -> Path:
    database = _url(database_url).database
    if not database or database == ":memory:":
        raise BackupError("the database is in memory: nothing to back up")
    return Path(database)


def _create_private(path: Path, *, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise BackupError(f"{path} exists; give another file or --force")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def backup(database_url: str, target: Path, *, overwrite: bool = False) -> str:
    """Write a backup of the database to ``target`` (mode 0600); returns what was done."""
    if is_sqlite_url(database_url):
        source_path = _sqlite_path(database_url)
        if not source_path.exists():
            raise BackupError(f"the database {source_path} does not exist yet")
        _create_private(target, overwrite=overwrite)
        source = sqlite3.connect(source_path)
        destination = sqlite3.connect(target)
        try:
            with destination:
                source.backup(destination)
        finally:
            destination.close()
            source.close()
        return f"SQLite {source_path} → {target}"
    dump = _tool("pg_dump")
    _create_private(target, overwrite=overwrite)
    command = [dump, "--format=custom", "--no-owner", f"--file={target}"]
    command += [*_schema_args(database_url), "--dbname", _libpq(database_url)]
    _run(command, "pg_dump")
    os.chmod(target, 0o600)
    return f"PostgreSQL {_url(database_url).render_as_string(hide_password=True)} → {target}"


def restore(database_url: str, source: Path) -> str:
    """Replace the database's content with the backup in ``source``."""
    if not source.is_file():
        raise BackupError(f"{source} is not a file")
    if is_sqlite_url(database_url):
        target_path = _sqlite_path(database_url)
        try:
            backup_db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
            backup_db.execute("SELECT version_num FROM alembic_version").fetchall()
        except sqlite3.DatabaseError as error:
            raise BackupError(f"{source} is not a backup of this app ({error})") from None
        target_path.parent.mkdir(parents=True, exist_ok=True)
        target = sqlite3.connect(target_path)
        try:
            with target:
                backup_db.backup(target)
        finally:
            target.close()
            backup_db.close()
        return f"SQLite {source} → {target_path}"
    tool = _tool("pg_restore")
    command = [tool, "--clean", "--if-exists", "--no-owner", "--single-transaction"]
    command += [*_schema_args(database_url), "--dbname", _libpq(database_url), str(source)]
    _run(command, "pg_restore")
    return f"PostgreSQL {source} → {_url(database_url).render_as_string(hide_password=True)}"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} not found: install the PostgreSQL client tools (e.g. `apt install "
            "postgresql-client`, the same major version as the server) or use your provider's "
            "backups"
        )
    return found


def _libpq(database_url: str) -> str:
    """The URL as libpq reads it (no SQLAlchemy driver suffix)."""
    url = _url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _schema_args(database_url: str) -> list[str]:
    """A URL that sets ``search_path`` (one schema per deployment) backs up that schema only."""
    options = _url(database_url).query.get("options")
    text = unquote(options if isinstance(options, str) else " ".join(options or ()))
    for part in text.split():
        if part.startswith("-csearch_path="):
            return [f"--schema={part.removeprefix('-csearch_path=').split(',')[0]}"]
    return []


def _run(command: list[str], name: str) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=3600)
    except subprocess.CalledProcessError as error:
        lines = (error.stderr or "").strip().splitlines()
        raise BackupError(f"{name} failed: {lines[-1] if lines else error.returncode}") from None
