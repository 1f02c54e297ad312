"""Calls and text conversations for staff: one list with outcomes, searchable by patient (phone
through the keyed hash, name) and day, and the timeline of one call or chat.

Calls come from ``call_record``/``call_event`` (``voice/call_records.py``), text conversations
from ``conversation_turn``; both become the same rows and timeline entries, so the console shows
one list. Names are encrypted at rest, so a name search decrypts the patients (a clinic has
thousands, not millions) and matches without case or accents.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from voice_agent.crypto.binding import engine_keyring
from voice_agent.store.conversation_tables import (
    ConversationRecord,
    conversation_id_of,
    state_key,
)
from voice_agent.store.db import transaction
from voice_agent.store.tables import Appointment, CallEvent, CallRecord, Patient
from voice_agent.store.worklist_tables import ConversationTurn
from voice_agent.voice.call_records import CallFilter, call_timeline

CHANGES = {
    "book_appointment": "booked",
    "reschedule_appointment": "rescheduled",
    "cancel_appointment": "cancelled",
    "confirm_appointment": "confirmed",
}
"""A text conversation's outcome is the last change its tools made."""


@dataclass(frozen=True)
class ActivityQuery:
    day_from: date | None = None
    day_to: date | None = None
    """Inclusive days in the clinic's timezone."""
    patient_ids: Collection[str] | None = None
    """Only these patients (a search's matches, a doctor's patients); None: everyone."""
    kind: str | None = None
    """``call`` or ``chat``; None: both."""
    limit: int = 100


@dataclass(frozen=True)
class ActivityRow:
    kind: str
    """``call`` or ``chat``."""
    id: str
    """The CallSid, or the conversation id."""
    started_at: datetime
    ended_at: datetime | None
    channel: str
    patient_id: str | None
    name: str | None
    phone: str | None
    language: str | None
    outcome: str
    flagged: bool
    detail: str = ""
    """A call's direction and mode (``inbound``, ``outbound/confirmation``)."""


@dataclass(frozen=True)
class Entry:
    """One line of a timeline."""

    at: datetime
    kind: str
    """patient | receptionist | tool | error | language | emergency | handover | keypad"""
    text: str = ""
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    ok: bool | None = None


@dataclass(frozen=True)
class Timeline:
    row: ActivityRow
    entries: list[Entry]
    summary: str | None = None
    """A call's transfer summary, or its error."""


# Finding patients ---------------------------------------------------------------------------


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.replace("ё", "е").replace("Ё", "Е"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def patients_by_name(engine: Engine, name: str, limit: int = 200) -> set[str]:
    """Patients whose name contains every word given (no case, no accents)."""
    words = fold(name).split()
    if not words:
        return set()
    found: set[str] = set()
    with transaction(engine) as session:
        for patient_id, full_name in session.execute(
            select(col(Patient.id), col(Patient.full_name)).where(
                col(Patient.full_name).is_not(None)
            )
        ):
            folded = fold(full_name or "")
            if all(word in folded for word in words):
                found.add(patient_id)
                if len(found) >= limit:
                    break
    return found


def patient_by_phone(engine: Engine, e164: str) -> str | None:
    digest = engine_keyring(engine).lookup_hash(e164)
    with transaction(engine) as session:
        found = session.execute(
            select(col(Patient.id)).where(col(Patient.phone_hash) == digest)
        ).scalar_one_or_none()
    return str(found) if found else None


def patients_of_doctor(engine: Engine, doctor_id: str) -> set[str]:
    """Patients with any appointment, past or future, with this doctor."""
    with transaction(engine) as session:
        return {
            str(patient_id)
            for patient_id in session.execute(
                select(col(Appointment.patient_id))
                .where(col(Appointment.doctor_id) == doctor_id)
                .distinct()
            ).scalars()
        }


# The list -----------------------------------------------------------------------------------


def activity(engine: Engine, tz: tzinfo, query: ActivityQuery) -> list[ActivityRow]:
    """Calls and conversations, newest first."""
    start, end = _bounds(query, tz)
    rows: list[ActivityRow] = []
    with transaction(engine) as session:
        names = _Names(session)
        if query.kind in (None, "call"):
            rows += _calls(session, names, query, start, end)
        if query.kind in (None, "chat"):
            rows += _chats(session, names, query, start, end)
    rows.sort(key=lambda row: row.started_at, reverse=True)
    return rows[: query.limit]


def _bounds(query: ActivityQuery, tz: tzinfo) -> tuple[datetime | None, datetime | None]:
    start = datetime.combine(query.day_from, time(0), tzinfo=tz) if query.day_from else None
    end = (
        datetime.combine(query.day_to + timedelta(days=1), time(0), tzinfo=tz)
        if query.day_to
        else None
    )
    return start, end


class _Names:
    """Patients' names and numbers, read once per page."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._cache: dict[str, tuple[str | None, str | None, str | None]] = {}

    def of(self, patient_id: str | None) -> tuple[str | None, str | None, str | None]:
        if patient_id is None:
            return None, None, None
        if patient_id not in self._cache:
            patient = self._session.get(Patient, patient_id)
            self._cache[patient_id] = (
                (patient.full_name, patient.phone or None, patient.language)
                if patient
                else (None, None, None)
            )
        return self._cache[patient_id]


def _calls(
    session: Session,
    names: _Names,
    query: ActivityQuery,
    start: datetime | None,
    end: datetime | None,
) -> list[ActivityRow]:
    statement = CallFilter(since=start).apply(select(CallRecord))
    if end is not None:
        statement = statement.where(col(CallRecord.started_at) < end)
    if query.patient_ids is not None:
        statement = statement.where(col(CallRecord.patient_id).in_(list(query.patient_ids)))
    statement = statement.order_by(col(CallRecord.started_at).desc()).limit(query.limit)
    rows = []
    for call in session.execute(statement).scalars():
        name, phone, language = names.of(call.patient_id)
        detail = call.direction if call.mode == "reception" else f"{call.direction}/{call.mode}"
        rows.append(
            ActivityRow(
                kind="call",
                id=call.call_sid,
                started_at=call.started_at,
                ended_at=call.ended_at,
                channel="phone",
                patient_id=call.patient_id,
                name=name,
                phone=call.caller or phone,
                language=call.language or language,
                outcome=str(call.outcome),
                flagged=call.flagged,
                detail=detail,
            )
        )
    return rows


def _chats(
    session: Session,
    names: _Names,
    query: ActivityQuery,
    start: datetime | None,
    end: datetime | None,
) -> list[ActivityRow]:
    first = func.min(ConversationTurn.at)
    last = func.max(ConversationTurn.at)
    statement = select(
        col(ConversationTurn.conversation_id),
        first,
        last,
        func.max(ConversationTurn.channel),
        func.max(ConversationTurn.patient_id),
    ).group_by(col(ConversationTurn.conversation_id))
    if start is not None:
        statement = statement.having(last >= start)
    if end is not None:
        statement = statement.having(first < end)
    if query.patient_ids is not None:
        statement = statement.where(col(ConversationTurn.patient_id).in_(list(query.patient_ids)))
    statement = statement.order_by(first.desc()).limit(query.limit)
    found = session.execute(statement).all()
    if not found:
        return []
    ids = [row[0] for row in found]
    outcomes, languages, flagged = _chat_facts(session, ids)
    rows = []
    for conversation_id, started, ended, channel, patient_id in found:
        name, phone, language = names.of(patient_id)
        rows.append(
            ActivityRow(
                kind="chat",
                id=conversation_id,
                started_at=started,
                ended_at=ended,
                channel=channel,
                patient_id=patient_id,
                name=name,
                phone=phone,
                language=languages.get(conversation_id) or language,
                outcome=outcomes.get(conversation_id, "answered"),
                flagged=conversation_id in flagged,
            )
        )
    return rows


def _chat_facts(
    session: Session, ids: list[str]
) -> tuple[dict[str, str], dict[str, str], set[str]]:
    """Outcome (the last change a tool made, a hand-over, an emergency), language, red flags."""
    outcomes: dict[str, str] = {}
    languages: dict[str, str] = {}
    flagged: set[str] = set()
    turns = session.execute(
        select(ConversationTurn)
        .where(
            col(ConversationTurn.conversation_id).in_(ids),
            col(ConversationTurn.kind).in_(("tool", "emergency", "receptionist", "handover")),
        )
        .order_by(col(ConversationTurn.conversation_id), col(ConversationTurn.seq))
    ).scalars()
    for turn in turns:
        if turn.language:
            languages[turn.conversation_id] = turn.language
        if turn.kind == "emergency":
            flagged.add(turn.conversation_id)
            outcomes[turn.conversation_id] = "emergency"
        elif turn.kind == "tool":
            name = _load(turn.content).get("name")
            if name in CHANGES:
                outcomes[turn.conversation_id] = CHANGES[str(name)]
            elif name in ("request_callback", "transfer_to_staff"):
                outcomes[turn.conversation_id] = "handed_over"
        elif turn.kind == "handover":
            outcomes[turn.conversation_id] = "handed_over"
    return outcomes, languages, flagged


# One timeline -------------------------------------------------------------------------------


def call_entries(engine: Engine, call_sid: str) -> Timeline | None:
    """A call's timeline; a no-AI (keypad and speech) call adds its text turns."""
    found = call_timeline(engine, call_sid)
    if found is None:
        return None
    record, events = found
    entries = [_call_entry(event) for event in events]
    gather = conversation_id_of(state_key("voice", call_sid, engine_keyring(engine).lookup_key))
    with transaction(engine) as session:
        names = _Names(session)
        entries += _turn_entries(session, gather)
        name, phone, language = names.of(record.patient_id)
    entries.sort(key=lambda entry: entry.at)
    detail = record.direction if record.mode == "reception" else f"{record.direction}/{record.mode}"
    row = ActivityRow(
        kind="call",
        id=record.call_sid,
        started_at=record.started_at,
        ended_at=record.ended_at,
        channel="phone",
        patient_id=record.patient_id,
        name=name,
        phone=record.caller or phone,
        language=record.language or language,
        outcome=str(record.outcome),
        flagged=record.flagged,
        detail=detail,
    )
    return Timeline(row, entries, record.transfer_summary or record.error)


def chat_entries(engine: Engine, conversation_id: str) -> Timeline | None:
    with transaction(engine) as session:
        entries = _turn_entries(session, conversation_id)
        if not entries:
            return None
        head = session.execute(
            select(ConversationTurn)
            .where(col(ConversationTurn.conversation_id) == conversation_id)
            .order_by(col(ConversationTurn.patient_id).desc(), col(ConversationTurn.seq))
            .limit(1)
        ).scalar_one()
        names = _Names(session)
        name, phone, language = names.of(head.patient_id)
        outcomes, languages, flagged = _chat_facts(session, [conversation_id])
        if phone is None:
            phone = _state_phone(session, conversation_id)
    row = ActivityRow(
        kind="chat",
        id=conversation_id,
        started_at=entries[0].at,
        ended_at=entries[-1].at,
        channel=head.channel,
        patient_id=head.patient_id,
        name=name,
        phone=phone,
        language=languages.get(conversation_id) or language,
        outcome=outcomes.get(conversation_id, "answered"),
        flagged=conversation_id in flagged,
    )
    return Timeline(row, entries)


def _turn_entries(session: Session, conversation_id: str) -> list[Entry]:
    turns = session.execute(
        select(ConversationTurn)
        .where(col(ConversationTurn.conversation_id) == conversation_id)
        .order_by(col(ConversationTurn.seq))
    ).scalars()
    entries = []
    for turn in turns:
        if turn.kind in ("tool", "error"):
            entries.append(_tool_entry(turn.at, turn.kind, _load(turn.content)))
        elif turn.kind == "handover":
            entries.append(Entry(turn.at, "handover"))
        elif turn.kind in ("language", "emergency"):
            facts = _load(turn.content)
            text = (
                f"{facts.get('from')} → {facts.get('to')}"
                if turn.kind == "language"
                else str(facts.get("category", ""))
            )
            entries.append(Entry(turn.at, turn.kind, text))
        else:
            entries.append(Entry(turn.at, turn.kind, turn.content))
    return entries


def _call_entry(event: CallEvent) -> Entry:
    if event.kind == "tool":
        return _tool_entry(event.at, "tool", _load(event.content))
    if event.kind == "caller":
        return Entry(event.at, "patient", event.content)
    if event.kind == "safety":
        return Entry(event.at, "emergency", str(_load(event.content).get("red_flag", "")))
    if event.kind == "dtmf":
        return Entry(event.at, "keypad", event.content)
    if event.kind == "language":
        return Entry(event.at, "language", event.content)
    return Entry(event.at, event.kind, event.content)


def _tool_entry(at: datetime, kind: str, call: dict[str, Any]) -> Entry:
    ok = bool(call.get("ok"))
    arguments = call.get("arguments") if isinstance(call.get("arguments"), dict) else {}
    output = call.get("output") if isinstance(call.get("output"), dict) else {}
    return Entry(
        at,
        "tool" if ok else "error",
        tool=str(call.get("name", "?")),
        arguments={k: v for k, v in (arguments or {}).items() if v not in (None, "", [])},
        output=output or {},
        ok=ok,
    )


def _load(content: str) -> dict[str, Any]:
    try:
        loaded = json.loads(content)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _state_phone(session: Session, conversation_id: str) -> str | None:
    prefix = conversation_id.removeprefix("conv-")
    if prefix == conversation_id:
        return None
    state = session.execute(
        select(col(ConversationRecord.state)).where(col(ConversationRecord.key).startswith(prefix))
    ).scalar()
    phone = _load(state).get("phone") if state else None
    return phone if isinstance(phone, str) else None
