"""Bookings, moves and cancellations that a confirming backend (the clinic's REST API) must accept.

Hold → call → record, never a network call inside a database transaction:

1. **open** (one short transaction): the patient's checks, then a ``BackendIntent`` row with the
   idempotency key of this patient intent (conversation, patient, operation and slot; never the
   hold), and the slot's hold handed over to the intent (``holder = "intent:<id>"``), so the slot
   stays ours, even across a new search by the same conversation, until the intent ends;
2. **call** the backend with no transaction open (other conversations never wait on it);
3. **record** (one short transaction) what the backend accepted; if that fails (the slot was
   lost after all), **compensate**: the backend record is cancelled (or the intent to cancel it
   is kept and retried by the job).

An answer that never came (timeout, 5xx, 429) leaves the intent *pending*: the patient is told so,
the clinic is alerted, and the intent is retried with the same key, by the patient (the same
request again) or by the job (``retry_due``, with backoff), until it lands, is refused, or its
time runs out. A patient who was told "pending" gets the outcome in writing (outbox kind
``patient_notice``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from voice_agent.calendars.base import BackendRecord, ConfirmingBackend
from voice_agent.errors import CalendarUnavailable, RecordRejected
from voice_agent.scheduling.availability import Interval, Slot
from voice_agent.scheduling.offers import BookingError, offer_expired
from voice_agent.store.db import is_sqlite, transaction
from voice_agent.store.intent_tables import BackendIntent
from voice_agent.store.tables import (
    Appointment,
    Hold,
    Patient,
    SlotClaim,
    new_id,
)

if TYPE_CHECKING:
    from voice_agent.scheduling.booking import BookingRequest, BookingService

logger = logging.getLogger(__name__)

INTENT_LIFETIME = timedelta(hours=2)
"""How long the job keeps trying; then the intent fails, the patient and the clinic are told."""
LEASE = timedelta(seconds=60)
"""An attempt in flight: the job leaves the intent alone this long."""
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(minutes=15)
NOTICE_KIND = "patient_notice"

Alert = Callable[[str, str], Awaitable[None]]


class _Lost(Exception):
    """Recording what the backend accepted failed: the slot is no longer ours."""


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended: ``done`` (with the appointment), ``refused`` (with our code) or
    ``pending`` (no answer; retried later)."""

    status: str
    appointment: Appointment | None = None
    code: str = ""


def intent_key(*parts: object) -> str:
    """The idempotency key of one patient intent: stable across retries and restarts."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return "va-" + digest[:40]


def _holder(intent_id: str) -> str:
    return f"intent:{intent_id}"


class ConfirmedBookings:
    """``BookingService``'s book, reschedule and cancel for a confirming backend."""

    def __init__(
        self,
        service: BookingService,
        backend: ConfirmingBackend,
        *,
        alert: Alert | None = None,
        notify: Callable[[Session, BackendIntent], None] | None = None,
    ) -> None:
        self._service = service
        self._backend = backend
        self._alert = alert
        self._notify = notify

    @property
    def _engine(self) -> Engine:
        return self._service._engine

    def _now(self) -> datetime:
        return self._service._clock.now()

    # Booking ----------------------------------------------------------------------------------

    async def book(self, request: BookingRequest, hold_id: str) -> Appointment:
        existing = await self._service._by_request_key(request)
        if existing is not None:
            return existing
        slot = await self._service._held_slot(hold_id, request.holder)
        busy = await self._service._external_intervals(slot)
        try:
            opened = await asyncio.to_thread(self._open_book, request, hold_id, busy)
        except IntegrityError:
            # The same request at the same moment (a double tap, a replay) opened this intent:
            # join it (the same key), so both get its one outcome.
            joined = await self.retry_pending(request.patient_id, request.holder)
            if joined is None:
                raise
            return joined
        if isinstance(opened, Appointment):
            return opened
        return _result(await self.attempt(opened, by_patient=True), opened)

    def _open_book(
        self, request: BookingRequest, hold_id: str, busy: list[Interval]
    ) -> BackendIntent | Appointment:
        now = self._now()
        with transaction(self._engine) as session:
            existing = self._service._by_request_key_in(session, request)
            if existing is not None:
                return existing
            hold, slot = _held(session, hold_id, request.holder)
            self._service._check_policy(slot, request.insurance_id, busy, request.rules)
            base = intent_key(
                "book", request.holder, request.patient_id, slot.doctor_id, slot.start
            )
            found = self._reusable(session, base)
            if isinstance(found, Appointment | BackendIntent):
                return found
            return self._open_on_hold(
                session,
                found,
                "book",
                request,
                hold,
                slot,
                now,
                appointment_id=new_id(),
                insurance_id=request.insurance_id,
                request_key=request.request_key,
            )

    def _reusable(self, session: Session, base: str) -> str | BackendIntent | Appointment:
        """A pending intent with this key (a retry), the appointment a finished one made, or
        the key for a new intent (a new generation after a refusal or a cancellation)."""
        for generation in range(1, 50):
            key = base if generation == 1 else f"{base}-{generation}"
            intent = session.execute(
                select(BackendIntent).where(col(BackendIntent.key) == key).with_for_update()
            ).scalar_one_or_none()
            if intent is None:
                return key
            if intent.status == "pending":
                intent.attempts += 1
                intent.next_attempt_at = self._now() + LEASE
                session.add(intent)
                return intent
            if intent.status == "done" and intent.op == "book":
                appointment = session.get(Appointment, intent.appointment_id)
                if appointment is not None and appointment.active:
                    return appointment
        raise RuntimeError("too many attempts at one intent")

    def _open_on_hold(
        self,
        session: Session,
        key: str,
        op: str,
        request: BookingRequest,
        hold: Hold,
        slot: Slot,
        now: datetime,
        *,
        appointment_id: str,
        insurance_id: str | None,
        request_key: str | None = None,
        external_id: str | None = None,
    ) -> BackendIntent:
        """A new intent to book or move onto the held slot (first attempt leased now); the
        intent takes the hold over."""
        intent = BackendIntent(
            id=new_id(),
            key=key,
            op=op,
            appointment_id=appointment_id,
            patient_id=request.patient_id,
            holder=request.holder,
            hold_id=hold.id,
            doctor_id=slot.doctor_id,
            service_id=slot.service_id,
            start=slot.start,
            end=slot.end,
            insurance_id=insurance_id,
            channel=request.channel,
            request_key=request_key,
            external_id=external_id,
            attempts=1,
            next_attempt_at=now + LEASE,
            created_at=now,
            updated_at=now,
        )
        self._adopt_hold(session, hold, intent, now)
        session.add(intent)
        return intent

    def _adopt_hold(
        self, session: Session, hold: Hold, intent: BackendIntent, now: datetime
    ) -> None:
        """The intent owns the slot until it ends: a new search cannot release it."""
        until = now + INTENT_LIFETIME + MAX_RETRY
        hold.holder = _holder(intent.id)
        hold.expires_at = until
        session.add(hold)
        session.execute(
            update(SlotClaim).where(col(SlotClaim.hold_id) == hold.id).values(expires_at=until)
        )

    async def retry_pending(self, patient_id: str, holder: str) -> Appointment | None:
        """The patient asks again for a booking of this conversation that is still pending:
        try it now (the same key). None when there is none."""

        def _read() -> BackendIntent | None:
            with transaction(self._engine) as session:
                intent = session.execute(
                    select(BackendIntent)
                    .where(
                        col(BackendIntent.holder) == holder,
                        col(BackendIntent.patient_id) == patient_id,
                        col(BackendIntent.op) == "book",
                        col(BackendIntent.status) == "pending",
                    )
                    .order_by(col(BackendIntent.created_at).desc())
                    .limit(1)
                    .with_for_update()
                ).scalar_one_or_none()
                if intent is not None:
                    intent.attempts += 1
                    intent.next_attempt_at = self._now() + LEASE
                    session.add(intent)
                return intent

        intent = await asyncio.to_thread(_read)
        if intent is None:
            return None
        return _result(await self.attempt(intent, by_patient=True), intent)

    # Moving and cancelling --------------------------------------------------------------------

    async def reschedule(
        self, request: BookingRequest, appointment_id: str, hold_id: str
    ) -> Appointment:
        slot = await self._service._held_slot(hold_id, request.holder)
        current = await self._service.get_own(request.patient_id, appointment_id)
        if current.start == slot.start and current.doctor_id == slot.doctor_id:
            return current
        busy = await self._service._external_intervals(slot)
        intent = await asyncio.to_thread(self._open_move, request, appointment_id, hold_id, busy)
        return _result(await self.attempt(intent, by_patient=True), intent)

    def _open_move(
        self, request: BookingRequest, appointment_id: str, hold_id: str, busy: list[Interval]
    ) -> BackendIntent:
        now = self._now()
        with transaction(self._engine) as session:
            appointment = self._service._lock_own(session, request.patient_id, appointment_id, now)
            hold, slot = _held(session, hold_id, request.holder)
            self._service._check_policy(slot, appointment.insurance_id, busy, request.rules)
            if appointment.external_id is None:
                raise BookingError(
                    "reschedule_refused", "This appointment is not in the clinic's system."
                )
            base = intent_key("move", appointment.id, slot.doctor_id, slot.start)
            found = self._reusable(session, base)
            if isinstance(found, BackendIntent):
                return found
            if isinstance(found, Appointment):  # pragma: no cover - moves never return one
                raise RuntimeError("a move intent made an appointment")
            return self._open_on_hold(
                session,
                found,
                "reschedule",
                request,
                hold,
                slot,
                now,
                appointment_id=appointment.id,
                insurance_id=appointment.insurance_id,
                external_id=appointment.external_id,
            )

    async def cancel(
        self,
        patient_id: str,
        appointment_id: str,
        *,
        channel: str,
        reason: str,
        enforce_notice: bool = True,
    ) -> Appointment:
        intent = await asyncio.to_thread(
            self._open_cancel, patient_id, appointment_id, channel, reason, enforce_notice
        )
        return _result(await self.attempt(intent, by_patient=True), intent)

    def _open_cancel(
        self,
        patient_id: str,
        appointment_id: str,
        channel: str,
        reason: str,
        enforce_notice: bool = True,
    ) -> BackendIntent:
        now = self._now()
        with transaction(self._engine) as session:
            appointment = self._service._lock_own(session, patient_id, appointment_id, now)
            if enforce_notice:
                self._service._check_cancel_notice(appointment, now)
            found = self._reusable(session, intent_key("cancel", appointment.id))
            if isinstance(found, BackendIntent):
                return found
            if isinstance(found, Appointment):  # pragma: no cover
                raise RuntimeError("a cancel intent made an appointment")
            intent = BackendIntent(
                id=new_id(),
                key=found,
                op="cancel",
                appointment_id=appointment.id,
                patient_id=patient_id,
                holder=channel,
                doctor_id=appointment.doctor_id,
                service_id=appointment.service_id,
                start=appointment.start,
                end=appointment.end,
                channel=channel,
                reason=reason[:200],
                external_id=appointment.external_id,
                attempts=1,
                next_attempt_at=now + LEASE,
                created_at=now,
                updated_at=now,
            )
            session.add(intent)
            return intent

    # One attempt ------------------------------------------------------------------------------

    async def attempt(self, intent: BackendIntent, *, by_patient: bool) -> Outcome:
        """Call the backend for this intent (no transaction open), then record the answer."""
        try:
            external_id = await self._call(intent)
        except RecordRejected as error:
            code = error.code if error.code in _REFUSALS.get(intent.op, ()) else "rejected"
            if intent.op == "book" and code == "slot_taken":
                self._backend.remember_taken(intent.doctor_id, intent.start, intent.end)
            if intent.op == "cancel" and error.code == "not_found":
                return await self._record(intent, intent.external_id)  # already gone there
            await asyncio.to_thread(self._fail, intent.id, code, str(error))
            logger.info("clinic system refused %s: %s", intent.op, code)
            return Outcome("refused", code=code)
        except CalendarUnavailable as error:
            await asyncio.to_thread(self._postpone, intent.id, str(error), by_patient)
            await self._raise_alert("clinic_api_unavailable", intent, str(error))
            return Outcome("pending")
        return await self._record(intent, external_id)

    async def _call(self, intent: BackendIntent) -> str | None:
        if intent.op == "book":
            record = await asyncio.to_thread(self._record_for, intent)
            return await self._backend.create_record(
                record, intent.key, retried=intent.attempts > 1
            )
        if intent.op == "reschedule":
            assert intent.external_id is not None
            record = await asyncio.to_thread(self._record_for, intent)
            await self._backend.move_record(intent.external_id, record, intent.key)
            return intent.external_id
        if intent.op in ("cancel", "undo"):
            if intent.external_id is not None:
                await self._backend.cancel_record(intent.external_id, intent.key)
            return intent.external_id
        raise RuntimeError(f"unknown intent operation {intent.op!r}")

    async def _record(self, intent: BackendIntent, external_id: str | None) -> Outcome:
        recorders = {
            "book": self._record_book,
            "reschedule": self._record_move,
            "cancel": self._record_cancel,
            "undo": self._record_undo,
        }
        try:
            appointment = await asyncio.to_thread(recorders[intent.op], intent.id, external_id)
        except _Lost:
            await self._compensate(intent, external_id)
            return Outcome("refused", code="slot_taken")
        return Outcome("done", appointment=appointment)

    def _record_for(self, intent: BackendIntent) -> BackendRecord:
        clinic = self._service.clinic
        with transaction(self._engine) as session:
            patient = session.get(Patient, intent.patient_id)
        service = clinic.service(intent.service_id)
        return BackendRecord(
            appointment_id=intent.appointment_id,
            doctor_id=intent.doctor_id,
            service_id=intent.service_id,
            service_name=service.name(clinic.default_language) if service else None,
            patient_name=patient.full_name if patient else None,
            patient_phone=patient.phone if patient else None,
            insurance_id=intent.insurance_id,
            start=intent.start,
            end=intent.end,
        )

    # Recording (short transactions) ------------------------------------------------------------

    def _locked(self, session: Session, intent_id: str) -> BackendIntent:
        intent = session.get(BackendIntent, intent_id, with_for_update=True)
        assert intent is not None
        return intent

    def _finish(self, session: Session, intent: BackendIntent, status: str, outcome: str) -> None:
        intent.status = status
        intent.outcome = outcome or None
        intent.updated_at = self._now()
        session.add(intent)
        if intent.hold_id is not None:
            self._service._drop_hold(session, intent.hold_id)
        session.flush()
        if intent.notify and self._notify is not None:
            self._notify(session, intent)

    def _record_book(self, intent_id: str, external_id: str | None) -> Appointment:
        from voice_agent.scheduling.booking import BookingRequest

        try:
            with transaction(self._engine) as session:
                intent = self._locked(session, intent_id)
                if intent.status == "done":
                    appointment = session.get(Appointment, intent.appointment_id)
                    assert appointment is not None
                    return appointment
                if intent.status == "failed":
                    raise _Lost()
                request = BookingRequest(
                    patient_id=intent.patient_id,
                    channel=intent.channel,
                    holder=_holder(intent.id),
                    request_key=intent.request_key,
                    insurance_id=intent.insurance_id,
                )
                appointment = self._service._insert_in(
                    session,
                    request,
                    _slot(intent),
                    intent.hold_id,
                    appointment_id=intent.appointment_id,
                    external_id=external_id,
                )
                intent.hold_id = None
                intent.external_id = external_id
                self._finish(session, intent, "done", "")
                return appointment
        except IntegrityError:
            self._fail(intent_id, "slot_taken", "our slot was lost before recording")
            raise _Lost() from None

    def _record_move(self, intent_id: str, external_id: str | None) -> Appointment:
        try:
            with transaction(self._engine) as session:
                intent = self._locked(session, intent_id)
                appointment = session.get(Appointment, intent.appointment_id, with_for_update=True)
                assert appointment is not None
                if intent.status == "done":
                    return appointment
                if intent.status == "failed" or not appointment.active:
                    raise _Lost()
                self._service._move_in(
                    session, appointment, _slot(intent), intent.hold_id, intent.channel, self._now()
                )
                intent.hold_id = None
                self._finish(session, intent, "done", "")
                return appointment
        except IntegrityError:
            self._fail(intent_id, "slot_taken", "our slot was lost before recording")
            raise _Lost() from None

    def _record_cancel(self, intent_id: str, external_id: str | None) -> Appointment:
        with transaction(self._engine) as session:
            intent = self._locked(session, intent_id)
            appointment = session.get(Appointment, intent.appointment_id, with_for_update=True)
            assert appointment is not None
            if intent.status == "done" or not appointment.active:
                if intent.status != "done":
                    self._finish(session, intent, "done", "")
                return appointment
            self._service._cancel_in(
                session, appointment, intent.channel, intent.reason, self._now()
            )
            self._finish(session, intent, "done", "")
            return appointment

    def _record_undo(self, intent_id: str, external_id: str | None) -> Appointment | None:
        with transaction(self._engine) as session:
            self._finish(session, self._locked(session, intent_id), "done", "")
        return None

    def _fail(self, intent_id: str, code: str, error: str) -> None:
        with transaction(self._engine) as session:
            intent = self._locked(session, intent_id)
            if intent.status != "pending":
                return
            intent.last_error = error[:500]
            self._finish(session, intent, "failed", code)

    def _postpone(self, intent_id: str, error: str, told_patient: bool) -> None:
        now = self._now()
        with transaction(self._engine) as session:
            intent = self._locked(session, intent_id)
            if intent.status != "pending":
                return
            delay = min(FIRST_RETRY * 2 ** max(0, intent.attempts - 1), MAX_RETRY)
            intent.next_attempt_at = now + delay
            intent.last_error = error[:500]
            intent.notify = intent.notify or told_patient
            intent.updated_at = now
            session.add(intent)

    async def _compensate(self, intent: BackendIntent, external_id: str | None) -> None:
        """The backend accepted what we could not record: take it back there."""
        if intent.op == "book" and external_id is not None:
            undo = await asyncio.to_thread(self._open_undo, intent, external_id)
            outcome = await self.attempt(undo, by_patient=False)
            if outcome.status != "done":
                await self._raise_alert("clinic_api_compensation", intent, "record not cancelled")
        elif intent.op == "reschedule":
            await self._raise_alert("clinic_api_compensation", intent, "moved there, not here")

    def _open_undo(self, intent: BackendIntent, external_id: str) -> BackendIntent:
        now = self._now()
        with transaction(self._engine) as session:
            undo = BackendIntent(
                id=new_id(),
                key=f"{intent.key}-undo",
                op="undo",
                appointment_id=intent.appointment_id,
                patient_id=intent.patient_id,
                holder=intent.holder,
                doctor_id=intent.doctor_id,
                service_id=intent.service_id,
                start=intent.start,
                end=intent.end,
                channel=intent.channel,
                external_id=external_id,
                attempts=1,
                next_attempt_at=now + LEASE,
                created_at=now,
                updated_at=now,
            )
            session.add(undo)
            return undo

    async def _raise_alert(self, kind: str, intent: BackendIntent, error: str) -> None:
        """Facts only (no patient data): what, which appointment, when, why."""
        if self._alert is None:
            return
        local = intent.start.astimezone(self._service.clinic.tz).strftime("%Y-%m-%d %H:%M")
        try:
            await self._alert(
                kind,
                f"op={intent.op} appointment={intent.appointment_id} doctor={intent.doctor_id} "
                f"at={local} attempts={intent.attempts} error={error}",
            )
        except Exception:  # an alert never breaks the patient's path
            logger.exception("alerting failed")

    # The job ----------------------------------------------------------------------------------

    async def retry_due(self, limit: int = 20) -> dict[str, int]:
        """Retry pending intents whose time has come (with backoff); give up on old ones."""
        claimed, expired = await asyncio.to_thread(self._claim_due, limit)
        report = {"done": 0, "refused": 0, "pending": 0, "expired": len(expired)}
        for intent in expired:
            await self._raise_alert("clinic_api_gave_up", intent, intent.last_error or "")
        for intent in claimed:
            outcome = await self.attempt(intent, by_patient=False)
            report[outcome.status] += 1
        return report

    def _claim_due(self, limit: int) -> tuple[list[BackendIntent], list[BackendIntent]]:
        now = self._now()
        query = (
            select(BackendIntent)
            .where(
                col(BackendIntent.status) == "pending", col(BackendIntent.next_attempt_at) <= now
            )
            .order_by(col(BackendIntent.next_attempt_at))
            .limit(limit)
        )
        if not is_sqlite(self._engine):
            query = query.with_for_update(skip_locked=True)
        claimed: list[BackendIntent] = []
        expired: list[BackendIntent] = []
        with transaction(self._engine) as session:
            for intent in session.execute(query).scalars():
                if now - intent.created_at > INTENT_LIFETIME and intent.op != "undo":
                    self._finish(session, intent, "failed", "gave_up")
                    expired.append(intent)
                    continue
                intent.attempts += 1
                intent.next_attempt_at = now + LEASE
                intent.updated_at = now
                session.add(intent)
                claimed.append(intent)
        return claimed, expired


_REFUSALS = {
    "book": ("slot_taken", "patient_blocked"),
    "reschedule": (),
    "cancel": (),
    "undo": (),
}
"""Backend codes kept as they are per operation; any other refusal is ``rejected``."""


def _slot(intent: BackendIntent) -> Slot:
    """The time an intent books or moves to."""
    return Slot(intent.doctor_id, intent.service_id, intent.start, intent.end)


def _held(session: Session, hold_id: str, holder: str) -> tuple[Hold, Slot]:
    """This conversation's hold and its slot, or the offer has expired."""
    hold = session.get(Hold, hold_id)
    if hold is None or hold.holder != holder:
        raise offer_expired()
    return hold, Slot(hold.doctor_id, hold.service_id, hold.start, hold.end, None)


def _result(outcome: Outcome, intent: BackendIntent) -> Appointment:
    """What the patient's request returns: the appointment, or the error they hear."""
    if outcome.status == "done" and outcome.appointment is not None:
        return outcome.appointment
    slot = _slot(intent)
    if outcome.status == "pending":
        code = "booking_pending" if intent.op == "book" else "change_pending"
        raise BookingError(
            code,
            "The clinic's system has not answered yet; the request is kept and retried, and the "
            "patient will get a message with the outcome.",
            slot=slot,
        )
    if intent.op == "book":
        code = outcome.code or "rejected"
        raise BookingError(code, _BOOK_REFUSED.get(code, _BOOK_REFUSED["rejected"]), slot=slot)
    code = "reschedule_refused" if intent.op == "reschedule" else "cancel_refused"
    raise BookingError(
        code,
        "The clinic's system refused this change; the appointment stays as it was.",
        slot=slot,
    )


_BOOK_REFUSED = {
    "slot_taken": "Sorry, that time was just taken by someone else.",
    "patient_blocked": "The clinic's system cannot book this automatically.",
    "rejected": "The clinic's system did not accept this booking.",
}

__all__ = ["NOTICE_KIND", "ConfirmedBookings", "Outcome", "intent_key"]
