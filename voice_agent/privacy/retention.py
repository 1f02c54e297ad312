"""Retention: patient data older than the clinic's limits is deleted (or, for the interaction
log, stripped of its free text), by a periodic job and by `voice-agent privacy purge`.

Ages are read against the injected clock. Appointments and the interaction log's facts (kind,
time, appointment) are the clinic's records and stay.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import Engine, column, delete, select, update
from sqlmodel import col

from voice_agent.clinic.model import RetentionPolicy
from voice_agent.crypto.binding import engine_keyring
from voice_agent.store.conversation_tables import ConversationRecord
from voice_agent.store.encrypted_fields import EncryptedTable, rewrite
from voice_agent.store.outbox_tables import OutboxRow, OutboxStatus
from voice_agent.store.tables import CallEvent, CallRecord
from voice_agent.store.types import UTCDateTime
from voice_agent.store.worklist_tables import ConversationTurn, WorkItem, WorkItemEvent, WorkStatus

logger = logging.getLogger(__name__)

TRANSCRIPT_KINDS = ("caller", "receptionist")
TEXT_TRANSCRIPT_KINDS = ("patient", "receptionist")
EMPTY_DETAILS = "{}"


class PurgeReport(BaseModel):
    transcript_turns: int = 0
    transfer_summaries: int = 0
    call_events: int = 0
    calls: int = 0
    conversations: int = 0
    interaction_details: int = 0
    outbox_rows: int = 0
    conversation_turns: int = 0
    work_items: int = 0

    @property
    def total(self) -> int:
        return sum(self.model_dump().values())


def purge(engine: Engine, policy: RetentionPolicy, now: datetime) -> PurgeReport:
    """Delete what is past its retention; each kind in its own short transaction."""
    report = PurgeReport()

    def cutoff(days: int) -> datetime:
        return now - timedelta(days=days)

    transcripts = cutoff(policy.transcripts_days)
    events = cutoff(policy.call_events_days)
    with engine.begin() as db:
        report.transcript_turns = db.execute(
            delete(CallEvent).where(
                col(CallEvent.kind).in_(TRANSCRIPT_KINDS), col(CallEvent.at) < transcripts
            )
        ).rowcount
        report.transfer_summaries = db.execute(
            update(CallRecord)
            .where(col(CallRecord.started_at) < transcripts)
            .where(col(CallRecord.transfer_summary).is_not(None))
            .values(transfer_summary=None)
        ).rowcount
    with engine.begin() as db:
        report.call_events = db.execute(
            delete(CallEvent).where(col(CallEvent.at) < events)
        ).rowcount
        report.calls = db.execute(
            delete(CallRecord).where(col(CallRecord.started_at) < events)
        ).rowcount
    with engine.begin() as db:
        report.conversations = db.execute(
            delete(ConversationRecord).where(
                col(ConversationRecord.updated_at) < cutoff(policy.conversations_days)
            )
        ).rowcount
    with engine.begin() as db:
        report.outbox_rows = db.execute(
            delete(OutboxRow)
            .where(col(OutboxRow.status).in_((OutboxStatus.done, OutboxStatus.dead)))
            .where(col(OutboxRow.updated_at) < cutoff(policy.outbox_days))
        ).rowcount
    with engine.begin() as db:  # text conversations' timelines: as calls' transcripts and events
        report.conversation_turns = db.execute(
            delete(ConversationTurn).where(
                col(ConversationTurn.kind).in_(TEXT_TRANSCRIPT_KINDS),
                col(ConversationTurn.at) < transcripts,
            )
        ).rowcount
        report.conversation_turns += db.execute(
            delete(ConversationTurn).where(col(ConversationTurn.at) < events)
        ).rowcount
        # Resolved to-do items keep their facts (kind, times, who) like the interaction log;
        # what the patient said, the number and the note go.
        old_items = (
            col(WorkItem.status) == WorkStatus.resolved,
            col(WorkItem.updated_at) < cutoff(policy.interaction_details_days),
        )
        report.work_items = db.execute(
            update(WorkItem)
            .where(
                *old_items, col(WorkItem.summary).is_not(None) | col(WorkItem.phone).is_not(None)
            )
            .values(summary=None, phone=None, resolution=None, details=EMPTY_DETAILS)
        ).rowcount
        db.execute(
            update(WorkItemEvent)
            .where(col(WorkItemEvent.item_id).in_(select(col(WorkItem.id)).where(*old_items)))
            .where(col(WorkItemEvent.note).is_not(None))
            .values(note=None)
        )
    report.interaction_details = _strip_interaction_details(
        engine, cutoff(policy.interaction_details_days)
    )
    if report.total:
        logger.info("retention purge: %s", report.model_dump())
    return report


def _strip_interaction_details(engine: Engine, before: datetime) -> int:
    """Old rows keep kind, time and appointment; their free text becomes ``{}``."""
    keyring = engine_keyring(engine)
    empty = json.dumps({})

    def strip(token: str) -> str | None:
        if keyring.decrypt(token) == empty:
            return None
        return keyring.encrypt(empty)

    report = rewrite(
        engine,
        EncryptedTable("interaction", "id", ("details",)),
        strip,
        where=column("at", UTCDateTime()) < before,
    )
    return report.values_changed
