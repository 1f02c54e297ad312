"""Which keys an engine uses, and SQLite files only their owner can read.

The encrypted column types get nothing but the SQLAlchemy dialect, so the keys ride on the
engine's dialect: ``make_engine`` gives every engine a slot, ``build_services`` fills it from the
settings before anything is read or written. An engine made later in the same process for the same
database (a CLI command, a test, a worker) finds the keys given for that database; otherwise the
slot resolves the embedded default on first use (the SQLite key file), and a server database with
no keys configured is an error, never plaintext.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect, make_url

from voice_agent.crypto.keys import (
    InvalidKey,
    Keyring,
    MissingKeys,
    key_file_for,
    keyring_from_values,
    load_or_create_key_file,
    memory_keyring,
)
from voice_agent.errors import ConfigurationError
from voice_agent.settings import Settings

_ATTRIBUTE = "voice_agent_keys"
_KNOWN: dict[str, Keyring] = {}
"""Keys given for a database URL in this process (explicit settings win over defaults)."""
_KNOWN_LOCK = threading.Lock()

PRIVATE_FILE_MODE = 0o600
SQLITE_SIDE_FILES = ("", "-wal", "-shm", "-journal")


class KeySlot:
    """The keys of one engine, resolved on first use so an empty schema needs none."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._keyring: Keyring | None = None
        self._lock = threading.Lock()

    def set(self, keyring: Keyring) -> None:
        self._keyring = keyring

    @property
    def resolved(self) -> bool:
        return self._keyring is not None

    def get(self) -> Keyring:
        keyring = self._keyring
        if keyring is None:
            with self._lock:
                keyring = self._keyring or default_keyring(self.url)
                self._keyring = keyring
        return keyring


def default_keyring(url: str) -> Keyring:
    """Keys given earlier for this database, else the embedded default (see ``crypto.keys``)."""
    with _KNOWN_LOCK:
        known = _KNOWN.get(url)
        if known is not None:
            return known
        path = key_file_for(url)
        if path is not None:
            keyring = load_or_create_key_file(path)
        elif make_url(url).drivername.startswith("sqlite"):
            keyring = memory_keyring()
        else:
            raise MissingKeys(
                "patient data is encrypted and no keys are configured for this database: "
                "set VOICE_AGENT_ENCRYPTION_KEYS and VOICE_AGENT_LOOKUP_KEY"
            )
        _KNOWN[url] = keyring
        return keyring


def engine_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def install_key_slot(engine: Engine) -> None:
    """Give a new engine its (still empty) slot; called by ``make_engine``."""
    setattr(engine.dialect, _ATTRIBUTE, KeySlot(engine_url(engine)))


def attach_keyring(engine: Engine, keyring: Keyring) -> None:
    """Use these keys for this engine and for any later engine on the same database."""
    url = engine_url(engine)
    with _KNOWN_LOCK:
        _KNOWN[url] = keyring
    slot = getattr(engine.dialect, _ATTRIBUTE, None)
    if slot is None:
        slot = KeySlot(url)
        setattr(engine.dialect, _ATTRIBUTE, slot)
    slot.set(keyring)


def keyring_of(dialect: Dialect) -> Keyring:
    slot: KeySlot | None = getattr(dialect, _ATTRIBUTE, None)
    if slot is None:
        raise MissingKeys("this engine has no encryption keys (engines come from make_engine)")
    return slot.get()


def engine_keyring(engine: Engine) -> Keyring:
    return keyring_of(engine.dialect)


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def protect_sqlite_file(url: str) -> None:
    """Create the database file 0600 before SQLite does (its WAL and SHM files copy the
    database's mode), and tighten an existing file and its side files to 0600."""
    path = sqlite_path(url)
    if path is None:
        return
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    for suffix in SQLITE_SIDE_FILES:
        side = path.with_name(path.name + suffix)
        try:
            if side.stat().st_mode & 0o777 != PRIVATE_FILE_MODE:
                os.chmod(side, PRIVATE_FILE_MODE)
        except FileNotFoundError:
            continue
        except PermissionError:
            continue  # not ours to change (a read-only mount); SQLite will say if it matters


def configure_keys(engine: Engine, settings: Settings) -> Keyring:
    """At start: the configured keys, or the embedded default; refuse to start without keys."""
    if settings.encryption_keys is not None and settings.lookup_key is not None:
        keyring = keyring_from_values(
            settings.encryption_keys.get_secret_value(),
            settings.lookup_key.get_secret_value(),
            source="VOICE_AGENT_ENCRYPTION_KEYS",
        )
        attach_keyring(engine, keyring)
        return keyring
    try:
        return engine_keyring(engine)
    except (MissingKeys, InvalidKey) as exc:
        raise ConfigurationError(str(exc)) from None
