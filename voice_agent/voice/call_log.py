"""Every call is recorded: sid, caller, times, outcome, transcript turns, tool calls, errors.

Patient data (transcripts, arguments) goes to the database only, never to plain logs. Writes
are queued and flushed by one task per call, so the audio path never waits on the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import col

from voice_agent.store.db import transaction
from voice_agent.store.tables import CallEvent, CallOutcome, CallRecord
from voice_agent.store.types import utcnow

logger = logging.getLogger(__name__)


class CallRecorder:
    def __init__(self, engine: Engine, call_sid: str) -> None:
        self._engine = engine
        self.call_sid = call_sid
        self._seq = 0
        self._queue: asyncio.Queue[CallEvent | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self.transcript: list[tuple[str, str]] = []

    def start(self) -> None:
        self._writer = asyncio.create_task(self._drain(), name=f"call-log-{self.call_sid}")

    def event(self, kind: str, content: dict[str, Any] | str) -> None:
        self._seq += 1
        text = (
            content
            if isinstance(content, str)
            else json.dumps(content, ensure_ascii=False, default=str)
        )
        if kind in ("caller", "receptionist"):
            self.transcript.append((kind, text))
        self._queue.put_nowait(
            CallEvent(call_sid=self.call_sid, seq=self._seq, kind=kind, content=text)
        )

    async def tool(
        self, name: str, arguments: dict[str, Any], output: dict[str, Any], ok: bool
    ) -> None:
        self.event("tool", {"name": name, "arguments": arguments, "output": output, "ok": ok})

    async def _drain(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            events = [e for e in batch if e is not None]
            if events:
                try:
                    await asyncio.to_thread(self._write, events)
                except Exception:
                    logger.exception("could not record %d call events", len(events))
            if None in batch:
                return

    def _write(self, events: list[CallEvent]) -> None:
        with transaction(self._engine) as session:
            session.add_all(events)

    async def finish(
        self, outcome: CallOutcome, *, error: str | None = None, flagged: bool | None = None
    ) -> None:
        """Flush the events and close the record (outcome set once, first writer wins)."""
        self._queue.put_nowait(None)
        if self._writer is not None:
            await self._writer
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
