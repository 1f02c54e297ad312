"""Reply templates of the offline receptionist: ``prompts/<language>/offline_replies.yaml``.

Templates use ``str.format`` fields filled only from tool outputs and the clinic, so a reply never
states a fact that the tool layer did not return.
"""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from voice_agent.i18n import language_or_default


class MissingReply(KeyError):
    pass


class Replies:
    def __init__(self, prompts_dir: Path) -> None:
        self._dir = prompts_dir

    def templates(self, language: str) -> dict[str, str]:
        return _load(self._dir / language_or_default(language) / "offline_replies.yaml")

    def say(self, language: str, key: str, **fields: Any) -> str:
        templates = self.templates(language)
        if key not in templates:
            raise MissingReply(f"{language}: no reply {key!r}")
        return templates[key].format_map(_Fields(fields))


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


@cache
def _load(path: Path) -> dict[str, str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of reply keys to templates")
    return {str(k): str(v) for k, v in data.items()}


def fields_of(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}
