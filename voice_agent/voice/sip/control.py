"""Control of one SIP call through the SDK's ``client.realtime.calls``: accept, reject, refer,
hang up. Every call is a REST ``POST /v1/realtime/calls/{call_id}/…``; a failure is raised as
:class:`SipControlError` with the HTTP status (never the body, which may echo our instructions).
"""

from __future__ import annotations

import logging
from typing import Any

import openai
from openai import AsyncOpenAI

from voice_agent.settings import Settings
from voice_agent.voice.openai.connection import session_config

logger = logging.getLogger(__name__)

BUSY_HERE = 486
"""SIP 486 Busy Here: at capacity (the trunk may fail over to its next URI)."""
DECLINE = 603
"""SIP 603 Decline: a call we will not take (no clinic, unconfigured)."""


class SipControlError(RuntimeError):
    def __init__(self, action: str, status: int | None) -> None:
        super().__init__(f"SIP {action} failed (HTTP {status if status is not None else '-'})")
        self.action = action
        self.status = status


def accept_config(
    settings: Settings, instructions: str, tools: list[dict[str, Any]]
) -> dict[str, Any]:
    """The bridge's session config, minus the audio formats: on SIP the carrier and OpenAI
    negotiate the codec in SDP, and the audio never reaches us."""
    config = session_config(settings, instructions, tools)
    audio = config["audio"]
    audio["input"].pop("format", None)
    audio["output"].pop("format", None)
    return config


def transfer_uri(number: str) -> str:
    """``tel:+551134567801`` for a phone number; a ``sip:`` URI is passed through."""
    if number.startswith(("sip:", "sips:", "tel:")):
        return number
    digits = "".join(ch for ch in number if ch.isdigit())
    return f"tel:+{digits}" if number.strip().startswith("+") else f"tel:{digits}"


class SipControl:
    """The calls REST endpoints for one process (one client, one HTTP pool)."""

    def __init__(self, client: AsyncOpenAI) -> None:
        self._calls = client.realtime.calls

    async def accept(self, call_id: str, config: dict[str, Any]) -> None:
        await self._do("accept", self._calls.accept(call_id, **config))

    async def reject(self, call_id: str, status_code: int = BUSY_HERE) -> None:
        await self._do("reject", self._calls.reject(call_id, status_code=status_code))

    async def refer(self, call_id: str, target_uri: str) -> None:
        await self._do("refer", self._calls.refer(call_id, target_uri=target_uri))

    async def hangup(self, call_id: str) -> None:
        await self._do("hangup", self._calls.hangup(call_id))

    @staticmethod
    async def _do(action: str, request: Any) -> None:
        try:
            await request
        except openai.APIStatusError as exc:
            logger.warning("SIP %s refused: HTTP %s", action, exc.status_code)
            raise SipControlError(action, exc.status_code) from None
        except openai.APIError as exc:
            logger.warning("SIP %s failed: %s", action, type(exc).__name__)
            raise SipControlError(action, None) from None
