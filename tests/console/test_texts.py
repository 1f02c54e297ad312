"""The console's words: the same keys in pt-BR, ru and en, and every key a template uses exists."""

from __future__ import annotations

import re

from voice_agent.console.texts import LANGUAGES, load_texts
from voice_agent.console.web import TEMPLATES
from voice_agent.settings import PROJECT_ROOT

PROMPTS = PROJECT_ROOT / "prompts"
LITERAL_KEY = re.compile(r"""\bt\(\s*["']([a-z_.\-A-Z]+)["']\s*\)""")
"""A whole key (``t("nav.agenda")``), not a prefix joined to a value (``t("roles." ~ role)``)."""


def test_three_languages_hold_the_same_keys() -> None:
    keys = {language: set(load_texts(PROMPTS, language)) for language in LANGUAGES}
    assert keys["pt-BR"] == keys["en"] == keys["ru"]


def test_every_literal_key_in_the_templates_exists() -> None:
    known = set(load_texts(PROMPTS, "en"))
    used = {
        key
        for path in TEMPLATES.glob("*.html")
        for key in LITERAL_KEY.findall(path.read_text(encoding="utf-8"))
    }
    assert used, "the pattern found no keys"
    assert used <= known, sorted(used - known)
