"""The calendar protocol every backend speaks (local SQL, Google Calendar, a clinic's REST API).

Our database is always the source of truth for appointments we booked and the lock against
double booking; a backend adds (a) time the doctor is busy for other reasons and (b) a mirror of
our appointments in the place the doctor looks at, identified by an external id.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict


class BusyInterval(BaseModel):
    model_config = ConfigDict(frozen=True)

    doctor_id: str
    start: datetime
    end: datetime


class CalendarEvent(BaseModel):
    """What a backend needs to write an appointment; the title carries only a first name."""

    model_config = ConfigDict(frozen=True)

    appointment_id: str
    doctor_id: str
    service_name: str
    patient_first_name: str
    start: datetime
    end: datetime
    location: str | None = None
    patient_full_name: str | None = None  # only used when a clinic configures it
    description: str | None = None
    """The event's note, in the clinic's language (prompts/<lang>/staff_texts.yaml)."""


class ExternalEvent(BaseModel):
    """An event as the backend has it, for reconciliation."""

    model_config = ConfigDict(frozen=True)

    external_id: str
    appointment_id: str | None
    start: datetime
    end: datetime
    cancelled: bool = False


class BackendRecord(BaseModel):
    """An appointment as a confirming backend receives it (times are aware datetimes)."""

    model_config = ConfigDict(frozen=True)

    appointment_id: str
    doctor_id: str
    service_id: str
    service_name: str | None = None
    patient_name: str | None = None
    patient_phone: str | None = None
    insurance_id: str | None = None
    start: datetime
    end: datetime


class CalendarBackend(Protocol):
    name: str

    async def busy(
        self, doctor_ids: Collection[str], start: datetime, end: datetime, *, fresh: bool = False
    ) -> list[BusyInterval]:
        """Time the doctors are busy apart from the appointments in our own database; ``fresh``
        (at booking time) asks the source again instead of a cached answer where it can."""
        ...

    async def create_event(self, event: CalendarEvent, idempotency_key: str) -> str | None:
        """Mirror a new appointment; returns the external id (None when there is no mirror)."""
        ...

    async def move_event(self, event: CalendarEvent, external_id: str | None) -> None: ...

    async def delete_event(self, event: CalendarEvent, external_id: str | None) -> None: ...

    async def list_events(
        self, doctor_id: str, start: datetime, end: datetime
    ) -> list[ExternalEvent]:
        """Our events as the backend sees them (reconciliation finds drift by comparing)."""
        ...


class ConfirmingBackend(Protocol):
    """A backend that must accept a booking, a move or a cancellation before we record it (the
    clinic's REST API). Each call carries an idempotency key, one per patient intent; calls are
    made outside any database transaction. ``CalendarUnavailable`` means "unknown, try again
    with the same key"; ``RecordRejected`` is the backend's final no."""

    async def create_record(self, record: BackendRecord, key: str, *, retried: bool) -> str:
        """The backend's record id; with ``retried``, an earlier attempt may have landed."""
        ...

    async def move_record(self, external_id: str, record: BackendRecord, key: str) -> None: ...

    async def cancel_record(self, external_id: str, key: str) -> None: ...

    def remember_taken(self, doctor_id: str, start: datetime, end: datetime) -> None:
        """A slot the backend said is taken: busy for a while, so it is not offered again."""
        ...
