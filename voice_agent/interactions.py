"""The interaction log: every booking, change, question and failure, written in the same
transaction as the change it describes, so the log never claims what did not happen.

Each row also says who acted (a patient, a staff account or the system), through which channel
and in which call or conversation, and how the patient's identity was known. The layers that write
rows (booking, confirmations) do not know who is on the other end; the channel that does sets it
around its work with ``acting_as``, and every row written inside (threads included: ``to_thread``
copies the context) carries it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from voice_agent.clock import Clock, SystemClock
from voice_agent.store.db import transaction
from voice_agent.store.tables import Interaction, InteractionKind

InteractionHook = Callable[[Session, Interaction], None]
"""Called inside the same transaction for each new row (the outbox uses it to ship rows)."""


@dataclass(frozen=True)
class Actor:
    """Who made a change: ``patient`` (through a channel), ``staff`` (an account) or ``system``."""

    kind: str = "system"
    id: str | None = None
    """The staff account; for a patient, None means the row's own patient."""
    call_id: str | None = None
    """The call SID or conversation id the change happened in."""
    verified_by: str | None = None
    """carrier | code | birth_date | unverified, for patients."""


SYSTEM = Actor()
ActorSource = Callable[[], Actor]
"""Asked when a row is written, so a check passed during the same tool call is reflected."""

_acting: ContextVar[ActorSource | None] = ContextVar("interaction_actor", default=None)


@contextmanager
def acting_as(actor: Actor | ActorSource) -> Iterator[None]:
    """Rows recorded inside this block (and in threads started inside it) carry ``actor``."""
    source: ActorSource = actor if callable(actor) else (lambda: actor)
    token = _acting.set(source)
    try:
        yield
    finally:
        _acting.reset(token)


def current_actor() -> Actor:
    source = _acting.get()
    return source() if source is not None else SYSTEM


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
        actor: Actor | None = None,
    ) -> Interaction:
        who = actor or current_actor()
        row = Interaction(
            at=self._clock.now(),
            kind=kind,
            channel=channel,
            patient_id=patient_id,
            appointment_id=appointment_id,
            details=json.dumps(details or {}, ensure_ascii=False, default=str, sort_keys=True),
            actor=who.kind,
            actor_id=who.id or (patient_id if who.kind == "patient" else None),
            call_id=who.call_id,
            verified_by=who.verified_by if who.kind == "patient" else None,
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
        actor: Actor | None = None,
    ) -> None:
        who = actor or current_actor()

        def _write() -> None:
            with transaction(self._engine) as session:
                self.record_in(
                    session,
                    kind,
                    channel=channel,
                    patient_id=patient_id,
                    appointment_id=appointment_id,
                    details=details,
                    actor=who,
                )

        await asyncio.to_thread(_write)

    def recent(self, limit: int = 50, patient_id: str | None = None) -> list[Interaction]:
        with transaction(self._engine) as session:
            query = select(Interaction).order_by(col(Interaction.id).desc()).limit(limit)
            if patient_id is not None:
                query = query.where(col(Interaction.patient_id) == patient_id)
            return list(session.execute(query).scalars())
