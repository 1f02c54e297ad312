"""What a conversation remembers between messages, persisted as JSON (survives restarts).

Keyed by a hash of channel and session key, so the key column holds no phone number. Offers and
appointments are copies of tool outputs: the conversation never invents them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from voice_agent.crypto.binding import engine_keyring
from voice_agent.store.conversation_tables import (
    ConversationRecord,
    conversation_id_of,
    state_key,
)
from voice_agent.store.prepared import Prepared
from voice_agent.store.types import utcnow

MAX_HISTORY = 40
_TABLE = ConversationRecord.__table__  # type: ignore[attr-defined]
# Built once: constructing a statement costs more than running it on SQLite.
STATE_OF_KEY = select(_TABLE.c.state).where(_TABLE.c.key == bindparam("key"))
"""The encrypted state under ``:key`` (a text turn reads it in a statement of its own)."""


def _upsert(dialect_insert: Any) -> Prepared:
    statement = dialect_insert(_TABLE).values(
        {name: bindparam(name) for name in ("key", "channel", "state", "updated_at")}
    )
    return Prepared(
        statement.on_conflict_do_update(
            index_elements=[_TABLE.c.key],
            set_={"state": statement.excluded.state, "updated_at": statement.excluded.updated_at},
        )
    )


_UPSERT = {"sqlite": _upsert(sqlite.insert), "postgresql": _upsert(postgresql.insert)}
"""One statement per save on either database (an update, else an insert in a savepoint, was
four statements for a new conversation's first turn), on the driver (``store.prepared``)."""
_DELETE = delete(_TABLE).where(_TABLE.c.key == bindparam("key"))
_FLAG = (
    update(_TABLE)
    .where(_TABLE.c.key == bindparam("row_key"), _TABLE.c.flagged.is_(False))
    .values(flagged=True, flagged_at=bindparam("at"))
)


class ConversationState(BaseModel):
    channel: str = "chat"
    conversation_id: str = ""
    """Holder of offers in the booking service; derived from the key, never a phone number."""
    language: str | None = None
    language_confirmed: bool = False
    phone: str | None = None
    phone_verified: bool = False
    stage: str = "start"
    goal: str | None = None
    service_id: str | None = None
    doctor_id: str | None = None
    insurance_id: str | None = None
    wish: dict[str, Any] = Field(default_factory=dict)
    offers: list[dict[str, Any]] = Field(default_factory=list)
    offered_service: str | None = None
    chosen: str | None = None
    target: dict[str, Any] | None = None
    candidates: list[dict[str, Any]] = Field(default_factory=list)
    last_change: dict[str, Any] | None = None
    misunderstood: int = 0
    unanswered: str | None = None
    """A question the receptionist could not answer, offered to the staff in the last turn."""
    for_whom: str | None = None
    """The relative the booking is for ("minha filha Sofia"); the caller stays the contact."""
    given_name: str | None = None
    """The name the caller gave before they could be registered (with or instead of the phone
    number asked for); the registration uses it instead of asking again."""
    turns: int = 0
    history: list[dict[str, Any]] = Field(default_factory=list)
    """Responses API input items of the conversation (messages, function calls and outputs),
    every channel's turns included, trimmed: resent when OpenAI keeps nothing (``store`` off)."""
    openai_response_id: str | None = None
    """The last response OpenAI stored for this conversation (``previous_response_id``)."""
    openai_seen: int = 0
    """How many ``history`` items that response already holds; later ones are sent with it."""
    timeline_seq: int | None = None
    """The last ``conversation_turn`` entry number written for this conversation (``None``:
    unknown, read from the table)."""

    def settle_phone(self, e164: str | None, verified: bool) -> None:
        """The channel's caller (E.164) for this turn; a verified caller never changes."""
        if not e164 or (self.phone_verified and self.phone != e164):
            return
        self.phone = e164
        self.phone_verified = self.phone_verified or verified

    def trim_history(self) -> None:
        """Keep the last messages, starting at a user message so tool results keep their call."""
        if len(self.history) <= MAX_HISTORY:
            return
        cut = len(self.history) - MAX_HISTORY
        while cut < len(self.history) and self.history[cut].get("role") != "user":
            cut += 1
        self.history = self.history[cut:]
        self.openai_seen = max(0, self.openai_seen - cut)


@dataclass(frozen=True)
class FlaggedConversation:
    conversation_id: str
    channel: str
    flagged_at: datetime | None
    phone: str | None


class ConversationStore:
    """Load and save conversation states in the database.

    Every turn reads and writes one row, so these are single Core statements on a plain
    connection (no ORM session, no read before the write): a few tenths of a millisecond each.
    ``read`` and ``write`` take the caller's connection, so a text turn reads everything it
    needs in one transaction and writes its state with the turn's record in another
    (``conversation.engine``); ``load`` and ``save`` are the same on a transaction of their own.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def key(self, channel: str, session_key: str) -> str:
        """The row's key: a keyed hash of channel and session (no phone number in the clear)."""
        return state_key(channel, session_key, engine_keyring(self._engine).lookup_key)

    async def load(self, channel: str, session_key: str) -> ConversationState:
        key = self.key(channel, session_key)
        return await asyncio.to_thread(self._load, key, channel)

    def _load(self, key: str, channel: str) -> ConversationState:
        with self._engine.begin() as db:
            return self.read(db, key, channel)

    @staticmethod
    def read(db: Connection, key: str, channel: str) -> ConversationState:
        """The state under ``key``, or a fresh one (also for a state that cannot be read)."""
        payload = db.execute(STATE_OF_KEY, {"key": key}).scalar()
        return ConversationStore.parse(payload, key, channel)

    @staticmethod
    def parse(payload: str | None, key: str, channel: str) -> ConversationState:
        """The state in ``payload`` (decrypted), or a fresh one for ``key``."""
        if payload is not None:
            try:
                return ConversationState.model_validate_json(payload)
            except ValueError:
                pass  # an unreadable state starts over rather than failing the patient
        # A new conversation's timeline starts at 0 (a timeline left by a purged state clashes
        # at the first write, which then reads its last number: ``turn_store``).
        return ConversationState(
            channel=channel, conversation_id=conversation_id_of(key), timeline_seq=0
        )

    async def save(self, session_key: str, state: ConversationState) -> None:
        key = self.key(state.channel, session_key)
        payload = state.model_dump_json()
        await asyncio.to_thread(self._save, key, state.channel, payload)

    def _save(self, key: str, channel: str, payload: str) -> None:
        with self._engine.begin() as db:
            self.write(db, key, channel, payload)

    @staticmethod
    def write(db: Connection, key: str, channel: str, payload: str) -> None:
        """Store ``payload`` (the state's JSON) under ``key``: one upsert (a new conversation
        and another process's first save of the same one included)."""
        row = {"key": key, "channel": channel, "state": payload, "updated_at": utcnow()}
        _UPSERT[db.dialect.name].run(db, row)

    async def flag(self, channel: str, session_key: str, at: datetime) -> None:
        """Mark the conversation for staff (a red flag was heard); the first time is kept."""
        key = self.key(channel, session_key)

        def _flag() -> None:
            with self._engine.begin() as db:
                self.flag_in(db, key, at)

        await asyncio.to_thread(_flag)

    @staticmethod
    def flag_in(db: Connection, key: str, at: datetime) -> None:
        db.execute(_FLAG, {"row_key": key, "at": at})

    def flagged(self, limit: int = 50) -> list[FlaggedConversation]:
        """Conversations where a red flag was heard, newest first (for staff)."""
        query = (
            select(_TABLE.c.channel, _TABLE.c.flagged_at, _TABLE.c.state)
            .where(_TABLE.c.flagged.is_(True))
            .order_by(_TABLE.c.flagged_at.desc())
            .limit(limit)
        )
        with self._engine.begin() as db:
            rows = list(db.execute(query))
        found = []
        for channel, at, payload in rows:
            try:
                state = ConversationState.model_validate_json(payload)
            except ValueError:
                state = ConversationState(channel=channel)
            found.append(FlaggedConversation(state.conversation_id, channel, at, state.phone))
        return found

    async def forget(self, channel: str, session_key: str) -> None:
        key = self.key(channel, session_key)

        def _delete() -> None:
            with self._engine.begin() as db:
                db.execute(_DELETE, {"key": key})

        await asyncio.to_thread(_delete)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
