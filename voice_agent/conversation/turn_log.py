"""The timeline of a text conversation, for staff: what the patient wrote, what the receptionist
answered, every tool with its arguments and result, language switches and red flags.

Written after each turn (encrypted, like call events); a failure to write it is logged and never
reaches the patient. The conversation state keeps only what the next turn needs; this keeps what
a person reading the conversation later needs (``/console/calls``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from voice_agent.crypto.binding import engine_keyring
from voice_agent.store.db import transaction
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


class TurnLog:
    def __init__(self, engine: Engine, worklist: Worklist) -> None:
        self._engine = engine
        self._worklist = worklist

    async def record(
        self,
        *,
        conversation_id: str,
        channel: str,
        at: datetime,
        text: str,
        reply: str,
        engine: str,
        language: str | None,
        language_before: str | None,
        phone: str | None,
        tools: list[dict[str, Any]],
        emergency: str | None = None,
        handoff: bool = False,
    ) -> None:
        entries: list[tuple[str, str]] = [("patient", text[:MAX_TEXT])]
        if language_before and language and language != language_before:
            entries.append(("language", json.dumps({"from": language_before, "to": language})))
        if emergency:
            entries.append(("emergency", json.dumps({"category": emergency})))
        for call in tools:
            kind = "tool" if call.get("ok") else "error"
            entries.append((kind, json.dumps(call, ensure_ascii=False, default=str)[:MAX_TEXT]))
        if handoff:
            entries.append(("handover", "{}"))
        entries.append(("receptionist", reply[:MAX_TEXT]))
        try:
            await asyncio.to_thread(
                self._write, conversation_id, channel, at, engine, language, phone, entries
            )
        except Exception:
            logger.exception("could not record a conversation turn")

    def _write(
        self,
        conversation_id: str,
        channel: str,
        at: datetime,
        engine: str,
        language: str | None,
        phone: str | None,
        entries: list[tuple[str, str]],
    ) -> None:
        for attempt in range(2):  # another process wrote this conversation's next seq first
            try:
                with transaction(self._engine) as session:
                    patient_id = self._patient_id(session, phone)
                    seq = session.execute(
                        select(func.max(ConversationTurn.seq)).where(
                            col(ConversationTurn.conversation_id) == conversation_id
                        )
                    ).scalar()
                    seq = int(seq or 0)
                    for kind, content in entries:
                        seq += 1
                        session.add(
                            ConversationTurn(
                                conversation_id=conversation_id,
                                seq=seq,
                                at=at,
                                channel=channel,
                                patient_id=patient_id,
                                language=language,
                                kind=kind,
                                engine=engine if kind == "receptionist" else None,
                                content=content,
                            )
                        )
                    self._worklist.fill_contact(
                        session,
                        conversation_id,
                        phone=phone,
                        language=language,
                        patient_id=patient_id,
                        said=entries[0][1],
                    )
                return
            except IntegrityError:
                if attempt:
                    raise

    def _patient_id(self, session: Session, phone: str | None) -> str | None:
        if not phone:
            return None
        digest = engine_keyring(self._engine).lookup_hash(phone)
        found = session.execute(
            select(col(Patient.id)).where(col(Patient.phone_hash) == digest)
        ).scalar_one_or_none()
        return str(found) if found else None
