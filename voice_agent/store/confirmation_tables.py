"""Confirmation steps: one row per planned message or call of an appointment.

A step is claimed by one process (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on
SQLite) and leased while it runs; a call step then waits for Twilio's callbacks.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from voice_agent.store.types import EncryptedText, UTCDateTime, utcnow


class StepStatus(StrEnum):
    pending = "pending"
    """Due at ``due_at``."""
    running = "running"
    """Claimed by a process until ``lease_until`` (sending the message, placing the call)."""
    waiting = "waiting"
    """Sent: waiting for the patient's reply, or for the call's callbacks."""
    done = "done"
    failed = "failed"
    cancelled = "cancelled"
    """The appointment was cancelled, moved or confirmed before the step ran."""


OPEN_STATUSES = (StepStatus.pending, StepStatus.running, StepStatus.waiting)


class ConfirmationStep(SQLModel, table=True):
    __tablename__ = "confirmation_step"
    __table_args__ = (Index("ix_confirmation_step_status_due", "status", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    appointment_id: str = Field(max_length=32, index=True)
    seq: int = Field(
        default=0, description="Index of the step in the clinic policy; 99 = fallback."
    )
    via: str = Field(max_length=16, description="whatsapp | call")
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: StepStatus = Field(default=StepStatus.pending, max_length=16)
    attempts: int = 0
    errors: int = Field(default=0, description="Failed runs (outages), retried a few times.")
    outcome: str | None = Field(default=None, max_length=32)
    call_sid: str | None = Field(default=None, max_length=64, index=True)
    message_sid: str | None = Field(default=None, max_length=64)
    answered_by: str | None = Field(default=None, max_length=32)
    lease_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    error: str | None = Field(default=None, sa_column=Column(EncryptedText(), nullable=True))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
