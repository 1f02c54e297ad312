"""The Realtime model's instructions: the prompt of `prompts/<language>/` filled with the clinic's
facts, today's date and what we know of the caller."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from string import Template

from voice_agent.clinic.model import Clinic
from voice_agent.i18n import language_or_default, say_date, say_money, say_time
from voice_agent.scheduling.availability import booking_window
from voice_agent.store.tables import Patient
from voice_agent.voice.lines import call_disclosure, read_prompt, voice_lines


def render_instructions(
    prompts_dir: Path,
    clinic: Clinic,
    language: str,
    *,
    now: datetime,
    patient: Patient | None,
    caller_verified: bool,
    prompt_name: str = "receptionist.md",
    extra: dict[str, str] | None = None,
) -> str:
    """Fill the prompt with the clinic's facts, today's date and what we know of the caller."""
    language = language_or_default(language)
    lines = voice_lines(prompts_dir, language)
    local = now.astimezone(clinic.tz)
    if not caller_verified:
        caller = lines.get("unknown_caller")
    elif patient is not None and patient.full_name:
        caller = lines.get("known_caller", name=patient.full_name)
    else:
        caller = lines.get("new_caller")
    services = "; ".join(
        f"{s.name(language)} ({s.duration_minutes} min, "
        f"{say_money(s.private_price, clinic.country)})"
        for s in clinic.services
    )
    doctors = "; ".join(
        f"{d.name} ({d.title.get(language) or ', '.join(d.specialties)})" for d in clinic.doctors
    )
    greeting = lines.get(
        "greeting",
        clinic_name=clinic.name,
        part_of_day=lines.part_of_day(local.hour),
        disclosure=call_disclosure(prompts_dir, clinic, language),
    )
    values = {
        "clinic_name": clinic.name,
        "clinic_address": clinic.address,
        "clinic_hours": clinic.hours.get(language) or next(iter(clinic.hours.values()), ""),
        "services": services,
        "doctors": doctors,
        "insurances": ", ".join(i.name for i in clinic.insurances) or "-",
        "today": say_date(local.date(), language),
        "first_day": say_date(booking_window(clinic, now)[0], language),
        "now_time": say_time(local, language),
        "timezone": clinic.timezone,
        "caller": caller,
        "greeting": greeting,
        "emergency_number": clinic.emergency_number,
        **(extra or {}),
    }
    template = Template(read_prompt(prompts_dir / language / prompt_name))
    return template.safe_substitute(values)
