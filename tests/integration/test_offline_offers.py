"""The offline receptionist's offers as a patient meets them through /api/chat: numbered in date
order (the ranking chooses which times, not the order they are read in), and "1" / "a primeira"
/ "первый" pick what the patient saw as the first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import NOW, make_settings
from tests.migrated import migrated_sqlite
from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.clock import FixedClock
from voice_agent.services import build_services
from voice_agent.store.db import make_engine

LOCAL = ("127.0.0.1", 50000)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    engine = make_engine(migrated_sqlite(tmp_path / "offers.db"))
    services = build_services(
        make_settings(str(engine.url)),
        clock=FixedClock(NOW),
        alerter=ConsoleAlerter(),
        engine=engine,
    )
    with TestClient(create_app(services.settings, services), client=LOCAL) as test_client:
        yield test_client
    services.close()


def _chat(client: TestClient, session: str, phone: str):
    def say(text: str) -> dict:
        response = client.post(
            "/api/chat", json={"session_id": session, "text": text, "phone": phone}
        )
        assert response.status_code == 200, response.text
        return response.json()

    return say


def _offered(client: TestClient, session: str, phone: str, request: str) -> tuple[dict, object]:
    say = _chat(client, session, phone)
    turn = say(request)
    assert turn["state"]["stage"] == "offering", turn["reply"]
    return turn, say


@pytest.mark.parametrize(
    ("request_text", "first", "yes"),
    [
        (
            "Olá, meu nome é Carla Dias e quero marcar clínico geral na quarta ou sexta",
            "a primeira",
            "sim",
        ),
        (
            "Hi, my name is Emma Brown and I need a GP on Wednesday or Friday",
            "the first one",
            "yes",
        ),
        (
            "Здравствуйте, меня зовут Петрова Анна Сергеевна, хочу к терапевту в среду или пятницу",
            "первый",
            "да",
        ),
    ],
)
def test_offers_are_numbered_in_date_order_and_the_first_is_the_earliest(
    client: TestClient, request_text: str, first: str, yes: str
) -> None:
    turn, say = _offered(client, "dated", "+5511987654101", request_text)
    offers = turn["state"]["offers"]
    assert [o["option"] for o in offers] == [str(n) for n in range(1, len(offers) + 1)]
    moments = [(o["date"], o["time"]) for o in offers]
    if request_text.startswith("Olá"):  # this clinic ranks Wed 13:00 first, then 13:30, 08:00
        assert [o["hold"] for o in offers] != sorted(o["hold"] for o in offers)
    assert moments == sorted(moments)
    reply = turn["reply"]
    positions = [reply.index(f"{o['option']})") for o in offers]
    assert positions == sorted(positions)  # read in the order they are numbered
    assert say(first)["state"]["stage"] == "confirm"
    booked = say(yes)["state"]["appointment"]
    assert booked["action"] == "booked"
    assert (booked["date"], booked["time"]) == moments[0]


@pytest.mark.parametrize(
    ("request_text", "covered"),
    [
        (
            "Olá, meu nome é Camila Duarte, quero marcar cardiologia pela Unimed, sexta",
            "coberto pelo convênio",
        ),
        (
            "Hi, my name is Robert King, a cardiologist on Wednesday with Unimed",
            "covered by your plan",
        ),
        (
            "Здравствуйте, меня зовут Козлов Иван Петрович, к кардиологу в среду по Unimed",
            "покрывается полисом",
        ),
    ],
)
def test_a_zero_co_payment_reads_covered_in_the_offers_and_the_read_back(
    client: TestClient, request_text: str, covered: str
) -> None:
    turn, say = _offered(client, "covered", "+5511987654102", request_text)
    assert turn["reply"].count(covered) == len(turn["state"]["offers"]), turn["reply"]
    assert "0,00" not in turn["reply"] and "0.00" not in turn["reply"]
    read_back = say("1")
    assert read_back["state"]["stage"] == "confirm"
    assert covered in read_back["reply"] and "0,00" not in read_back["reply"]


@pytest.mark.parametrize(
    ("request_text", "doctor"),
    [
        (
            "Olá, meu nome é Paula Nunes, quero marcar com o cardiologista por causa de uma dor "
            "no peito que já passou",
            "Ana Souza",
        ),
        (
            "Hi, my name is Laura Bell, I want to see a cardiologist because of a chest pain "
            "that already went away",
            "Ana Souza",
        ),
        (
            "Здравствуйте, меня зовут Орлова Вера Павловна, хочу к кардиологу из-за боли в "
            "груди, которая уже прошла",
            "Ana Souza",
        ),
    ],
)
def test_a_past_symptom_books_normally_the_guard_decides_emergencies(
    client: TestClient, request_text: str, doctor: str
) -> None:
    turn, say = _offered(client, "past", "+5511987654103", request_text)
    assert turn["emergency"] is None
    assert "192" not in turn["reply"] and "SAMU" not in turn["reply"]
    assert doctor in turn["reply"]
    assert say("1")["state"]["stage"] == "confirm"  # and the booking goes on as usual


@pytest.mark.parametrize(
    "text", ["estou com uma dor no peito forte agora", "I have chest pain right now"]
)
def test_a_present_emergency_is_still_answered_by_the_guard(client: TestClient, text: str) -> None:
    reply = _chat(client, "now", "+5511987654104")(text)
    assert reply["emergency"] is not None and reply["engine"] == "safety"
    assert "192" in reply["reply"]


@pytest.mark.parametrize(
    "request_text",
    [
        "Olá, meu nome é Camila Ribeiro e quero marcar cardiologia",
        "Hi, my name is Camila Ribeiro and I need a cardiologist",
    ],
)
def test_a_patient_sharing_a_doctors_surname_in_the_same_message_is_not_asking_for_him(
    client: TestClient, request_text: str
) -> None:
    turn, _ = _offered(client, "surname", "+5511987654105", request_text)
    assert "Paulo Ribeiro" not in turn["reply"]  # the GP whose surname the patient shares
    assert "Ana Souza" in turn["reply"]  # cardiology was asked for


@pytest.mark.parametrize(
    ("greeting", "first_name"),
    [("Oi, meu nome é Rafael Souza", "Rafael"), ("Hello, my name is Emma Brown", "Emma")],
)
def test_a_first_hello_that_carries_the_name_registers_it(
    client: TestClient, greeting: str, first_name: str
) -> None:
    say = _chat(client, "hello", "+5511987654106")
    turn = say(greeting)
    assert first_name in turn["reply"] and turn["state"]["stage"] == "ask_email"
