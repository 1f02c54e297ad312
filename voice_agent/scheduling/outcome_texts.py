"""The words for bookings that did not go as asked: ``prompts/<language>/booking_outcomes.yaml``.

One file per language serves the tools (what the patient hears now) and the written notices
(what they read later), so a pending request is described the same way in both.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from voice_agent.i18n import language_or_default

FILE = "booking_outcomes.yaml"


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


@cache
def _load(path: Path) -> dict[str, str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of keys to texts")
    return {str(k): str(v) for k, v in data.items()}


def outcome_text(prompts_dir: Path, language: str | None, key: str, **fields: Any) -> str | None:
    """The text for ``key`` in the language (None when the file has no such key)."""
    texts = _load(prompts_dir / language_or_default(language) / FILE)
    template = texts.get(key)
    return None if template is None else template.format_map(_Blank(fields))
