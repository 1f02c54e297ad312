"""The voice receptionist's instructions and fixed lines, rendered from `prompts/<language>/`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from string import Template

import yaml

from voice_agent.clinic.model import Clinic
from voice_agent.i18n import language_or_default, say_date, say_money, say_time
from voice_agent.store.tables import Patient


@dataclass(frozen=True)
class VoiceLines:
    """Fixed lines of one language (`prompts/<language>/voice_lines.yaml`)."""

    language: str
    lines: dict[str, object]

    def get(self, key: str, **values: str) -> str:
        return Template(str(self.lines[key])).safe_substitute(values)

    @property
    def say_language(self) -> str:
        return str(self.lines["say_language"])

    def part_of_day(self, hour: int) -> str:
        parts = self.lines["parts_of_day"]
        assert isinstance(parts, dict)
        key = "morning" if hour < 12 else "afternoon" if hour < 18 else "evening"
        return str(parts[key])


@lru_cache(maxsize=16)
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def voice_lines(prompts_dir: Path, language: str) -> VoiceLines:
    language = language_or_default(language)
    data = yaml.safe_load(_read(prompts_dir / language / "voice_lines.yaml"))
    return VoiceLines(language, data)


def call_disclosure(prompts_dir: Path, clinic: Clinic, language: str) -> str:
    """What every call opens with: a virtual assistant answers, and the call is transcribed.

    The clinic's own words (``call_disclosure`` in the clinic file) win over the default line.
    """
    language = language_or_default(language)
    return clinic.call_disclosure.get(language) or voice_lines(prompts_dir, language).get(
        "disclosure"
    )


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
        "now_time": say_time(local, language),
        "timezone": clinic.timezone,
        "caller": caller,
        "greeting": greeting,
        "emergency_number": clinic.emergency_number,
        **(extra or {}),
    }
    template = Template(_read(prompts_dir / language / prompt_name))
    return template.safe_substitute(values)
