"""Work items written at the source, in the transaction of the fact that needs a person.

Two hooks, both run inside the caller's transaction, so an item exists exactly when its cause
committed (an alert can fail, a conversation state is overwritten and purged, an outbox row is
purged after ``outbox_days``: the item stays until someone resolves it):

- ``WorkFeed.on_interaction`` (an ``InteractionLog`` hook): hand-overs, callback requests,
  questions the receptionist could not answer, emergencies, failures during a conversation, and
  confirmation calls that stayed unanswered after their last attempt;
- ``WorkFeed.on_dead_letter`` (an ``Outbox`` dead-letter hook): side effects that could not be
  delivered.

Repeats do not pile up: while an item is open, a new need from the same source (the same call or
conversation, outbox row, appointment) updates it and adds an ``asked_again`` event. The hooks
run in a savepoint and never raise into the booking or message that caused them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Engine, exists, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from voice_agent.clock import Clock
from voice_agent.store.conversation_tables import ConversationRecord, conversation_id_of
from voice_agent.store.db import transaction
from voice_agent.store.outbox_tables import OutboxRow, OutboxStatus
from voice_agent.store.tables import Appointment, CallRecord, Interaction, InteractionKind, Patient
from voice_agent.store.worklist_tables import (
    OPEN_WORK,
    WorkItem,
    WorkItemEvent,
    WorkKind,
    WorkStatus,
)

logger = logging.getLogger(__name__)

PERSON_NEEDS = (WorkKind.question, WorkKind.handover, WorkKind.callback)
"""One item per conversation for these, the strongest kind winning (a question the patient
then asked to be called back about is a callback)."""
MAX_SUMMARY = 600


_NEEDS_NOTED: ContextVar[set[str] | None] = ContextVar("work_needs_noted", default=None)


@contextmanager
def noting_needs() -> Iterator[set[str]]:
    """Collects the conversation ids a need was recorded for inside this block (and in the
    threads started inside it: ``to_thread`` copies the context): a text turn fills the contact
    of its conversation's open items only when it has some (``Worklist.fill_contact``)."""
    noted: set[str] = set()
    token = _NEEDS_NOTED.set(noted)
    try:
        yield noted
    finally:
        _NEEDS_NOTED.reset(token)


class WorkFeed:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    # Sources ----------------------------------------------------------------------------------

    def on_interaction(self, session: Session, interaction: Interaction) -> None:
        need = need_of(interaction)
        if need is None:
            return
        kind, summary, extra = need
        details = _details(interaction)
        where: str | None = (
            interaction.call_id
            or details.get("call")
            or details.get("conversation")
            or details.get("call_sid")
        )
        call_sid, conversation_id = _split_where(session, where)
        noted = _NEEDS_NOTED.get()
        if noted is not None and conversation_id:
            noted.add(conversation_id)  # before the write: a failed one is filled later
        group = "person" if kind in PERSON_NEEDS else kind.value
        open_key: str | None
        if kind == WorkKind.unreached:
            open_key = f"unreached:{interaction.appointment_id}"
        else:
            open_key = f"{group}:{where}" if where else None
        self._write(
            session,
            kind,
            open_key,
            summary=summary,
            details=extra,
            patient_id=interaction.patient_id,
            channel=interaction.channel,
            call_sid=call_sid,
            conversation_id=conversation_id,
            appointment_id=interaction.appointment_id,
            interaction_id=interaction.id,
        )

    def on_dead_letter(self, session: Session, row: OutboxRow) -> None:
        try:
            payload: dict[str, Any] = json.loads(row.payload or "{}")
        except ValueError:
            payload = {}
        appointment_id = payload.get("appointment_id")
        appointment = session.get(Appointment, appointment_id) if appointment_id else None
        extra = {
            "outbox_kind": row.kind,
            "attempts": row.attempts,
            "error": (row.last_error or "")[:300],
            "event": payload.get("event") or payload.get("op") or payload.get("kind"),
        }
        summary = payload.get("message") if row.kind == "alert" else None
        self._write(
            session,
            WorkKind.dead_letter,
            f"outbox:{row.id}",
            summary=summary,
            details=extra,
            patient_id=appointment.patient_id if appointment else payload.get("patient_id"),
            channel=None,
            call_sid=None,
            conversation_id=None,
            appointment_id=appointment.id if appointment else None,
            outbox_id=row.id,
        )

    # Before the to-do existed ------------------------------------------------------------------

    def backfill(self, engine: Engine) -> int:
        """Items for what needed a person before this table existed (or while a hook could not
        write): dead letters and flagged calls and conversations without an item. Idempotent;
        run at start. Returns how many items were opened."""
        opened = 0
        with transaction(engine) as session:
            dead = session.execute(
                select(OutboxRow).where(
                    col(OutboxRow.status) == OutboxStatus.dead,
                    ~exists().where(col(WorkItem.outbox_id) == OutboxRow.id),
                )
            ).scalars()
            for row in list(dead):
                self.on_dead_letter(session, row)
                opened += 1
            calls = session.execute(
                select(col(CallRecord.call_sid), col(CallRecord.patient_id)).where(
                    col(CallRecord.flagged).is_(True),
                    ~exists().where(
                        col(WorkItem.call_sid) == CallRecord.call_sid,
                        col(WorkItem.kind) == WorkKind.emergency,
                    ),
                )
            ).all()
            for call_sid, patient_id in calls:
                self._write(
                    session,
                    WorkKind.emergency,
                    f"emergency:{call_sid}",
                    summary=None,
                    details={"source": "flagged_call"},
                    patient_id=patient_id,
                    channel="phone",
                    call_sid=call_sid,
                    conversation_id=None,
                    appointment_id=None,
                )
                opened += 1
            flagged = session.execute(
                select(col(ConversationRecord.key), col(ConversationRecord.channel)).where(
                    col(ConversationRecord.flagged).is_(True)
                )
            ).all()
            for key, channel in flagged:
                conversation_id = conversation_id_of(key)
                known = session.execute(
                    select(col(WorkItem.id)).where(
                        col(WorkItem.conversation_id) == conversation_id,
                        col(WorkItem.kind) == WorkKind.emergency,
                    )
                ).first()
                if known is None:
                    self._write(
                        session,
                        WorkKind.emergency,
                        f"emergency:{conversation_id}",
                        summary=None,
                        details={"source": "flagged_conversation"},
                        patient_id=None,
                        channel=channel,
                        call_sid=None,
                        conversation_id=conversation_id,
                        appointment_id=None,
                    )
                    opened += 1
        if opened:
            logger.info("to-do: %d items opened for earlier needs", opened)
        return opened

    # Writing ----------------------------------------------------------------------------------

    def _write(
        self,
        session: Session,
        kind: WorkKind,
        open_key: str | None,
        *,
        summary: str | None,
        details: dict[str, Any],
        patient_id: str | None,
        channel: str | None,
        call_sid: str | None,
        conversation_id: str | None,
        appointment_id: str | None,
        interaction_id: int | None = None,
        outbox_id: int | None = None,
    ) -> None:
        summary = summary[:MAX_SUMMARY] if summary else None
        try:
            with session.begin_nested():
                existing = _open_item(session, open_key, outbox_id)
                if existing is not None:
                    self._again(session, existing, kind, summary, details)
                    return
                patient = session.get(Patient, patient_id) if patient_id else None
                call = session.get(CallRecord, call_sid) if call_sid else None
                now = self._clock.now()
                item = WorkItem(
                    kind=kind,
                    open_key=open_key,
                    created_at=now,
                    updated_at=now,
                    patient_id=patient_id,
                    phone=(patient.phone if patient else None) or (call.caller if call else None),
                    language=(patient.language if patient else None)
                    or (call.language if call else None),
                    channel=channel,
                    call_sid=call_sid,
                    conversation_id=conversation_id,
                    appointment_id=appointment_id,
                    outbox_id=outbox_id,
                    interaction_id=interaction_id,
                    summary=summary,
                    details=json.dumps(details, ensure_ascii=False, default=str, sort_keys=True),
                )
                session.add(item)
                session.flush()
                assert item.id is not None
                session.add(WorkItemEvent(item_id=item.id, at=now, action="created"))
                logger.info("work item %s (%s) opened", item.id, kind.value)
        except IntegrityError:
            # Another process opened the item for this source a moment ago: add to it.
            with session.begin_nested():
                existing = _open_item(session, open_key, outbox_id)
                if existing is not None:
                    self._again(session, existing, kind, summary, details)
        except Exception:
            logger.exception("could not record a work item (%s)", kind.value)

    def _again(
        self,
        session: Session,
        item: WorkItem,
        kind: WorkKind,
        summary: str | None,
        details: dict[str, Any],
    ) -> None:
        """The same source needs a person again: the item is brought up to date, or reopened."""
        now = self._clock.now()
        action = "asked_again"
        if item.status not in OPEN_WORK:
            action = "reopened"
            item.status = WorkStatus.open
            item.resolved_at = item.resolved_by = item.resolution = None
            item.taken_at = item.taken_by = None
            item.open_key = f"outbox:{item.outbox_id}" if item.outbox_id else item.open_key
        if (
            kind in PERSON_NEEDS
            and item.kind in PERSON_NEEDS
            and PERSON_NEEDS.index(kind) > PERSON_NEEDS.index(WorkKind(item.kind))
        ):
            item.kind = kind
        if summary and summary != item.summary:
            item.summary = f"{item.summary}\n{summary}"[-MAX_SUMMARY:] if item.summary else summary
        merged = json.loads(item.details or "{}") | details
        item.details = json.dumps(merged, ensure_ascii=False, default=str, sort_keys=True)
        item.updated_at = now
        session.add(item)
        session.flush()
        assert item.id is not None
        session.add(WorkItemEvent(item_id=item.id, at=now, action=action))


def need_of(interaction: Interaction) -> tuple[WorkKind, str | None, dict[str, Any]] | None:
    """Which need, if any, an interaction row is; with what was asked and the facts to show."""
    details = _details(interaction)
    kind = interaction.kind
    if kind == InteractionKind.transfer:
        reason = str(details.get("reason", ""))
        asked = details.get("question") or details.get("summary")
        if reason == "callback requested":
            return WorkKind.callback, asked, {}
        return WorkKind.handover, asked, {}
    if kind == InteractionKind.information and details.get("topic") == "unanswered":
        return WorkKind.question, details.get("question"), {}
    if kind == InteractionKind.emergency:
        facts: dict[str, Any] = {
            k: details[k] for k in ("category", "rule", "source") if k in details
        }
        return WorkKind.emergency, details.get("summary"), facts
    if kind == InteractionKind.failure:
        return WorkKind.failure, details.get("message"), {}
    if kind == InteractionKind.reminder and details.get("final") and details.get("via") == "call":
        return WorkKind.unreached, None, {"event": details.get("event")}
    return None


def _details(interaction: Interaction) -> dict[str, Any]:
    try:
        details = json.loads(interaction.details or "{}")
    except ValueError:
        return {}
    return details if isinstance(details, dict) else {}


def _split_where(session: Session, where: Any) -> tuple[str | None, str | None]:
    """A call SID (a call record exists, or the no-AI line's CallSid) or a conversation id."""
    if not where:
        return None, None
    where = str(where)
    if session.get(CallRecord, where) is not None or where.startswith("CA"):
        return where, None
    return None, where


def _open_item(session: Session, open_key: str | None, outbox_id: int | None) -> WorkItem | None:
    if open_key is not None:
        found = session.execute(
            select(WorkItem).where(col(WorkItem.open_key) == open_key)
        ).scalar_one_or_none()
        if found is not None:
            return found
    if outbox_id is not None:  # retried, resolved, and dead again: the same item comes back
        return session.execute(
            select(WorkItem)
            .where(col(WorkItem.outbox_id) == outbox_id)
            .order_by(col(WorkItem.id).desc())
            .limit(1)
        ).scalar_one_or_none()
    return None
