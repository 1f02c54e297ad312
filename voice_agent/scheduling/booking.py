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
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    delete,
    insert,
    literal,
    select,
    union_all,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.sql.elements import BindParameter
from sqlmodel import Session, col

from voice_agent.calendars.base import CalendarBackend, ConfirmingBackend
from voice_agent.calendars.local import LocalCalendar
from voice_agent.clinic.model import Clinic
from voice_agent.clock import Clock
from voice_agent.errors import CalendarUnavailable
from voice_agent.interactions import InteractionLog
from voice_agent.scheduling.availability import Interval, ProblemCode, Slot, check_slot
from voice_agent.scheduling.confirmed import Alert, ConfirmedBookings
from voice_agent.scheduling.preferences import Preferences, window
from voice_agent.scheduling.ranking import (
    DEFAULT_SCORER,
    Offer,
    RankingContext,
    Scorer,
    rank_offers,
)
from voice_agent.store.db import advisory_xact_lock, is_sqlite, transaction
from voice_agent.store.intent_tables import BackendIntent
from voice_agent.store.tables import (
    ACTIVE_STATUSES,
    CELL_MINUTES,
    Appointment,
    AppointmentStatus,
    CalendarBlock,
    Hold,
    InteractionKind,
    SlotClaim,
    new_id,
)
from voice_agent.store.types import utcnow

CELL = timedelta(minutes=CELL_MINUTES)
_HOLD = Hold.__table__  # type: ignore[attr-defined]
_SLOT_CLAIM = SlotClaim.__table__  # type: ignore[attr-defined]
_SEARCH_ROUNDS = 3
"""A search ranks again (at most this often) when other conversations took its candidates."""
_CONTENDED = {"55P03", "40P01"}
"""PostgreSQL lock_not_available and deadlock_detected: others are claiming the same cells."""


# Statements of the offer path, built once: constructing SQL expressions costs more per search
# than running them on SQLite.
_WHERE_BUSY: dict[str, BindParameter[Any]] = {
    "doctors": bindparam("doctors", expanding=True),
    "start": bindparam("start"),
    "end": bindparam("end"),
}
_BUSY_PARTS = (
    select(
        col(Appointment.doctor_id), col(Appointment.start), col(Appointment.end), literal(1)
    ).where(
        col(Appointment.doctor_id).in_(_WHERE_BUSY["doctors"]),
        col(Appointment.status).in_(ACTIVE_STATUSES),
        col(Appointment.start) < _WHERE_BUSY["end"],
        col(Appointment.end) > _WHERE_BUSY["start"],
    ),
    select(col(Hold.doctor_id), col(Hold.start), col(Hold.end), literal(0)).where(
        col(Hold.doctor_id).in_(_WHERE_BUSY["doctors"]),
        col(Hold.expires_at) > bindparam("now"),
        col(Hold.start) < _WHERE_BUSY["end"],
        col(Hold.end) > _WHERE_BUSY["start"],
    ),
)
_BUSY_WITH_BLOCKS = union_all(
    *_BUSY_PARTS,
    select(
        col(CalendarBlock.doctor_id), col(CalendarBlock.start), col(CalendarBlock.end), literal(0)
    ).where(
        col(CalendarBlock.doctor_id).in_(_WHERE_BUSY["doctors"]),
        col(CalendarBlock.end) > _WHERE_BUSY["start"],
        col(CalendarBlock.start) < _WHERE_BUSY["end"],
    ),
)
"""Appointments (1 = counts as load), live holds and staff blocks of some doctors over a span."""
_PREVIOUS = (
    select(col(Appointment.service_id), col(Appointment.doctor_id))
    .where(
        col(Appointment.patient_id) == bindparam("patient"),
        col(Appointment.status).in_(
            (*ACTIVE_STATUSES, AppointmentStatus.completed, AppointmentStatus.attended)
        ),
    )
    .order_by(col(Appointment.start))
)
_RELEASE_CLAIMS = delete(SlotClaim).where(
    col(SlotClaim.hold_id).in_(select(col(Hold.id)).where(col(Hold.holder) == bindparam("holder")))
)
_RELEASE_HOLDS = delete(Hold).where(col(Hold.holder) == bindparam("holder"))
_INSERT_HOLD = insert(_HOLD)
_INSERT_CLAIMS = insert(_SLOT_CLAIM)


class BookingError(Exception):
    """A booking that cannot be done; ``code`` is stable, ``message`` can be said to a patient."""

    def __init__(self, code: str, message: str, *, slot: Slot | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.slot = slot
        """The slot it was about, when that helps to offer others (a time just taken)."""


def _offer_expired() -> BookingError:
    return BookingError("offer_expired", "That option is no longer available; let me look again.")


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
    attendee_name: str | None = None
    """The child or relative who attends, when the patient books for them (the patient stays
    the contact)."""


def cells(start: datetime, end: datetime) -> Iterator[datetime]:
    """The 5-minute cells an interval touches (UTC offsets are whole 5-minute multiples)."""
    epoch = start.replace(minute=0, second=0, microsecond=0)
    cell = epoch + ((start - epoch) // CELL) * CELL
    while cell < end:
        yield cell
        cell += CELL


@dataclass(frozen=True)
class _Span:
    """What one search reads: these doctors, from ``start`` to ``end`` (aware datetimes)."""

    doctor_ids: tuple[str, ...]
    start: datetime
    end: datetime


def _span(clinic: Clinic, service_id: str, prefs: Preferences, now: datetime) -> _Span | None:
    """The doctors and local days the preferences allow; None when no day is left."""
    first_day, last_day = window(prefs, clinic, now)
    if last_day < first_day:
        return None
    return _Span(
        tuple(d.id for d in clinic.doctors_for(service_id)),
        datetime.combine(first_day, datetime.min.time(), clinic.tz),
        datetime.combine(last_day + timedelta(days=1), datetime.min.time(), clinic.tz),
    )


def _contended(exc: OperationalError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in _CONTENDED


def _overlap(a: Slot, b: Slot) -> bool:
    return a.doctor_id == b.doctor_id and a.start < b.end and b.start < a.end


def _merged(
    busy: dict[str, list[Interval]], external: dict[str, list[Interval]]
) -> dict[str, list[Interval]]:
    if not external:
        return busy
    merged = {doctor_id: list(intervals) for doctor_id, intervals in busy.items()}
    for doctor_id, intervals in external.items():
        merged.setdefault(doctor_id, []).extend(intervals)
    return merged


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
        alert: Alert | None = None,
        notify: Callable[[Session, BackendIntent], None] | None = None,
    ) -> None:
        self._engine = engine
        self._clinic = clinic
        self._calendar = calendar
        self._log = log
        self._clock = clock
        self._hold = timedelta(minutes=hold_minutes)
        self._scorer = scorer or DEFAULT_SCORER
        self._confirmed: ConfirmedBookings | None = None
        if getattr(calendar, "confirms_synchronously", False):
            # The clinic's API must accept each booking, move and cancellation first.
            self._confirmed = ConfirmedBookings(
                self,
                cast(ConfirmingBackend, calendar),
                alert=alert,
                notify=notify,
            )

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
        The release, the busy-time read, the ranking and every hold run in one transaction on one
        worker thread. Each hold gets its own savepoint, so a slot that another conversation
        claimed in the meantime (its ``slot_claim`` rows collide) is skipped and the next ranked
        slot is tried, without undoing the holds already placed.
        """
        clinic = self.clinic
        if clinic.service(service_id) is None:
            raise BookingError("unknown_service", "That service is not offered here.")
        now = self._clock.now()
        span = _span(clinic, service_id, prefs, now)
        external = await self._external_busy(span)

        def _offer() -> list[HeldOffer]:
            with self._engine.begin() as db:
                self._release_in(db, holder)
                if span is None:
                    return []
                self._serialize_searches(db, span.doctor_ids)
                previous = self._read_previous(db, clinic, patient_id)

                def ranked(taken: dict[str, list[Interval]]) -> list[Offer]:
                    busy, load = self._read_busy(db, span, now)
                    busy = _merged(_merged(busy, external), taken)
                    return self._ranked(
                        clinic, service_id, prefs, now, busy, load, previous, language, limit * 2
                    )

                return self._hold_best(db, holder, ranked, limit, now)

        return await asyncio.to_thread(_offer)

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
        clinic = self.clinic
        span = _span(clinic, service_id, prefs, now)
        if span is None:
            return []
        external = await self._external_busy(span)

        def _read() -> tuple[dict[str, list[Interval]], dict[str, int], dict[str, str]]:
            with self._engine.begin() as db:
                busy, load = self._read_busy(db, span, now)
                return busy, load, self._read_previous(db, clinic, patient_id)

        busy, load, previous = await asyncio.to_thread(_read)
        return self._ranked(
            clinic, service_id, prefs, now, _merged(busy, external), load, previous, language, limit
        )

    async def busy_snapshot(
        self, service_id: str, prefs: Preferences, now: datetime
    ) -> tuple[dict[str, list[Interval]], dict[str, int]]:
        """Busy time per doctor (appointments, live holds, external calendar) and their load,
        over the days the preferences allow."""
        span = _span(self.clinic, service_id, prefs, now)
        if span is None:
            return {}, {}
        external = await self._external_busy(span)

        def _read() -> tuple[dict[str, list[Interval]], dict[str, int]]:
            with self._engine.begin() as db:
                return self._read_busy(db, span, now)

        busy, load = await asyncio.to_thread(_read)
        return _merged(busy, external), load

    def _ranked(
        self,
        clinic: Clinic,
        service_id: str,
        prefs: Preferences,
        now: datetime,
        busy: dict[str, list[Interval]],
        load: dict[str, int],
        previous: dict[str, str],
        language: str | None,
        limit: int,
    ) -> list[Offer]:
        context = RankingContext(previous_doctors=previous, doctor_load=load, language=language)
        return rank_offers(
            clinic,
            service_id,
            prefs,
            now=now,
            busy=busy,
            context=context,
            limit=limit,
            scorer=self._scorer,
        )

    @property
    def _blocks_in_db(self) -> bool:
        """The embedded calendar keeps its blocks in our own database: the busy-time read takes
        them in its transaction instead of the calendar opening another one."""
        return isinstance(self._calendar, LocalCalendar)

    async def _external_busy(self, span: _Span | None) -> dict[str, list[Interval]]:
        """Busy time the calendar backend knows beyond our own tables, per doctor."""
        external: defaultdict[str, list[Interval]] = defaultdict(list)
        if span is not None and not self._blocks_in_db:
            for interval in await self._calendar.busy(span.doctor_ids, span.start, span.end):
                external[interval.doctor_id].append(Interval(interval.start, interval.end))
        return dict(external)

    def _hold_best(
        self,
        db: Connection,
        holder: str,
        ranked: Callable[[dict[str, list[Interval]]], list[Offer]],
        limit: int,
        now: datetime,
    ) -> list[HeldOffer]:
        """Hold the best ``limit`` of the ranked slots, labelled "1", "2", … in rank order.

        A slot someone else claimed, or one overlapping a slot just held, is skipped; if that
        leaves too few, the slots are read and ranked again (our own new holds are visible to
        this transaction, and on PostgreSQL so are other transactions' commits).
        """
        held: list[HeldOffer] = []
        taken: dict[str, list[Interval]] = {}
        for _ in range(_SEARCH_ROUNDS):
            offers = ranked(taken)
            skipped = False
            for offer in offers:
                if len(held) == limit:
                    break
                slot = offer.slot
                if any(_overlap(slot, h.slot) for h in held):
                    # Candidates may overlap each other (30 minutes on a 15-minute grid).
                    skipped = True
                    continue
                hold = self._place_hold(db, holder, str(len(held) + 1), offer, now)
                if hold is not None:
                    held.append(hold)
                    continue
                skipped = True
                taken.setdefault(slot.doctor_id, []).append(Interval(slot.start, slot.end))
            if len(held) == limit or not skipped:
                break
        return held

    def _serialize_searches(self, db: Connection, doctor_ids: tuple[str, ...]) -> None:
        """PostgreSQL: searches over the same doctors take turns (transaction-scoped advisory
        locks, taken in one order so they cannot deadlock), and each reads busy time only once
        the previous one committed. Otherwise concurrent searches rank the same free slots and
        then wait on each other's uncommitted claims. SQLite's ``BEGIN IMMEDIATE`` already
        serializes every transaction."""
        for doctor_id in sorted(doctor_ids):
            advisory_xact_lock(db, f"hold:{doctor_id}")

    def _read_busy(
        self, db: Connection, span: _Span, now: datetime
    ) -> tuple[dict[str, list[Interval]], dict[str, int]]:
        """Appointments, live holds and (local calendar) blocks of the span's doctors, in one
        query; and the number of appointments per doctor."""
        busy: defaultdict[str, list[Interval]] = defaultdict(list)
        load: defaultdict[str, int] = defaultdict(int)
        statement = _BUSY_WITH_BLOCKS  # staff blocks (console) hold with every calendar backend
        params = {"doctors": span.doctor_ids, "start": span.start, "end": span.end, "now": now}
        for doctor_id, start, end, booked in db.execute(statement, params):
            busy[doctor_id].append(Interval(start, end))
            load[doctor_id] += booked
        return dict(busy), dict(load)

    @staticmethod
    def _read_previous(db: Connection, clinic: Clinic, patient_id: str | None) -> dict[str, str]:
        """The doctor the patient last saw (or is booked with) per service and per specialty."""
        if patient_id is None:
            return {}
        rows = db.execute(_PREVIOUS, {"patient": patient_id}).all()
        previous: dict[str, str] = {}
        for service_id, doctor_id in rows:
            if clinic.doctor(doctor_id) is None:
                continue
            previous[service_id] = doctor_id
            service = clinic.service(service_id)
            if service is not None:
                previous[service.specialty] = doctor_id
        return previous

    @staticmethod
    def _purge_expired_claims(db: Connection, slot: Slot, now: datetime) -> bool:
        """Expired holds give a slot's cells back (the housekeeping job may not have run yet);
        whether any cell was freed. Skipped if another transaction is purging the same rows."""
        try:
            with db.begin_nested():
                result = db.execute(
                    delete(SlotClaim).where(
                        col(SlotClaim.doctor_id) == slot.doctor_id,
                        col(SlotClaim.cell) >= slot.start - CELL,
                        col(SlotClaim.cell) < slot.end,
                        col(SlotClaim.hold_id).is_not(None),
                        col(SlotClaim.expires_at) <= now,
                    )
                )
        except OperationalError as exc:
            if not _contended(exc):
                raise
            return False
        return bool(result.rowcount)

    def _place_hold(
        self, db: Connection, holder: str, label: str, offer: Offer, now: datetime
    ) -> HeldOffer | None:
        """Hold one slot inside a savepoint; None when another conversation already claimed it.

        A collision with cells of holds that have expired frees those cells and tries once more.
        """
        slot = offer.slot
        expires = now + self._hold
        hold_id = new_id()
        hold = {
            "id": hold_id,
            "holder": holder,
            "label": label,
            "doctor_id": slot.doctor_id,
            "service_id": slot.service_id,
            "start": slot.start,
            "end": slot.end,
            "expires_at": expires,
            "created_at": utcnow(),
        }
        claims = [
            {
                "doctor_id": slot.doctor_id,
                "cell": cell,
                "appointment_id": None,
                "hold_id": hold_id,
                "expires_at": expires,
            }
            for cell in cells(slot.start, slot.end)
        ]
        # SQLite: executemany is cheapest. PostgreSQL: one multi-row INSERT, so a collision
        # fails one statement rather than a psycopg pipeline.
        if is_sqlite(self._engine):
            claim, params = _INSERT_CLAIMS, claims
        else:
            claim, params = _INSERT_CLAIMS.values(claims), None
        for attempt in (1, 2):
            try:
                with db.begin_nested():
                    db.execute(_INSERT_HOLD, hold)
                    db.execute(claim, params)
                break
            except IntegrityError:
                if attempt == 2 or not self._purge_expired_claims(db, slot, now):
                    return None
            except OperationalError as exc:
                if not _contended(exc):
                    raise
                return None
        return HeldOffer(
            hold_id=hold_id,
            label=label,
            slot=slot,
            expires_at=expires,
            score=offer.score,
            reasons=tuple(reason.code for reason in offer.reasons),
        )

    @staticmethod
    def _release_in(db: Connection, holder: str) -> None:
        """Drop this holder's holds and their claims (two statements, no read first)."""
        db.execute(_RELEASE_CLAIMS, {"holder": holder})
        db.execute(_RELEASE_HOLDS, {"holder": holder})

    def _release_holds(self, holder: str) -> None:
        with self._engine.begin() as db:
            self._release_in(db, holder)

    async def release_holds(self, holder: str) -> None:
        await asyncio.to_thread(self._release_holds, holder)

    async def purge_expired_holds(self) -> int:
        """Housekeeping: drop expired holds and their claims (a job runs it every minute)."""

        def _purge() -> int:
            now = self._clock.now()
            with transaction(self._engine) as session:
                ids = list(
                    session.execute(
                        select(col(Hold.id)).where(col(Hold.expires_at) <= now)
                    ).scalars()
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
                    select(col(Hold.id)).where(col(Hold.holder) == holder, col(Hold.label) == label)
                ).scalar_one_or_none()

        return await asyncio.to_thread(_read)

    async def _held_slot(self, hold_id: str, holder: str) -> Slot:
        """The slot behind this holder's hold, or the error a patient hears when it is gone."""
        hold = await self.get_hold(hold_id, holder)
        if hold is None:
            raise _offer_expired()
        return Slot(hold.doctor_id, hold.service_id, hold.start, hold.end, None)

    async def get_hold(self, hold_id: str, holder: str) -> Hold | None:
        def _read() -> Hold | None:
            with transaction(self._engine) as session:
                hold = session.get(Hold, hold_id)
                return hold if hold is not None and hold.holder == holder else None

        return await asyncio.to_thread(_read)

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
                    raise _offer_expired()
                slot = Slot(hold.doctor_id, hold.service_id, hold.start, hold.end, None)
                busy = [*(external or ()), *self._blocks_in(session, slot)]
                self._check_policy(slot, request.insurance_id, busy)
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
            # The clinic's API must accept it first: hold the slot, then book the hold.
            held = await asyncio.to_thread(self._hold_slot, request.holder, slot)
            return await self._confirmed.book(request, held)
        await self._check(slot, request.insurance_id)
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

    async def _check(self, slot: Slot, insurance_id: str | None) -> None:
        """Policy checks with specific reasons; the database still decides who wins a race."""
        busy = await self._external_intervals(slot)
        if not self._blocks_in_db:  # staff blocks live in our tables whatever the calendar
            busy += await asyncio.to_thread(self._blocks_sync, slot)
        self._check_policy(slot, insurance_id, busy)

    def _blocks_sync(self, slot: Slot) -> list[Interval]:
        with transaction(self._engine) as session:
            return self._blocks_in(session, slot)

    async def hold_slot(self, holder: str, slot: Slot) -> str:
        """Hold one given slot for ``holder`` (staff moving an appointment to a chosen time);
        ``slot_taken`` when its cells are claimed."""
        await self._check(slot, None)
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

    def _check_policy(self, slot: Slot, insurance_id: str | None, busy: list[Interval]) -> None:
        clinic = self.clinic
        problem = check_slot(
            clinic,
            doctor_id=slot.doctor_id,
            service_id=slot.service_id,
            start=slot.start,
            now=self._clock.now(),
            busy={slot.doctor_id: busy},
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
        await self._check(slot, current.insurance_id)
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
    "BookingService",
    "HeldOffer",
    "cells",
]
