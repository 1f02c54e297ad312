"""Sends a code to the phone on file through Twilio's Messages API (the official SDK).

Sent at once, not through the outbox: a code is worth something only while the caller waits, so a
failure is said to the caller (who can give the birth date instead) rather than retried later.
WhatsApp first (an approved authentication template when configured: outside the 24-hour window
WhatsApp refuses free text), then SMS.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from twilio.base.exceptions import TwilioException
from twilio.rest import Client

logger = logging.getLogger(__name__)


class CodeNotSent(Exception):
    """No configured route delivered the message."""


@dataclass(frozen=True)
class CodeSender:
    client: Client
    whatsapp_from: str | None = None
    sms_from: str | None = None
    whatsapp_template_sid: str | None = None
    """A template whose ``{{1}}`` is the code (WhatsApp authentication templates)."""

    @property
    def routes(self) -> list[str]:
        return [
            route
            for route, sender in (("whatsapp", self.whatsapp_from), ("sms", self.sms_from))
            if sender
        ]

    async def send(self, phone: str, body: str, code: str) -> str:
        """Deliver ``body``; returns the route used (``whatsapp`` or ``sms``)."""
        return await asyncio.to_thread(self._send, phone, body, code)

    def _send(self, phone: str, body: str, code: str) -> str:
        for route in self.routes:
            try:
                if route == "whatsapp":
                    self._whatsapp(phone, body, code)
                else:
                    self.client.messages.create(to=phone, from_=self.sms_from, body=body)
                return route
            except TwilioException as error:
                logger.warning(
                    "verification code not sent by %s (%s)", route, getattr(error, "code", "")
                )
        raise CodeNotSent("no route delivered the code")

    def _whatsapp(self, phone: str, body: str, code: str) -> None:
        sender = self.whatsapp_from or ""
        sender = sender if sender.startswith("whatsapp:") else f"whatsapp:{sender}"
        to = f"whatsapp:{phone}"
        if self.whatsapp_template_sid:
            self.client.messages.create(
                to=to,
                from_=sender,
                content_sid=self.whatsapp_template_sid,
                content_variables=json.dumps({"1": code}),
            )
        else:
            self.client.messages.create(to=to, from_=sender, body=body)
