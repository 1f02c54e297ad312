"""Column types shared by the tables."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import DateTime, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from voice_agent.crypto.binding import keyring_of


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, the same on SQLite and PostgreSQL.

    Stored as naive UTC so SQLite's text storage compares correctly and PostgreSQL indexes stay
    plain ``timestamp``; a naive datetime handed in is a programming error, not a guess.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class EncryptedText(TypeDecorator[str]):
    """Text encrypted at rest with the engine's keys (Fernet); plain ``str`` in Python.

    Every value gets a fresh IV, so equal values differ on disk: equality look-ups go through a
    keyed hash column (``patient.phone_hash``); comparing the column with a value finds nothing.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return keyring_of(dialect).encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return keyring_of(dialect).decrypt(value)


class EncryptedDate(TypeDecorator[date]):
    """A date (a birth date) encrypted at rest as its ISO form."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: date | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return keyring_of(dialect).encrypt(value.isoformat())

    def process_result_value(self, value: str | None, dialect: Dialect) -> date | None:
        if value is None:
            return None
        return date.fromisoformat(keyring_of(dialect).decrypt(value))


def keyed_hash_default(source_column: str) -> Callable[[Any], str]:
    """Column default: the keyed hash (HMAC-SHA256) of another column's value in the same
    INSERT, so a row written by any code path gets its look-up hash."""

    def _default(context: Any) -> str:
        value = context.get_current_parameters()[source_column]
        return keyring_of(context.dialect).lookup_hash(value)

    return _default
