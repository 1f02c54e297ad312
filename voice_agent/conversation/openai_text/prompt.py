"""The receptionist's instructions for the text channel, from ``prompts/<language>/``."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from voice_agent.conversation.offline.replies import _Fields
from voice_agent.i18n import language_or_default, say_date
from voice_agent.patients.service import Looked
from voice_agent.scheduling.availability import booking_window
from voice_agent.tools.context import ToolContext


async def instructions(prompts_dir: Path, ctx: ToolContext, looked: Looked | None = None) -> str:
    """``receptionist_text.md`` in the conversation's language, filled for this clinic and caller.

    Sent as the request's ``instructions`` every time: the Responses API does not carry them
    over through ``previous_response_id``. The clinic is read each time (a change in the
    console reaches the next turn); the caller's name comes from ``looked`` when the
    conversation read it with its state (nobody on file: no name, and no patient row is made
    for it), else from a look-up.
    """
    clinic = ctx.services.clinic()
    now = ctx.services.clock.now().astimezone(clinic.tz)
    first, _ = booking_window(clinic, now)
    name = "—"
    known = looked is not None and looked.phone == ctx.caller_phone
    on_file = looked.on_file if looked is not None and known else None
    nobody = known and on_file is None
    if ctx.caller_phone and not nobody and await ctx.verified_by() != "unverified":
        patient = on_file if on_file is not None else await ctx.patient()
        name = patient.full_name or "—"
    template = _template(prompts_dir, language_or_default(ctx.language))
    return template.format_map(
        _Fields(
            clinic_name=clinic.name,
            today=f"{say_date(now.date(), ctx.language)} ({now.date().isoformat()})",
            first_day=f"{say_date(first, ctx.language)} ({first.isoformat()})",
            caller=ctx.caller_phone or "—",
            patient_name=name,
            emergency_number=clinic.emergency_number,
            clinic_phone=clinic.phone,
        )
    )


@cache
def _template(prompts_dir: Path, language: str) -> str:
    return (prompts_dir / language / "receptionist_text.md").read_text(encoding="utf-8")
