"""A person's requests about their own data (LGPD art. 18, 152-FZ art. 14 and 21): everything
held about them, as JSON, and its erasure.

Erasure deletes personal data and transcripts but keeps appointments (the clinic's records)
attached to an anonymised patient row, and records that an erasure happened, without the data.
Encrypted columns cannot be searched, so calls without a patient, conversation states and
outbox messages are matched after decryption: a scan, fine for a request that comes rarely.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlmodel import Session, col

from voice_agent.crypto.binding import engine_keyring
from voice_agent.crypto.keys import ERASED_HASH_PREFIX
from voice_agent.interactions import InteractionLog
from voice_agent.store.confirmation_tables import OPEN_STATUSES, ConfirmationStep, StepStatus
from voice_agent.store.conversation_tables import (
    ConversationRecord,
    conversation_id_of,
    state_key,
)
from voice_agent.store.db import transaction
from voice_agent.store.outbox_tables import OutboxRow
from voice_agent.store.tables import (
    Appointment,
    CallEvent,
    CallRecord,
    Interaction,
    InteractionKind,
    Patient,
)
from voice_agent.store.worklist_tables import ConversationTurn, WorkItem, WorkItemEvent

ERASURE_CHANNEL = "staff"


class SubjectNotFound(LookupError):
    """No patient with that phone."""


class _Holdings:
    """The rows that concern one patient, found in one session."""

    def __init__(self, session: Session, patient: Patient, e164: str, lookup_key: bytes) -> None:
        self.patient = patient
        self.appointments = list(
            session.execute(
                select(Appointment)
                .where(col(Appointment.patient_id) == patient.id)
                .order_by(col(Appointment.start))
            ).scalars()
        )
        appointment_ids = {a.id for a in self.appointments}
        self.steps = (
            list(
                session.execute(
                    select(ConfirmationStep)
                    .where(col(ConfirmationStep.appointment_id).in_(appointment_ids))
                    .order_by(col(ConfirmationStep.id))
                ).scalars()
            )
            if appointment_ids
            else []
        )
        self.interactions = list(
            session.execute(
                select(Interaction)
                .where(col(Interaction.patient_id) == patient.id)
                .order_by(col(Interaction.id))
            ).scalars()
        )
        own = session.execute(select(CallRecord).where(col(CallRecord.patient_id) == patient.id))
        unknown = session.execute(select(CallRecord).where(col(CallRecord.patient_id).is_(None)))
        self.calls = list(own.scalars()) + [c for c in unknown.scalars() if c.caller == e164]
        self.calls.sort(key=lambda c: c.started_at)
        call_sids = {c.call_sid for c in self.calls}
        self.events = (
            list(
                session.execute(
                    select(CallEvent)
                    .where(col(CallEvent.call_sid).in_(call_sids))
                    .order_by(col(CallEvent.call_sid), col(CallEvent.seq))
                ).scalars()
            )
            if call_sids
            else []
        )
        voice_keys = {state_key("voice", sid, lookup_key) for sid in call_sids}
        self.conversations = [
            record
            for record in session.execute(select(ConversationRecord)).scalars()
            if record.key in voice_keys or _state_phone(record.state) == e164
        ]
        conversation_ids = {conversation_id_of(record.key) for record in self.conversations}
        self.turns = list(
            session.execute(
                select(ConversationTurn)
                .where(
                    col(ConversationTurn.patient_id).in_([patient.id])
                    | col(ConversationTurn.conversation_id).in_(conversation_ids)
                )
                .order_by(col(ConversationTurn.conversation_id), col(ConversationTurn.seq))
            ).scalars()
        )
        self.work_items = [
            item
            for item in session.execute(select(WorkItem).order_by(col(WorkItem.id))).scalars()
            if item.patient_id == patient.id
            or item.phone == e164
            or item.conversation_id in conversation_ids
            or item.call_sid in call_sids
        ]
        needles = [e164, patient.id, *appointment_ids]
        self.outbox = [
            row
            for row in session.execute(select(OutboxRow).order_by(col(OutboxRow.id))).scalars()
            if row.group_key in appointment_ids or any(n in row.payload for n in needles)
        ]


def _state_phone(state: str) -> str | None:
    try:
        phone = json.loads(state).get("phone")
    except (ValueError, AttributeError):
        return None
    return phone if isinstance(phone, str) else None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _find(session: Session, engine: Engine, e164: str) -> Patient:
    phone_hash = engine_keyring(engine).lookup_hash(e164)
    patient = session.execute(
        select(Patient).where(col(Patient.phone_hash) == phone_hash)
    ).scalar_one_or_none()
    if patient is None:
        raise SubjectNotFound(e164)
    return patient


def export_subject(engine: Engine, e164: str, now: datetime) -> dict[str, Any]:
    """Everything held about the person with this phone (E.164), ready for ``json.dumps``."""
    with transaction(engine) as session:
        held = _Holdings(
            session, _find(session, engine, e164), e164, engine_keyring(engine).lookup_key
        )
        events_by_call: dict[str, list[dict[str, Any]]] = {}
        for event in held.events:
            events_by_call.setdefault(event.call_sid, []).append(
                {"seq": event.seq, "at": event.at, "kind": event.kind, "content": event.content}
            )
        return {
            "exported_at": now,
            "patient": held.patient.model_dump(exclude={"phone_hash"}),
            "appointments": [a.model_dump() for a in held.appointments],
            "confirmation_steps": [s.model_dump() for s in held.steps],
            "interactions": [
                {**i.model_dump(exclude={"details"}), "details": _json(i.details)}
                for i in held.interactions
            ],
            "calls": [
                {
                    **c.model_dump(exclude={"token_nonce"}),
                    "transcript": events_by_call.get(c.call_sid, []),
                }
                for c in held.calls
            ],
            "conversations": [
                {"channel": r.channel, "updated_at": r.updated_at, "state": _json(r.state)}
                for r in held.conversations
            ],
            "messages": [
                {
                    "kind": r.kind,
                    "status": r.status,
                    "created_at": r.created_at,
                    "payload": _json(r.payload),
                }
                for r in held.outbox
            ],
            "conversation_turns": [
                t.model_dump(include={"conversation_id", "seq", "at", "channel", "kind", "content"})
                for t in held.turns
            ],
            "staff_requests": [
                {**w.model_dump(exclude={"details", "open_key"}), "details": _json(w.details)}
                for w in held.work_items
            ],
        }


def erase_subject(
    engine: Engine, interactions: InteractionLog, e164: str, now: datetime
) -> dict[str, int]:
    """Erase the person's data in one transaction; returns what was removed, by kind."""
    with transaction(engine) as session:
        held = _Holdings(
            session, _find(session, engine, e164), e164, engine_keyring(engine).lookup_key
        )
        patient = held.patient
        patient.phone = ""
        patient.phone_hash = f"{ERASED_HASH_PREFIX}{patient.id}"
        patient.full_name = None
        patient.email = None
        patient.birth_date = None
        patient.updated_at = now
        session.add(patient)
        for appointment in held.appointments:  # kept for the clinic's records, without names
            if appointment.attendee_name is not None:
                appointment.attendee_name = None
                session.add(appointment)
        for call in held.calls:
            call.caller = ""
            call.transfer_summary = None
            call.error = None
            call.patient_id = patient.id
            session.add(call)
        if held.events:
            session.execute(
                delete(CallEvent).where(col(CallEvent.id).in_([e.id for e in held.events]))
            )
        for record in held.conversations:
            session.delete(record)
        if held.turns:
            session.execute(
                delete(ConversationTurn).where(
                    col(ConversationTurn.id).in_([t.id for t in held.turns])
                )
            )
        for item in held.work_items:  # the facts stay (kind, times, who handled it)
            item.phone = item.summary = item.resolution = None
            item.details = "{}"
            session.add(item)
            for event in session.execute(
                select(WorkItemEvent).where(col(WorkItemEvent.item_id) == item.id)
            ).scalars():
                event.note = None
                session.add(event)
        for interaction in held.interactions:
            interaction.details = "{}"
            session.add(interaction)
        for row in held.outbox:
            session.delete(row)
        open_steps = [s for s in held.steps if s.status in OPEN_STATUSES]
        for step in open_steps:
            step.status = StepStatus.cancelled
            step.outcome = "erased"
            step.updated_at = now
            session.add(step)
        removed = {
            "calls_anonymised": len(held.calls),
            "transcript_events": len(held.events),
            "conversations": len(held.conversations),
            "interactions_cleared": len(held.interactions),
            "messages": len(held.outbox),
            "conversation_turns": len(held.turns),
            "staff_requests_cleared": len(held.work_items),
            "confirmation_steps_cancelled": len(open_steps),
            "appointments_kept": len(held.appointments),
        }
        session.flush()
        interactions.record_in(
            session,
            InteractionKind.erasure,
            channel=ERASURE_CHANNEL,
            patient_id=patient.id,
            details={"request": "erasure", **removed},
        )
        return removed
