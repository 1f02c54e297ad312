"""Staff accounts of the console, their server-side sessions and the login attempts.

Sessions live in the database (not in a signed cookie) so that logout and a password change
revoke them at once, on every process. The cookie carries a random token; the table keeps only
its SHA-256, so a copy of the database opens no session.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Index, String
from sqlmodel import Field, SQLModel

from voice_agent.store.types import UTCDateTime, utcnow


def _utc(**kwargs: object) -> Column:
    return Column(UTCDateTime(), **kwargs)  # type: ignore[arg-type]


class StaffRole(StrEnum):
    admin = "admin"
    """Everything, plus clinic data and accounts."""
    receptionist = "receptionist"
    """The clinic's agenda, to-do queue and calls."""
    doctor = "doctor"
    """His own agenda and patients only."""


class StaffAccount(SQLModel, table=True):
    __tablename__ = "staff_account"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True, description="Lower-cased.")
    password_hash: str = Field(max_length=256, description="argon2id, with its parameters.")
    role: str = Field(
        sa_column=Column(String(16), nullable=False), description="A StaffRole value."
    )
    doctor_id: str | None = Field(
        default=None, max_length=64, description="The clinic's doctor id, for role=doctor."
    )
    language: str | None = Field(
        default=None, max_length=8, description="Console language; None: the clinic's."
    )
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc(nullable=False))
    password_changed_at: datetime = Field(default_factory=utcnow, sa_column=_utc(nullable=False))


class StaffSession(SQLModel, table=True):
    __tablename__ = "staff_session"

    token_hash: str = Field(primary_key=True, max_length=64, description="SHA-256 of the cookie.")
    staff_id: int = Field(foreign_key="staff_account.id", index=True)
    csrf_token: str = Field(max_length=64, description="Every form of this session carries it.")
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc(nullable=False))
    expires_at: datetime = Field(sa_column=_utc(nullable=False, index=True))


class StaffLoginAttempt(SQLModel, table=True):
    """One failed login, per account e-mail and per address: the throttle counts recent rows."""

    __tablename__ = "staff_login_attempt"
    __table_args__ = (Index("ix_staff_login_attempt_key_at", "key", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=300, description="account:<email> or address:<ip>")
    at: datetime = Field(sa_column=_utc(nullable=False))
