"""The console's words in pt-BR, ru and en, read from ``prompts/<language>/console.yaml``.

Keys are dotted paths into the YAML (``nav.agenda``); fields in braces are filled with
``str.format``. The three files must hold the same keys (a test checks it), so a missing key is
a bug: it shows as the key itself rather than an English fallback.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)
LANGUAGES = ("pt-BR", "ru", "en")
FILE = "console.yaml"


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


@lru_cache(maxsize=16)
def load_texts(prompts_dir: Path, language: str) -> dict[str, str]:
    path = prompts_dir / language / FILE
    with path.open(encoding="utf-8") as handle:
        return _flatten(yaml.safe_load(handle) or {})


class Translator:
    """``t("key", **fields)`` in one language; given to every template as ``t``."""

    def __init__(self, prompts_dir: Path, language: str) -> None:
        self.language = language if language in LANGUAGES else "en"
        self._texts = load_texts(prompts_dir, self.language)

    def __call__(self, key: str, /, **fields: object) -> str:
        text = self._texts.get(key)
        if text is None:
            logger.warning("console text %r missing in %s", key, self.language)
            return key
        return text.format(**fields) if fields else text

    def has(self, key: str) -> bool:
        return key in self._texts
