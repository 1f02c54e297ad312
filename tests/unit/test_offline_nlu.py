"""The offline receptionist's reading of messages: intents, clinic entities, options, and the
date/time expressions of the issue, relative to Monday 23 November 2026."""

from __future__ import annotations

from datetime import date, time

import pytest
import yaml

from tests.conftest import RUSSIAN_CLINIC_FILE
from voice_agent.clinic import Clinic, load_clinic_file
from voice_agent.clinic.loader import parse_clinic
from voice_agent.conversation.language import detect_language
from voice_agent.conversation.offline.nlu import TimeWish, extract_name, name_key, parse
from voice_agent.settings import DEFAULT_CLINIC_FILE

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
        ("ru", "в четверг после обеда", {"weekdays": ["thu"], "earliest": "13:00"}),
        ("ru", "днём, после обеда", {"periods": ["afternoon"], "earliest": "13:00"}),
        ("ru", "после обеда, после 15", {"earliest": "15:00"}),
        ("pt-BR", "quinta depois do almoço", {"weekdays": ["thu"], "earliest": "13:00"}),
        ("pt-BR", "após o almoço", {"earliest": "13:00"}),
        ("en", "Friday after lunch", {"weekdays": ["fri"], "earliest": "13:00"}),
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


# Questions: answered from the clinic data, or honestly not known ------------------------------


@pytest.mark.parametrize(
    ("language", "text", "intents", "about"),
    [
        ("pt-BR", "vocês atendem aos sábados?", {"ask_hours"}, None),
        ("pt-BR", "abrem no domingo?", {"ask_hours"}, None),
        ("ru", "вы работаете в субботу?", {"ask_hours"}, None),
        ("en", "Are you open on Saturdays?", {"ask_hours"}, None),
        ("en", "Does Dr. Lima work on Saturdays?", {"ask_doctors"}, "dr-carlos-lima"),
        ("ru", "вы принимаете детей?", {"ask_services"}, "pediatria-consulta"),
        ("pt-BR", "vocês atendem crianças?", {"ask_services"}, "pediatria-consulta"),
        ("en", "do you see kids?", {"ask_services"}, "pediatria-consulta"),
        ("en", "do you accept Amil?", {"ask_insurances"}, "amil"),
        ("ru", "вы работаете с Unimed?", {"ask_insurances"}, "unimed"),
        ("en", "what's your phone number?", {"ask_address"}, None),
        ("ru", "какой у вас телефон?", {"ask_address"}, None),
        ("pt-BR", "qual o telefone?", {"ask_address"}, None),
    ],
)
def test_questions_the_clinic_data_answers(
    sample_clinic: Clinic, language: str, text: str, intents: set[str], about: str | None
) -> None:
    found = parse(text, language, sample_clinic, TODAY)
    assert found.intents == intents
    assert not found.unknown_question
    if about:
        assert about in (found.service_id, found.doctor_id, found.insurance_id)


@pytest.mark.parametrize(
    ("language", "text", "unknown"),
    [
        ("en", "do you have parking?", True),
        ("en", "Is there wifi in the waiting room", True),
        ("ru", "у вас есть парковка?", True),
        ("ru", "можно ли прийти с собакой", True),
        ("pt-BR", "tem estacionamento?", True),
        ("pt-BR", "vocês aceitam cartão?", True),
        ("en", "Hi! do you take credit cards?", True),
        # Not unknown: gibberish, requests, answers, and questions we do answer.
        ("en", "hmm 漢字 ???", False),
        ("en", "can I book a cardiologist tomorrow?", False),
        ("pt-BR", "pode ser sexta?", False),
        ("ru", "можно в четверг?", False),
        ("en", "how much is an ECG?", False),
        ("en", "any other?", False),
    ],
)
def test_unknown_questions(sample_clinic: Clinic, language: str, text: str, unknown: bool) -> None:
    assert parse(text, language, sample_clinic, TODAY).unknown_question is unknown


# Doctors named in another script or case ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "doctor"),
    [
        ("хочу к доктору Танаке", "dr-roberto-tanaka"),
        ("запишите к Ане Соузе", "dr-ana-souza"),
        ("Ана Соуза, пожалуйста", "dr-ana-souza"),
        ("можно у Лимы?", "dr-carlos-lima"),
        ("к доктору Рибейро", "dr-paulo-ribeiro"),
        ("к Фернанде Алвес", "dra-fernanda-alves"),
        ("Dr. Tanaka please", "dr-roberto-tanaka"),
        ("хочу лимонад", None),  # "лимон…" is not an inflection of Lima
        ("Лима или Танака", None),  # two doctors: nobody in particular
    ],
)
def test_doctor_names_across_scripts(sample_clinic: Clinic, text: str, doctor: str | None) -> None:
    language = "ru" if any("а" <= ch <= "я" for ch in text.lower()) else "en"
    assert parse(text, language, sample_clinic, TODAY).doctor_id == doctor


def test_a_cyrillic_spelling_of_ana_silva(sample_clinic: Clinic) -> None:
    data = yaml.safe_load(DEFAULT_CLINIC_FILE.read_text(encoding="utf-8"))
    data["doctors"][0]["name"] = "Dra. Ana Silva"
    clinic = parse_clinic(yaml.safe_dump(data, allow_unicode=True))
    for text in ("к доктору Силва", "Ана Силва", "запишите к Силве", "Dra. Ana Silva"):
        assert parse(text, "ru", clinic, TODAY).doctor_id == "dr-ana-souza", text


def test_russian_names_surname_first_and_in_latin_letters() -> None:
    clinic = load_clinic_file(RUSSIAN_CLINIC_FILE)
    assert parse("к Ивановой на завтра", "ru", clinic, TODAY).doctor_id == "ivanova"
    assert parse("к неврологу Смирнову", "ru", clinic, TODAY).doctor_id == "smirnov"
    assert parse("Dr. Smirnov, please", "en", clinic, TODAY).doctor_id == "smirnov"
    assert parse("к Марии", "ru", clinic, TODAY).doctor_id is None  # a first name alone


@pytest.mark.parametrize(
    ("word", "key"),
    [("Силва", "silva"), ("Соуза", "sousa"), ("Souza", "sousa"), ("Жулиана", "juliana")],
)
def test_name_keys(word: str, key: str) -> None:
    assert name_key(word) == key


# "Other times": after the last offer ------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("pt-BR", "outros"),
        ("pt-BR", "tem outros horários?"),
        ("ru", "другие"),
        ("ru", "есть ещё варианты?"),
        ("en", "any other"),
        ("en", "other times please"),
    ],
)
def test_asking_for_other_times(sample_clinic: Clinic, language: str, text: str) -> None:
    assert "more" in parse(text, language, sample_clinic, TODAY, expecting_choice=True).intents


def test_after_the_last_offer_keeps_the_wishes() -> None:
    wish = TimeWish(periods=["afternoon"], exclude_weekdays=["fri"])
    rest, later = wish.after(date(2026, 11, 24), time(14, 30))
    assert rest is not None and later is not None
    assert rest.to_args() == {
        "dates": ["2026-11-24"],
        "exclude_weekdays": ["fri"],
        "periods": ["afternoon"],
        "earliest": "14:31",
    }
    assert later.to_args() == {
        "date_from": "2026-11-25",
        "exclude_weekdays": ["fri"],
        "periods": ["afternoon"],
    }


def test_after_the_last_offer_when_the_wishes_leave_nothing() -> None:
    # Only the 24th was wanted: nothing after it on later days.
    rest, later = TimeWish(dates=[date(2026, 11, 24)]).after(date(2026, 11, 24), time(9, 0))
    assert rest is not None and rest.to_args() == {"dates": ["2026-11-24"], "earliest": "09:01"}
    assert later is None
    # Mornings until 12:00 and the last offer at 11:59: only later days are left.
    rest, later = TimeWish(latest=time(12, 0)).after(date(2026, 11, 24), time(11, 59))
    assert rest is None
    assert later is not None and later.to_args() == {"date_from": "2026-11-25", "latest": "12:00"}
    # A later earliest wins over the offer's time; an excluded day has no rest.
    rest, _ = TimeWish(earliest=time(15, 0)).after(date(2026, 11, 24), time(9, 0))
    assert rest is not None and rest.earliest == time(15, 0)
    rest, later = TimeWish(exclude_weekdays=["tue"]).after(date(2026, 11, 24), time(9, 0))
    assert rest is None and later is not None
