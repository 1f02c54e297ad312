"""Phrasings the offline receptionist met from outside, through /api/chat: a name given while
the phone number is asked for (it was dropped, and asked for again), a birth date said unprompted
(taken for a day to book), a specialty the clinic does not offer (the whole price list, or the
staff), a price asked about the service in hand ("сколько это будет стоить?": not understood)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from voice_agent.app import create_app
from voice_agent.services import Services
from voice_agent.store.db import read_session
from voice_agent.store.tables import Patient

LOCAL = ("127.0.0.1", 50000)  # the web chat serves this machine only unless a token is set


@pytest.fixture
def client(any_services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(any_services.settings, any_services), client=LOCAL) as client:
        yield client


def _say(client: TestClient, session: str, text: str, language: str = "pt-BR") -> dict:
    response = client.post(
        "/api/chat", json={"session_id": session, "text": text, "language": language}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _names(services: Services) -> list[str]:
    with read_session(services.engine) as session:
        return [p.full_name or "" for p in session.execute(select(Patient)).scalars()]


@pytest.mark.parametrize(
    ("language", "request_text", "name", "phone", "thanks", "address"),
    [
        ("pt-BR", "quero marcar dermatologia", "meu nome é João Pereira", "11 98765-4001",
         "Obrigada, João", "João Pereira"),
        ("en", "I'd like to book a dermatology appointment", "John Smith", "+1 415 555 0100",
         "Thank you, John", "John Smith"),
        ("ru", "хочу записаться к дерматологу", "Иванова Мария Петровна", "+7 916 123-45-67",
         "Спасибо, Мария Петровна", "Иванова Мария Петровна"),
    ],
)  # fmt: skip
def test_a_name_given_before_the_phone_is_registered_with_it(
    client: TestClient,
    any_services: Services,
    language: str,
    request_text: str,
    name: str,
    phone: str,
    thanks: str,
    address: str,
) -> None:
    assert _say(client, "s1", request_text, language)["state"]["stage"] == "ask_phone"
    noted = _say(client, "s1", name, language)
    assert noted["state"]["stage"] == "ask_phone"
    assert thanks in noted["reply"]
    offered = _say(client, "s1", phone, language)
    assert offered["state"]["stage"] == "offering", offered["reply"]
    assert thanks in offered["reply"]
    assert "register_patient" in offered["tool_calls"]
    assert _names(any_services) == [address]


def test_a_name_written_with_the_phone_is_registered(
    client: TestClient, any_services: Services
) -> None:
    _say(client, "s2", "quero marcar dermatologia")
    offered = _say(client, "s2", "Maria da Silva, 11 98765-4000")
    assert offered["state"]["stage"] == "offering", offered["reply"]
    assert "Obrigada, Maria" in offered["reply"]
    assert _names(any_services) == ["Maria da Silva"]


@pytest.mark.parametrize(
    "text", ["meu telefone é fixo", "não tenho celular", "Só Tenho Fixo", "pode ser a primeira"]
)
def test_what_is_not_a_name_is_not_taken_for_one(
    client: TestClient, any_services: Services, text: str
) -> None:
    _say(client, "s3", "quero marcar dermatologia")
    reply = _say(client, "s3", text)
    assert reply["state"]["stage"] == "ask_phone"
    assert "Obrigada" not in reply["reply"]
    asked = _say(client, "s3", "11 98765-4002")
    assert asked["state"]["stage"] == "ask_name"  # asked for, not invented
    assert not any(_names(any_services))


def test_a_birth_date_said_among_the_offers_is_not_a_day_to_book(client: TestClient) -> None:
    _say(client, "s4", "quero marcar dermatologia")
    _say(client, "s4", "Maria da Silva, 11 98765-4003")
    reply = _say(client, "s4", "03/04/1961")
    assert "hoje" not in reply["reply"].lower()  # was "Para hoje não consigo mais..."
    assert "find_slots" not in reply["tool_calls"]
    assert reply["state"]["stage"] == "offering"


@pytest.mark.parametrize(
    ("language", "question", "said", "listed"),
    [
        ("pt-BR", "quanto custa a consulta com o ortopedista particular?",
         "não temos ortopedia", "Atendemos: consulta de cardiologia"),
        ("en", "do you have a dentist?", "we don't offer dentistry",
         "What we do offer: cardiology consultation"),
        ("ru", "а гинеколог у вас есть?", "гинеколога у нас в клинике нет",
         "У нас есть: консультация кардиолога"),
    ],
)  # fmt: skip
def test_a_specialty_the_clinic_does_not_offer_is_said_plainly(
    client: TestClient, language: str, question: str, said: str, listed: str
) -> None:
    """It answered with every price of the clinic (a price question) or offered to pass the
    question to the staff (a "do you have" question)."""
    reply = _say(client, "s5", question, language)
    assert said in reply["reply"] and listed in reply["reply"]
    assert "R$" not in reply["reply"] and not reply["handoff"]
    assert reply["state"]["stage"] == "idle"


def test_booking_a_specialty_the_clinic_does_not_offer_asks_for_one_it_does(
    client: TestClient, any_services: Services
) -> None:
    _say(client, "s6", "quero marcar dermatologia")
    _say(client, "s6", "Maria da Silva, 11 98765-4006")  # offers of dermatology
    reply = _say(client, "s6", "quero marcar com ortopedista")
    assert "não temos ortopedia" in reply["reply"]
    assert reply["state"]["stage"] == "ask_service"  # not dermatology again
    asked = _say(client, "s6", "e oftalmologista, tem?")
    assert "não temos oftalmologia" in asked["reply"]
    assert asked["reply"].count("consulta de cardiologia") == 1  # listed once
    assert _names(any_services) == ["Maria da Silva"]


@pytest.mark.parametrize(
    ("language", "request_text", "question", "price"),
    [
        ("ru", "хочу записаться к педиатру", "а сколько это будет стоить?", "R$ 350,00"),
        ("pt-BR", "quero marcar dermatologia", "e quanto vai ficar?", "R$ 400,00"),
    ],
)
def test_the_price_of_the_service_in_hand(
    client: TestClient, language: str, request_text: str, question: str, price: str
) -> None:
    _say(client, "s7", request_text, language)
    _say(
        client,
        "s7",
        "Maria da Silva, 11 98765-4007"
        if language == "pt-BR"
        else "Иванова Мария Петровна, +7 916 123-45-67",
        language,
    )
    reply = _say(client, "s7", question, language)
    assert price in reply["reply"], reply["reply"]
    assert "R$ 450,00" not in reply["reply"]  # cardiology: not the whole price list
    assert reply["state"]["stage"] == "offering" and not reply["handoff"]


def test_a_question_at_the_name_question_is_not_taken_for_a_bad_name(client: TestClient) -> None:
    """It answered "Não entendi seu nome" to a question about blood tests."""
    asked = _say(client, "s8", "quero marcar uma consulta")
    assert asked["state"]["stage"] == "ask_phone"
    assert _say(client, "s8", "11 98765-4008")["state"]["stage"] == "ask_name"
    reply = _say(client, "s8", "vocês fazem exame de sangue?")
    assert "não tenho essa informação" in reply["reply"] and "nome completo" in reply["reply"]
    assert "Não entendi seu nome" not in reply["reply"]
    assert reply["state"]["stage"] == "ask_name"


def test_sooner_searches_before_the_offers_and_says_when_there_is_nothing(
    client: TestClient,
) -> None:
    """ "Tem mais cedo?" gave three later times of the same day (read as "tem mais")."""
    _say(client, "s9", "quero marcar um check-up no dia 26")  # the clock: Monday, November 23
    first = _say(client, "s9", "Paulo Santos, 11 98765-4009")
    assert first["state"]["stage"] == "offering" and "26 de novembro" in first["reply"]
    sooner = _say(client, "s9", "tem mais cedo?")
    assert "find_slots" in sooner["tool_calls"]
    assert "24 de novembro" in sooner["reply"] and "26 de novembro" not in sooner["reply"]
    nothing = _say(client, "s9", "tem mais cedo?")  # the 24th is the first bookable day
    assert "Antes desses não tenho horário livre" in nothing["reply"]
    assert "24 de novembro" in nothing["reply"] and nothing["state"]["stage"] == "offering"
    chosen = _say(client, "s9", "a primeira")
    assert chosen["state"]["stage"] == "confirm" and "24 de novembro" in chosen["reply"]
    assert "marcado" in _say(client, "s9", "sim")["reply"]


@pytest.mark.parametrize(
    ("language", "bye", "said", "not_said"),
    [
        ("pt-BR", "tchau", "Até logo", "Por nada"),
        ("pt-BR", "obrigada, tchau", "Por nada", "xyz"),
        ("en", "bye", "Goodbye", "welcome"),
        ("ru", "до свидания", "До свидания", "Пожалуйста"),
    ],
)
def test_a_goodbye_is_not_answered_with_you_are_welcome(
    client: TestClient, language: str, bye: str, said: str, not_said: str
) -> None:
    reply = _say(client, "s10", bye, language)["reply"]
    assert said in reply and not_said not in reply, reply


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Hi, I'm looking for a dermatologist next week", "en"),
        ("hello, this is urgent, I need a pediatrician", "en"),
    ],
)
def test_an_ordinary_sentence_is_not_registered_as_the_name(
    client: TestClient, any_services: Services, text: str, language: str
) -> None:
    """ "Thank you, Looking! You are registered." — the words after "I'm" became the name."""
    response = client.post(
        "/api/chat",
        json={"session_id": "s11", "text": text, "phone": "+5511987650091", "language": language},
    )
    reply = response.json()
    assert reply["state"]["stage"] == "ask_name", reply["reply"]
    assert "register_patient" not in reply["tool_calls"]
    assert not any(_names(any_services))


@pytest.mark.parametrize(
    ("language", "text", "note"),
    [
        ("pt-BR", "preciso de um cardiologista com urgência", "Se for uma emergência, ligue"),
        ("ru", "мне срочно нужен терапевт", "Если это неотложный случай, звоните"),
        ("en", "I need to see a doctor asap", "If this is an emergency, call"),
    ],
)
def test_an_urgent_request_gets_the_emergency_number_first(
    client: TestClient, language: str, text: str, note: str
) -> None:
    """Urgency with no symptom named is no red flag, but the patient hears whom to call if it is
    one before the booking goes on; "não é urgente" / "не срочно" does not."""
    reply = _say(client, "s12", text, language)
    assert note in reply["reply"] and "192" in reply["reply"], reply["reply"]
    assert reply["emergency"] is None
    calm = {"pt-BR": "não é urgente", "ru": "это не срочно", "en": "it's not urgent"}[language]
    assert note not in _say(client, "s12", calm, language)["reply"]


def _book_here(client: TestClient, session: str, text: str, language: str = "pt-BR") -> None:
    _say(client, session, text, language)
    _say(client, session, "1", language)
    yes = {"pt-BR": "sim", "en": "yes", "ru": "да"}[language]
    assert "book_appointment" in _say(client, session, yes, language)["tool_calls"]


@pytest.mark.parametrize(
    ("language", "booking", "postpone", "after"),
    [
        ("pt-BR", "sou a Beatriz Lima, 11 98765-4012, quero dermatologia na terça",
         "não vou conseguir ir, preciso adiar pra semana seguinte", "1 de dezembro"),
        ("en", "I'm Tom Baker, 11 98765-4013, I need a GP on Wednesday",
         "can I postpone it to next week?", "November 30"),
    ],
)  # fmt: skip
def test_postponing_offers_times_after_the_appointment(
    client: TestClient, language: str, booking: str, postpone: str, after: str
) -> None:
    """ "Adiar pra semana seguinte" of an appointment next week (the clock: Monday, November
    23) offered that same week, the appointment's own day included; and "não vou conseguir ir"
    was read as a "no" that dropped the move."""
    _book_here(client, "s13", booking, language)
    moved = _say(client, "s13", postpone, language)
    assert moved["state"]["stage"] == "offering", moved["reply"]
    assert after in moved["reply"], moved["reply"]  # the week after the appointment's


def test_any_of_the_offers_and_pode_ser(client: TestClient) -> None:
    """ "Qualquer um" was not understood and "pode ser" was taken for a question."""
    _say(client, "s14", "Maria da Silva, 11 98765-4014, quero marcar dermatologia")
    chosen = _say(client, "s14", "qualquer um")
    assert chosen["state"]["stage"] == "confirm", chosen["reply"]
    assert "marcado" in _say(client, "s14", "pode ser")["reply"]


def test_what_a_question_was_about_is_what_the_booking_is_for(client: TestClient) -> None:
    """ "Do you take Amil for pediatrics?" then "can I bring my daughter on Friday?" asked
    "which service?" (the question's service and plan were forgotten)."""
    _say(client, "s15", "Hi there! Do you take Amil insurance for pediatrics?", "en")
    _say(client, "s15", "great, can I bring my daughter in on Friday morning?", "en")
    offers = _say(client, "s15", "Laura Gomez, 11 98765-4015", "en")
    assert offers["state"]["stage"] == "offering", offers["reply"]
    assert "pediatric consultation" in offers["reply"] and "R$ 30,00" in offers["reply"]  # Amil


@pytest.mark.parametrize(
    ("language", "question", "said"),
    [
        ("pt-BR", "vocês aceitam Hapvida?", "Não trabalhamos com Hapvida. Aceitamos: Unimed"),
        ("en", "do you accept Cigna?", "We don't work with Cigna. We accept: Unimed"),
        ("ru", "принимаете Альфастрахование?", "С «АльфаСтрахование» мы не работаем"),
    ],
)
def test_a_plan_the_clinic_does_not_take_is_said_plainly(
    client: TestClient, language: str, question: str, said: str
) -> None:
    """It said "I don't have that information" and offered the staff: the clinic's list of
    plans is the answer."""
    reply = _say(client, "s16", question, language)
    assert said in reply["reply"] and not reply["handoff"], reply["reply"]
    assert reply["state"]["stage"] == "idle"


def test_booking_with_a_plan_the_clinic_does_not_take_goes_on_as_private(
    client: TestClient,
) -> None:
    reply = _say(client, "s17", "Maria da Silva, 11 98765-4017, quero clínico geral pelo Hapvida")
    assert "Não trabalhamos com Hapvida" in reply["reply"]
    assert reply["state"]["stage"] == "offering" and "R$ 300,00" in reply["reply"]  # private
    unknown = _say(client, "s18", "vocês aceitam cartão de crédito?")
    assert "não tenho essa informação" in unknown["reply"]  # payment: the staff's to answer


@pytest.mark.parametrize(
    ("language", "booking", "confirm", "confirmed", "ask_time"),
    [
        ("en", "I'm Tom Baker, 11 98765-4018, I need a GP on Wednesday",
         "I'll be there, thanks", "confirmed", "what time is my appointment?"),
        ("ru", "Смирнова Анна, +7 916 123-45-18, запишите к терапевту на среду",
         "обязательно приду", "подтверждён", "во сколько у меня приём?"),
        ("pt-BR", "sou a Beatriz Lima, 11 98765-4018, quero clínico geral na quarta",
         "estarei lá, obrigada", "confirmad", "que horas é minha consulta?"),
    ],
)  # fmt: skip
def test_attending_and_asking_the_time(
    client: TestClient, language: str, booking: str, confirm: str, confirmed: str, ask_time: str
) -> None:
    """ "I'll be there, thanks" got "You're welcome! Goodbye!"; "во сколько у меня приём?"
    started a new booking."""
    _book_here(client, "s19", booking, language)
    reply = _say(client, "s19", confirm, language)
    assert "confirm_appointment" in reply["tool_calls"] and confirmed in reply["reply"]
    listed = _say(client, "s19", ask_time, language)
    assert "list_my_appointments" in listed["tool_calls"], listed["reply"]
    assert listed["state"]["stage"] != "offering"
