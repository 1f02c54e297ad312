"""Reading recorded calls back for staff: the list with outcomes, and one call's timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, func, select
from sqlmodel import col

from voice_agent.store.db import transaction
from voice_agent.store.tables import CallEvent, CallOutcome, CallRecord


@dataclass(frozen=True)
class CallFilter:
    since: datetime | None = None
    outcome: CallOutcome | None = None
    flagged_only: bool = False

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.since is not None:
            query = query.where(col(CallRecord.started_at) >= self.since)
        if self.outcome is not None:
            query = query.where(CallRecord.outcome == self.outcome)
        if self.flagged_only:
            query = query.where(col(CallRecord.flagged).is_(True))
        return query


def recent_calls(engine: Engine, where: CallFilter, limit: int) -> list[CallRecord]:
    """Newest first."""
    query = where.apply(select(CallRecord)).order_by(col(CallRecord.started_at).desc())
    with transaction(engine) as session:
        return list(session.execute(query.limit(limit)).scalars())


def outcome_counts(engine: Engine, where: CallFilter) -> dict[str, int]:
    query = where.apply(select(CallRecord.outcome, func.count()).group_by(CallRecord.outcome))
    with transaction(engine) as session:
        return {str(outcome): int(n) for outcome, n in session.execute(query)}


def call_timeline(engine: Engine, call_sid: str) -> tuple[CallRecord, list[CallEvent]] | None:
    """The call and its events in order (transcript turns, tools, errors, language, keypad)."""
    with transaction(engine) as session:
        record = session.get(CallRecord, call_sid)
        if record is None:
            return None
        events = session.execute(
            select(CallEvent).where(CallEvent.call_sid == call_sid).order_by(col(CallEvent.seq))
        ).scalars()
        return record, list(events)
