"""Twilio's message status callback: a WhatsApp/SMS message can fail *after* Twilio accepted it
(63016 outside the 24-hour window, 63024 not a WhatsApp number …). Such a message is never
counted as delivered: its outbox row is reopened and resent as a template, or becomes a dead
letter that tells the staff whom to call. Signed like every Twilio webhook."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Response

from voice_agent.integrations.whatsapp import STATUS_PATH, late_failure
from voice_agent.web.deps import ServicesDep, TwilioForm

logger = logging.getLogger(__name__)
router = APIRouter()


@router.post(STATUS_PATH)
async def message_status(services: ServicesDep, params: TwilioForm) -> Response:
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    status = params.get("MessageStatus") or params.get("SmsStatus") or ""
    if not sid.startswith(("SM", "MM")) or not status:
        return Response("MessageSid and MessageStatus are required", status_code=400)
    outcome = await asyncio.to_thread(
        late_failure, services.outbox, sid, status, params.get("ErrorCode", "")
    )
    if outcome not in ("ignored", "unknown"):
        logger.warning(
            "message %s %s (error %s): outbox row now %s",
            sid,
            status,
            params.get("ErrorCode", "?"),
            outcome,
        )
    return Response(status_code=204)
