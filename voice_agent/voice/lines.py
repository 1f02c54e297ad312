"""The fixed lines every voice path speaks (AI voice and keypad alike), from prompts/<language>/."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from string import Template

import yaml

from voice_agent.clinic.model import Clinic
from voice_agent.i18n import language_or_default


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
def read_prompt(path: Path) -> str:
    """A prompt file's text (cached: the files do not change while the process runs)."""
    return path.read_text(encoding="utf-8")


def voice_lines(prompts_dir: Path, language: str) -> VoiceLines:
    language = language_or_default(language)
    data = yaml.safe_load(read_prompt(prompts_dir / language / "voice_lines.yaml"))
    return VoiceLines(language, data)


def call_disclosure(prompts_dir: Path, clinic: Clinic, language: str) -> str:
    """What every call opens with: a virtual assistant answers, and the call is transcribed.

    The clinic's own words (``call_disclosure`` in the clinic file) win over the default line.
    """
    language = language_or_default(language)
    return clinic.call_disclosure.get(language) or voice_lines(prompts_dir, language).get(
        "disclosure"
    )
