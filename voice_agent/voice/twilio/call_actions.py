"""How a call leaves the bridge. Twilio REST when configured (hang up, redirect to a <Dial>);
in every case the decision is also stored on the call, so when the media stream closes,
Twilio's ``<Redirect>`` to ``/twilio/after-stream`` carries it out even without REST."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine
from twilio.base.exceptions import TwilioException
from twilio.rest import Client

from voice_agent.voice.call_records import set_call_fields
from voice_agent.voice.twilio.twiml import dialable, transfer_twiml

logger = logging.getLogger(__name__)


class TwilioCallActions:
    def __init__(
        self,
        engine: Engine,
        client: Client | None,
        *,
        staff_phone: str,
        caller_id: str,
        whisper_url: str | None,
        say_language: str,
    ) -> None:
        self._engine = engine
        self._client = client
        self._staff_phone = dialable(staff_phone)
        self._caller_id = dialable(caller_id)
        self._whisper_url = whisper_url
        self._say_language = say_language

    async def hang_up(self, call_sid: str) -> None:
        await asyncio.to_thread(set_call_fields, self._engine, call_sid, next_action="hangup")
        await self._update(call_sid, status="completed")

    async def transfer(self, call_sid: str, summary: str) -> None:
        await asyncio.to_thread(
            set_call_fields,
            self._engine,
            call_sid,
            next_action="transfer",
            transfer_summary=summary,
        )
        twiml = transfer_twiml(
            self._staff_phone, None, self._say_language, self._whisper_url, self._caller_id
        )
        await self._update(call_sid, twiml=twiml)

    async def fall_back(self, call_sid: str, reason: str) -> None:
        await asyncio.to_thread(set_call_fields, self._engine, call_sid, next_action="fallback")

    async def _update(self, call_sid: str, **changes: str) -> None:
        if self._client is None:
            return
        client = self._client
        try:
            await asyncio.to_thread(lambda: client.calls(call_sid).update(**changes))
        except (TwilioException, OSError) as exc:
            # Closing the stream makes Twilio fetch /twilio/after-stream, which does the same.
            logger.warning(
                "Twilio REST call update failed (%s); using the stream redirect", type(exc).__name__
            )
