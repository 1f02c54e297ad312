"""Backend intents: a booking, move or cancellation that a confirming backend (the clinic's REST
API) must accept before our database records it.

One row per patient intent. Its ``key`` is the ``Idempotency-Key`` sent on every attempt, so a
retry after a lost answer, a restart or a retry by the job replays the first answer instead of
making a second record. While an intent is pending its slot stays claimed by a hold owned by the
intent (``holder = "intent:<id>"``), so the slot is still ours when the answer lands.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from voice_agent.store.types import UTCDateTime, utcnow


class BackendIntent(SQLModel, table=True):
    __tablename__ = "backend_intent"
    __table_args__ = (Index("ix_backend_intent_due", "status", "next_attempt_at"),)

    id: str = Field(primary_key=True, max_length=32)
    key: str = Field(max_length=128, unique=True, description="Idempotency-Key at the backend.")
    op: str = Field(max_length=16, description="book | reschedule | cancel")
    status: str = Field(default="pending", max_length=16, description="pending | done | failed")
    appointment_id: str = Field(max_length=32, index=True)
    patient_id: str = Field(max_length=32)
    holder: str = Field(max_length=128, description="The conversation that asked.")
    hold_id: str | None = Field(default=None, max_length=32)
    doctor_id: str = Field(max_length=64)
    service_id: str = Field(max_length=64)
    start: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    end: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    insurance_id: str | None = Field(default=None, max_length=64)
    channel: str = Field(default="voice", max_length=16)
    request_key: str | None = Field(default=None, max_length=128)
    reason: str = Field(default="", max_length=200)
    external_id: str | None = Field(default=None, max_length=256)
    attempts: int = 0
    notify: bool = Field(default=False, description="The patient was told it is pending.")
    outcome: str | None = Field(default=None, max_length=32, description="Why it failed.")
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    next_attempt_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
