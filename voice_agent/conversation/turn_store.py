"""A text turn's two transactions: what it reads before it starts, what it writes after it.

Before: the conversation state, with the channel's caller settled, and the caller's patient row
(id; name for the OpenAI loop's instructions; language for a new conversation): one indexed row
by the phone's keyed hash, so a rename anywhere shows in the next turn. After: the state (so a
restart carries on), the red flag, the turn's timeline rows and the to-do contact fill
(``turn_log.py``), committed together. Each is one hop to a worker thread and one commit; they
were up to five hops (two of them ORM look-ups of the patient) and four commits, the largest
share of a text turn's own time.

The timeline's entry numbers continue from the state (``timeline_seq``) instead of a
``max(seq)`` query; when another process took them first (or the state was purged while its
rows stayed), the insert clashes, the transaction is rolled back and done again after reading
the last number. Any other failure to record the turn is logged and the state is written alone:
the patient never hears about it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection, Engine, select

from voice_agent.conversation.state import STATE_OF_KEY, ConversationState, ConversationStore
from voice_agent.conversation.turn_log import NotRecorded, TurnLog, TurnRecord
from voice_agent.patients.service import Looked, PatientService
from voice_agent.store.conversation_tables import conversation_id_of
from voice_agent.store.db import reading
from voice_agent.store.prepared import Prepared
from voice_agent.worklist.service import OPEN_WORK_OF_CONVERSATION

logger = logging.getLogger(__name__)

_READ = Prepared(
    select(
        STATE_OF_KEY.scalar_subquery().label("state"),
        OPEN_WORK_OF_CONVERSATION.label("open_work"),
    )
)
"""The state and whether its conversation has open to-do items, in one statement run on the
driver (``store.prepared``)."""


class TurnRead(NamedTuple):
    state: ConversationState
    looked: Looked | None
    """Who is on file for the caller's phone (``None``: not looked up)."""
    open_work: bool
    """The conversation had open to-do items (their contact is filled with the turn's write)."""


class TurnStore:
    def __init__(
        self,
        engine: Engine,
        states: ConversationStore,
        turn_log: TurnLog,
        patients: PatientService,
    ) -> None:
        self._engine = engine
        self._states = states
        self._turn_log = turn_log
        self._patients = patients

    def read(
        self, key: str, channel: str, *, phone: str | None, verified: bool, with_patient: bool
    ) -> TurnRead:
        """The state under ``key`` with the channel's caller settled (``phone`` in E.164,
        ``verified`` by the carrier) and, ``with_patient`` or while the conversation has no
        language yet, who is on file for the caller's phone."""
        conversation_id = conversation_id_of(key)
        with reading(self._engine) as db:
            [(payload, open_work)] = _READ.rows(
                db, {"key": key, "conversation_id": conversation_id}
            )
            state = self._states.parse(payload, key, channel)
            state.settle_phone(phone, verified)
            looked = None
            if state.phone and (with_patient or state.language is None):
                looked = Looked(state.phone, self._patients.on_file(db, state.phone))
        # A state saved under another id (none is) would have had its items asked by that id.
        open_work = bool(open_work) or state.conversation_id != conversation_id
        return TurnRead(state, looked, open_work)

    def write(
        self,
        key: str,
        state: ConversationState,
        record: TurnRecord,
        flagged_at: datetime | None = None,
    ) -> None:
        """Save ``state`` with ``record`` (and the red flag) in one transaction."""
        entries = record.entries()
        known = state.timeline_seq
        for attempt in range(2):
            try:
                with self._engine.begin() as db:
                    after = known
                    if after is None:
                        after = self._turn_log.last_seq(db, record.conversation_id)
                    state.timeline_seq = after + len(entries)
                    self._save(db, key, state, flagged_at)
                    self._turn_log.write(db, record, entries, after=after)
                return
            except NotRecorded as failure:
                if failure.clash and not attempt:
                    known = None
                    continue
                logger.exception("could not record a conversation turn")
                break
        state.timeline_seq = None  # unknown now: the next turn reads it
        with self._engine.begin() as db:
            self._save(db, key, state, flagged_at)

    def _save(
        self, db: Connection, key: str, state: ConversationState, flagged_at: datetime | None
    ) -> None:
        self._states.write(db, key, state.channel, state.model_dump_json())
        if flagged_at is not None:
            self._states.flag_in(db, key, flagged_at)
