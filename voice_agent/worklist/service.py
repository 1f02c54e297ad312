"""The to-do queue as staff use it: list, take, release, resolve with a note, retry a dead
letter; every action is an audit event (who, what, when).

Transitions are single conditional updates (``WHERE status = 'open'`` …), so two receptionists
taking the same hand-over at once get one winner and one clear refusal, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, exists, func, or_, select, update
from sqlmodel import Session, col

from voice_agent.clock import Clock
from voice_agent.store.conversation_tables import ConversationRecord
from voice_agent.store.db import transaction
from voice_agent.store.outbox_tables import OutboxRow, OutboxStatus
from voice_agent.store.tables import CallEvent, Patient
from voice_agent.store.worklist_tables import (
    OPEN_WORK,
    ConversationTurn,
    WorkItem,
    WorkItemEvent,
    WorkKind,
    WorkStatus,
)

logger = logging.getLogger(__name__)

MAX_NOTE = 1000


class WorkError(ValueError):
    """An action that cannot be done on this item now; ``code`` names why (for the console)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class WorkEvent:
    at: datetime
    action: str
    actor: str
    actor_id: int | None
    note: str | None


@dataclass(frozen=True)
class WorkView:
    """An item with who it is about, ready to show."""

    id: int
    kind: str
    status: str
    created_at: datetime
    updated_at: datetime
    name: str | None
    phone: str | None
    language: str | None
    channel: str | None
    asked: str | None
    """What the patient asked (their words), or what happened."""
    details: dict[str, Any]
    patient_id: str | None
    call_sid: str | None
    conversation_id: str | None
    appointment_id: str | None
    outbox_id: int | None
    outbox_status: str | None
    taken_by: int | None
    taken_at: datetime | None
    resolved_by: int | None
    resolved_at: datetime | None
    resolution: str | None
    events: list[WorkEvent] = field(default_factory=list)

    @property
    def retryable(self) -> bool:
        return self.kind == WorkKind.dead_letter and self.outbox_status == OutboxStatus.dead


@dataclass(frozen=True)
class Failing:
    outbox_id: int
    kind: str
    attempts: int
    next_attempt_at: datetime
    error: str | None


class Worklist:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    # Reading ----------------------------------------------------------------------------------

    def items(
        self,
        *,
        statuses: Iterable[WorkStatus] = OPEN_WORK,
        kinds: Iterable[WorkKind] | None = None,
        patient_ids: Collection[str] | None = None,
        limit: int = 200,
    ) -> list[WorkView]:
        """Open and taken first by age (oldest need first); resolved ones newest first."""
        wanted = list(statuses)
        query = select(WorkItem).where(col(WorkItem.status).in_(wanted))
        if kinds is not None:
            query = query.where(col(WorkItem.kind).in_(list(kinds)))
        if patient_ids is not None:
            query = query.where(col(WorkItem.patient_id).in_(list(patient_ids)))
        if set(wanted) <= set(OPEN_WORK):
            query = query.order_by(col(WorkItem.created_at), col(WorkItem.id))
        else:
            query = query.order_by(col(WorkItem.updated_at).desc(), col(WorkItem.id).desc())
        with transaction(self._engine) as session:
            rows = list(session.execute(query.limit(limit)).scalars())
            known = _Known.load(session, rows)
            return [_view(session, row, known=known) for row in rows]

    def get(self, item_id: int) -> WorkView | None:
        with transaction(self._engine) as session:
            row = session.get(WorkItem, item_id)
            if row is None:
                return None
            events = session.execute(
                select(WorkItemEvent)
                .where(col(WorkItemEvent.item_id) == item_id)
                .order_by(col(WorkItemEvent.id))
            ).scalars()
            return _view(
                session,
                row,
                [WorkEvent(e.at, e.action, e.actor, e.actor_id, e.note) for e in events],
            )

    def counts(self, patient_ids: Collection[str] | None = None) -> dict[str, int]:
        query = select(col(WorkItem.status), func.count()).group_by(col(WorkItem.status))
        if patient_ids is not None:
            query = query.where(col(WorkItem.patient_id).in_(list(patient_ids)))
        with transaction(self._engine) as session:
            found = {str(status): int(n) for status, n in session.execute(query)}
        return {status.value: found.get(status.value, 0) for status in WorkStatus}

    def marker(self) -> str:
        """Changes whenever an item is added or moves: a page polls it to refresh its list."""
        with transaction(self._engine) as session:
            last_event = session.execute(select(func.max(WorkItemEvent.id))).scalar()
        return str(last_event or 0)

    def failing(self, limit: int = 20) -> list[Failing]:
        """Deliveries being retried after a failure (not yet dead letters): the staff see a
        WhatsApp outage before it turns into items."""
        with transaction(self._engine) as session:
            rows = session.execute(
                select(OutboxRow)
                .where(
                    col(OutboxRow.status) == OutboxStatus.pending,
                    col(OutboxRow.last_error).is_not(None),
                )
                .order_by(col(OutboxRow.id))
                .limit(limit)
            ).scalars()
            return [
                Failing(row.id or 0, row.kind, row.attempts, row.next_attempt_at, row.last_error)
                for row in rows
            ]

    # Acting -----------------------------------------------------------------------------------

    def take(self, item_id: int, staff_id: int) -> WorkView:
        """The staff member handles it now; refused when another took it or it is resolved."""
        now = self._clock.now()
        with transaction(self._engine) as session:
            done = session.execute(
                update(WorkItem)
                .where(col(WorkItem.id) == item_id, col(WorkItem.status) == WorkStatus.open)
                .values(status=WorkStatus.taken, taken_by=staff_id, taken_at=now, updated_at=now)
            ).rowcount  # type: ignore[attr-defined]
            if not done:
                _refuse(session, item_id, staff_id, "take")
            _event(session, item_id, now, "taken", staff_id)
        return self._must(item_id)

    def release(self, item_id: int, staff_id: int) -> WorkView:
        """Give a taken item back to the queue."""
        now = self._clock.now()
        with transaction(self._engine) as session:
            done = session.execute(
                update(WorkItem)
                .where(col(WorkItem.id) == item_id, col(WorkItem.status) == WorkStatus.taken)
                .values(status=WorkStatus.open, taken_by=None, taken_at=None, updated_at=now)
            ).rowcount  # type: ignore[attr-defined]
            if not done:
                _refuse(session, item_id, staff_id, "release")
            _event(session, item_id, now, "released", staff_id)
        return self._must(item_id)

    def resolve(self, item_id: int, staff_id: int, note: str) -> WorkView:
        """Done, with what was done (the note is required: the next person reads it)."""
        note = note.strip()
        if not note:
            raise WorkError("note_required", "a note is required to resolve an item")
        if len(note) > MAX_NOTE:
            raise WorkError("note_too_long", f"the note is longer than {MAX_NOTE} characters")
        now = self._clock.now()
        with transaction(self._engine) as session:
            done = session.execute(
                update(WorkItem)
                .where(col(WorkItem.id) == item_id, col(WorkItem.status).in_(OPEN_WORK))
                .values(
                    status=WorkStatus.resolved,
                    open_key=None,
                    resolved_by=staff_id,
                    resolved_at=now,
                    resolution=note,
                    updated_at=now,
                )
            ).rowcount  # type: ignore[attr-defined]
            if not done:
                _refuse(session, item_id, staff_id, "resolve")
            _event(session, item_id, now, "resolved", staff_id, note)
        return self._must(item_id)

    def retry(self, item_id: int, staff_id: int) -> WorkView:
        """Send a dead letter again with a fresh attempt budget; the item is resolved as
        retried, and comes back by itself if the delivery dies again."""
        now = self._clock.now()
        with transaction(self._engine) as session:
            item = session.get(WorkItem, item_id, with_for_update=True)
            if item is None:
                raise WorkError("not_found", f"no item {item_id}")
            if item.kind != WorkKind.dead_letter or item.outbox_id is None:
                raise WorkError("not_retryable", "only an undelivered message can be retried")
            moved = session.execute(
                update(OutboxRow)
                .where(
                    col(OutboxRow.id) == item.outbox_id,
                    col(OutboxRow.status) == OutboxStatus.dead,
                )
                .values(
                    status=OutboxStatus.pending,
                    attempts=0,
                    next_attempt_at=now,
                    claim_token=None,
                    updated_at=now,
                )
            ).rowcount  # type: ignore[attr-defined]
            if not moved:
                raise WorkError("not_retryable", "this delivery is no longer a dead letter")
            _event(session, item_id, now, "retried", staff_id)
            if item.status in OPEN_WORK:
                item.status = WorkStatus.resolved
                item.open_key = None
                item.resolved_by, item.resolved_at = staff_id, now
                item.resolution = "retried"
                item.updated_at = now
                session.add(item)
                _event(session, item_id, now, "resolved", staff_id, "retried")
        logger.info("work item %s: outbox row retried", item_id)
        return self._must(item_id)

    def _must(self, item_id: int) -> WorkView:
        view = self.get(item_id)
        if view is None:
            raise WorkError("not_found", f"no item {item_id}")
        return view

    # Filled in later by the channel ------------------------------------------------------------

    @staticmethod
    def fill_contact(
        db: Connection,
        conversation_id: str,
        *,
        phone: str | None,
        language: str | None,
        patient_id: str | None,
        said: str | None = None,
    ) -> None:
        """A text conversation learns the patient's number and language after the item was
        opened (the first message asked for a person): open items get what they lack, and the
        patient's words of the turn that opened them when the source named no question.

        Runs in the text turn's transaction, on its connection, when the conversation has open
        items (read with its state) or the turn recorded a need (``feed.noting_needs``): one
        prepared Core query (an ORM query here cost a text turn 2 ms)."""
        rows = db.execute(_OPEN_OF_CONVERSATION, {"conversation_id": conversation_id}).all()
        for row in rows:
            changes: dict[str, Any] = {}
            if phone and not row.phone:
                changes["phone"] = phone
            if language and not row.language:
                changes["language"] = language
            if patient_id and not row.patient_id:
                changes["patient_id"] = patient_id
            if said and not row.summary:
                changes["summary"] = said[:600]
            if changes:
                db.execute(update(_ITEMS).where(_ITEMS.c.id == row.id).values(**changes))


_ITEMS = WorkItem.__table__  # type: ignore[attr-defined]
_OF_CONVERSATION_OPEN = (
    _ITEMS.c.conversation_id == bindparam("conversation_id"),
    # One plain parameter per status, not an expanding IN list re-rendered at every execution.
    or_(*(_ITEMS.c.status == status.value for status in OPEN_WORK)),
)
_OPEN_OF_CONVERSATION = select(
    _ITEMS.c.id, _ITEMS.c.phone, _ITEMS.c.language, _ITEMS.c.patient_id, _ITEMS.c.summary
).where(*_OF_CONVERSATION_OPEN)
OPEN_WORK_OF_CONVERSATION = exists().where(*_OF_CONVERSATION_OPEN)
"""Whether the conversation ``:conversation_id`` has open items (a text turn asks it with its
state, and fills the items' contact only when it has some)."""


def _refuse(session: Session, item_id: int, staff_id: int, action: str) -> None:
    item = session.get(WorkItem, item_id)
    if item is None:
        raise WorkError("not_found", f"no item {item_id}")
    if item.status == WorkStatus.resolved:
        raise WorkError("resolved", "this item is already resolved")
    if item.status == WorkStatus.taken and action == "take":
        if item.taken_by == staff_id:
            raise WorkError("taken_by_you", "you already took this item")
        raise WorkError("taken", "someone else took this item")
    raise WorkError("not_taken", "this item is not taken")


def _event(
    session: Session,
    item_id: int,
    at: datetime,
    action: str,
    staff_id: int,
    note: str | None = None,
) -> None:
    session.add(
        WorkItemEvent(
            item_id=item_id, at=at, action=action, actor="staff", actor_id=staff_id, note=note
        )
    )


@dataclass
class _Known:
    """The patients and outbox rows of a page of items, read in two queries, not two per item."""

    patients: dict[str, Patient]
    outbox: dict[int, str]

    @classmethod
    def load(cls, session: Session, rows: list[WorkItem]) -> _Known:
        patient_ids = {row.patient_id for row in rows if row.patient_id}
        outbox_ids = {row.outbox_id for row in rows if row.outbox_id is not None}
        patients = (
            {
                p.id: p
                for p in session.execute(
                    select(Patient).where(col(Patient.id).in_(patient_ids))
                ).scalars()
            }
            if patient_ids
            else {}
        )
        outbox = (
            {
                int(i): str(status)
                for i, status in session.execute(
                    select(col(OutboxRow.id), col(OutboxRow.status)).where(
                        col(OutboxRow.id).in_(outbox_ids)
                    )
                )
            }
            if outbox_ids
            else {}
        )
        return cls(patients, outbox)


def _view(
    session: Session,
    row: WorkItem,
    events: list[WorkEvent] | None = None,
    *,
    known: _Known | None = None,
) -> WorkView:
    """An item ready to show. One item (``known`` None) also looks where the item itself says
    nothing: the conversation's state for the number, the last words said before it opened; a
    page of items (``known`` given) shows what the items and their patients hold."""
    assert row.id is not None
    deep = known is None
    known = known or _Known.load(session, [row])
    patient = known.patients.get(row.patient_id) if row.patient_id else None
    phone = row.phone or (patient.phone if patient else None)
    language = row.language or (patient.language if patient else None)
    if deep and row.conversation_id and not (phone and language):
        state = _conversation_state(session, row.conversation_id)
        phone = phone or state.get("phone")
        language = language or state.get("language")
    outbox_status = known.outbox.get(row.outbox_id) if row.outbox_id is not None else None
    try:
        details = json.loads(row.details or "{}")
    except ValueError:
        details = {}
    return WorkView(
        id=row.id,
        kind=str(row.kind),
        status=str(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        name=patient.full_name if patient else None,
        phone=phone,
        language=language,
        channel=row.channel,
        asked=row.summary or (_last_words(session, row) if deep else None),
        details=details,
        patient_id=row.patient_id,
        call_sid=row.call_sid,
        conversation_id=row.conversation_id,
        appointment_id=row.appointment_id,
        outbox_id=row.outbox_id,
        outbox_status=str(outbox_status) if outbox_status is not None else None,
        taken_by=row.taken_by,
        taken_at=row.taken_at,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
        resolution=row.resolution,
        events=events or [],
    )


def _conversation_state(session: Session, conversation_id: str) -> dict[str, Any]:
    """The conversation's saved state (its id is ``conv-`` + the start of the row key)."""
    prefix = conversation_id.removeprefix("conv-")
    if not prefix or prefix == conversation_id:
        return {}
    state = session.execute(
        select(col(ConversationRecord.state)).where(col(ConversationRecord.key).startswith(prefix))
    ).scalar()
    try:
        loaded = json.loads(state) if state else {}
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _last_words(session: Session, row: WorkItem) -> str | None:
    """The patient's last words before the item was opened, when the source gave no question
    ("quero falar com uma atendente")."""
    if row.conversation_id:
        said = session.execute(
            select(col(ConversationTurn.content))
            .where(
                col(ConversationTurn.conversation_id) == row.conversation_id,
                col(ConversationTurn.kind) == "patient",
                col(ConversationTurn.at) <= row.created_at,
            )
            .order_by(col(ConversationTurn.seq).desc())
            .limit(1)
        ).scalar()
        return str(said) if said else None
    if row.call_sid:
        said = session.execute(
            select(col(CallEvent.content))
            .where(
                col(CallEvent.call_sid) == row.call_sid,
                col(CallEvent.kind) == "caller",
                col(CallEvent.at) <= row.created_at,
            )
            .order_by(col(CallEvent.seq).desc())
            .limit(1)
        ).scalar()
        return str(said) if said else None
    return None
