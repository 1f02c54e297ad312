"""Confirmation calls: placing the call with answering-machine detection, and Twilio's callbacks
(answered, voicemail, final status) that move the step on once; after the last attempt, a
WhatsApp fallback and an alert to the clinic."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.twiml.voice_response import VoiceResponse

from voice_agent.clinic.model import Clinic
from voice_agent.confirmations.planning import next_contact_time, retry_time
from voice_agent.confirmations.steps import (
    FALLBACK_SEQ,
    ClaimedStep,
    event_details,
)
from voice_agent.patients.service import normalize_phone
from voice_agent.store.confirmation_tables import ConfirmationStep, StepStatus

if TYPE_CHECKING:
    pass

from voice_agent.confirmations.core import (
    FINAL_CALL_STATUSES,
    RunnerCore,
    StepContext,
)

logger = logging.getLogger(__name__)


def is_machine(answered_by: str | None) -> bool:
    return answered_by is not None and (answered_by.startswith("machine") or answered_by == "fax")


class ConfirmationCalls(RunnerCore):
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
