"""What identity checks say, per language: ``prompts/<language>/identity.yaml``."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from voice_agent.i18n import language_or_default


class IdentityTexts:
    def __init__(self, prompts_dir: Path) -> None:
        self._dir = prompts_dir

    def say(self, language: str, key: str, **fields: Any) -> str:
        templates = _load(self._dir / language_or_default(language) / "identity.yaml")
        return templates[key].format(**fields)

    def keys(self, language: str) -> set[str]:
        return set(_load(self._dir / language_or_default(language) / "identity.yaml"))


@cache
def _load(path: Path) -> dict[str, str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of keys to texts")
    return {str(k): str(v) for k, v in data.items()}
