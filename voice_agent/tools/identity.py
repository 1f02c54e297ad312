"""Identity tools: send a one-time code to the phone on file, check the code or the birth date.

Needed only when the carrier did not verify the caller's number; changing or reading an existing
appointment is refused until one of them succeeds (``ToolContext.verified_patient``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import Field

from voice_agent.errors import InvalidPatientData
from voice_agent.identity.codes import spoken_code
from voice_agent.patients.service import normalize_phone
from voice_agent.tools.context import ToolContext, verify_first_message
from voice_agent.tools.registry import ToolError

ClaimedPhone = Annotated[
    str | None,
    Field(
        description="Only when the caller's number is withheld: the phone number they say is "
        "theirs. Leave empty otherwise.",
        max_length=40,
    ),
]


async def send_verification_code(ctx: ToolContext, phone: ClaimedPhone = None) -> dict[str, Any]:
    """Send a 6-digit code by WhatsApp/SMS to the phone on file, so an unverified caller can
    prove who they are before hearing or changing their appointments."""
    _claim(ctx, phone)
    how = await ctx.verified_by()
    if how != "unverified":
        return {"verified": True, "by": how}
    patient = await ctx.patient()
    outcome = await ctx.services.identity.send_code(
        ctx.conversation_id, ctx.channel, patient, ctx.language
    )
    if outcome.status in ("sent", "pending"):
        return {
            "sent": True,
            "via": outcome.route,
            "to_phone_ending": outcome.masked_phone[-4:],
            "valid_minutes": outcome.minutes,
            "next": "Ask the caller for the code and call verify_identity(code=...).",
        }
    raise ToolError(
        verify_first_message(outcome, has_birth_date=patient.birth_date is not None),
        code=_send_problem(outcome.status),
    )


async def verify_identity(
    ctx: ToolContext,
    code: Annotated[
        str | None, Field(description="The 6-digit code the caller read back.", max_length=40)
    ] = None,
    birth_date: Annotated[
        date | None, Field(description="The caller's date of birth (YYYY-MM-DD).")
    ] = None,
    phone: ClaimedPhone = None,
) -> dict[str, Any]:
    """Check the code the caller read back, or their date of birth, against the patient file."""
    _claim(ctx, phone)
    if (code is None) == (birth_date is None):
        raise ToolError("Give either the code or the birth date.", code="invalid_arguments")
    how = await ctx.verified_by()
    if how != "unverified":
        return {"verified": True, "by": how}
    patient = await ctx.patient()
    identity = ctx.services.identity
    if code is not None:
        digits = spoken_code(code)
        if digits is None:
            raise ToolError("The code has exactly 6 digits; ask again.", code="invalid_code")
        outcome = await identity.check_code(ctx.conversation_id, patient.id, digits)
        method = "code"
    else:
        assert birth_date is not None
        outcome = await identity.check_birth_date(
            ctx.conversation_id, ctx.channel, patient, birth_date
        )
        method = "birth_date"
    if outcome.status == "verified":
        ctx.note_verified(patient.id, method)
        return {"verified": True, "by": method}
    return {
        "verified": False,
        "reason": outcome.status,
        "attempts_left": outcome.attempts_left,
        "next": _NEXT[outcome.status],
    }


_NEXT = {
    "wrong": "Say it does not match and ask again (the code or the date of birth).",
    "expired": "The code expired: call send_verification_code for a new one.",
    "no_code": "No code is pending: call send_verification_code first, or ask the birth date.",
    "no_birth_date": "No birth date on file: verify with a code (send_verification_code).",
    "locked": "Too many wrong answers: do not read out or change appointments; offer to "
    "transfer the caller to the staff.",
}


def _claim(ctx: ToolContext, phone: str | None) -> None:
    if not phone or (ctx.phone_verified and ctx.caller_phone):
        return  # a carrier-verified number is never replaced by a spoken one
    try:
        ctx.claim_phone(normalize_phone(phone, ctx.services.clinic().country))
    except InvalidPatientData as exc:
        raise ToolError(f"The phone number is not valid: {exc}.", code="bad_phone") from None


def _send_problem(status: str) -> str:
    if status == "rate_limited":
        return "rate_limited"
    if status == "locked":
        return "identity_locked"
    return "code_not_sent"
