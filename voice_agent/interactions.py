"""The interaction log: every booking, change, question and failure, written in the same
transaction as the change it describes, so the log never claims what did not happen."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from voice_agent.clock import Clock, SystemClock
from voice_agent.store.db import transaction
from voice_agent.store.tables import Interaction, InteractionKind

InteractionHook = Callable[[Session, Interaction], None]
"""Called inside the same transaction for each new row (the outbox uses it to ship rows)."""


class InteractionLog:
    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock: Clock = clock or SystemClock()
        """Stamps each row: the WhatsApp 24-hour window and retention are read against it."""
        self._hooks: list[InteractionHook] = []

    def add_hook(self, hook: InteractionHook) -> None:
        self._hooks.append(hook)

    def record_in(
        self,
        session: Session,
        kind: InteractionKind,
        *,
        channel: str,
        patient_id: str | None = None,
        appointment_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Interaction:
        row = Interaction(
            at=self._clock.now(),
            kind=kind,
            channel=channel,
            patient_id=patient_id,
            appointment_id=appointment_id,
            details=json.dumps(details or {}, ensure_ascii=False, default=str, sort_keys=True),
        )
        session.add(row)
        session.flush()
        for hook in self._hooks:
            hook(session, row)
        return row

    async def record(
        self,
        kind: InteractionKind,
        *,
        channel: str,
        patient_id: str | None = None,
        appointment_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        def _write() -> None:
            with transaction(self._engine) as session:
                self.record_in(
                    session,
                    kind,
                    channel=channel,
                    patient_id=patient_id,
                    appointment_id=appointment_id,
                    details=details,
                )

        await asyncio.to_thread(_write)

    def recent(self, limit: int = 50, patient_id: str | None = None) -> list[Interaction]:
        with transaction(self._engine) as session:
            query = select(Interaction).order_by(col(Interaction.id).desc()).limit(limit)
            if patient_id is not None:
                query = query.where(Interaction.patient_id == patient_id)
            return list(session.execute(query).scalars())
