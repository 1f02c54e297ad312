"""Mirror appointments into the external calendar (outbox kind ``calendar``), and reconcile.

Each booking, reschedule or cancellation enqueues one row, grouped by appointment so they land in
order. The event is built from the appointment as it is *at delivery*, so a late retry never
writes a stale time. The periodic reconciliation compares our appointments with the calendar and
reports drift (events deleted or moved by hand) to the clinic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlmodel import col

from voice_agent.alerts import StaffTexts
from voice_agent.calendars.base import CalendarBackend, CalendarEvent
from voice_agent.clinic.model import Clinic, Weekday
from voice_agent.clock import Clock
from voice_agent.errors import CalendarUnavailable, PermanentFailure, SlotRejected
from voice_agent.integrations.outbox import Delivered, OutboxItem, Outcome
from voice_agent.store.db import transaction
from voice_agent.store.outbox_tables import OutboxRow, OutboxStatus
from voice_agent.store.tables import ACTIVE_STATUSES, Appointment, InteractionKind, Patient

logger = logging.getLogger(__name__)

PATIENT_WORD = {"pt-BR": "Paciente", "ru": "Пациент", "en": "Patient"}


def calendar_event(
    clinic: Clinic,
    appointment: Appointment,
    patient: Patient | None,
    texts: StaffTexts | None = None,
) -> CalendarEvent:
    """The event as the clinic's staff read it: title and note in the clinic's language."""
    full_name = (patient.full_name or "").strip() if patient else ""
    first = full_name.split()[0] if full_name else PATIENT_WORD.get(clinic.default_language, "")
    service = clinic.service(appointment.service_id)
    service_name = service.name(clinic.default_language) if service else appointment.service_id
    description = None
    if texts is not None:
        description = texts.say(
            clinic.default_language,
            "event_description",
            clinic=clinic.name,
            service=service_name,
            appointment_id=appointment.id,
        )
    return CalendarEvent(
        description=description,
        appointment_id=appointment.id,
        doctor_id=appointment.doctor_id,
        service_name=service_name,
        patient_first_name=first,
        patient_full_name=full_name or None,
        start=appointment.start,
        end=appointment.end,
        location=_location(clinic, appointment),
    )


def _location(clinic: Clinic, appointment: Appointment) -> str:
    doctor = clinic.doctor(appointment.doctor_id)
    local = appointment.start.astimezone(clinic.tz)
    if doctor is not None:
        for day in doctor.working_hours.get(Weekday.of(local.date()), ()):
            if day.hospital and day.start <= local.time() < day.end:
                hospital = next((h for h in clinic.hospitals if h.id == day.hospital), None)
                if hospital is not None:
                    return f"{hospital.name}, {hospital.address}"
    return clinic.address


class CalendarSyncHandler:
    kind = "calendar"
    batch_size = 1

    def __init__(
        self,
        engine: Engine,
        backend: CalendarBackend,
        clinic: Callable[[], Clinic],
        texts: StaffTexts | None = None,
    ) -> None:
        self._engine = engine
        self._backend = backend
        self._clinic = clinic
        self._texts = texts

    def _load(self, appointment_id: str) -> tuple[Appointment | None, Patient | None]:
        with transaction(self._engine) as session:
            appointment = session.get(Appointment, appointment_id)
            patient = session.get(Patient, appointment.patient_id) if appointment else None
            return appointment, patient

    def _store_external_id(self, appointment_id: str, external_id: str) -> None:
        with transaction(self._engine) as session:
            appointment = session.get(Appointment, appointment_id, with_for_update=True)
            if appointment is not None and appointment.external_id != external_id:
                appointment.external_id = external_id
                session.add(appointment)

    async def deliver(self, items: list[OutboxItem]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for item in items:
            try:
                outcomes.append(await self._deliver_one(item))
            except SlotRejected as error:
                outcomes.append(PermanentFailure(str(error)))
            except CalendarUnavailable as error:
                outcomes.append(error)
        return outcomes

    async def _deliver_one(self, item: OutboxItem) -> Delivered:
        op = item.payload["op"]
        appointment_id = item.payload["appointment_id"]
        appointment, patient = await asyncio.to_thread(self._load, appointment_id)
        if appointment is None:
            raise PermanentFailure("appointment not found")
        event = calendar_event(self._clinic(), appointment, patient, self._texts)
        if op == InteractionKind.booking:
            if not appointment.active:
                return Delivered()  # cancelled before its event was written: nothing to show
            external_id = await self._backend.create_event(event, appointment.id)
            if external_id:
                await asyncio.to_thread(self._store_external_id, appointment.id, external_id)
            return Delivered(external_id)
        if op == InteractionKind.reschedule:
            if not appointment.active:
                return Delivered(appointment.external_id)
            previous = item.payload.get("from_doctor_id")
            if previous and previous != appointment.doctor_id:
                # Another doctor: the event leaves the old calendar and enters the new one.
                old = event.model_copy(update={"doctor_id": previous})
                await self._backend.delete_event(old, appointment.external_id)
                external_id = await self._backend.create_event(event, appointment.id)
                if external_id:
                    await asyncio.to_thread(self._store_external_id, appointment.id, external_id)
                return Delivered(external_id)
            await self._backend.move_event(event, appointment.external_id)
            return Delivered(appointment.external_id)
        if op == InteractionKind.cancellation:
            await self._backend.delete_event(event, appointment.external_id)
            return Delivered(appointment.external_id)
        raise PermanentFailure(f"unknown calendar operation {op!r}")


@dataclass(frozen=True)
class Drift:
    kind: str  # missing | moved | orphan
    doctor_id: str
    appointment_id: str | None
    detail: str


class Reconciler:
    """Compares our active appointments with the external calendar over the coming days."""

    def __init__(
        self,
        engine: Engine,
        backend: CalendarBackend,
        clinic: Callable[[], Clinic],
        clock: Clock,
        *,
        days: int = 14,
        alert: Callable[[str, str], Awaitable[None]] | None = None,
        texts: StaffTexts | None = None,
    ) -> None:
        self._engine = engine
        self._backend = backend
        self._clinic = clinic
        self._clock = clock
        self._days = days
        self._alert = alert
        self._texts = texts

    def _ours(
        self, start: datetime, end: datetime
    ) -> tuple[dict[str, list[Appointment]], set[str]]:
        with transaction(self._engine) as session:
            rows = session.execute(
                select(Appointment).where(
                    col(Appointment.start) < end, col(Appointment.end) > start
                )
            ).scalars()
            by_doctor: dict[str, list[Appointment]] = {}
            for row in rows:
                by_doctor.setdefault(row.doctor_id, []).append(row)
            in_flight = set(
                session.execute(
                    select(col(OutboxRow.group_key)).where(
                        col(OutboxRow.kind) == "calendar",
                        col(OutboxRow.status) == OutboxStatus.pending,
                    )
                ).scalars()
            )
        return by_doctor, {g for g in in_flight if g}

    async def run(self) -> list[Drift]:
        now = self._clock.now()
        start, end = now, now + timedelta(days=self._days)
        ours, in_flight = await asyncio.to_thread(self._ours, start, end)
        clinic = self._clinic()
        everything = {a.id: a for rows in ours.values() for a in rows}
        drift: list[Drift] = []
        for doctor in clinic.doctors:
            if self._backend.name == "google" and not doctor.calendar_id:
                continue
            external = await self._backend.list_events(doctor.id, start, end)
            by_id = {e.appointment_id: e for e in external if e.appointment_id}
            mine = {a.id: a for a in ours.get(doctor.id, [])}
            for appointment in mine.values():
                if appointment.id in in_flight or appointment.status not in ACTIVE_STATUSES:
                    continue
                seen = by_id.get(appointment.id)
                if seen is None or seen.cancelled:
                    drift.append(
                        Drift("missing", doctor.id, appointment.id, "event deleted by hand")
                    )
                elif seen.start != appointment.start or seen.end != appointment.end:
                    local = seen.start.astimezone(clinic.tz).strftime("%Y-%m-%d %H:%M")
                    drift.append(Drift("moved", doctor.id, appointment.id, f"moved to {local}"))
            for event in external:
                if event.cancelled or event.appointment_id in in_flight:
                    continue
                row = everything.get(event.appointment_id or "")
                if row is None or row.status not in ACTIVE_STATUSES or row.doctor_id != doctor.id:
                    drift.append(
                        Drift("orphan", doctor.id, event.appointment_id, "event with no booking")
                    )
        if drift and self._alert is not None:
            counts: dict[str, int] = {}
            for d in drift:
                counts[d.kind] = counts.get(d.kind, 0) + 1
            if self._texts is not None:
                language = self._clinic().default_language
                summary = ", ".join(
                    self._texts.say(language, f"drift_{kind}", count=n)
                    for kind, n in sorted(counts.items())
                )
                text = self._texts.say(language, "calendar_drift", summary=summary)
            else:
                summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
                text = f"Calendar differs ({summary}): run `voice-agent calendar reconcile`"
            await self._alert("calendar_drift", text)
        for d in drift:
            logger.warning("calendar drift: %s %s %s", d.kind, d.doctor_id, d.appointment_id)
        return drift
