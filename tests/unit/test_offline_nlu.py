"""The offline receptionist's reading of messages: intents, clinic entities, options, and the
date/time expressions of the issue, relative to Monday 23 November 2026."""

from __future__ import annotations

from datetime import date, time

import pytest

from voice_agent.clinic import Clinic
from voice_agent.conversation.language import detect_language
from voice_agent.conversation.offline.nlu import extract_name, parse

TODAY = date(2026, 11, 23)  # a Monday


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        ("pt-BR", "amanhã de manhã", {"dates": ["2026-11-24"], "periods": ["morning"]}),
        ("pt-BR", "na próxima terça à tarde", {"dates": ["2026-11-24"], "periods": ["afternoon"]}),
        ("pt-BR", "depois das 15h", {"earliest": "15:00"}),
        ("pt-BR", "antes das 11h", {"latest": "11:00"}),
        ("pt-BR", "semana que vem", {"date_from": "2026-11-30", "date_to": "2026-12-06"}),
        (
            "pt-BR",
            "não pode ser segunda, só quinta",
            {"weekdays": ["thu"], "exclude_weekdays": ["mon"]},
        ),
        (
            "pt-BR",
            "dia 25 às 14h",
            {"dates": ["2026-11-25"], "earliest": "14:00", "latest": "15:00"},
        ),
        ("pt-BR", "depois de amanhã", {"dates": ["2026-11-25"]}),
        ("pt-BR", "Boa tarde!", {}),
        ("ru", "не в понедельник", {"exclude_weekdays": ["mon"]}),
        ("ru", "в четверг после обеда", {"weekdays": ["thu"], "periods": ["afternoon"]}),
        ("ru", "после 15", {"earliest": "15:00"}),
        ("ru", "послезавтра утром", {"dates": ["2026-11-25"], "periods": ["morning"]}),
        ("ru", "на следующей неделе", {"date_from": "2026-11-30", "date_to": "2026-12-06"}),
        (
            "ru",
            "25 ноября в 14:00",
            {"dates": ["2026-11-25"], "earliest": "14:00", "latest": "15:00"},
        ),
        ("ru", "Добрый вечер", {}),
        (
            "en",
            "next week, any afternoon",
            {"date_from": "2026-11-30", "date_to": "2026-12-06", "periods": ["afternoon"]},
        ),
        ("en", "not on Monday please", {"exclude_weekdays": ["mon"]}),
        (
            "en",
            "on December 3rd at 2pm",
            {"dates": ["2026-12-03"], "earliest": "14:00", "latest": "15:00"},
        ),
        ("en", "Friday after 3pm", {"weekdays": ["fri"], "earliest": "15:00"}),
        ("en", "tomorrow before noon", {"dates": ["2026-11-24"], "latest": "12:00"}),
        ("en", "Good morning", {}),
    ],
)
def test_date_and_time_wishes(
    sample_clinic: Clinic, language: str, text: str, expected: dict[str, object]
) -> None:
    assert parse(text, language, sample_clinic, TODAY).wish.to_args() == expected


@pytest.mark.parametrize(
    ("language", "text", "option"),
    [
        ("pt-BR", "a segunda", 2),
        ("pt-BR", "fico com a primeira", 1),
        ("pt-BR", "opção 3", 3),
        ("pt-BR", "na segunda de manhã", None),
        ("ru", "давайте первый", 1),
        ("ru", "второй вариант", 2),
        ("en", "the third one", 3),
        ("en", "2", 2),
        ("en", "the one on December 1st", None),
        ("en", "the last one", -1),
    ],
)
def test_option_choices(
    sample_clinic: Clinic, language: str, text: str, option: int | None
) -> None:
    assert parse(text, language, sample_clinic, TODAY, expecting_choice=True).option == option


def test_a_time_alone_picks_an_offer(sample_clinic: Clinic) -> None:
    assert parse("the 10:30 one", "en", sample_clinic, TODAY, expecting_choice=True).clock == time(
        10, 30
    )
    assert parse("a das 9 e meia", "pt-BR", sample_clinic, TODAY).clock == time(9, 30)


@pytest.mark.parametrize(
    ("language", "text", "intents"),
    [
        ("pt-BR", "Quero marcar uma consulta", {"book"}),
        ("pt-BR", "Quanto custa a consulta de dermatologia?", {"ask_prices"}),
        ("pt-BR", "preciso remarcar minha consulta", {"reschedule"}),
        ("pt-BR", "quero cancelar", {"cancel"}),
        ("pt-BR", "sim, pode marcar", {"yes", "book"}),
        ("pt-BR", "não", {"no"}),
        ("pt-BR", "quero falar com um atendente", {"handoff"}),
        ("ru", "Хочу записаться", {"book"}),
        ("ru", "хочу перенести запись", {"reschedule"}),
        ("ru", "да", {"yes"}),
        ("ru", "ни один не подходит", {"reject"}),
        ("en", "Please cancel my appointment", {"cancel"}),
        ("en", "What are your opening hours?", {"ask_hours"}),
        ("en", "yes please", {"yes"}),
    ],
)
def test_intents(sample_clinic: Clinic, language: str, text: str, intents: set[str]) -> None:
    assert parse(text, language, sample_clinic, TODAY).intents == intents


def test_clinic_entities_in_free_text(sample_clinic: Clinic) -> None:
    found = parse("quero marcar com a Dra. Ana Souza pela Unimed", "pt-BR", sample_clinic, TODAY)
    assert (found.doctor_id, found.insurance_id) == ("dr-ana-souza", "unimed")
    assert (
        parse("запишите к кардиологу", "ru", sample_clinic, TODAY).service_id == "cardio-consulta"
    )
    assert parse("I need a skin doctor", "en", sample_clinic, TODAY).service_id == "derma-consulta"
    contact = parse(
        "meu e-mail é maria@example.com, tel 11 98765-4321", "pt-BR", sample_clinic, TODAY
    )
    assert contact.email == "maria@example.com" and contact.phone == "11 98765-4321"


def test_names() -> None:
    assert extract_name("Meu nome é maria da silva", "pt-BR") == "Maria da Silva"
    assert extract_name("Меня зовут Иван Петров", "ru") == "Иван Петров"
    assert extract_name("I'm John Smith", "en") == "John Smith"
    assert extract_name("a primeira", "pt-BR") is None
    assert extract_name("quero 2", "pt-BR") is None


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Olá, quero marcar uma consulta", "pt-BR"),
        ("amanhã", "pt-BR"),
        ("Здравствуйте", "ru"),
        ("hello, I want to book", "en"),
        ("ok", None),
        ("2", None),
        ("👍", None),
    ],
)
def test_language_detection(text: str, language: str | None) -> None:
    assert detect_language(text) == language
