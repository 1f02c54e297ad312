"""BookingService: offers (held for a few minutes), book, reschedule, cancel, list.

No double booking is enforced by the database: every appointment and hold claims its doctor's
5-minute cells in ``slot_claim`` (primary key doctor+cell). When requests race for one slot, the
inserts collide and exactly one transaction commits, on SQLite and on PostgreSQL alike. Python
checks before that only produce better error messages; they are never the lock.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from voice_agent.calendars.base import CalendarBackend
from voice_agent.clinic.model import Clinic
from voice_agent.clock import Clock
from voice_agent.interactions import InteractionLog
from voice_agent.scheduling.availability import Interval, Slot, check_slot
from voice_agent.scheduling.preferences import Preferences, window
from voice_agent.scheduling.ranking import (
    DEFAULT_SCORER,
    Offer,
    RankingContext,
    Scorer,
    rank_offers,
)
from voice_agent.store.db import transaction
from voice_agent.store.tables import (
    ACTIVE_STATUSES,
    CELL_MINUTES,
    Appointment,
    AppointmentStatus,
    Hold,
    InteractionKind,
    SlotClaim,
)

CELL = timedelta(minutes=CELL_MINUTES)


class BookingError(Exception):
    """A booking that cannot be done; ``code`` is stable, ``message`` can be said to a patient."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class HeldOffer:
    """A ranked slot, held for this conversation until ``expires_at``."""

    hold_id: str
    label: str
    slot: Slot
    expires_at: datetime
    score: float
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class BookingRequest:
    patient_id: str
    channel: str
    holder: str
    request_key: str | None = None
    insurance_id: str | None = None


def cells(start: datetime, end: datetime) -> Iterator[datetime]:
    """The 5-minute cells an interval touches (UTC offsets are whole 5-minute multiples)."""
    epoch = start.replace(minute=0, second=0, microsecond=0)
    cell = epoch + ((start - epoch) // CELL) * CELL
    while cell < end:
        yield cell
        cell += CELL


class BookingService:
    def __init__(
        self,
        engine: Engine,
        clinic: Callable[[], Clinic],
        calendar: CalendarBackend,
        log: InteractionLog,
        clock: Clock,
        *,
        hold_minutes: int = 5,
        scorer: Scorer | None = None,
        confirmer: Callable[[Session, Appointment], None] | None = None,
    ) -> None:
        self._engine = engine
        self._clinic = clinic
        self._calendar = calendar
        self._log = log
        self._clock = clock
        self._hold = timedelta(minutes=hold_minutes)
        self._scorer = scorer or DEFAULT_SCORER
        # An external system that must accept a booking before it commits (the clinic's API);
        # it raises BookingError to refuse, and the transaction rolls back.
        self.confirmer = confirmer

    @property
    def clinic(self) -> Clinic:
        return self._clinic()

    # Offers -----------------------------------------------------------------------------------

    async def find_offers(
        self,
        service_id: str,
        prefs: Preferences,
        *,
        holder: str,
        patient_id: str | None = None,
        language: str | None = None,
        limit: int = 3,
    ) -> list[HeldOffer]:
        """Rank free slots for the preferences and hold the best ``limit`` for this holder.

        Earlier holds of the same holder are released first: a new search replaces old offers.
        """
        clinic = self.clinic
        if clinic.service(service_id) is None:
            raise BookingError("unknown_service", "That service is not offered here.")
        now = self._clock.now()
        await asyncio.to_thread(self._release_holds, holder)
        ranked = await self.rank(
            service_id, prefs, now=now, limit=limit * 2, patient_id=patient_id, language=language
        )
        held: list[HeldOffer] = []
        for offer in ranked:
            if len(held) == limit:
                break
            label = str(len(held) + 1)
            hold = await asyncio.to_thread(self._place_hold, holder, label, offer, now)
            if hold is not None:
                held.append(hold)
        return held

    async def rank(
        self,
        service_id: str,
        prefs: Preferences,
        *,
        now: datetime,
        limit: int,
        patient_id: str | None = None,
        language: str | None = None,
    ) -> list[Offer]:
        """Ranked free slots for the preferences, nothing held (staff screens use it directly)."""
        busy, load = await self.busy_snapshot(service_id, prefs, now)
        previous = await asyncio.to_thread(self._previous_doctors, patient_id, now)
        context = RankingContext(previous_doctors=previous, doctor_load=load, language=language)
        return rank_offers(
            self.clinic,
            service_id,
            prefs,
            now=now,
            busy=busy,
            context=context,
            limit=limit,
            scorer=self._scorer,
        )

    async def busy_snapshot(
        self, service_id: str, prefs: Preferences, now: datetime
    ) -> tuple[dict[str, list[Interval]], dict[str, int]]:
        """Busy time per doctor (appointments, live holds, external calendar) and their load,
        over the days the preferences allow."""
        clinic = self.clinic
        first_day, last_day = window(prefs, clinic, now)
        if last_day < first_day:
            return {}, {}
        start = datetime.combine(first_day, datetime.min.time(), clinic.tz)
        end = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), clinic.tz)
        doctor_ids = [d.id for d in clinic.doctors_for(service_id)]
        busy, load = await asyncio.to_thread(self._busy_window, doctor_ids, start, end, now)
        for interval in await self._calendar.busy(doctor_ids, start, end):
            busy[interval.doctor_id].append(Interval(interval.start, interval.end))
        return dict(busy), dict(load)

    def _busy_window(
        self, doctor_ids: list[str], start: datetime, end: datetime, now: datetime
    ) -> tuple[defaultdict[str, list[Interval]], defaultdict[str, int]]:
        busy: defaultdict[str, list[Interval]] = defaultdict(list)
        load: defaultdict[str, int] = defaultdict(int)
        with transaction(self._engine) as session:
            appointments = session.execute(
                select(Appointment.doctor_id, Appointment.start, Appointment.end).where(
                    col(Appointment.doctor_id).in_(doctor_ids),
                    col(Appointment.status).in_(ACTIVE_STATUSES),
                    col(Appointment.start) < end,
                    col(Appointment.end) > start,
                )
            ).all()
            holds = session.execute(
                select(Hold.doctor_id, Hold.start, Hold.end).where(
                    col(Hold.doctor_id).in_(doctor_ids),
                    col(Hold.expires_at) > now,
                    col(Hold.start) < end,
                    col(Hold.end) > start,
                )
            ).all()
        for doctor_id, s, e in appointments:
            busy[doctor_id].append(Interval(s, e))
            load[doctor_id] += 1
        for doctor_id, s, e in holds:
            busy[doctor_id].append(Interval(s, e))
        return busy, load

    def _previous_doctors(self, patient_id: str | None, now: datetime) -> dict[str, str]:
        """The doctor the patient last saw (or is booked with) per service and per specialty."""
        if patient_id is None:
            return {}
        clinic = self.clinic
        with transaction(self._engine) as session:
            rows = session.execute(
                select(Appointment.service_id, Appointment.doctor_id)
                .where(
                    Appointment.patient_id == patient_id,
                    col(Appointment.status).in_((*ACTIVE_STATUSES, AppointmentStatus.completed)),
                )
                .order_by(col(Appointment.start))
            ).all()
        previous: dict[str, str] = {}
        for service_id, doctor_id in rows:
            if clinic.doctor(doctor_id) is None:
                continue
            previous[service_id] = doctor_id
            service = clinic.service(service_id)
            if service is not None:
                previous[service.specialty] = doctor_id
        return previous

    def _place_hold(self, holder: str, label: str, offer: Offer, now: datetime) -> HeldOffer | None:
        slot = offer.slot
        expires = now + self._hold
        try:
            with transaction(self._engine) as session:
                self._purge_expired(session, slot.doctor_id, slot.start, slot.end, now)
                hold = Hold(
                    holder=holder,
                    label=label,
                    doctor_id=slot.doctor_id,
                    service_id=slot.service_id,
                    start=slot.start,
                    end=slot.end,
                    expires_at=expires,
                )
                session.add(hold)
                self._claim(
                    session,
                    slot.doctor_id,
                    slot.start,
                    slot.end,
                    hold_id=hold.id,
                    expires_at=expires,
                )
        except IntegrityError:
            return None
        return HeldOffer(
            hold_id=hold.id,
            label=label,
            slot=slot,
            expires_at=expires,
            score=offer.score,
            reasons=tuple(reason.code for reason in offer.reasons),
        )

    def _release_holds(self, holder: str) -> None:
        with transaction(self._engine) as session:
            ids = list(session.execute(select(Hold.id).where(Hold.holder == holder)).scalars())
            if ids:
                session.execute(delete(SlotClaim).where(col(SlotClaim.hold_id).in_(ids)))
                session.execute(delete(Hold).where(col(Hold.id).in_(ids)))

    async def release_holds(self, holder: str) -> None:
        await asyncio.to_thread(self._release_holds, holder)

    async def purge_expired_holds(self) -> int:
        """Housekeeping: drop expired holds and their claims (a job runs it every minute)."""

        def _purge() -> int:
            now = self._clock.now()
            with transaction(self._engine) as session:
                ids = list(
                    session.execute(select(Hold.id).where(col(Hold.expires_at) <= now)).scalars()
                )
                if ids:
                    session.execute(delete(SlotClaim).where(col(SlotClaim.hold_id).in_(ids)))
                    session.execute(delete(Hold).where(col(Hold.id).in_(ids)))
                return len(ids)

        return await asyncio.to_thread(_purge)

    async def hold_by_label(self, holder: str, label: str) -> str | None:
        """The hold id behind option ``label`` of this holder's latest offers."""

        def _read() -> str | None:
            with transaction(self._engine) as session:
                return session.execute(
                    select(Hold.id).where(Hold.holder == holder, Hold.label == label)
                ).scalar_one_or_none()

        return await asyncio.to_thread(_read)

    async def _held_slot(self, hold_id: str, holder: str) -> Slot:
        """The slot behind this holder's hold, or the error a patient hears when it is gone."""
        hold = await self.get_hold(hold_id, holder)
        if hold is None:
            raise BookingError(
                "offer_expired", "That option is no longer available; let me look again."
            )
        return Slot(hold.doctor_id, hold.service_id, hold.start, hold.end, None)

    async def get_hold(self, hold_id: str, holder: str) -> Hold | None:
        def _read() -> Hold | None:
            with transaction(self._engine) as session:
                hold = session.get(Hold, hold_id)
                return hold if hold is not None and hold.holder == holder else None

        return await asyncio.to_thread(_read)

    # Booking ----------------------------------------------------------------------------------

    async def book(self, request: BookingRequest, hold_id: str) -> Appointment:
        """Book a held offer. Idempotent by ``request.request_key``."""
        slot = await self._held_slot(hold_id, request.holder)
        return await self.book_slot(request, slot, hold_id=hold_id)

    async def book_slot(
        self, request: BookingRequest, slot: Slot, *, hold_id: str | None = None
    ) -> Appointment:
        existing = await self._by_request_key(request)
        if existing is not None:
            return existing
        await self._check(slot, request.insurance_id)
        return await asyncio.to_thread(self._insert, request, slot, hold_id)

    async def _check(self, slot: Slot, insurance_id: str | None, ignore: str | None = None) -> None:
        """Policy checks with specific reasons; the database still decides who wins a race."""
        clinic = self.clinic
        now = self._clock.now()
        external = await self._calendar.busy([slot.doctor_id], slot.start, slot.end)
        busy = {slot.doctor_id: [Interval(b.start, b.end) for b in external]}
        problem = check_slot(
            clinic,
            doctor_id=slot.doctor_id,
            service_id=slot.service_id,
            start=slot.start,
            now=now,
            busy=busy,
        )
        if problem is not None:
            raise BookingError(str(problem.code), problem.message)
        if insurance_id is not None:
            if clinic.insurance(insurance_id) is None:
                raise BookingError("unknown_insurance", "We do not work with that health plan.")
            if not clinic.accepts(insurance_id, slot.doctor_id, slot.service_id):
                raise BookingError(
                    "insurance_not_accepted",
                    "That health plan does not cover this service with this doctor.",
                )

    def _insert(self, request: BookingRequest, slot: Slot, hold_id: str | None) -> Appointment:
        now = self._clock.now()
        try:
            with transaction(self._engine) as session:
                if hold_id is not None:
                    self._drop_hold(session, hold_id)
                self._purge_expired(session, slot.doctor_id, slot.start, slot.end, now)
                appointment = Appointment(
                    patient_id=request.patient_id,
                    doctor_id=slot.doctor_id,
                    service_id=slot.service_id,
                    insurance_id=request.insurance_id,
                    start=slot.start,
                    end=slot.end,
                    channel=request.channel,
                    request_key=request.request_key,
                    created_at=now,
                    updated_at=now,
                )
                session.add(appointment)
                session.flush()
                self._claim(
                    session, slot.doctor_id, slot.start, slot.end, appointment_id=appointment.id
                )
                if self.confirmer is not None:
                    self.confirmer(session, appointment)
                self._log.record_in(
                    session,
                    InteractionKind.booking,
                    channel=request.channel,
                    patient_id=request.patient_id,
                    appointment_id=appointment.id,
                    details=_describe(appointment),
                )
                return appointment
        except IntegrityError:
            existing = self._by_request_key_sync(request)
            if existing is not None:
                return existing
            raise BookingError(
                "slot_taken", "Sorry, that time was just taken by someone else."
            ) from None

    async def _by_request_key(self, request: BookingRequest) -> Appointment | None:
        if request.request_key is None:
            return None
        return await asyncio.to_thread(self._by_request_key_sync, request)

    def _by_request_key_sync(self, request: BookingRequest) -> Appointment | None:
        if request.request_key is None:
            return None
        with transaction(self._engine) as session:
            found = session.execute(
                select(Appointment).where(Appointment.request_key == request.request_key)
            ).scalar_one_or_none()
        if found is not None and found.patient_id != request.patient_id:
            raise BookingError("request_conflict", "That request belongs to another patient.")
        return found

    # Changes ----------------------------------------------------------------------------------

    async def reschedule(
        self, request: BookingRequest, appointment_id: str, hold_id: str
    ) -> Appointment:
        """Move an appointment to a held offer; the old time is kept if the new one is taken."""
        slot = await self._held_slot(hold_id, request.holder)
        current = await self.get_own(request.patient_id, appointment_id)
        if current.start == slot.start and current.doctor_id == slot.doctor_id:
            return current
        await self._check(slot, current.insurance_id)
        return await asyncio.to_thread(self._move, request, current.id, slot, hold_id)

    def _move(
        self, request: BookingRequest, appointment_id: str, slot: Slot, hold_id: str
    ) -> Appointment:
        now = self._clock.now()
        try:
            with transaction(self._engine) as session:
                appointment = self._lock_own(session, request.patient_id, appointment_id, now)
                before = _describe(appointment)
                session.execute(delete(SlotClaim).where(SlotClaim.appointment_id == appointment.id))
                self._drop_hold(session, hold_id)
                self._purge_expired(session, slot.doctor_id, slot.start, slot.end, now)
                self._claim(
                    session, slot.doctor_id, slot.start, slot.end, appointment_id=appointment.id
                )
                appointment.doctor_id = slot.doctor_id
                appointment.service_id = slot.service_id
                appointment.start = slot.start
                appointment.end = slot.end
                appointment.status = AppointmentStatus.booked
                appointment.updated_at = now
                session.add(appointment)
                self._log.record_in(
                    session,
                    InteractionKind.reschedule,
                    channel=request.channel,
                    patient_id=request.patient_id,
                    appointment_id=appointment.id,
                    details={"from": before, "to": _describe(appointment)},
                )
                return appointment
        except IntegrityError:
            raise BookingError(
                "slot_taken", "Sorry, that time was just taken; your appointment was not changed."
            ) from None

    async def cancel(
        self, patient_id: str, appointment_id: str, *, channel: str, reason: str = ""
    ) -> Appointment:
        def _cancel() -> Appointment:
            now = self._clock.now()
            with transaction(self._engine) as session:
                appointment = self._lock_own(session, patient_id, appointment_id, now)
                notice = timedelta(minutes=self.clinic.booking.cancel_notice_minutes)
                if appointment.start - now < notice:
                    raise BookingError(
                        "too_late_to_cancel",
                        "It is too close to the appointment to cancel automatically; "
                        "I can put you through to the staff.",
                    )
                session.execute(delete(SlotClaim).where(SlotClaim.appointment_id == appointment.id))
                appointment.status = AppointmentStatus.cancelled
                appointment.cancelled_at = now
                appointment.updated_at = now
                session.add(appointment)
                self._log.record_in(
                    session,
                    InteractionKind.cancellation,
                    channel=channel,
                    patient_id=patient_id,
                    appointment_id=appointment.id,
                    details={**_describe(appointment), "reason": reason[:200]},
                )
                return appointment

        return await asyncio.to_thread(_cancel)

    async def confirm(self, patient_id: str, appointment_id: str, *, channel: str) -> Appointment:
        def _confirm() -> Appointment:
            now = self._clock.now()
            with transaction(self._engine) as session:
                appointment = self._lock_own(session, patient_id, appointment_id, now)
                appointment.status = AppointmentStatus.confirmed
                appointment.updated_at = now
                session.add(appointment)
                self._log.record_in(
                    session,
                    InteractionKind.confirmation,
                    channel=channel,
                    patient_id=patient_id,
                    appointment_id=appointment.id,
                    details=_describe(appointment),
                )
                return appointment

        return await asyncio.to_thread(_confirm)

    async def get_own(self, patient_id: str, appointment_id: str) -> Appointment:
        def _read() -> Appointment:
            with transaction(self._engine) as session:
                return self._lock_own(
                    session, patient_id, appointment_id, self._clock.now(), lock=False
                )

        return await asyncio.to_thread(_read)

    async def list_for_patient(
        self, patient_id: str, *, include_past: bool = False, include_cancelled: bool = False
    ) -> list[Appointment]:
        def _read() -> list[Appointment]:
            query = select(Appointment).where(Appointment.patient_id == patient_id)
            if not include_past:
                query = query.where(col(Appointment.end) > self._clock.now())
            if not include_cancelled:
                query = query.where(col(Appointment.status).in_(ACTIVE_STATUSES))
            with transaction(self._engine) as session:
                return list(session.execute(query.order_by(col(Appointment.start))).scalars())

        return await asyncio.to_thread(_read)

    # Internals --------------------------------------------------------------------------------

    def _lock_own(
        self,
        session: Session,
        patient_id: str,
        appointment_id: str,
        now: datetime,
        *,
        lock: bool = True,
    ) -> Appointment:
        """The patient's own active, future appointment, or a clear refusal.

        Another patient's appointment is reported exactly like a missing one, so ids cannot be
        probed.
        """
        query = select(Appointment).where(Appointment.id == appointment_id)
        if lock:
            query = query.with_for_update()
        appointment = session.execute(query).scalar_one_or_none()
        if appointment is None or appointment.patient_id != patient_id:
            raise BookingError("not_found", "I could not find that appointment for you.")
        if not appointment.active:
            raise BookingError("not_active", "That appointment was already cancelled.")
        if appointment.start <= now:
            raise BookingError("in_past", "That appointment has already taken place.")
        return appointment

    @staticmethod
    def _claim(
        session: Session,
        doctor_id: str,
        start: datetime,
        end: datetime,
        *,
        appointment_id: str | None = None,
        hold_id: str | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        session.add_all(
            SlotClaim(
                doctor_id=doctor_id,
                cell=cell,
                appointment_id=appointment_id,
                hold_id=hold_id,
                expires_at=expires_at,
            )
            for cell in cells(start, end)
        )
        session.flush()

    @staticmethod
    def _purge_expired(
        session: Session, doctor_id: str, start: datetime, end: datetime, now: datetime
    ) -> None:
        """Expired holds give their cells back before a new claim is tried on them."""
        session.execute(
            delete(SlotClaim).where(
                SlotClaim.doctor_id == doctor_id,
                col(SlotClaim.cell) >= start - CELL,
                col(SlotClaim.cell) < end,
                col(SlotClaim.hold_id).is_not(None),
                col(SlotClaim.expires_at) <= now,
            )
        )

    @staticmethod
    def _drop_hold(session: Session, hold_id: str) -> None:
        session.execute(delete(SlotClaim).where(SlotClaim.hold_id == hold_id))
        session.execute(delete(Hold).where(Hold.id == hold_id))


def _describe(appointment: Appointment) -> dict[str, str | None]:
    return {
        "doctor_id": appointment.doctor_id,
        "service_id": appointment.service_id,
        "insurance_id": appointment.insurance_id,
        "start": appointment.start.isoformat(),
        "end": appointment.end.isoformat(),
    }


__all__ = [
    "BookingError",
    "BookingRequest",
    "BookingService",
    "HeldOffer",
    "cells",
]
