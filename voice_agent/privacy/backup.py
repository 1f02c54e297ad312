"""Backups of the SQLite database, created 0600 (the encrypted fields stay encrypted in them;
the keys are not copied: keep them apart from the backups)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy import Engine

from voice_agent.privacy.binding import PRIVATE_FILE_MODE, engine_url, sqlite_path


class BackupError(RuntimeError):
    """The backup cannot be made; the message says why."""


def backup_sqlite(engine: Engine, target: Path) -> int:
    """A consistent copy of the live database (SQLite's online backup API, safe while the app
    writes) into a new file only its owner can read; returns its size in bytes."""
    source = sqlite_path(engine_url(engine))
    if source is None:
        raise BackupError("only an SQLite file can be backed up here; for PostgreSQL use pg_dump")
    try:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    except FileExistsError:
        raise BackupError(f"{target} exists; choose a new file") from None
    with sqlite3.connect(source) as live, sqlite3.connect(target) as copy:
        live.backup(copy)
    live.close()
    copy.close()
    return target.stat().st_size
