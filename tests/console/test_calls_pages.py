"""Calls and conversations over HTTP: the list, search by phone, name and day, one chat's
timeline with its tools; a doctor sees only his patients' and gets 403 for anyone else's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.console.conftest import StaffClient
from voice_agent.services import Services
from voice_agent.store.db import transaction
from voice_agent.store.tables import Appointment

CARLA = "+5511987657101"
BRUNO = "+5511987657102"


def _chat(client: TestClient, session: str, text: str, phone: str) -> dict:
    response = client.post("/api/chat", json={"session_id": session, "text": text, "phone": phone})
    assert response.status_code == 200, response.text
    return response.json()


def _named(services: Services, phone: str, name: str) -> None:
    patient = asyncio.run(services.patients.find_or_create(phone, "pt-BR"))
    asyncio.run(services.patients.update(patient.id, full_name=name))


def _book(client: TestClient, session: str, phone: str, opening: str) -> dict:
    _chat(client, session, opening, phone)
    _chat(client, session, "pular", phone)
    _chat(client, session, "1", phone)
    return _chat(client, session, "sim", phone)


def test_the_list_search_and_a_timeline(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    desk = staff_client("receptionist")
    local = TestClient(desk.app, client=("127.0.0.1", 50000))
    booked = _book(
        local, "calls-1", CARLA, "Olá, meu nome é Carla Dias e quero marcar dermatologia amanhã"
    )
    assert booked["state"]["appointment"]["action"] == "booked"
    _named(console_services, BRUNO, "Bruno Dias")
    _chat(local, "calls-2", "Oi, quanto custa o eletrocardiograma?", BRUNO)

    page = desk.get("/console/calls").text
    assert "Carla Dias" in page and "Bruno Dias" in page and "agendou" in page
    by_phone = desk.get("/console/calls", params={"q": "(11) 98765-7101"}).text
    assert "Carla Dias" in by_phone and "Bruno Dias" not in by_phone
    by_name = desk.get("/console/calls", params={"q": "bruno"}).text
    assert "Bruno Dias" in by_name and "Carla Dias" not in by_name
    by_day = desk.get("/console/calls", params={"day_from": "2030-01-01"}).text
    assert "Carla Dias" not in by_day and "Nenhuma ligação ou conversa" in by_day
    bad = desk.get("/console/calls", params={"day_from": "31/12"}).text
    assert "Uma data não é válida" in bad

    link = (
        next(line for line in by_name.splitlines() if "/console/calls/chat/" in line)
        .split('href="')[1]
        .split('"')[0]
    )
    timeline = desk.get(link)
    assert timeline.status_code == 200
    assert "quanto custa o eletrocardiograma" in timeline.text
    assert "clinic_info" in timeline.text and "&#34;topic&#34;" in timeline.text
    assert desk.get("/console/calls/chat/conv-none").status_code == 404


def test_a_doctor_sees_only_his_patients(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    desk = staff_client("receptionist")
    local = TestClient(desk.app, client=("127.0.0.1", 50000))
    booked = _book(
        local, "calls-3", CARLA, "Olá, meu nome é Carla Dias e quero marcar dermatologia amanhã"
    )
    with transaction(console_services.engine) as session:
        doctor_id = session.execute(select(Appointment.doctor_id)).scalar_one()
    assert booked["state"]["appointment"]["action"] == "booked"
    _named(console_services, BRUNO, "Bruno Dias")
    _chat(local, "calls-4", "Oi, quanto custa o eletrocardiograma?", BRUNO)

    own = staff_client("doctor", doctor_id=doctor_id)
    page = own.get("/console/calls").text
    assert "Carla Dias" in page and "Bruno Dias" not in page
    other = staff_client(
        "doctor", doctor_id="dr-ana-souza" if doctor_id != "dr-ana-souza" else "dr-carlos-lima"
    )
    assert "Carla Dias" not in other.get("/console/calls").text
    chat_link = (
        next(line for line in page.splitlines() if "/console/calls/chat/" in line)
        .split('href="')[1]
        .split('"')[0]
    )
    assert own.get(chat_link).status_code == 200
    assert other.get(chat_link).status_code == 403
