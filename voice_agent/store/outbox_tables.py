"""The outbox: every side effect (calendar write, Sheets row, WhatsApp message, alert) as a row
written in the same transaction as the change that causes it, delivered later with retries.

A row is *claimed* by setting ``claim_token`` and pushing ``next_attempt_at`` one lease ahead, in
a short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL). A process that dies while sending
leaves the row to be claimed again when the lease ends; the delivery itself is idempotent.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from voice_agent.store.types import EncryptedText, UTCDateTime, utcnow


class OutboxStatus(StrEnum):
    pending = "pending"
    done = "done"
    dead = "dead"


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_due", "status", "next_attempt_at"),
        Index("ix_outbox_group", "group_key", "status"),
        # Twilio's failure callback finds its row by the message's SID (``fail_after_delivery``).
        Index("ix_outbox_external_id", "external_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32, description="calendar | sheets | whatsapp | alert")
    key: str = Field(max_length=200, unique=True, description="Idempotency key of the effect.")
    group_key: str | None = Field(
        default=None, max_length=64, description="Rows of one group are delivered in order."
    )
    payload: str = Field(sa_column=Column(EncryptedText(), nullable=False))
    status: OutboxStatus = Field(default=OutboxStatus.pending, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    claim_token: str | None = Field(default=None, max_length=32)
    last_error: str | None = Field(default=None, sa_column=Column(EncryptedText(), nullable=True))
    external_id: str | None = Field(default=None, max_length=256)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    delivered_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
