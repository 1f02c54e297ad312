"""Runs confirmation steps: WhatsApp requests, outbound calls with answering-machine detection,
and the outcomes Twilio reports back (answered, voicemail, busy, no answer, failed).

Every process runs ``run_due`` from its scheduler; a step is claimed by one of them. A call step
waits for Twilio's callbacks, which move it on once: done when a person answered, back to
pending for the next attempt after voicemail / busy / no answer, and after the last attempt a
WhatsApp fallback and an alert to the clinic.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.twiml.voice_response import VoiceResponse

from voice_agent.alerts import StaffAlertDeps, StaffTexts, alert_staff
from voice_agent.clinic.model import Clinic
from voice_agent.clock import Clock
from voice_agent.confirmations.messages import (
    Answer,
    ConfirmationTexts,
    appointment_values,
    confirmation_texts,
)
from voice_agent.confirmations.planning import contact_allowed, next_contact_time, retry_time
from voice_agent.confirmations.prompt import PromptDeps
from voice_agent.confirmations.steps import (
    ERROR_RETRY,
    FALLBACK_SEQ,
    MANUAL_SEQ,
    ClaimedStep,
    StepStore,
    event_details,
)
from voice_agent.errors import OutsideWindow, PermanentFailure
from voice_agent.integrations.alerting import appointment_fields
from voice_agent.integrations.whatsapp import WINDOW, Message, WhatsAppSender
from voice_agent.interactions import Actor, acting_as
from voice_agent.patients.language import caller_language
from voice_agent.patients.service import normalize_phone
from voice_agent.scheduling.booking import BookingError
from voice_agent.store.confirmation_tables import ConfirmationStep, StepStatus
from voice_agent.store.db import transaction
from voice_agent.store.tables import Appointment, AppointmentStatus, Patient

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


def is_machine(answered_by: str | None) -> bool:
    return answered_by is not None and (answered_by.startswith("machine") or answered_by == "fax")


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


@dataclass(frozen=True)
class ReplyDecision:
    """What a WhatsApp reply to a confirmation request leads to."""

    text: str | None = None
    """Our answer, when the reply was handled here."""
    handover: str | None = None
    """Text for the text receptionist, when it takes over (rescheduling, free text)."""


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


class ConfirmationRunner:
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

    # Running steps ----------------------------------------------------------------------------

    async def run_due(self, limit: int = 20) -> list[tuple[int, str]]:
        """Claim and run the steps that are due; returns (step id, outcome) pairs."""
        claimed = await asyncio.to_thread(self.store.claim_due, self._now, self.worker, limit=limit)
        return [(step.id, await self._run(step)) for step in claimed]

    async def sweep(self) -> None:
        """Close what would otherwise wait forever: unanswered requests of past appointments, and
        calls whose final status callback never came (asked of Twilio instead)."""
        now = self._now
        await asyncio.to_thread(self.store.expire_unanswered, now)
        if self.client is None:
            return
        client = self.client
        for step in await asyncio.to_thread(self.store.silent_calls, now - SILENT_CALL):
            if step.id is None or step.call_sid is None:
                continue
            try:
                call = await asyncio.to_thread(client.calls(step.call_sid).fetch)
            except TwilioException as error:
                logger.warning("could not fetch call of step %s: %s", step.id, type(error).__name__)
                continue
            await self.call_status(step.id, step.call_sid, str(call.status))

    async def run_due_safely(self) -> None:
        """The scheduler's job: a bad minute (the database restarting …) must not kill it."""
        try:
            done = await self.run_due()
            await self.sweep()
        except Exception as error:
            logger.warning("confirmation run failed: %s", type(error).__name__)
            return
        if done:
            logger.info("confirmations: %s", ", ".join(f"{i}={o}" for i, o in done))

    async def plan_missing(self) -> int:
        """Plan steps for future appointments that have none (booked before confirmations)."""
        planner = self.services.step_planner
        if planner is None:
            return 0
        return await asyncio.to_thread(planner.plan_missing, self.services.engine)

    async def plan_missing_safely(self) -> None:
        """Run once at start; a failure is logged and retried at the next start or by the CLI."""
        try:
            planned = await self.plan_missing()
        except Exception as error:
            logger.warning("planning missing confirmations failed: %s", type(error).__name__)
            return
        if planned:
            logger.info("confirmations planned for %d earlier appointments", planned)

    async def trigger(self, appointment_id: str, via: str) -> tuple[int, str]:
        """Staff asked for a step now (``voice-agent confirm``): contact hours are not applied."""
        if via not in ("whatsapp", "call"):
            raise ValueError("via must be 'whatsapp' or 'call'")
        context = await asyncio.to_thread(self.context_for, appointment_id)
        if context is None or not context.appointment.active:
            raise ValueError(f"appointment {appointment_id} is not an active appointment")
        now = self._now
        step_id = await asyncio.to_thread(self.store.add, appointment_id, via, now, MANUAL_SEQ, now)
        claimed = await asyncio.to_thread(
            self.store.claim_due, now, self.worker, limit=1, step_id=step_id
        )
        if not claimed:
            return step_id, "claimed_elsewhere"
        return step_id, await self._run(claimed[0], manual=True)

    async def _run(self, step: ClaimedStep, *, manual: bool = False) -> str:
        try:
            return await self._execute(step, manual)
        except Exception as error:  # a backend outage: try again in a few minutes
            logger.warning("confirmation step %s failed: %s", step.id, type(error).__name__)
            errors = step.errors + 1
            if errors >= MAX_ERRORS:
                await self._finish(
                    step, StepStatus.failed, "error", error=type(error).__name__, errors=errors
                )
                await self._alert("confirmation_failing", step.appointment_id)
                return "error"
            # The next run checks Twilio first: the message or call may have gone out.
            await self._finish(
                step,
                StepStatus.pending,
                ERROR_RETRY,
                due_at=self._now + ERROR_RETRY_AFTER,
                error=type(error).__name__,
                errors=errors,
            )
            return ERROR_RETRY

    async def _execute(self, step: ClaimedStep, manual: bool) -> str:
        context = await asyncio.to_thread(self.context_for, step.appointment_id)
        now = self._now
        if context is None or not context.appointment.active:
            return await self._finish(step, StepStatus.cancelled, "appointment_inactive")
        if context.appointment.status == AppointmentStatus.confirmed and not manual:
            return await self._finish(step, StepStatus.cancelled, "already_confirmed")
        if context.appointment.start <= now:
            return await self._finish(step, StepStatus.failed, "too_late")
        if not manual and not contact_allowed(now, context.clinic):
            later = next_contact_time(now, context.clinic)
            if later is None or later >= context.appointment.start:
                return await self._finish(step, StepStatus.failed, "no_contact_time")
            return await self._finish(
                step, StepStatus.pending, None, due_at=later, attempts=step.attempts - 1
            )
        if step.via == "whatsapp":
            return await self._send_whatsapp(step, context)
        return await self._place_call(step, context)

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

    # WhatsApp ---------------------------------------------------------------------------------

    async def _send_whatsapp(self, step: ClaimedStep, context: StepContext) -> str:
        if self.sender is None:
            return await self._finish(step, StepStatus.failed, "whatsapp_not_configured")
        values = context.values
        body = context.texts.get("whatsapp_request", **values)
        last_inbound = await asyncio.to_thread(self.store.last_inbound_whatsapp, context.patient.id)
        in_window = last_inbound is not None and self._now - last_inbound < WINDOW
        lookup = step.claimed_at - timedelta(minutes=5) if step.recovering else None
        template = self.settings.whatsapp_reminder_template_sid
        sid: str | None = None
        try:
            if in_window or not template:  # without a template, Twilio decides (63016)
                try:
                    sid = await self.sender.send(
                        Message(to=context.patient.phone, body=body), lookup_since=lookup
                    )
                except OutsideWindow:
                    sid = None
            if sid is None:
                if not template:
                    await self._alert("confirmation_no_template", step.appointment_id)
                    return await self._finish(step, StepStatus.failed, "whatsapp_no_template")
                variables = {
                    "1": values["first_name"],
                    "2": values["when"],
                    "3": values["doctor"],
                    "4": values["address"],
                }
                sid = await self.sender.send(
                    Message(to=context.patient.phone, content_sid=template, variables=variables),
                    lookup_since=lookup,
                )
        except PermanentFailure:
            await self._alert("confirmation_whatsapp_refused", step.appointment_id)
            return await self._finish(step, StepStatus.failed, "whatsapp_rejected")
        return await self._finish(
            step,
            StepStatus.waiting,
            "sent",
            event_details("whatsapp", "sent", step.id, attempt=step.attempts),
            message_sid=sid,
        )

    # Calls ------------------------------------------------------------------------------------

    def _urls(self, step_id: int) -> dict[str, str]:
        base = self.settings.public_url or ""
        return {
            "answer": f"{base}/twilio/confirm/answer?step={step_id}",
            "status": f"{base}/twilio/confirm/status?step={step_id}",
            "amd": f"{base}/twilio/confirm/amd?step={step_id}",
        }

    def _caller_id(self, clinic: Clinic) -> str:
        """The number calls come from: the Twilio number, else the clinic's, in E.164."""
        return normalize_phone(self.settings.twilio_from_number or clinic.phone, clinic.country)

    async def _place_call(self, step: ClaimedStep, context: StepContext) -> str:
        client = self.client
        if client is None or not self.settings.public_url:
            await self._finish(step, StepStatus.failed, "calls_not_configured")
            await self._fallback(context, step.id)
            return "calls_not_configured"
        to, caller_id = context.patient.phone, self._caller_id(context.clinic)
        if step.recovering:
            existing = await asyncio.to_thread(self._existing_call, to, caller_id, step)
            if existing is not None:
                return await self._finish(step, StepStatus.waiting, "placed", call_sid=existing)
        urls = self._urls(step.id)
        try:
            call = await asyncio.to_thread(
                client.calls.create,
                to=to,
                from_=caller_id,
                url=urls["answer"],
                method="POST",
                status_callback=urls["status"],
                status_callback_method="POST",
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                machine_detection="DetectMessageEnd",
                async_amd="true",
                async_amd_status_callback=urls["amd"],
                async_amd_status_callback_method="POST",
                timeout=self.settings.confirmation_ring_seconds,
            )
        except TwilioRestException as error:
            if error.status not in (400, 401, 403, 404):
                raise ConnectionError(f"Twilio error {error.code}") from error
            await self._alert("confirmation_call_refused", step.appointment_id, code=error.code)
            await self._finish(step, StepStatus.failed, "call_rejected")
            await self._fallback(context, step.id)
            return "call_rejected"
        except TwilioException as error:
            raise ConnectionError(type(error).__name__) from error
        return await self._finish(
            step,
            StepStatus.waiting,
            "placed",
            event_details("call", "placed", step.id, attempt=step.attempts),
            call_sid=str(call.sid),
        )

    def _existing_call(self, to: str, caller_id: str, step: ClaimedStep) -> str | None:
        """A call this step placed before its process died (Twilio has no idempotency key)."""
        assert self.client is not None
        since = step.claimed_at - timedelta(minutes=1)
        for call in self.client.calls.list(to=to, from_=caller_id, limit=20):
            created = getattr(call, "date_created", None)
            if created is not None and created >= since:
                return str(call.sid)
        return None

    # Twilio's callbacks -----------------------------------------------------------------------

    async def call_answered(self, step_id: int, call_sid: str) -> StepContext | None:
        """The patient's phone was answered (by whom, AMD tells later); None: not our call."""
        changed = await asyncio.to_thread(
            self.store.update_call,
            step_id,
            call_sid,
            self._now,
            event=event_details("call", "answered", step_id),
        )
        if not changed:
            return None
        step = await asyncio.to_thread(self.store.get, step_id)
        assert step is not None
        context = await asyncio.to_thread(self.context_for, step.appointment_id)
        if context is None or not context.appointment.active:
            return None
        return context

    async def machine_detected(self, step_id: int, call_sid: str, answered_by: str) -> None:
        """Asynchronous AMD result: a machine gets the voicemail, then the call ends."""
        changed = await asyncio.to_thread(
            self.store.update_call, step_id, call_sid, self._now, answered_by=answered_by[:32]
        )
        if not changed or not is_machine(answered_by) or self.client is None:
            return
        step = await asyncio.to_thread(self.store.get, step_id)
        context = await asyncio.to_thread(self.context_for, step.appointment_id) if step else None
        if context is None:
            return
        response = VoiceResponse()
        if answered_by != "fax":
            response.say(
                context.texts.get("voicemail", **context.values),
                language=context.texts.say_language,
            )
        response.hangup()
        try:
            await asyncio.to_thread(self.client.calls(call_sid).update, twiml=str(response))
        except TwilioException as error:
            logger.warning("could not leave the voicemail: %s", type(error).__name__)

    async def call_status(self, step_id: int, call_sid: str, status: str) -> None:
        """Twilio's status callback: a final status settles the attempt."""
        if status not in FINAL_CALL_STATUSES:
            return
        step = await asyncio.to_thread(self.store.get, step_id)
        if step is None or step.call_sid not in (None, call_sid):
            return
        if step.status not in (StepStatus.running, StepStatus.waiting):
            return
        if status == "completed" and not is_machine(step.answered_by):
            await asyncio.to_thread(
                self.store.update_call,
                step_id,
                call_sid,
                self._now,
                event=event_details("call", "completed", step_id),
                status=StepStatus.done,
                outcome="answered",
                lease_until=None,
            )
            return
        event = "voicemail" if status == "completed" else status.replace("-", "_")
        await self._retry_or_fallback(step, call_sid, event)

    async def _retry_or_fallback(self, step: ConfirmationStep, call_sid: str, event: str) -> None:
        context = await asyncio.to_thread(self.context_for, step.appointment_id)
        now = self._now
        assert step.id is not None
        if context is None or not context.appointment.active:
            await asyncio.to_thread(
                self.store.update_call,
                step.id,
                call_sid,
                now,
                status=StepStatus.cancelled,
                outcome="appointment_inactive",
            )
            return
        later = retry_time(context.clinic, now, context.appointment.start, step.attempts)
        details = event_details("call", event, step.id, attempt=step.attempts)
        if later is not None:
            await asyncio.to_thread(
                self.store.update_call,
                step.id,
                call_sid,
                now,
                event={**details, "next_attempt": later.isoformat()},
                status=StepStatus.pending,
                outcome=event,
                due_at=later,
                lease_until=None,
            )
            return
        changed = await asyncio.to_thread(
            self.store.update_call,
            step.id,
            call_sid,
            now,
            event={**details, "final": True},
            status=StepStatus.failed,
            outcome="unreachable",
            lease_until=None,
        )
        if changed:
            await self._fallback(context, step.id)
            await self._alert(
                "confirmation_unreachable", step.appointment_id, attempts=step.attempts
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

    async def _fallback(self, context: StepContext, after_step: int) -> None:
        """Every call attempt failed: ask on WhatsApp instead (once per appointment)."""
        if not context.clinic.confirmations.whatsapp_fallback or self.sender is None:
            return
        appointment_id = context.appointment.id
        if await asyncio.to_thread(self.store.has_step, appointment_id, FALLBACK_SEQ):
            return
        now = self._now
        due = next_contact_time(now, context.clinic) or now
        if due >= context.appointment.start:
            return
        await asyncio.to_thread(self.store.add, appointment_id, "whatsapp", due, FALLBACK_SEQ, now)
        logger.info("confirmation step %s: WhatsApp fallback planned", after_step)

    # Answers ----------------------------------------------------------------------------------

    async def apply_answer(
        self, context: StepContext, answer: Answer, *, channel: str, call_id: str | None = None
    ) -> str:
        """Confirm or cancel for the patient; returns the key of the text to answer with.

        The patient acts: they answered the call we placed to the phone on file, or wrote from
        it on WhatsApp, so the carrier vouches for them (the log says so)."""
        patient_actor = Actor("patient", call_id=call_id, verified_by="carrier")
        with acting_as(patient_actor):
            return await self._apply_answer(context, answer, channel=channel)

    async def _apply_answer(self, context: StepContext, answer: Answer, *, channel: str) -> str:
        booking = self.services.booking
        appointment, patient = context.appointment, context.patient
        try:
            if answer == Answer.confirm:
                await booking.confirm(patient.id, appointment.id, channel=channel)
                return "confirmed"
            if answer == Answer.cancel:
                await booking.cancel(
                    patient.id, appointment.id, channel=channel, reason="confirmation reply"
                )
                return "cancelled"
        except BookingError as error:
            if error.code == "too_late_to_cancel":
                return "cancel_too_late"
            return "not_possible"
        raise ValueError(f"not an answer that changes the appointment: {answer}")

    async def whatsapp_reply(self, phone: str, text: str) -> ReplyDecision | None:
        """A patient's message while a confirmation request waits; None: not a reply to one."""
        patient = await self.services.patients.find_by_phone(phone)
        if patient is None:
            return None
        step = await asyncio.to_thread(self.store.waiting_whatsapp, patient.id)
        if step is None or step.id is None:
            return None
        context = await asyncio.to_thread(self.context_for, step.appointment_id)
        now = self._now
        if context is None or not context.appointment.active or context.appointment.start <= now:
            await asyncio.to_thread(self.store.settle_reply, step.appointment_id, "expired", now)
            return None
        answer = context.texts.read_answer(text)
        if answer == Answer.unclear:
            return ReplyDecision(text=context.texts.get("reask", **context.values))
        if answer in (Answer.confirm, Answer.cancel):
            key = await self.apply_answer(
                context, answer, channel="whatsapp", call_id=f"confirmation-step:{step.id}"
            )
            await asyncio.to_thread(self.store.settle_reply, step.appointment_id, key, now)
            return ReplyDecision(text=context.texts.get(key, **context.values))
        await asyncio.to_thread(
            self.store.settle_reply,
            step.appointment_id,
            "reschedule_requested" if answer == Answer.change else "handed_over",
            now,
        )
        handover = context.texts.get("handover_text") if answer == Answer.change else text
        return ReplyDecision(handover=handover)
