"""Written notices of pending requests' outcomes (outbox kind ``patient_notice``).

A patient who was told "the clinic's system has not answered yet; you will get a message" gets
that message when the booking, move or cancellation lands or finally fails. The row is written in
the same transaction as the outcome, so the notice exists exactly when the outcome does; it goes
out by WhatsApp when Twilio is configured (idempotently, see ``integrations/whatsapp.py``).
Without a WhatsApp sender nothing can reach the patient: the clinic is alerted to call them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from voice_agent.clinic.model import Clinic
from voice_agent.errors import OutsideWindow
from voice_agent.i18n import say_when
from voice_agent.integrations.outbox import Delivered, Outbox, OutboxItem, Outcome, deliver_each
from voice_agent.integrations.whatsapp import Message, WhatsAppSender
from voice_agent.scheduling.confirmed import NOTICE_KIND
from voice_agent.scheduling.outcome_texts import outcome_text
from voice_agent.store.db import transaction
from voice_agent.store.intent_tables import BackendIntent
from voice_agent.store.tables import Appointment, Patient

logger = logging.getLogger(__name__)


class IntentNotices:
    kind = NOTICE_KIND
    batch_size = 1

    def __init__(
        self,
        engine: Engine,
        outbox: Outbox,
        clinic: Callable[[], Clinic],
        prompts_dir: Path,
        *,
        sender: WhatsAppSender | None,
        alert: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._clinic = clinic
        self._prompts = prompts_dir
        self._sender = sender
        self._alert = alert

    def enqueue_in(self, session: Session, intent: BackendIntent) -> None:
        """Called with the outcome, in its transaction."""
        self._outbox.enqueue_in(
            session, NOTICE_KIND, f"notice:{intent.id}", {"intent_id": intent.id}
        )

    def text(self, intent: BackendIntent, appointment: Appointment | None, patient: Patient) -> str:
        clinic = self._clinic()
        language = patient.language or clinic.default_language
        doctor = clinic.doctor(intent.doctor_id)
        first = (patient.full_name or "").split()
        old = appointment.start if appointment is not None else intent.start
        if intent.op == "reschedule" and intent.status == "done":
            old = intent.start
        text = outcome_text(
            self._prompts,
            language,
            f"notice_{intent.op}_{intent.status}",
            first_name=f", {first[0]}" if first else "",
            clinic=clinic.name,
            phone=clinic.phone,
            when=say_when(intent.start.astimezone(clinic.tz), language),
            old_when=say_when(old.astimezone(clinic.tz), language),
            doctor=doctor.name if doctor else intent.doctor_id,
        )
        if text is None:
            raise KeyError(f"no notice text for {intent.op}/{intent.status}")
        return text

    def _load(
        self, intent_id: str
    ) -> tuple[BackendIntent | None, Appointment | None, Patient | None]:
        with transaction(self._engine) as session:
            intent = session.get(BackendIntent, intent_id)
            if intent is None:
                return None, None, None
            return (
                intent,
                session.get(Appointment, intent.appointment_id),
                session.get(Patient, intent.patient_id),
            )

    async def deliver(self, items: list[OutboxItem]) -> list[Outcome]:
        return await deliver_each(items, self._deliver_one)

    async def _deliver_one(self, item: OutboxItem) -> Delivered:
        intent, appointment, patient = await asyncio.to_thread(
            self._load, item.payload["intent_id"]
        )
        if intent is None or patient is None:
            return Delivered()
        if self._sender is None:
            await self._call_them(intent, "no WhatsApp sender configured")
            return Delivered()
        body = self.text(intent, appointment, patient)
        lookup = item.created_at - timedelta(minutes=5) if item.retried else None
        try:
            sid = await self._sender.send(Message(to=patient.phone, body=body), lookup_since=lookup)
        except OutsideWindow:
            await self._call_them(intent, "the patient's WhatsApp window is closed")
            return Delivered()
        return Delivered(sid)

    async def _call_them(self, intent: BackendIntent, why: str) -> None:
        """The message cannot reach the patient: the clinic is asked to call them."""
        if self._alert is not None:
            await self._alert(
                "patient_not_notified",
                f"op={intent.op} outcome={intent.status} appointment={intent.appointment_id} "
                f"why={why}: call the patient",
            )
