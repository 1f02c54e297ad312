"""Identity checks: one row per conversation or call that had to prove who the caller is.

A caller whose number the carrier did not verify (withheld caller id, web chat, digits spoken on
the no-AI line) proves it is the patient with a one-time code sent to the phone on file, or with
the birth date on file. The code is stored only as a salted scrypt hash.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from voice_agent.store.types import UTCDateTime, utcnow


def _utc(nullable: bool, index: bool = False) -> Column:
    return Column(UTCDateTime(), nullable=nullable, index=index)


class IdentityCheck(SQLModel, table=True):
    __tablename__ = "identity_check"

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: str = Field(
        max_length=128, unique=True, description="Call SID or conversation id: one check each."
    )
    channel: str = Field(max_length=16)
    patient_id: str | None = Field(
        default=None, max_length=32, index=True, description="Who the caller claims to be."
    )
    code_hash: str | None = Field(default=None, max_length=128)
    code_salt: str | None = Field(default=None, max_length=64)
    route: str | None = Field(default=None, max_length=16, description="whatsapp | sms")
    sent_at: datetime | None = Field(default=None, sa_column=_utc(True))
    expires_at: datetime | None = Field(default=None, sa_column=_utc(True))
    sends: int = Field(default=0, description="Codes sent in this conversation.")
    attempts: int = Field(default=0, description="Wrong codes or birth dates given.")
    verified_patient_id: str | None = Field(default=None, max_length=32)
    verified_by: str | None = Field(default=None, max_length=16, description="code | birth_date")
    verified_at: datetime | None = Field(default=None, sa_column=_utc(True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc(False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_utc(False, index=True))
