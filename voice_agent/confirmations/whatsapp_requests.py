"""Confirmation requests on WhatsApp (a template outside the 24-hour window)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from voice_agent.confirmations.steps import (
    ClaimedStep,
    event_details,
)
from voice_agent.errors import OutsideWindow, PermanentFailure
from voice_agent.integrations.whatsapp import WINDOW, Message
from voice_agent.store.confirmation_tables import StepStatus

if TYPE_CHECKING:
    pass

from voice_agent.confirmations.core import RunnerCore, StepContext

logger = logging.getLogger(__name__)


class WhatsAppRequests(RunnerCore):
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
