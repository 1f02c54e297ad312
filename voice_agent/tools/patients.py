"""Patient tools: the caller's own details only (the phone is the verified caller id)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import Field

from voice_agent.patients.service import InvalidPatientData
from voice_agent.store.tables import InteractionKind, Patient
from voice_agent.tools.context import ToolContext
from voice_agent.tools.registry import ToolError

Name = Annotated[str, Field(description="The patient's full name.", max_length=200)]
Email = Annotated[str | None, Field(description="E-mail address, if given.", max_length=320)]
BirthDate = Annotated[date | None, Field(description="Birth date (YYYY-MM-DD), if given.")]


async def register_patient(
    ctx: ToolContext, full_name: Name, email: Email = None, birth_date: BirthDate = None
) -> dict[str, Any]:
    """Save a first-time caller's full name (and e-mail, birth date if given)."""
    patient = await _update(ctx, full_name=full_name, email=email, birth_date=birth_date)
    await ctx.services.interactions.record(
        InteractionKind.registration, channel=ctx.channel, patient_id=patient.id
    )
    return {"registered": _public(patient)}


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
    patient = await _update(
        ctx, full_name=full_name, email=email, birth_date=birth_date, language=preferred_language
    )
    return {"updated": _public(patient)}


async def _update(ctx: ToolContext, **changes: Any) -> Patient:
    patient = await ctx.patient()
    today = ctx.services.clock.now().astimezone(ctx.services.clinic().tz).date()
    try:
        updated = await ctx.services.patients.update(patient.id, today=today, **changes)
    except InvalidPatientData as exc:
        raise ToolError(str(exc), code="invalid_patient_data") from None
    ctx.forget_patient()
    return updated


def _public(patient: Patient) -> dict[str, Any]:
    return {
        "full_name": patient.full_name,
        "email": patient.email,
        "birth_date": patient.birth_date.isoformat() if patient.birth_date else None,
    }
