"""``affirms``: the explicit yes the OpenAI text loop requires before ``confirmed_by_patient``."""

from __future__ import annotations

import pytest

from voice_agent.conversation.offline.nlu import affirms


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("sim, pode marcar", "pt-BR"),
        ("Sim!", "pt-BR"),
        ("да, записывайте", "ru"),
        ("yes please", "en"),
        ("yes, book it", "en"),
        ("да", "en"),  # a yes in another supported language still counts
    ],
)
def test_an_explicit_yes(text: str, language: str) -> None:
    assert affirms(text, language)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("não", "pt-BR"),
        ("não, sim", "pt-BR"),  # a yes and a no together is no yes
        ("sim... não, espera", "pt-BR"),  # a no later in the message takes the yes back
        ("sim, pode... espera um pouco", "pt-BR"),
        ("yes... no wait", "en"),
        ("yes, hold on", "en"),
        ("да... нет, подождите", "ru"),
        ("да, стоп", "ru"),
        ("нет", "ru"),
        ("no thanks", "en"),
        ("what times do you have?", "en"),
        ("quanto custa?", "pt-BR"),
        ("", "en"),
    ],
)
def test_no_yes(text: str, language: str) -> None:
    assert not affirms(text, language)
