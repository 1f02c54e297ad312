"""What one call's receptionist needs, whatever carries the audio (Media Streams or SIP): the
tool context, the tool set and the instructions, built from the call's record, and its alerts.

Shared by the Media Streams session (``session.py``) and the SIP transport (``sip/``), so both
transports run the same receptionist by construction, not by copy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from voice_agent.alerts import StaffTexts, alert_staff, staff_language
from voice_agent.confirmations.prompt import confirmation_prompt_values
from voice_agent.services import Services
from voice_agent.store.tables import CallRecord
from voice_agent.tools.catalog import confirmation_registry
from voice_agent.tools.context import ToolContext
from voice_agent.tools.registry import ToolRegistry
from voice_agent.voice.lines import VoiceLines, voice_lines
from voice_agent.voice.openai.instructions import render_instructions


@dataclass
class CallSetup:
    context: ToolContext
    registry: ToolRegistry
    instructions: str
    lines: VoiceLines


async def prepare_call(services: Services, call: CallRecord, tools: ToolRegistry) -> CallSetup:
    """The tool context (the caller as the carrier or our own dialling vouches for them), the
    tools (a confirmation call's few) and the filled prompt of a call, from its record."""
    settings = services.settings
    clinic = services.clinic()
    patient = await services.patients.get(call.patient_id) if call.patient_id else None
    language = call.language or clinic.default_language
    context = ToolContext(
        services=services,
        channel="voice",
        conversation_id=call.call_sid,
        caller_phone=patient.phone if patient else None,
        phone_verified=patient is not None,  # the carrier's caller id, or the number we dialled
        language=language,
        call_sid=call.call_sid,
        appointment_scope=call.appointment_id if call.mode == "confirmation" else None,
        _patient=patient,  # already read: the first tool call needs no second look-up
    )
    registry = tools
    prompt, extra = "receptionist.md", None
    if call.mode == "confirmation" and call.appointment_id:
        registry = confirmation_registry(registry)
        prompt = "confirmation.md"
        extra = await asyncio.to_thread(
            confirmation_prompt_values, services, call.appointment_id, patient, language
        )
    instructions = render_instructions(
        settings.prompts_dir,
        clinic,
        language,
        now=services.clock.now(),
        patient=patient,
        caller_verified=patient is not None,
        prompt_name=prompt,
        extra=extra,
    )
    return CallSetup(context, registry, instructions, voice_lines(settings.prompts_dir, language))


def call_alert(services: Services, call_sid: str) -> Callable[[str, str], Awaitable[None]]:
    """A call's alerts as staff texts in the clinic's language, pointing at the call."""
    texts = StaffTexts(services.settings.prompts_dir)

    async def alert(kind: str, detail: str) -> None:
        if kind == "tool_failure":
            return  # the tool registry already alerted, with the caller's name and number
        language = staff_language(services)
        key = kind if texts.has(language, kind) else "call_failure"
        await alert_staff(
            services,
            key,
            dedup_key=call_sid,
            reason=detail[:200],
            where=texts.where(language, call_sid=call_sid, conversation_id=None),
        )

    return alert
