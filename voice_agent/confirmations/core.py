"""The shared core of the confirmation runner: the services it needs, a step's context (the
appointment, patient, clinic and texts in the patient's language), settling a claimed step,
and the staff alert about one appointment. The three jobs build on it: ``whatsapp_requests.py``,
``calls.py`` and ``answers.py``; ``runner.py`` claims due steps and runs them."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from voice_agent.alerts import StaffAlertDeps, StaffTexts, alert_staff
from voice_agent.clinic.model import Clinic
from voice_agent.clock import Clock
from voice_agent.confirmations.messages import (
    ConfirmationTexts,
    appointment_values,
    confirmation_texts,
)
from voice_agent.confirmations.prompt import PromptDeps
from voice_agent.confirmations.steps import (
    ClaimedStep,
    StepStore,
)
from voice_agent.integrations.alerting import appointment_fields
from voice_agent.integrations.whatsapp import WhatsAppSender
from voice_agent.patients.language import caller_language
from voice_agent.store.confirmation_tables import StepStatus
from voice_agent.store.db import transaction
from voice_agent.store.tables import Appointment, Patient

if TYPE_CHECKING:
    from twilio.rest import Client

    from voice_agent.confirmations.steps import StepPlanner
    from voice_agent.interactions import InteractionLog
    from voice_agent.patients.service import PatientService
    from voice_agent.scheduling.booking import BookingService


logger = logging.getLogger(__name__)

FINAL_CALL_STATUSES = ("completed", "busy", "no-answer", "failed", "canceled")
ERROR_RETRY_AFTER = timedelta(minutes=5)
SILENT_CALL = timedelta(minutes=30)
"""A call with no final status this long after placing: ask Twilio how it ended."""
MAX_ERRORS = 5


@dataclass(frozen=True)
class StepContext:
    appointment: Appointment
    patient: Patient
    clinic: Clinic
    texts: ConfirmationTexts
    values: dict[str, str]

    @property
    def language(self) -> str:
        return self.texts.language


class ConfirmationServices(StaffAlertDeps, PromptDeps, Protocol):
    """What the runner uses: the store, the clock, the booking service (a reply confirms or
    cancels), the patients (a reply names a phone), the planner and the staff alerts."""

    @property
    def clock(self) -> Clock: ...

    @property
    def interactions(self) -> InteractionLog: ...

    @property
    def booking(self) -> BookingService: ...

    @property
    def patients(self) -> PatientService: ...

    @property
    def step_planner(self) -> StepPlanner | None: ...


class RunnerCore:
    """State every part of the runner shares: services, Twilio client, step store, worker id."""

    def __init__(
        self,
        services: ConfirmationServices,
        twilio_client: Client | None,
        *,
        worker: str | None = None,
    ) -> None:
        settings = services.settings
        self.services = services
        self.settings = settings
        self.client = twilio_client
        self.store = StepStore(services.engine, services.interactions)
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.sender = (
            WhatsAppSender(twilio_client, settings.twilio_whatsapp_from)
            if twilio_client is not None and settings.twilio_whatsapp_from
            else None
        )

    @property
    def _now(self) -> datetime:
        return self.services.clock.now()

    async def _finish(
        self,
        step: ClaimedStep,
        status: StepStatus,
        outcome: str | None,
        event: dict[str, Any] | None = None,
        **values: Any,
    ) -> str:
        changed = await asyncio.to_thread(
            self.store.update_claimed,
            step,
            self.worker,
            self._now,
            event,
            status=status,
            outcome=outcome,
            lease_until=None,
            **values,
        )
        return (outcome or str(status)) if changed else "settled_meanwhile"

    def context_for(self, appointment_id: str) -> StepContext | None:
        with transaction(self.services.engine) as session:
            appointment = session.get(Appointment, appointment_id)
            patient = session.get(Patient, appointment.patient_id) if appointment else None
        if appointment is None or patient is None:
            return None
        clinic = self.services.clinic()
        texts = confirmation_texts(self.settings.prompts_dir, caller_language(clinic, patient))
        return StepContext(
            appointment,
            patient,
            clinic,
            texts,
            appointment_values(clinic, appointment, patient, texts),
        )

    async def _alert(self, key: str, appointment_id: str, **fields: Any) -> None:
        """A staff alert about one appointment, in the clinic's language, naming the patient."""

        def describe() -> dict[str, str]:
            clinic = self.services.clinic()
            texts = StaffTexts(self.settings.prompts_dir)
            with transaction(self.services.engine) as session:
                return appointment_fields(
                    session, texts, clinic.default_language, clinic, appointment_id
                )

        details = await asyncio.to_thread(describe)
        await alert_staff(
            self.services, key, dedup_key=f"appointment{appointment_id}", **details, **fields
        )
