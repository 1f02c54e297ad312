"""Patient tools: the caller's own details only (the phone is the verified caller id).

A caller whose number the carrier did not verify may fill in a name or e-mail the file does not
have yet (a first-time patient registering), but may neither change nor hear details already on
file, and never sets a birth date: otherwise anyone could set one and then "verify" with it.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import Field

from voice_agent.errors import InvalidPatientData
from voice_agent.patients.service import normalize_phone
from voice_agent.store.tables import InteractionKind, Patient
from voice_agent.tools.context import ToolContext
from voice_agent.tools.registry import ToolError

Name = Annotated[str, Field(description="The patient's full name.", max_length=200)]
Email = Annotated[str | None, Field(description="E-mail address, if given.", max_length=320)]
BirthDate = Annotated[date | None, Field(description="Birth date (YYYY-MM-DD), if given.")]


async def register_patient(
    ctx: ToolContext,
    full_name: Name,
    email: Email = None,
    birth_date: BirthDate = None,
    phone: Annotated[
        str | None,
        Field(
            description="Only when the caller's number is withheld: the phone number they "
            "give. Leave empty otherwise.",
            max_length=40,
        ),
    ] = None,
) -> dict[str, Any]:
    """Save a first-time caller's full name (and e-mail, birth date if given)."""
    if phone and not (ctx.phone_verified and ctx.caller_phone):
        try:
            ctx.claim_phone(normalize_phone(phone, ctx.services.clinic().country))
        except InvalidPatientData as exc:
            raise ToolError(f"The phone number is not valid: {exc}.", code="bad_phone") from None
    patient, kept = await _update(ctx, full_name=full_name, email=email, birth_date=birth_date)
    await ctx.services.interactions.record(
        InteractionKind.registration, channel=ctx.channel, patient_id=patient.id
    )
    return _answer("registered", patient, kept, await ctx.verified_by())


async def update_patient(
    ctx: ToolContext,
    full_name: Annotated[str | None, Field(description="Corrected full name.")] = None,
    email: Email = None,
    birth_date: BirthDate = None,
    preferred_language: Annotated[
        str | None, Field(description="pt-BR, ru or en.", pattern=r"^(pt-BR|ru|en)$")
    ] = None,
) -> dict[str, Any]:
    """Correct the caller's own name, e-mail, birth date or preferred language."""
    patient, kept = await _update(
        ctx, full_name=full_name, email=email, birth_date=birth_date, language=preferred_language
    )
    return _answer("updated", patient, kept, await ctx.verified_by())


async def _update(ctx: ToolContext, **changes: Any) -> tuple[Patient, list[str]]:
    """Apply the changes; an unverified caller's changes to details on file are kept out."""
    patient = await ctx.patient()
    kept: list[str] = []
    if await ctx.verified_by() == "unverified":
        for key in ("full_name", "email", "birth_date"):
            # A birth date proves identity, so an unverified caller never sets one, not even
            # an empty one: else they would set it and then "verify" with it.
            if changes.get(key) is not None and (
                key == "birth_date" or getattr(patient, key) is not None
            ):
                kept.append(key)
                changes[key] = None
    today = ctx.services.clock.now().astimezone(ctx.services.clinic().tz).date()
    try:
        updated = await ctx.services.patients.update(patient.id, today=today, **changes)
    except InvalidPatientData as exc:
        raise ToolError(str(exc), code="invalid_patient_data") from None
    ctx.forget_patient()
    return updated, kept


def _answer(key: str, patient: Patient, kept: list[str], verified_by: str) -> dict[str, Any]:
    if verified_by != "unverified":
        return {key: _public(patient)}
    answer: dict[str, Any] = {key: True}
    if kept:
        answer["not_changed"] = kept
        answer["note"] = (
            "These details were not saved: the caller has to verify their identity "
            "(send_verification_code / verify_identity) before setting or changing them."
        )
    return answer


def _public(patient: Patient) -> dict[str, Any]:
    return {
        "full_name": patient.full_name,
        "email": patient.email,
        "birth_date": patient.birth_date.isoformat() if patient.birth_date else None,
    }
