"""What the front desk does to the agenda, through the same booking service as the agent.

Every change goes through `BookingService` (the same holds, slot claims and checks, so no double
booking), inside ``acting_as(staff)`` so its interaction row names the staff account; the
interaction hook then tells the patient in writing exactly as for a change the agent made.
Attendance marks and blocks are recorded here, with the same interaction log.

Reading is per doctor and local day: appointments with the patient decrypted for staff, the
doctor's blocks, and the free slots the slot engine would offer for one service.

The desk books by the desk's rules (`BookingRules.desk`): from now on, today included, with no
minimum notice; the clinic's booking policy is for what the AI receptionist offers patients.
Every listing and every change here passes them explicitly, so what the desk lists it can book.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from voice_agent.clinic.model import Clinic
from voice_agent.clock import Clock
from voice_agent.interactions import Actor, InteractionLog, acting_as
from voice_agent.patients.service import PatientService
from voice_agent.scheduling.availability import BookingRules, Slot, free_slots_by_day
from voice_agent.scheduling.booking import BookingError, BookingRequest, BookingService
from voice_agent.scheduling.preferences import Preferences
from voice_agent.store.db import advisory_xact_lock, transaction
from voice_agent.store.tables import (
    ACTIVE_STATUSES,
    Appointment,
    AppointmentStatus,
    CalendarBlock,
    InteractionKind,
    Patient,
)

CHANNEL = "console"
"""The interaction channel of a change made at the front desk."""
RULES = BookingRules.desk
"""The booking rules of the front desk: any free time from now on."""
SHOWN_STATUSES = (*ACTIVE_STATUSES, AppointmentStatus.attended, AppointmentStatus.no_show)
ATTENDANCE = (AppointmentStatus.attended, AppointmentStatus.no_show)


class DeskError(Exception):
    """A refused desk action; ``code`` names an i18n key (``desk.<code>``)."""

    def __init__(self, code: str, **fields: str) -> None:
        super().__init__(code)
        self.code = code
        self.fields = fields


@dataclass(frozen=True)
class Entry:
    """One appointment as staff see it."""

    id: str
    doctor_id: str
    service_id: str
    start: datetime
    end: datetime
    status: AppointmentStatus
    channel: str
    patient_id: str
    patient_name: str | None
    patient_phone: str
    attendee_name: str | None

    @property
    def confirmed(self) -> bool:
        return self.status == AppointmentStatus.confirmed

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True)
class Block:
    id: str
    doctor_id: str
    start: datetime
    end: datetime
    reason: str


@dataclass
class DoctorDay:
    doctor_id: str
    day: date
    entries: list[Entry] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    free: list[Slot] = field(default_factory=list)

    def timeline(self) -> list[tuple[str, Entry | Block | list[Slot]]]:
        """The day in time order: ``("entry", Entry)``, ``("block", Block)`` and, between them,
        ``("free", [Slot, …])`` runs of consecutive free times."""
        items: list[tuple[datetime, int, str, Entry | Block | Slot]] = [
            *((b.start, 0, "block", b) for b in self.blocks),
            *((e.start, 1, "entry", e) for e in self.entries),
            *((s.start, 2, "free", s) for s in self.free),
        ]
        result: list[tuple[str, Entry | Block | list[Slot]]] = []
        for _, _, kind, item in sorted(items, key=lambda row: (row[0], row[1])):
            if isinstance(item, Slot):
                last = result[-1] if result else None
                if last is not None and last[0] == "free" and isinstance(last[1], list):
                    last[1].append(item)
                else:
                    result.append(("free", [item]))
            else:
                result.append((kind, item))
        return result


def _entry(appointment: Appointment, patient: Patient | None) -> Entry:
    return Entry(
        id=appointment.id,
        doctor_id=appointment.doctor_id,
        service_id=appointment.service_id,
        start=appointment.start,
        end=appointment.end,
        status=AppointmentStatus(appointment.status),
        channel=appointment.channel,
        patient_id=appointment.patient_id,
        patient_name=patient.full_name if patient else None,
        patient_phone=patient.phone if patient else "",
        attendee_name=appointment.attendee_name,
    )


def _staff(staff_id: int) -> Actor:
    return Actor(kind="staff", id=str(staff_id))


class StaffDesk:
    def __init__(
        self,
        engine: Engine,
        booking: BookingService,
        patients: PatientService,
        log: InteractionLog,
        clock: Clock,
    ) -> None:
        self._engine = engine
        self._booking = booking
        self._patients = patients
        self._log = log
        self._clock = clock

    @property
    def clinic(self) -> Clinic:
        return self._booking.clinic

    def now(self) -> datetime:
        return self._clock.now()

    # Reading ----------------------------------------------------------------------------------

    def _day_bounds(self, first: date, days: int) -> tuple[datetime, datetime]:
        tz = self.clinic.tz
        start = datetime.combine(first, datetime.min.time(), tz)
        end = datetime.combine(first + timedelta(days=days), datetime.min.time(), tz)
        return start, end

    async def agenda(
        self,
        doctor_ids: Collection[str],
        first: date,
        days: int,
        *,
        service_ids: dict[str, str] | None = None,
    ) -> list[DoctorDay]:
        """Per doctor and local day: appointments, blocks, and free slots of the doctor's
        service (``service_ids[doctor]``, else the doctor's first service)."""
        clinic = self.clinic
        start, end = self._day_bounds(first, days)
        entries, blocks = await asyncio.to_thread(self._read, list(doctor_ids), start, end)
        result: dict[tuple[str, date], DoctorDay] = {}
        for doctor_id in doctor_ids:
            for offset in range(days):
                day = first + timedelta(days=offset)
                result[(doctor_id, day)] = DoctorDay(doctor_id, day)
        for entry in entries:
            key = (entry.doctor_id, entry.start.astimezone(clinic.tz).date())
            if key in result:
                result[key].entries.append(entry)
        for block in blocks:
            for offset in range(days):
                day = first + timedelta(days=offset)
                lo, hi = self._day_bounds(day, 1)
                if block.start < hi and block.end > lo and (block.doctor_id, day) in result:
                    result[(block.doctor_id, day)].blocks.append(block)
        now = self.now()
        for doctor_id in doctor_ids:
            doctor = clinic.doctor(doctor_id)
            if doctor is None or not doctor.services:
                continue
            service_id = (service_ids or {}).get(doctor_id) or doctor.services[0]
            prefs = Preferences(
                date_from=first, date_to=first + timedelta(days=days - 1), doctor_id=doctor_id
            )
            busy, _ = await self._booking.busy_snapshot(service_id, prefs, now, RULES)
            for day, slots in free_slots_by_day(
                clinic,
                service_id,
                now=now,
                busy={doctor_id: busy.get(doctor_id, [])},
                first_day=first,
                last_day=first + timedelta(days=days - 1),
                doctor_ids=[doctor_id],
                rules=RULES,
            ):
                if (doctor_id, day) in result:
                    result[(doctor_id, day)].free.extend(slots)
        return list(result.values())

    def _read(
        self, doctor_ids: list[str], start: datetime, end: datetime
    ) -> tuple[list[Entry], list[Block]]:
        with transaction(self._engine) as session:
            rows = session.execute(
                select(Appointment, Patient)
                .join(Patient, col(Patient.id) == col(Appointment.patient_id))
                .where(
                    col(Appointment.doctor_id).in_(doctor_ids),
                    col(Appointment.status).in_(SHOWN_STATUSES),
                    col(Appointment.start) < end,
                    col(Appointment.end) > start,
                )
                .order_by(col(Appointment.start))
            ).all()
            blocks = session.execute(
                select(CalendarBlock)
                .where(
                    col(CalendarBlock.doctor_id).in_(doctor_ids),
                    col(CalendarBlock.start) < end,
                    col(CalendarBlock.end) > start,
                )
                .order_by(col(CalendarBlock.start))
            ).scalars()
            return (
                [_entry(a, p) for a, p in rows],
                [Block(b.id, b.doctor_id, b.start, b.end, b.reason) for b in blocks],
            )

    async def blocks(self, doctor_ids: Collection[str], first: date, days: int) -> list[Block]:
        start, end = self._day_bounds(first, days)
        _, blocks = await asyncio.to_thread(self._read, list(doctor_ids), start, end)
        return blocks

    async def entry(self, appointment_id: str) -> Entry:
        def _read() -> Entry:
            with transaction(self._engine) as session:
                appointment = session.get(Appointment, appointment_id)
                if appointment is None:
                    raise DeskError("not_found")
                return _entry(appointment, session.get(Patient, appointment.patient_id))

        return await asyncio.to_thread(_read)

    async def free_for(
        self, doctor_id: str, service_id: str, first: date, days: int = 7, limit: int = 40
    ) -> list[Slot]:
        """Free slots of one doctor and service (the times a move or a booking may take), by
        the desk's rules: from ``first`` (today: its remaining times) with no notice."""
        clinic = self.clinic
        now = self.now()
        prefs = Preferences(
            date_from=first, date_to=first + timedelta(days=days - 1), doctor_id=doctor_id
        )
        busy, _ = await self._booking.busy_snapshot(service_id, prefs, now, RULES)
        found: list[Slot] = []
        for _, slots in free_slots_by_day(
            clinic,
            service_id,
            now=now,
            busy={doctor_id: busy.get(doctor_id, [])},
            first_day=first,
            last_day=first + timedelta(days=days - 1),
            doctor_ids=[doctor_id],
            rules=RULES,
        ):
            found.extend(slots)
            if len(found) >= limit:
                break
        return found[:limit]

    # Changes ----------------------------------------------------------------------------------

    def _slot(self, doctor_id: str, service_id: str, start: datetime) -> Slot:
        clinic = self.clinic
        service = clinic.service(service_id)
        doctor = clinic.doctor(doctor_id)
        if service is None or doctor is None or service_id not in doctor.services:
            raise DeskError("service_not_offered")
        return Slot(
            doctor_id, service_id, start, start + timedelta(minutes=service.duration_minutes)
        )

    async def book(
        self,
        staff_id: int,
        *,
        name: str,
        phone: str,
        doctor_id: str,
        service_id: str,
        start: datetime,
        request_key: str,
    ) -> Appointment:
        """Book for a patient on the phone: found (or registered) by phone, named if new."""
        slot = self._slot(doctor_id, service_id, start)
        with acting_as(_staff(staff_id)):
            patient = await self._patients.find_or_create(phone)
            if name.strip() and not patient.full_name:
                await self._patients.update(patient.id, full_name=name)
            request = BookingRequest(
                patient_id=patient.id,
                channel=CHANNEL,
                holder=f"console:{staff_id}",
                request_key=request_key,
                rules=RULES,
            )
            return await self._booking.book_slot(request, slot)

    async def move(self, staff_id: int, appointment_id: str, start: datetime) -> Appointment:
        """Move to ``start`` with the same doctor and service: the new time is held first, then
        the appointment moved onto the hold (the old time kept if the new one is taken)."""
        current = await self.entry(appointment_id)
        if not current.active:
            raise DeskError("not_active")
        slot = self._slot(current.doctor_id, current.service_id, start)
        holder = f"console:{staff_id}:{appointment_id}"
        with acting_as(_staff(staff_id)):
            hold_id = await self._booking.hold_slot(holder, slot, rules=RULES)
            request = BookingRequest(
                patient_id=current.patient_id, channel=CHANNEL, holder=holder, rules=RULES
            )
            try:
                return await self._booking.reschedule(request, appointment_id, hold_id)
            finally:
                await self._booking.release_holds(holder)

    async def cancel(self, staff_id: int, appointment_id: str, reason: str = "") -> Appointment:
        current = await self.entry(appointment_id)
        with acting_as(_staff(staff_id)):
            return await self._booking.cancel(
                current.patient_id,
                appointment_id,
                channel=CHANNEL,
                reason=reason or "staff",
                enforce_notice=False,
            )

    async def mark(
        self, staff_id: int, appointment_id: str, status: AppointmentStatus
    ) -> Appointment:
        """Attended or no-show, once the appointment has started."""
        if status not in ATTENDANCE:
            raise DeskError("bad_status")

        def _mark() -> Appointment:
            now = self.now()
            with transaction(self._engine) as session:
                appointment = session.execute(
                    select(Appointment)
                    .where(col(Appointment.id) == appointment_id)
                    .with_for_update()
                ).scalar_one_or_none()
                if appointment is None:
                    raise DeskError("not_found")
                if appointment.status not in SHOWN_STATUSES:
                    raise DeskError("not_active")
                if appointment.start > now:
                    raise DeskError("not_started")
                before = appointment.status
                appointment.status = status
                appointment.updated_at = now
                session.add(appointment)
                self._log.record_in(
                    session,
                    InteractionKind.attendance,
                    channel=CHANNEL,
                    patient_id=appointment.patient_id,
                    appointment_id=appointment.id,
                    details={"from": str(before), "to": str(status)},
                    actor=_staff(staff_id),
                )
                return appointment

        return await asyncio.to_thread(_mark)

    # Blocks -----------------------------------------------------------------------------------

    async def hits(self, doctor_id: str, start: datetime, end: datetime) -> list[Entry]:
        """The active appointments a block over this time would fall on."""
        entries, _ = await asyncio.to_thread(self._read, [doctor_id], start, end)
        return [e for e in entries if e.active]

    async def add_block(
        self, staff_id: int, doctor_id: str, start: datetime, end: datetime, reason: str
    ) -> str:
        """Save a block; refused (``block_hits``) while an active appointment is inside it, so
        no patient is left booked in time the doctor is away."""
        if self.clinic.doctor(doctor_id) is None:
            raise DeskError("unknown_doctor")
        if end <= start:
            raise DeskError("block_order")

        def _write() -> str:
            with transaction(self._engine) as session:
                # PostgreSQL: take turns with the searches that hold offers for this doctor, so
                # an offer is either placed before the block (and its booking, which reads the
                # blocks in its own transaction, is refused) or never made.
                advisory_xact_lock(session, f"hold:{doctor_id}")
                if self._active_in(session, doctor_id, start, end):
                    raise DeskError("block_hits")
                block = CalendarBlock(
                    doctor_id=doctor_id, start=start, end=end, reason=reason[:200]
                )
                session.add(block)
                session.flush()
                self._log.record_in(
                    session,
                    InteractionKind.block,
                    channel=CHANNEL,
                    details={
                        "op": "add",
                        "block_id": block.id,
                        "doctor_id": doctor_id,
                        "start": start.isoformat(),
                        "end": end.isoformat(),
                        "reason": reason[:200],
                    },
                    actor=_staff(staff_id),
                )
                return block.id

        return await asyncio.to_thread(_write)

    @staticmethod
    def _active_in(session: Session, doctor_id: str, start: datetime, end: datetime) -> bool:
        found = session.execute(
            select(col(Appointment.id))
            .where(
                col(Appointment.doctor_id) == doctor_id,
                col(Appointment.status).in_(ACTIVE_STATUSES),
                col(Appointment.start) < end,
                col(Appointment.end) > start,
            )
            .limit(1)
        ).first()
        return found is not None

    async def remove_block(self, staff_id: int, block_id: str, doctor_ids: set[str]) -> None:
        def _delete() -> None:
            with transaction(self._engine) as session:
                block = session.get(CalendarBlock, block_id)
                if block is None or block.doctor_id not in doctor_ids:
                    raise DeskError("not_found")
                details = {
                    "op": "remove",
                    "block_id": block.id,
                    "doctor_id": block.doctor_id,
                    "start": block.start.isoformat(),
                    "end": block.end.isoformat(),
                }
                session.delete(block)
                self._log.record_in(
                    session,
                    InteractionKind.block,
                    channel=CHANNEL,
                    details=details,
                    actor=_staff(staff_id),
                )

        await asyncio.to_thread(_delete)


def grouped_by_day(days: list[DoctorDay]) -> dict[date, list[DoctorDay]]:
    by_day: defaultdict[date, list[DoctorDay]] = defaultdict(list)
    for day in days:
        by_day[day.day].append(day)
    return dict(sorted(by_day.items()))


__all__ = ["BookingError", "DeskError", "DoctorDay", "Entry", "StaffDesk", "grouped_by_day"]
