"""BookingService: book a held offer, reschedule, cancel, confirm, list (the offers and holds
it extends are in ``offers.py``).

No double booking is enforced by the database: every appointment and hold claims its doctor's
5-minute cells in ``slot_claim`` (primary key doctor+cell). When requests race for one slot, the
inserts collide and exactly one transaction commits, on SQLite and on PostgreSQL alike. Python
checks before that only produce better error messages; they are never the lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import (
    Engine,
    delete,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from voice_agent.calendars.base import CalendarBackend, ConfirmingBackend
from voice_agent.clinic.model import Clinic
from voice_agent.clock import Clock
from voice_agent.errors import CalendarUnavailable
from voice_agent.interactions import InteractionLog
from voice_agent.scheduling.availability import (
    BookingRules,
    Interval,
    ProblemCode,
    Slot,
    check_slot,
)
from voice_agent.scheduling.confirmed import Alert, ConfirmedBookings
from voice_agent.scheduling.offers import (
    CELL,
    BookingError,
    HeldOffer,
    OfferDesk,
    OfferRecorder,
    cells,
    offer_expired,
)
from voice_agent.scheduling.ranking import (
    Scorer,
)
from voice_agent.store.db import read_session, transaction
from voice_agent.store.intent_tables import BackendIntent
from voice_agent.store.tables import (
    ACTIVE_STATUSES,
    Appointment,
    AppointmentStatus,
    CalendarBlock,
    Hold,
    InteractionKind,
    SlotClaim,
    new_id,
)


@dataclass(frozen=True)
class BookingRequest:
    patient_id: str
    channel: str
    holder: str
    request_key: str | None = None
    insurance_id: str | None = None
    attendee_name: str | None = None
    """The child or relative who attends, when the patient books for them (the patient stays
    the contact)."""
    rules: BookingRules = BookingRules.policy
    """Whose rules judge the time: the clinic's policy for the AI channels, ``desk`` for staff
    at the console (today, no notice); carried so a booking and a move check what was offered."""


class BookingService(OfferDesk):
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
        alert: Alert | None = None,
        notify: Callable[[Session, BackendIntent], None] | None = None,
        recorder: OfferRecorder | None = None,
    ) -> None:
        super().__init__(
            engine,
            clinic,
            calendar,
            clock,
            hold_minutes=hold_minutes,
            scorer=scorer,
            recorder=recorder,
        )
        self._log = log
        self._confirmed: ConfirmedBookings | None = None
        if getattr(calendar, "confirms_synchronously", False):
            # The clinic's API must accept each booking, move and cancellation first.
            self._confirmed = ConfirmedBookings(
                self,
                cast(ConfirmingBackend, calendar),
                alert=alert,
                notify=notify,
            )

    # Booking ----------------------------------------------------------------------------------

    async def book(self, request: BookingRequest, hold_id: str) -> Appointment:
        """Book a held offer. Idempotent by ``request.request_key``.

        With the embedded calendar the request key, the hold, the doctor's blocks, the policy
        checks and the insert are one transaction on one worker thread; an external calendar is
        asked for the slot's busy time first.
        """
        if self._confirmed is not None:
            return await self._confirmed.book(request, hold_id)
        external: list[Interval] | None = None
        if not self._blocks_in_db:
            slot = await self._held_slot(hold_id, request.holder)
            external = await self._external_intervals(slot)
        return await asyncio.to_thread(self._book_held, request, hold_id, external)

    def _book_held(
        self, request: BookingRequest, hold_id: str, external: list[Interval] | None
    ) -> Appointment:
        try:
            with transaction(self._engine) as session:
                existing = self._by_request_key_in(session, request)
                if existing is not None:
                    return existing
                hold = session.get(Hold, hold_id)
                if hold is None or hold.holder != request.holder:
                    raise offer_expired()
                slot = Slot(hold.doctor_id, hold.service_id, hold.start, hold.end, None)
                busy = [*(external or ()), *self._blocks_in(session, slot)]
                self._check_policy(slot, request.insurance_id, busy, request.rules)
                return self._insert_in(session, request, slot, hold_id)
        except IntegrityError:
            return self._after_collision(request)

    async def book_slot(
        self, request: BookingRequest, slot: Slot, *, hold_id: str | None = None
    ) -> Appointment:
        """Book a slot that was not offered through a hold (staff tools, imports)."""
        existing = await self._by_request_key(request)
        if existing is not None:
            return existing
        if self._confirmed is not None and hold_id is None:
            # The clinic's API must accept it first: hold the slot, then book the hold. The
            # rules (no busy time yet) are checked before the hold, so a refused time (past,
            # too soon, off the grid) leaves no hold claiming its cells until it expires.
            self._check_policy(slot, request.insurance_id, [], request.rules)
            held = await asyncio.to_thread(self._hold_slot, request.holder, slot)
            return await self._confirmed.book(request, held)
        await self._check(slot, request.insurance_id, request.rules)
        return await asyncio.to_thread(self._insert, request, slot, hold_id)

    def _hold_slot(self, holder: str, slot: Slot) -> str:
        """A hold on one slot, or "just taken" when its cells are claimed."""
        now = self._clock.now()
        hold = Hold(
            holder=holder,
            label="",
            doctor_id=slot.doctor_id,
            service_id=slot.service_id,
            start=slot.start,
            end=slot.end,
            expires_at=now + self._hold,
        )
        try:
            with transaction(self._engine) as session:
                self._purge_expired(session, slot.doctor_id, slot.start, slot.end, now)
                session.add(hold)
                session.flush()
                self._claim(
                    session, slot.doctor_id, slot.start, slot.end,
                    hold_id=hold.id, expires_at=hold.expires_at,
                )  # fmt: skip
        except IntegrityError:
            raise BookingError(
                "slot_taken", "Sorry, that time was just taken.", slot=slot
            ) from None
        return hold.id

    async def _check(self, slot: Slot, insurance_id: str | None, rules: BookingRules) -> None:
        """Policy checks with specific reasons; the database still decides who wins a race."""
        busy = await self._external_intervals(slot)
        if not self._blocks_in_db:  # staff blocks live in our tables whatever the calendar
            busy += await asyncio.to_thread(self._blocks_sync, slot)
        self._check_policy(slot, insurance_id, busy, rules)

    def _blocks_sync(self, slot: Slot) -> list[Interval]:
        """Read only (deferred on SQLite: it neither waits for a booking's write lock nor holds
        one): a check ahead of the write, which runs in a transaction of its own as before (a
        held slot's booking reads the blocks again in it, ``_book_held``)."""
        with read_session(self._engine) as session:
            return self._blocks_in(session, slot)

    async def hold_slot(
        self, holder: str, slot: Slot, *, rules: BookingRules = BookingRules.policy
    ) -> str:
        """Hold one given slot for ``holder`` (staff moving an appointment to a chosen time),
        checked under ``rules``; ``slot_taken`` when its cells are claimed."""
        await self._check(slot, None, rules)
        return await asyncio.to_thread(self._hold_slot, holder, slot)

    async def _external_intervals(self, slot: Slot) -> list[Interval]:
        """The slot's busy time at "yes", asked afresh (a cached answer only if that fails)."""
        try:
            busy = await self._calendar.busy([slot.doctor_id], slot.start, slot.end, fresh=True)
        except CalendarUnavailable:
            raise BookingError(
                "backend_unavailable", "The clinic's calendar is not answering right now."
            ) from None
        return [Interval(b.start, b.end) for b in busy]

    @staticmethod
    def _blocks_in(session: Session, slot: Slot) -> list[Interval]:
        """The embedded calendar's blocks over the slot, read in the booking's transaction."""
        rows = session.execute(
            select(col(CalendarBlock.start), col(CalendarBlock.end)).where(
                col(CalendarBlock.doctor_id) == slot.doctor_id,
                col(CalendarBlock.end) > slot.start,
                col(CalendarBlock.start) < slot.end,
            )
        ).all()
        return [Interval(start, end) for start, end in rows]

    def _check_policy(
        self,
        slot: Slot,
        insurance_id: str | None,
        busy: list[Interval],
        rules: BookingRules,
    ) -> None:
        clinic = self.clinic
        problem = check_slot(
            clinic,
            doctor_id=slot.doctor_id,
            service_id=slot.service_id,
            start=slot.start,
            now=self._clock.now(),
            busy={slot.doctor_id: busy},
            rules=rules,
        )
        if problem is not None:
            if problem.code == ProblemCode.busy:
                raise BookingError("slot_taken", "Sorry, that time was just taken.", slot=slot)
            raise BookingError(str(problem.code), problem.message, slot=slot)
        if insurance_id is not None:
            if clinic.insurance(insurance_id) is None:
                raise BookingError("unknown_insurance", "We do not work with that health plan.")
            if not clinic.accepts(insurance_id, slot.doctor_id, slot.service_id):
                raise BookingError(
                    "insurance_not_accepted",
                    "That health plan does not cover this service with this doctor.",
                )

    def _insert(self, request: BookingRequest, slot: Slot, hold_id: str | None) -> Appointment:
        try:
            with transaction(self._engine) as session:
                return self._insert_in(session, request, slot, hold_id)
        except IntegrityError:
            return self._after_collision(request)

    def _insert_in(
        self,
        session: Session,
        request: BookingRequest,
        slot: Slot,
        hold_id: str | None,
        *,
        appointment_id: str | None = None,
        external_id: str | None = None,
    ) -> Appointment:
        """Insert the appointment inside the caller's transaction: the hold used, its cells
        claimed, the booking logged. The clinic-API path gives the id it reserved and the
        clinic's record id."""
        now = self._clock.now()
        if hold_id is not None:
            self._drop_hold(session, hold_id)
        self._purge_expired(session, slot.doctor_id, slot.start, slot.end, now)
        appointment = Appointment(
            id=appointment_id or new_id(),
            external_id=external_id,
            patient_id=request.patient_id,
            doctor_id=slot.doctor_id,
            service_id=slot.service_id,
            insurance_id=request.insurance_id,
            attendee_name=request.attendee_name,
            start=slot.start,
            end=slot.end,
            channel=request.channel,
            request_key=request.request_key,
            created_at=now,
            updated_at=now,
        )
        session.add(appointment)
        session.flush()
        self._claim(session, slot.doctor_id, slot.start, slot.end, appointment_id=appointment.id)
        self._log.record_in(
            session,
            InteractionKind.booking,
            channel=request.channel,
            patient_id=request.patient_id,
            appointment_id=appointment.id,
            details=_describe(appointment),
        )
        return appointment

    def _after_collision(self, request: BookingRequest) -> Appointment:
        """The insert collided: the same request won already (a retry), or someone else did."""
        existing = self._by_request_key_sync(request)
        if existing is not None:
            return existing
        raise BookingError("slot_taken", "Sorry, that time was just taken by someone else.")

    async def retry_pending(self, patient_id: str, holder: str) -> Appointment | None:
        """The patient asks again: a booking of this conversation still waiting for the
        clinic's system is tried again now (None when there is none)."""
        if self._confirmed is None:
            return None
        return await self._confirmed.retry_pending(patient_id, holder)

    async def retry_due(self) -> dict[str, int]:
        """The job: retry requests the clinic's system has not answered yet (with backoff)."""
        if self._confirmed is None:
            return {}
        return await self._confirmed.retry_due()

    async def just_booked(self, patient_id: str, key_prefix: str) -> Appointment | None:
        """The patient's booking made under request keys starting with ``key_prefix`` (one
        conversation) within the hold time: what a repeated "book that option" refers to."""
        since = self._clock.now() - self._hold

        def _read() -> Appointment | None:
            with transaction(self._engine) as session:
                return session.execute(
                    select(Appointment)
                    .where(
                        col(Appointment.patient_id) == patient_id,
                        col(Appointment.request_key).startswith(key_prefix, autoescape=True),
                        col(Appointment.created_at) >= since,
                        col(Appointment.status).in_(ACTIVE_STATUSES),
                    )
                    .order_by(col(Appointment.created_at).desc())
                    .limit(1)
                ).scalar_one_or_none()

        return await asyncio.to_thread(_read)

    async def made_in(self, patient_id: str, key_prefix: str) -> list[Appointment]:
        """The patient's upcoming active appointments booked under request keys starting with
        ``key_prefix`` (one conversation; a move keeps the row and its key): the ones that
        conversation may change without proving who it is — it made them, it knows them."""
        now = self._clock.now()

        def _read() -> list[Appointment]:
            with read_session(self._engine) as session:
                return list(
                    session.execute(
                        select(Appointment)
                        .where(
                            col(Appointment.patient_id) == patient_id,
                            col(Appointment.request_key).startswith(key_prefix, autoescape=True),
                            col(Appointment.status).in_(ACTIVE_STATUSES),
                            col(Appointment.end) > now,
                        )
                        .order_by(col(Appointment.start))
                    ).scalars()
                )

        return await asyncio.to_thread(_read)

    async def _by_request_key(self, request: BookingRequest) -> Appointment | None:
        if request.request_key is None:
            return None
        return await asyncio.to_thread(self._by_request_key_sync, request)

    def _by_request_key_sync(self, request: BookingRequest) -> Appointment | None:
        if request.request_key is None:
            return None
        with transaction(self._engine) as session:
            return self._by_request_key_in(session, request)

    @staticmethod
    def _by_request_key_in(session: Session, request: BookingRequest) -> Appointment | None:
        if request.request_key is None:
            return None
        found = session.execute(
            select(Appointment).where(col(Appointment.request_key) == request.request_key)
        ).scalar_one_or_none()
        if found is not None and found.patient_id != request.patient_id:
            raise BookingError("request_conflict", "That request belongs to another patient.")
        return found

    # Changes ----------------------------------------------------------------------------------

    async def reschedule(
        self, request: BookingRequest, appointment_id: str, hold_id: str
    ) -> Appointment:
        """Move an appointment to a held offer; the old time is kept if the new one is taken."""
        if self._confirmed is not None:
            return await self._confirmed.reschedule(request, appointment_id, hold_id)
        slot = await self._held_slot(hold_id, request.holder)
        current = await self.get_own(request.patient_id, appointment_id)
        if current.start == slot.start and current.doctor_id == slot.doctor_id:
            return current
        await self._check(slot, current.insurance_id, request.rules)
        return await asyncio.to_thread(self._move, request, current.id, slot, hold_id)

    def _move(
        self, request: BookingRequest, appointment_id: str, slot: Slot, hold_id: str
    ) -> Appointment:
        now = self._clock.now()
        try:
            with transaction(self._engine) as session:
                appointment = self._lock_own(session, request.patient_id, appointment_id, now)
                return self._move_in(session, appointment, slot, hold_id, request.channel, now)
        except IntegrityError:
            raise BookingError(
                "slot_taken",
                "Sorry, that time was just taken; your appointment was not changed.",
                slot=slot,
            ) from None

    async def cancel(
        self,
        patient_id: str,
        appointment_id: str,
        *,
        channel: str,
        reason: str = "",
        enforce_notice: bool = True,
    ) -> Appointment:
        """Cancel; ``enforce_notice=False`` for staff, whom the clinic's cancel notice (a rule
        for patients acting alone) does not bind."""
        if self._confirmed is not None:
            return await self._confirmed.cancel(
                patient_id,
                appointment_id,
                channel=channel,
                reason=reason,
                enforce_notice=enforce_notice,
            )

        def _cancel() -> Appointment:
            now = self._clock.now()
            with transaction(self._engine) as session:
                appointment = self._lock_own(session, patient_id, appointment_id, now)
                if enforce_notice:
                    self._check_cancel_notice(appointment, now)
                return self._cancel_in(session, appointment, channel, reason[:200], now)

        return await asyncio.to_thread(_cancel)

    def _move_in(
        self,
        session: Session,
        appointment: Appointment,
        slot: Slot,
        hold_id: str | None,
        channel: str,
        now: datetime,
    ) -> Appointment:
        """Move the appointment inside the caller's transaction: its old cells freed, the hold
        used, the new cells claimed, the change logged (local and clinic-API paths alike)."""
        before = _describe(appointment)
        session.execute(delete(SlotClaim).where(col(SlotClaim.appointment_id) == appointment.id))
        if hold_id is not None:
            self._drop_hold(session, hold_id)
        self._purge_expired(session, slot.doctor_id, slot.start, slot.end, now)
        self._claim(session, slot.doctor_id, slot.start, slot.end, appointment_id=appointment.id)
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
            channel=channel,
            patient_id=appointment.patient_id,
            appointment_id=appointment.id,
            details={"from": before, "to": _describe(appointment)},
        )
        return appointment

    def _cancel_in(
        self, session: Session, appointment: Appointment, channel: str, reason: str, now: datetime
    ) -> Appointment:
        """Cancel the appointment inside the caller's transaction: its cells freed, the
        cancellation logged with its reason (local and clinic-API paths alike)."""
        session.execute(delete(SlotClaim).where(col(SlotClaim.appointment_id) == appointment.id))
        appointment.status = AppointmentStatus.cancelled
        appointment.cancelled_at = now
        appointment.updated_at = now
        session.add(appointment)
        self._log.record_in(
            session,
            InteractionKind.cancellation,
            channel=channel,
            patient_id=appointment.patient_id,
            appointment_id=appointment.id,
            details={**_describe(appointment), "reason": reason},
        )
        return appointment

    def _check_cancel_notice(self, appointment: Appointment, now: datetime) -> None:
        notice = timedelta(minutes=self.clinic.booking.cancel_notice_minutes)
        if appointment.start - now < notice:
            raise BookingError(
                "too_late_to_cancel",
                "It is too close to the appointment to cancel automatically; "
                "I can put you through to the staff.",
            )

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
            query = select(Appointment).where(col(Appointment.patient_id) == patient_id)
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
        query = select(Appointment).where(col(Appointment.id) == appointment_id)
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
                col(SlotClaim.doctor_id) == doctor_id,
                col(SlotClaim.cell) >= start - CELL,
                col(SlotClaim.cell) < end,
                col(SlotClaim.hold_id).is_not(None),
                col(SlotClaim.expires_at) <= now,
            )
        )

    @staticmethod
    def _drop_hold(session: Session, hold_id: str) -> None:
        session.execute(delete(SlotClaim).where(col(SlotClaim.hold_id) == hold_id))
        session.execute(delete(Hold).where(col(Hold.id) == hold_id))


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
    "BookingRules",
    "BookingService",
    "HeldOffer",
    "cells",
]
