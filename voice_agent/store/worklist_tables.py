"""The staff's to-do queue and the text conversations' turns.

``work_item`` is written at the source, in the same transaction as the fact that needs a person
(the interaction row of a hand-over, callback, unanswered question, emergency or failure; the
outbox row that became a dead letter; the confirmation call that stayed unanswered), so an item
exists exactly when its cause committed. ``open_key`` is unique while the item is open or taken
(one item per conversation and kind of need, however often the patient asks) and emptied when
it is resolved, so the next request starts a new item. ``work_item_event`` is its audit trail.

``conversation_turn`` records what was said in a text conversation (WhatsApp, SMS, web chat, the
terminal, the no-AI phone line): patient and receptionist turns, tools with their arguments and
results, language switches, red flags. Calls have their own ``call_event`` rows.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from voice_agent.store.types import EncryptedText, UTCDateTime, utcnow


class WorkKind(StrEnum):
    handover = "handover"
    """The patient asked for a person (transfer, "quero falar com uma atendente")."""
    callback = "callback"
    """The patient asked to be called back."""
    question = "question"
    """A question the receptionist could not answer."""
    emergency = "emergency"
    """A red flag was heard (or the model reported an emergency)."""
    failure = "failure"
    """Something failed while a patient waited (a tool, the clinic's API)."""
    dead_letter = "dead_letter"
    """A side effect (patient message, calendar write, Sheets row) that could not be delivered."""
    unreached = "unreached"
    """A confirmation call that nobody answered after every attempt."""


class WorkStatus(StrEnum):
    open = "open"
    taken = "taken"
    resolved = "resolved"


OPEN_WORK = (WorkStatus.open, WorkStatus.taken)


class WorkItem(SQLModel, table=True):
    __tablename__ = "work_item"
    __table_args__ = (
        Index("ix_work_item_status_created", "status", "created_at"),
        # Every text turn reads its conversation's open items (``Worklist.fill_contact``).
        Index("ix_work_item_conversation_status", "conversation_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16, description="A WorkKind (plain text: kinds get added).")
    status: str = Field(default=WorkStatus.open.value, max_length=16, description="A WorkStatus.")
    open_key: str | None = Field(
        default=None,
        sa_column=Column(String(200), nullable=True, unique=True),
        description="Source of the need while open (conversation, outbox row, appointment).",
    )
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    patient_id: str | None = Field(default=None, max_length=32, index=True)
    phone: str | None = Field(
        default=None,
        sa_column=Column(EncryptedText(), nullable=True),
        description="The callback number when known. Encrypted.",
    )
    language: str | None = Field(default=None, max_length=8)
    channel: str | None = Field(default=None, max_length=16)
    call_sid: str | None = Field(default=None, max_length=64)
    conversation_id: str | None = Field(default=None, max_length=128)
    appointment_id: str | None = Field(default=None, max_length=32)
    outbox_id: int | None = Field(default=None)
    interaction_id: int | None = Field(default=None, description="The interaction that made it.")
    summary: str | None = Field(
        default=None,
        sa_column=Column(EncryptedText(), nullable=True),
        description="What was asked or what happened, as said. Encrypted.",
    )
    details: str = Field(
        default="{}",
        sa_column=Column(EncryptedText(), nullable=False),
        description="Facts for the console as JSON (category, attempts, error). Encrypted.",
    )
    taken_by: int | None = Field(
        default=None, foreign_key="staff_account.id", description="The staff account."
    )
    taken_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    resolved_by: int | None = Field(
        default=None, foreign_key="staff_account.id", description="The staff account."
    )
    resolved_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    resolution: str | None = Field(
        default=None,
        sa_column=Column(EncryptedText(), nullable=True),
        description="The note of whoever resolved it. Encrypted.",
    )


class WorkItemEvent(SQLModel, table=True):
    """Who did what to an item, when: created, asked_again, taken, released, resolved,
    reopened, retried."""

    __tablename__ = "work_item_event"

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(index=True)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    action: str = Field(max_length=16)
    actor: str = Field(default="system", max_length=16, description="staff | system")
    actor_id: int | None = Field(
        default=None, foreign_key="staff_account.id", description="The staff account."
    )
    note: str | None = Field(default=None, sa_column=Column(EncryptedText(), nullable=True))


class ConversationTurn(SQLModel, table=True):
    """One entry of a text conversation's timeline, in order."""

    __tablename__ = "conversation_turn"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq"),
        Index("ix_conversation_turn_at", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: str = Field(max_length=128)  # looked up through the unique constraint
    seq: int
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    channel: str = Field(max_length=16)
    patient_id: str | None = Field(default=None, max_length=32, index=True)
    language: str | None = Field(default=None, max_length=8)
    kind: str = Field(
        max_length=16,
        description="patient | receptionist | tool | error | language | emergency | handover",
    )
    engine: str | None = Field(default=None, max_length=16, description="offline | llm | safety")
    content: str = Field(sa_column=Column(EncryptedText(), nullable=False))
