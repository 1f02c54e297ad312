"""The receptionist's instructions for the text channel, from ``prompts/<language>/``."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from voice_agent.conversation.offline.replies import _Fields
from voice_agent.i18n import language_or_default, say_date
from voice_agent.patients.service import OnFile
from voice_agent.tools.context import ToolContext


async def instructions(prompts_dir: Path, ctx: ToolContext, on_file: OnFile | None = None) -> str:
    """``receptionist_text.md`` in the conversation's language, filled for this clinic and caller.

    Sent as the request's ``instructions`` every time: the Responses API does not carry them
    over through ``previous_response_id``. The clinic is read each time (a change in the
    console reaches the next turn); the caller's name comes from ``on_file`` when the
    conversation read it with its state, else from a look-up (which creates the patient on
    first contact).
    """
    clinic = ctx.services.clinic()
    now = ctx.services.clock.now().astimezone(clinic.tz)
    name = "—"
    if ctx.caller_phone and await ctx.verified_by() != "unverified":
        full_name = on_file.full_name if on_file is not None else (await ctx.patient()).full_name
        name = full_name or "—"
    template = _template(prompts_dir, language_or_default(ctx.language))
    return template.format_map(
        _Fields(
            clinic_name=clinic.name,
            today=f"{say_date(now.date(), ctx.language)} ({now.date().isoformat()})",
            caller=ctx.caller_phone or "—",
            patient_name=name,
            emergency_number=clinic.emergency_number,
            clinic_phone=clinic.phone,
        )
    )


@cache
def _template(prompts_dir: Path, language: str) -> str:
    return (prompts_dir / language / "receptionist_text.md").read_text(encoding="utf-8")
