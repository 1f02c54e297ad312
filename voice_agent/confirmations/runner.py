"""Runs confirmation steps: WhatsApp requests, outbound calls with answering-machine detection,
and the outcomes Twilio reports back (answered, voicemail, busy, no answer, failed).

Every process runs ``run_due`` from its scheduler; a step is claimed by one of them. A call step
waits for Twilio's callbacks, which move it on once: done when a person answered, back to
pending for the next attempt after voicemail / busy / no answer, and after the last attempt a
WhatsApp fallback and an alert to the clinic.

The runner is assembled from one module per job: ``core.py`` (context, settling a step, alerts),
``whatsapp_requests.py``, ``calls.py`` (placing calls, Twilio's callbacks) and ``answers.py``."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from twilio.base.exceptions import TwilioException

from voice_agent.confirmations.planning import contact_allowed, next_contact_time
from voice_agent.confirmations.steps import (
    ERROR_RETRY,
    MANUAL_SEQ,
    ClaimedStep,
)
from voice_agent.store.confirmation_tables import StepStatus
from voice_agent.store.tables import AppointmentStatus

if TYPE_CHECKING:
    pass

from voice_agent.confirmations.answers import ConfirmationAnswers, ReplyDecision
from voice_agent.confirmations.calls import ConfirmationCalls, is_machine
from voice_agent.confirmations.core import (
    ERROR_RETRY_AFTER,
    MAX_ERRORS,
    SILENT_CALL,
    ConfirmationServices,
    StepContext,
)
from voice_agent.confirmations.whatsapp_requests import WhatsAppRequests

logger = logging.getLogger(__name__)

__all__ = [
    "ConfirmationRunner",
    "ConfirmationServices",
    "ReplyDecision",
    "StepContext",
    "is_machine",
]


class ConfirmationRunner(WhatsAppRequests, ConfirmationCalls, ConfirmationAnswers):
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
