"""The timeline of a text conversation, for staff: what the patient wrote, what the receptionist
answered, every tool with its arguments and result, language switches and red flags.

Written with each turn's state, in the same transaction (``turn_store.py``; encrypted, like call
events); a failure to write it is logged and never reaches the patient. The conversation state
keeps only what the next turn needs; this keeps what a person reading the conversation later
needs (``/console/calls``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError

from voice_agent.crypto.binding import engine_keyring
from voice_agent.patients.service import Looked
from voice_agent.store.prepared import Prepared
from voice_agent.store.tables import Patient
from voice_agent.store.worklist_tables import ConversationTurn
from voice_agent.worklist.service import Worklist

logger = logging.getLogger(__name__)

MAX_TEXT = 4000


class ToolTrace:
    """Collects the tool calls of one turn (a ``ToolContext.recorder``)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(
        self, name: str, arguments: dict[str, Any], output: dict[str, Any], ok: bool
    ) -> None:
        self.calls.append({"name": name, "arguments": arguments, "output": output, "ok": ok})


_TURNS = ConversationTurn.__table__  # type: ignore[attr-defined]
# Built once: every text turn runs them (constructing a statement costs more than running it).
_LAST_SEQ = select(func.max(_TURNS.c.seq)).where(
    _TURNS.c.conversation_id == bindparam("conversation_id")
)
_INSERT = Prepared(
    insert(_TURNS).values(
        {
            name: bindparam(name)
            for name in (
                "conversation_id",
                "seq",
                "at",
                "channel",
                "patient_id",
                "language",
                "kind",
                "engine",
                "content",
            )
        }
    )
)
"""On the driver (``store.prepared``): every text turn inserts its entries."""
_PATIENTS = Patient.__table__  # type: ignore[attr-defined]
_PATIENT_BY_HASH = select(_PATIENTS.c.id).where(_PATIENTS.c.phone_hash == bindparam("digest"))


@dataclass(frozen=True)
class TurnRecord:
    """One turn as the timeline keeps it (``TurnLog.write``)."""

    conversation_id: str
    channel: str
    at: datetime
    text: str
    reply: str
    engine: str
    language: str | None
    language_before: str | None
    phone: str | None
    tools: list[dict[str, Any]]
    emergency: str | None = None
    handoff: bool = False
    patient: Looked | None = None
    """Who is on file for a phone, as the turn read it: used when it is ``phone`` (the caller
    may have claimed another number in the turn), else the patient is looked up by phone."""
    fill_contact: bool = True
    """The conversation has open to-do items (or may: a need was recorded in the turn) whose
    contact the turn fills; most conversations have none, and skip the query."""

    def entries(self) -> list[tuple[str, str]]:
        """(kind, content) rows in the order they happened."""
        entries: list[tuple[str, str]] = [("patient", self.text[:MAX_TEXT])]
        before, after = self.language_before, self.language
        if before and after and after != before:
            entries.append(("language", json.dumps({"from": before, "to": after})))
        if self.emergency:
            entries.append(("emergency", json.dumps({"category": self.emergency})))
        for call in self.tools:
            kind = "tool" if call.get("ok") else "error"
            entries.append((kind, json.dumps(call, ensure_ascii=False, default=str)[:MAX_TEXT]))
        if self.handoff:
            entries.append(("handover", "{}"))
        entries.append(("receptionist", self.reply[:MAX_TEXT]))
        return entries


class NotRecorded(RuntimeError):
    """The turn's rows could not be written; ``clash``: another writer took their numbers."""

    def __init__(self, clash: bool) -> None:
        super().__init__("another writer took this turn's seq" if clash else "turn not recorded")
        self.clash = clash


class TurnLog:
    """Writes ``conversation_turn`` rows (encrypted) and fills the conversation's open to-do
    items with the contact they lack, in the transaction the caller gives: a text turn writes
    its state and its record together (one commit per turn, ``conversation.turn_store``)."""

    def __init__(self, engine: Engine, worklist: Worklist) -> None:
        self._engine = engine
        self._worklist = worklist

    @staticmethod
    def last_seq(db: Connection, conversation_id: str) -> int:
        """The conversation's last entry number (0 before the first)."""
        return int(db.execute(_LAST_SEQ, {"conversation_id": conversation_id}).scalar() or 0)

    def write(
        self, db: Connection, turn: TurnRecord, entries: list[tuple[str, str]], *, after: int
    ) -> None:
        """Insert ``entries`` numbered from ``after + 1`` and fill the to-do contact; any
        failure raises ``NotRecorded`` (the caller rolls back and decides)."""
        try:
            self._write(db, turn, entries, after)
        except IntegrityError as exc:
            raise NotRecorded(clash=True) from exc
        except Exception as exc:
            raise NotRecorded(clash=False) from exc

    def _write(
        self, db: Connection, turn: TurnRecord, entries: list[tuple[str, str]], after: int
    ) -> None:
        if turn.patient is not None and turn.patient.phone == turn.phone:
            patient_id = turn.patient.on_file.id if turn.patient.on_file is not None else None
        else:
            patient_id = self._patient_id(db, turn.phone)
        _INSERT.run_many(
            db,
            [
                {
                    "conversation_id": turn.conversation_id,
                    "seq": after + number,
                    "at": turn.at,
                    "channel": turn.channel,
                    "patient_id": patient_id,
                    "language": turn.language,
                    "kind": kind,
                    "engine": turn.engine if kind == "receptionist" else None,
                    "content": content,
                }
                for number, (kind, content) in enumerate(entries, start=1)
            ],
        )
        if not turn.fill_contact:
            return
        self._worklist.fill_contact(
            db,
            turn.conversation_id,
            phone=turn.phone,
            language=turn.language,
            patient_id=patient_id,
            said=entries[0][1],
        )

    def _patient_id(self, db: Connection, phone: str | None) -> str | None:
        if not phone:
            return None
        digest = engine_keyring(self._engine).lookup_hash(phone)
        found = db.execute(_PATIENT_BY_HASH, {"digest": digest}).scalar_one_or_none()
        return str(found) if found else None
