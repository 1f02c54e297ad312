"""Call records, all of them: a call's row opened by the webhook, its events written during the
call, its outcome closed at the end, and the reads that give staff the list and one call's
timeline.

Every call is recorded: sid, caller, times, outcome, transcript turns, tool calls, errors.
Patient data (transcripts, arguments) goes to the database only, never to plain logs. Writes
are queued on the process's write-behind queue (``store/write_behind.py``: one transaction a
second for all calls), so the audio path never waits on the database.
These are blocking functions (the call path runs them with ``asyncio.to_thread``) except
:class:`CallRecorder`, which queues and flushes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, Select, func, select, update
from sqlmodel import col

from voice_agent.interactions import Actor, InteractionLog
from voice_agent.store.db import transaction
from voice_agent.store.tables import CallEvent, CallOutcome, CallRecord, InteractionKind, Patient
from voice_agent.store.types import utcnow
from voice_agent.store.write_behind import WriteBehind

logger = logging.getLogger(__name__)

CALL_EVENTS = CallEvent.__table__  # type: ignore[attr-defined]
"""Written as plain rows: building an ORM object per event cost more than the insert."""


# Opening a call ----------------------------------------------------------------------------------


def open_call_record(
    engine: Engine,
    call_sid: str,
    caller: str,
    patient: Patient | None,
    language: str,
    nonce: str | None,
    direction: str,
    *,
    appointment_id: str | None = None,
) -> None:
    """Create the call's record; a retried webhook gets a fresh token on the same record.

    With ``appointment_id`` the call is a confirmation call about that appointment.
    """
    with transaction(engine) as session:
        record = session.get(CallRecord, call_sid)
        if record is None:
            session.add(
                CallRecord(
                    call_sid=call_sid,
                    caller=caller[:32],
                    patient_id=patient.id if patient else None,
                    language=language,
                    token_nonce=nonce,
                    direction="outbound" if direction.startswith("outbound") else "inbound",
                    mode="confirmation" if appointment_id else "reception",
                    appointment_id=appointment_id,
                )
            )
        else:
            record.token_nonce = nonce
            record.token_used_at = None
            session.add(record)


def stream_already_ran(engine: Engine, call_sid: str) -> bool:
    """Whether this call's media stream was opened (token used) or the call has ended: then no
    request, however well signed, may mint the call another stream token."""
    record = get_call(engine, call_sid)
    if record is None:
        return False
    return record.token_used_at is not None or record.ended_at is not None


# During the call ----------------------------------------------------------------------------------


class CallRecorder:
    """One call's events (transcript turns, tools, errors) and its question-only interaction
    rows, queued on the process's :class:`WriteBehind` (one transaction a second for every
    call); the call's end writes what is left before the record closes."""

    def __init__(
        self,
        engine: Engine,
        call_sid: str,
        writer: WriteBehind | None = None,
        interactions: InteractionLog | None = None,
    ) -> None:
        self._engine = engine
        self.call_sid = call_sid
        self._seq = 0
        self._own_writer = writer is None
        """Without the process's queue (a test, a script) the recorder has its own, closed at
        the call's end."""
        self._writer = writer or WriteBehind(engine)
        self._interactions = interactions
        self.transcript: list[tuple[str, str]] = []

    @property
    def engine(self) -> Engine:
        """The database this call's record lives in (the bridge's own call-field writes use it)."""
        return self._engine

    def event(self, kind: str, content: dict[str, Any] | str) -> None:
        self._seq += 1
        text = (
            content
            if isinstance(content, str)
            else json.dumps(content, ensure_ascii=False, default=str)
        )
        if kind in ("caller", "receptionist"):
            self.transcript.append((kind, text))
        self._writer.insert(
            CALL_EVENTS,
            {"call_sid": self.call_sid, "seq": self._seq, "at": utcnow(), "kind": kind,
             "content": text},
        )  # fmt: skip

    async def tool(
        self, name: str, arguments: dict[str, Any], output: dict[str, Any], ok: bool
    ) -> None:
        self.event("tool", {"name": name, "arguments": arguments, "output": output, "ok": ok})

    def note(
        self,
        kind: InteractionKind,
        *,
        channel: str,
        patient_id: str | None,
        details: dict[str, Any],
        actor: Actor,
    ) -> None:
        """An interaction row that describes no change (a question answered), written with the
        next batch, its hooks in that transaction; without an interaction log, not kept."""
        log = self._interactions
        if log is None:
            return
        self._writer.later(
            lambda session: log.record_in(
                session, kind, channel=channel, patient_id=patient_id, details=details, actor=actor
            )
        )

    async def finish(
        self, outcome: CallOutcome, *, error: str | None = None, flagged: bool | None = None
    ) -> None:
        """Flush the events and close the record (outcome set once, first writer wins)."""
        await (self._writer.close() if self._own_writer else self._writer.flush())
        await asyncio.to_thread(self._close, outcome, error, flagged, utcnow())

    def _close(
        self, outcome: CallOutcome, error: str | None, flagged: bool | None, at: datetime
    ) -> None:
        values: dict[str, Any] = {"ended_at": at}
        if error is not None:
            values["error"] = error[:2000]
        if flagged:
            values["flagged"] = True
        with transaction(self._engine) as session:
            session.execute(
                update(CallRecord).where(col(CallRecord.call_sid) == self.call_sid).values(**values)
            )
            session.execute(
                update(CallRecord)
                .where(
                    col(CallRecord.call_sid) == self.call_sid,
                    col(CallRecord.outcome) == CallOutcome.in_progress,
                )
                .values(outcome=outcome)
            )


# Single fields and the stream token -----------------------------------------------------------


def set_call_fields(engine: Engine, call_sid: str, **values: Any) -> None:
    with transaction(engine) as session:
        session.execute(
            update(CallRecord).where(col(CallRecord.call_sid) == call_sid).values(**values)
        )


def get_call(engine: Engine, call_sid: str) -> CallRecord | None:
    with transaction(engine) as session:
        return session.get(CallRecord, call_sid)


def consume_token(engine: Engine, call_sid: str, nonce: str, now: datetime) -> bool:
    """Mark the call's stream token used; False if it was already used or is not this call's."""
    with transaction(engine) as session:
        result = session.execute(
            update(CallRecord)
            .where(
                col(CallRecord.call_sid) == call_sid,
                col(CallRecord.token_nonce) == nonce,
                col(CallRecord.token_used_at).is_(None),
            )
            .values(token_used_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


# Reading calls back (staff: `voice-agent calls`) --------------------------------------------------


_Query = TypeVar("_Query", bound="Select[*tuple[Any, ...]]")


@dataclass(frozen=True)
class CallFilter:
    since: datetime | None = None
    outcome: CallOutcome | None = None
    flagged_only: bool = False

    def apply(self, query: _Query) -> _Query:
        if self.since is not None:
            query = query.where(col(CallRecord.started_at) >= self.since)
        if self.outcome is not None:
            query = query.where(col(CallRecord.outcome) == self.outcome)
        if self.flagged_only:
            query = query.where(col(CallRecord.flagged).is_(True))
        return query


def recent_calls(engine: Engine, where: CallFilter, limit: int) -> list[CallRecord]:
    """Newest first."""
    query = where.apply(select(CallRecord)).order_by(col(CallRecord.started_at).desc())
    with transaction(engine) as session:
        return list(session.execute(query.limit(limit)).scalars())


def outcome_counts(engine: Engine, where: CallFilter) -> dict[str, int]:
    query = where.apply(
        select(col(CallRecord.outcome), func.count()).group_by(col(CallRecord.outcome))
    )
    with transaction(engine) as session:
        return {str(outcome): int(n) for outcome, n in session.execute(query)}


def call_timeline(engine: Engine, call_sid: str) -> tuple[CallRecord, list[CallEvent]] | None:
    """The call and its events in order (transcript turns, tools, errors, language, keypad)."""
    with transaction(engine) as session:
        record = session.get(CallRecord, call_sid)
        if record is None:
            return None
        events = session.execute(
            select(CallEvent)
            .where(col(CallEvent.call_sid) == call_sid)
            .order_by(col(CallEvent.seq))
        ).scalars()
        return record, list(events)
