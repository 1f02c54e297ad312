"""Offers and holds: the search a caller's wishes start (busy time read in one statement,
ranked, the best slots held for this conversation for a few minutes).

A hold claims its doctor's 5-minute cells in ``slot_claim`` like an appointment does, so two
conversations are never offered the same time and a booking made from a hold cannot collide
with another (``booking.py`` books, moves and cancels). Python checks only make better
messages; the primary key of ``slot_claim`` is the lock.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

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
from sqlmodel import col

from voice_agent.calendars.base import CalendarBackend
from voice_agent.calendars.local import LocalCalendar
from voice_agent.clinic.model import Clinic
from voice_agent.clock import Clock
from voice_agent.scheduling.availability import BookingRules, Interval, Slot
from voice_agent.scheduling.preferences import Preferences, window
from voice_agent.scheduling.ranking import (
    DEFAULT_SCORER,
    Offer,
    RankingContext,
    Scorer,
    rank_offers,
)
from voice_agent.store.db import advisory_xact_lock, is_sqlite, reading, transaction
from voice_agent.store.tables import (
    ACTIVE_STATUSES,
    CELL_MINUTES,
    Appointment,
    AppointmentStatus,
    CalendarBlock,
    Hold,
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


def offer_expired() -> BookingError:
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
    features: dict[str, float | str] | None = None
    """What the scorer saw, recorded as learning data (voice_agent.learning)."""


class OfferRecorder(Protocol):
    """Learning data written in the offer path's own transactions (voice_agent.learning)."""

    def record_in(
        self, db: Connection, holder: str, service_id: str, offers: Any, now: datetime
    ) -> object: ...

    def release_in(self, db: Connection, holder: str, now: datetime) -> None: ...


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


def _span(
    clinic: Clinic,
    service_id: str,
    prefs: Preferences,
    now: datetime,
    rules: BookingRules = BookingRules.policy,
) -> _Span | None:
    """The doctors and local days the preferences allow; None when no day is left."""
    first_day, last_day = window(prefs, clinic, now, rules)
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


class OfferDesk:
    """The offer side of the booking service: search, rank, hold, release. ``BookingService``
    (``booking.py``) extends it with book, reschedule and cancel on the same engine, clock and
    holds."""

    def __init__(
        self,
        engine: Engine,
        clinic: Callable[[], Clinic],
        calendar: CalendarBackend,
        clock: Clock,
        *,
        hold_minutes: int = 5,
        scorer: Scorer | None = None,
        recorder: OfferRecorder | None = None,
    ) -> None:
        self._engine = engine
        self._recorder = recorder
        """Records each search's offers in its transaction (learning data), if set."""
        self._clinic = clinic
        self._calendar = calendar
        self._clock = clock
        self._hold = timedelta(minutes=hold_minutes)
        self._scorer = scorer or DEFAULT_SCORER

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

                held = self._hold_best(db, holder, ranked, limit, now)
                if self._recorder is not None:
                    self._recorder.record_in(db, holder, service_id, held, now)
                return held

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
            with reading(self._engine) as db:  # a snapshot: the hold re-checks under the lock
                busy, load = self._read_busy(db, span, now)
                return busy, load, self._read_previous(db, clinic, patient_id)

        busy, load, previous = await asyncio.to_thread(_read)
        return self._ranked(
            clinic, service_id, prefs, now, _merged(busy, external), load, previous, language, limit
        )

    async def busy_snapshot(
        self,
        service_id: str,
        prefs: Preferences,
        now: datetime,
        rules: BookingRules = BookingRules.policy,
    ) -> tuple[dict[str, list[Interval]], dict[str, int]]:
        """Busy time per doctor (appointments, live holds, external calendar) and their load,
        over the days the preferences allow under ``rules`` (the desk's include today)."""
        span = _span(self.clinic, service_id, prefs, now, rules)
        if span is None:
            return {}, {}
        external = await self._external_busy(span)

        def _read() -> tuple[dict[str, list[Interval]], dict[str, int]]:
            with reading(self._engine) as db:
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
        context = RankingContext(
            previous_doctors=previous, doctor_load=load, language=language, now=now, asked=prefs
        )
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
            features=dict(offer.features) if offer.features is not None else None,
        )

    @staticmethod
    def _release_in(db: Connection, holder: str) -> None:
        """Drop this holder's holds and their claims (two statements, no read first)."""
        db.execute(_RELEASE_CLAIMS, {"holder": holder})
        db.execute(_RELEASE_HOLDS, {"holder": holder})

    def _release_holds(self, holder: str) -> None:
        with self._engine.begin() as db:
            self._release_in(db, holder)
            if self._recorder is not None:  # the conversation ended undecided
                self._recorder.release_in(db, holder, self._clock.now())

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
            raise offer_expired()
        return Slot(hold.doctor_id, hold.service_id, hold.start, hold.end, None)

    async def get_hold(self, hold_id: str, holder: str) -> Hold | None:
        def _read() -> Hold | None:
            with transaction(self._engine) as session:
                hold = session.get(Hold, hold_id)
                return hold if hold is not None and hold.holder == holder else None

        return await asyncio.to_thread(_read)
