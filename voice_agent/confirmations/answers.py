"""What the patient answered (a WhatsApp reply, a keypad digit or the Realtime receptionist on a
confirmation call): confirm, cancel, or hand over to the text receptionist to reschedule."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from voice_agent.confirmations.messages import (
    Answer,
)
from voice_agent.interactions import Actor, acting_as
from voice_agent.scheduling.booking import BookingError

if TYPE_CHECKING:
    pass

from voice_agent.confirmations.core import RunnerCore, StepContext

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplyDecision:
    """What a WhatsApp reply to a confirmation request leads to."""

    text: str | None = None
    """Our answer, when the reply was handled here."""
    handover: str | None = None
    """Text for the text receptionist, when it takes over (rescheduling, free text)."""


class ConfirmationAnswers(RunnerCore):
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
