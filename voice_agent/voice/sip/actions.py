"""How a SIP call leaves the receptionist, for the two ways a call reaches OpenAI.

The decision is always stored on the call record first (``next_action``, ``transfer_summary``),
as the Media Streams bridge does, then carried out:

- :class:`DialedLegActions`: the call came from our own ``<Dial><Sip>`` (a Twilio number on the
  ``openai_sip`` transport, or a confirmation call). Ending the SIP leg with the ``hangup`` REST
  call hands the call back to Twilio, which asks the ``<Dial action>`` URL what next; that route
  reads the record: hang up, put through to staff with the whispered summary (as on Media
  Streams), or the no-AI line.
- :class:`TrunkActions`: the call came straight from an Elastic SIP trunk, with no Twilio call
  of ours to return to. A transfer is a SIP REFER to the clinic's staff number (blind: no
  whisper), the fallback is the same REFER, a hang-up is the ``hangup`` call.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine

from voice_agent.voice.call_records import set_call_fields
from voice_agent.voice.sip.control import SipControl


class DialedLegActions:
    def __init__(self, engine: Engine, control: SipControl, call_id: str, record_sid: str) -> None:
        self._engine = engine
        self._control = control
        self._call_id = call_id
        self._record_sid = record_sid

    async def _decide(self, **values: str) -> None:
        await asyncio.to_thread(set_call_fields, self._engine, self._record_sid, **values)
        await self._control.hangup(self._call_id)

    async def hang_up(self) -> None:
        await self._decide(next_action="hangup")

    async def transfer(self, summary: str) -> None:
        await self._decide(next_action="transfer", transfer_summary=summary)

    async def fall_back(self, reason: str) -> None:
        await self._decide(next_action="fallback")


class TrunkActions:
    def __init__(self, engine: Engine, control: SipControl, call_id: str, staff_uri: str) -> None:
        self._engine = engine
        self._control = control
        self._call_id = call_id
        self._staff_uri = staff_uri

    async def hang_up(self) -> None:
        await asyncio.to_thread(set_call_fields, self._engine, self._call_id, next_action="hangup")
        await self._control.hangup(self._call_id)

    async def transfer(self, summary: str) -> None:
        await asyncio.to_thread(
            set_call_fields,
            self._engine,
            self._call_id,
            next_action="transfer",
            transfer_summary=summary,
        )
        await self._control.refer(self._call_id, self._staff_uri)

    async def fall_back(self, reason: str) -> None:
        await asyncio.to_thread(
            set_call_fields, self._engine, self._call_id, next_action="fallback"
        )
        await self._control.refer(self._call_id, self._staff_uri)
