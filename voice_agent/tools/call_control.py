"""Call control for voice channels (hang up, transfer to a person, flag an emergency) and the
callback request every channel offers; each tells the staff who, what and where to read it."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from voice_agent.store.tables import InteractionKind
from voice_agent.tools.context import CallControl, ToolContext
from voice_agent.tools.registry import ToolError


def _control(ctx: ToolContext) -> CallControl:
    if ctx.call_control is None:
        raise ToolError("This is not a phone call.", code="not_a_call")
    return ctx.call_control


async def end_call(
    ctx: ToolContext,
    reason: Annotated[str, Field(description="Why the call ends, in a few words.")] = "done",
) -> dict[str, Any]:
    """Hang up after your goodbye has been heard. Say goodbye first, then call this."""
    await _control(ctx).end_call(reason[:200])
    return {"ending": True}


async def transfer_to_staff(
    ctx: ToolContext,
    summary: Annotated[
        str, Field(description="One line for the staff: who calls and what they need.")
    ],
) -> dict[str, Any]:
    """Put the caller through to the clinic staff (they asked for a person, or you cannot help)."""
    control = _control(ctx)
    patient_id = (await ctx.patient()).id if ctx.caller_phone else None
    await ctx.services.interactions.record(
        InteractionKind.transfer,
        channel=ctx.channel,
        patient_id=patient_id,
        details={"summary": summary[:300], "call_sid": ctx.call_sid},
    )
    await control.transfer_to_staff(summary[:300])
    await ctx.alert_staff(
        "transfer",
        await ctx.patient() if ctx.caller_phone else None,
        summary=summary[:300],
    )
    return {"transferring": True}


async def request_callback(
    ctx: ToolContext,
    request: Annotated[
        str, Field(description="What the patient wants the staff to call back about, briefly.")
    ],
) -> dict[str, Any]:
    """Ask the clinic staff to call the patient back (they want a person, or a question you
    cannot answer). Tell the patient the staff will call them back."""
    patient = await ctx.patient() if ctx.caller_phone else None
    await ctx.services.interactions.record(
        InteractionKind.transfer,
        channel=ctx.channel,
        patient_id=patient.id if patient else None,
        details={"reason": "callback requested", "question": request[:300]},
    )
    await ctx.alert_staff(
        "callback",
        patient,
        question=request[:300],
    )
    return {"callback_requested": True, "clinic_phone": ctx.services.clinic().phone}


async def report_emergency(
    ctx: ToolContext,
    summary: Annotated[str, Field(description="What the caller described, in a few words.")],
) -> dict[str, Any]:
    """The caller describes a medical emergency: flag the call. Then tell them to hang up and
    call the emergency number at once."""
    control = _control(ctx)
    clinic = ctx.services.clinic()
    patient_id = (await ctx.patient()).id if ctx.caller_phone else None
    await ctx.services.interactions.record(
        InteractionKind.emergency,
        channel=ctx.channel,
        patient_id=patient_id,
        details={"summary": summary[:300], "call_sid": ctx.call_sid},
    )
    await control.flag_emergency(summary[:300])
    await ctx.alert_staff(
        "emergency",
        await ctx.patient() if ctx.caller_phone else None,
        summary=summary[:300],
        emergency_number=clinic.emergency_number,
    )
    return {"emergency_number": clinic.emergency_number, "flagged": True}
