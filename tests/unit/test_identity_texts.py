"""The identity texts exist in every language with the same keys and the same fields."""

from __future__ import annotations

from voice_agent.conversation.offline.replies import fields_of
from voice_agent.identity.texts import IdentityTexts, _load
from voice_agent.settings import PROJECT_ROOT

LANGUAGES = ("pt-BR", "ru", "en")
PROMPTS = PROJECT_ROOT / "prompts"


def test_every_language_has_every_identity_text_with_the_same_fields() -> None:
    templates = {lang: _load(PROMPTS / lang / "identity.yaml") for lang in LANGUAGES}
    assert set(templates["pt-BR"]) == set(templates["ru"]) == set(templates["en"])
    for key, text in templates["en"].items():
        for language in ("pt-BR", "ru"):
            assert fields_of(templates[language][key]) == fields_of(text), (language, key)
    message = IdentityTexts(PROMPTS).say("ru", "code_message", clinic="К", code="123456", minutes=5)
    assert "123456" in message and "5 мин" in message
