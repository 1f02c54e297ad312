"""The database tables. Times are aware UTC; the clinic's timezone is applied at the edges.

No double booking is enforced by the database itself: an appointment or a hold claims every
5-minute cell of its doctor's time in ``slot_claim``, whose primary key is (doctor, cell). Two
claims on one cell cannot both commit, on SQLite or PostgreSQL, whatever the Python code does.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from voice_agent.store.types import (
    EncryptedDate,
    EncryptedText,
    UTCDateTime,
    keyed_hash_default,
    utcnow,
)

CELL_MINUTES = 5


def new_id() -> str:
    return uuid.uuid4().hex


def _utc(**kwargs: object) -> Column:
    return Column(UTCDateTime(), **kwargs)  # type: ignore[arg-type]


class ClinicVersion(SQLModel, table=True):
    """Every clinic file ever loaded; the newest row is the clinic in force."""

    __tablename__ = "clinic_version"

    id: int | None = Field(default=None, primary_key=True)
    loaded_at: datetime = Field(default_factory=utcnow, sa_column=_utc(nullable=False))
    source: str = Field(max_length=500)
    content: str = Field(sa_column=Column(Text, nullable=False))
    author_id: int | None = Field(
        default=None,
        foreign_key="staff_account.id",
        description="The staff account that saved it (console).",
    )
    summary: str | None = Field(
        default=None,
        sa_column=Column(Text, nullable=True),
        description="What changed from the version before, one line per change.",
    )


class Patient(SQLModel, table=True):
    __tablename__ = "patient"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    phone: str = Field(
        sa_column=Column(EncryptedText(), nullable=False), description="E.164, encrypted."
    )
    phone_hash: str | None = Field(
        default=None,
        sa_column=Column(
            String(64),
            nullable=False,
            unique=True,
            index=True,
            default=keyed_hash_default("phone"),
        ),
        description="HMAC-SHA256 of the E.164 phone: the only way to find a patient by phone.",
    )
    full_name: str | None = Field(default=None, sa_column=Column(EncryptedText(), nullable=True))
    email: str | None = Field(default=None, sa_column=Column(EncryptedText(), nullable=True))
    birth_date: date | None = Field(default=None, sa_column=Column(EncryptedDate(), nullable=True))
    language: str | None = Field(default=None, max_length=8)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_utc(nullable=False))


class AppointmentStatus(StrEnum):
    booked = "booked"
    confirmed = "confirmed"
    cancelled = "cancelled"
    completed = "completed"
    attended = "attended"
    """Staff marked that the patient came (the learned no-show risk learns from it)."""
    no_show = "no_show"
    """Staff marked that the patient did not come (the no-show model learns from it)."""


ACTIVE_STATUSES = (AppointmentStatus.booked, AppointmentStatus.confirmed)


class Appointment(SQLModel, table=True):
    __tablename__ = "appointment"
    __table_args__ = (
        Index("ix_appointment_doctor_start", "doctor_id", "start"),
        Index("ix_appointment_patient_start", "patient_id", "start"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    patient_id: str = Field(foreign_key="patient.id", max_length=32)
    doctor_id: str = Field(max_length=64)
    service_id: str = Field(max_length=64)
    insurance_id: str | None = Field(default=None, max_length=64)
    attendee_name: str | None = Field(
        default=None,
        sa_column=Column(EncryptedText(), nullable=True),
        description="Who attends when the patient (the caller, the contact) booked for a child "
        "or relative; null when the patient attends. Encrypted.",
    )
    start: datetime = Field(sa_column=_utc(nullable=False))
    end: datetime = Field(sa_column=_utc(nullable=False))
    status: AppointmentStatus = Field(default=AppointmentStatus.booked, max_length=16)
    channel: str = Field(default="voice", max_length=16)
    request_key: str | None = Field(default=None, max_length=128, unique=True)
    external_id: str | None = Field(default=None, max_length=256)
    rescheduled_from: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_utc(nullable=False))
    cancelled_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class Hold(SQLModel, table=True):
    """An offered slot kept for one conversation for a few minutes."""

    __tablename__ = "hold"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    holder: str = Field(max_length=128, index=True, description="Conversation that owns it.")
    label: str = Field(default="", max_length=8, description="Option number said to the patient.")
    doctor_id: str = Field(max_length=64)
    service_id: str = Field(max_length=64)
    start: datetime = Field(sa_column=_utc(nullable=False))
    end: datetime = Field(sa_column=_utc(nullable=False))
    expires_at: datetime = Field(sa_column=_utc(nullable=False, index=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc(nullable=False))


class SlotClaim(SQLModel, table=True):
    """One 5-minute cell of a doctor's time, owned by one appointment or one hold."""

    __tablename__ = "slot_claim"

    doctor_id: str = Field(primary_key=True, max_length=64)
    cell: datetime = Field(sa_column=_utc(primary_key=True))
    appointment_id: str | None = Field(default=None, max_length=32, index=True)
    hold_id: str | None = Field(default=None, max_length=32, index=True)
    expires_at: datetime | None = Field(
        default=None, sa_column=_utc(nullable=True), description="Set for holds only."
    )


class InteractionKind(StrEnum):
    booking = "booking"
    reschedule = "reschedule"
    cancellation = "cancellation"
    information = "information"
    confirmation = "confirmation"
    reminder = "reminder"
    """A confirmation step happened: message sent, call placed, voicemail, no answer …"""
    registration = "registration"
    transfer = "transfer"
    emergency = "emergency"
    failure = "failure"
    erasure = "erasure"
    """A patient's personal data was erased on request (the row holds no personal data)."""
    attendance = "attendance"
    """Staff marked an appointment attended or no-show."""
    block = "block"
    """Staff blocked (or freed) a doctor's time in the console."""


class Interaction(SQLModel, table=True):
    """The interaction log: one row per thing that happened with a patient."""

    __tablename__ = "interaction"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=_utc(nullable=False, index=True))
    patient_id: str | None = Field(default=None, max_length=32, index=True)
    kind: InteractionKind = Field(max_length=16)
    channel: str = Field(max_length=16)
    appointment_id: str | None = Field(default=None, max_length=32)
    details: str = Field(default="{}", sa_column=Column(EncryptedText(), nullable=False))
    actor: str = Field(default="system", max_length=16, description="patient | staff | system")
    actor_id: str | None = Field(
        default=None, max_length=64, description="The staff account or the patient who acted."
    )
    call_id: str | None = Field(
        default=None, max_length=128, description="Call SID or conversation id of the change."
    )
    verified_by: str | None = Field(
        default=None,
        max_length=16,
        description="How the patient's identity was known: carrier | code | birth_date | "
        "unverified (None when staff or the system acted).",
    )


class CallOutcome(StrEnum):
    in_progress = "in_progress"
    completed = "completed"
    booked = "booked"
    transferred = "transferred"
    emergency = "emergency"
    caller_hung_up = "caller_hung_up"
    failed = "failed"
    timed_out = "timed_out"


class CallRecord(SQLModel, table=True):
    """One phone call: who, when, how it ended, and its transcript and tool calls."""

    __tablename__ = "call_record"

    call_sid: str = Field(primary_key=True, max_length=64)
    stream_sid: str | None = Field(default=None, max_length=64)
    direction: str = Field(default="inbound", max_length=16)
    caller: str = Field(sa_column=Column(EncryptedText(), nullable=False))
    patient_id: str | None = Field(default=None, max_length=32)
    language: str | None = Field(default=None, max_length=8)
    started_at: datetime = Field(default_factory=utcnow, sa_column=_utc(nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    outcome: CallOutcome = Field(default=CallOutcome.in_progress, max_length=24)
    flagged: bool = False
    error: str | None = Field(default=None, sa_column=Column(EncryptedText(), nullable=True))
    mode: str = Field(default="reception", max_length=16, description="reception | confirmation")
    appointment_id: str | None = Field(default=None, max_length=32)
    token_nonce: str | None = Field(default=None, max_length=64)
    token_used_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    next_action: str | None = Field(
        default=None, max_length=16, description="After the stream: hangup | transfer | fallback"
    )
    transfer_summary: str | None = Field(
        default=None, sa_column=Column(EncryptedText(), nullable=True)
    )


class CallEvent(SQLModel, table=True):
    """A transcript turn, tool call or error within a call, in order."""

    __tablename__ = "call_event"
    __table_args__ = (UniqueConstraint("call_sid", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    call_sid: str = Field(max_length=64, index=True)
    seq: int
    at: datetime = Field(default_factory=utcnow, sa_column=_utc(nullable=False))
    kind: str = Field(max_length=16, description="caller | receptionist | tool | error | dtmf")
    content: str = Field(sa_column=Column(EncryptedText(), nullable=False))


class CalendarBlock(SQLModel, table=True):
    """Time a doctor blocked by hand in the local calendar (surgery, meeting, personal)."""

    __tablename__ = "calendar_block"
    __table_args__ = (Index("ix_calendar_block_doctor_start", "doctor_id", "start"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    doctor_id: str = Field(max_length=64)
    start: datetime = Field(sa_column=_utc(nullable=False))
    end: datetime = Field(sa_column=_utc(nullable=False))
    reason: str = Field(default="", max_length=200)


from voice_agent.store.confirmation_tables import ConfirmationStep  # noqa: E402,F401
from voice_agent.store.conversation_tables import ConversationRecord  # noqa: E402,F401
from voice_agent.store.identity_tables import IdentityCheck  # noqa: E402,F401
from voice_agent.store.intent_tables import BackendIntent  # noqa: E402,F401
from voice_agent.store.learning_tables import LearnedModel, OfferSet  # noqa: E402,F401
from voice_agent.store.outbox_tables import OutboxRow  # noqa: E402,F401
from voice_agent.store.replay_tables import ProcessedRequest  # noqa: E402,F401
from voice_agent.store.staff_tables import StaffAccount  # noqa: E402,F401
from voice_agent.store.worklist_tables import (  # noqa: E402,F401
    ConversationTurn,
    WorkItem,
    WorkItemEvent,
)
