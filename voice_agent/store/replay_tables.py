"""Requests processed once: a Twilio message, a gather step of a call.

Twilio retries a webhook it got no answer for, and a captured signed request stays valid for
ever; the row's primary key makes the second delivery visible to every process on the database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from voice_agent.store.types import UTCDateTime, utcnow


class ProcessedRequest(SQLModel, table=True):
    __tablename__ = "processed_request"

    key: str = Field(
        primary_key=True, max_length=96, description="kind:id[:step], e.g. gather:CA…:3"
    )
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True)
    )
    response: str | None = Field(
        default=None,
        sa_column=Column(Text, nullable=True),
        description="What was answered (TwiML), replayed to a repeated step; NULL while running.",
    )
