"""The local SQL calendar: appointments are their own events; doctors block time in a table."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Engine, select
from sqlmodel import col

from voice_agent.calendars.base import BusyInterval, CalendarEvent, ExternalEvent
from voice_agent.store.db import transaction
from voice_agent.store.tables import ACTIVE_STATUSES, Appointment, CalendarBlock


class LocalCalendar:
    name = "local"

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def busy(
        self, doctor_ids: Collection[str], start: datetime, end: datetime, *, fresh: bool = False
    ) -> list[BusyInterval]:
        return await asyncio.to_thread(self._blocks, list(doctor_ids), start, end)

    def _blocks(self, doctor_ids: list[str], start: datetime, end: datetime) -> list[BusyInterval]:
        with transaction(self._engine) as session:
            rows = session.execute(
                select(
                    col(CalendarBlock.doctor_id), col(CalendarBlock.start), col(CalendarBlock.end)
                ).where(
                    col(CalendarBlock.doctor_id).in_(doctor_ids),
                    col(CalendarBlock.end) > start,
                    col(CalendarBlock.start) < end,
                )
            ).all()
        return [BusyInterval(doctor_id=d, start=s, end=e) for d, s, e in rows]

    async def block(self, doctor_id: str, start: datetime, end: datetime, reason: str = "") -> str:
        """Block a doctor's time by hand (`voice-agent calendar block`)."""

        def _write() -> str:
            with transaction(self._engine) as session:
                row = CalendarBlock(doctor_id=doctor_id, start=start, end=end, reason=reason)
                session.add(row)
                return row.id

        return await asyncio.to_thread(_write)

    async def create_event(self, event: CalendarEvent, idempotency_key: str) -> str | None:
        return None

    async def move_event(self, event: CalendarEvent, external_id: str | None) -> None:
        return None

    async def delete_event(self, event: CalendarEvent, external_id: str | None) -> None:
        return None

    async def list_events(
        self, doctor_id: str, start: datetime, end: datetime
    ) -> list[ExternalEvent]:
        def _read() -> list[ExternalEvent]:
            with transaction(self._engine) as session:
                rows = session.execute(
                    select(Appointment).where(
                        col(Appointment.doctor_id) == doctor_id,
                        col(Appointment.status).in_(ACTIVE_STATUSES),
                        col(Appointment.start) < end,
                        col(Appointment.end) > start,
                    )
                ).scalars()
                return [
                    ExternalEvent(external_id=a.id, appointment_id=a.id, start=a.start, end=a.end)
                    for a in rows
                ]

        return await asyncio.to_thread(_read)
