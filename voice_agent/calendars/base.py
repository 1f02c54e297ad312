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


class CalendarUnavailable(RuntimeError):
    """The backend cannot be reached or failed; the caller retries later (outbox)."""


class SlotRejected(RuntimeError):
    """The backend refused the booking for a business reason (slot taken, patient blocked)."""


class CalendarBackend(Protocol):
    name: str

    async def busy(
        self, doctor_ids: Collection[str], start: datetime, end: datetime
    ) -> list[BusyInterval]:
        """Time the doctors are busy apart from the appointments in our own database."""
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
