"""Calls and text conversations as staff read them: one list with outcomes, searchable by the
patient's phone (keyed hash) and name (no case, no accents) and by day; one timeline with what
was said, every tool with its arguments and result, language switches; a doctor sees only his
patients. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from voice_agent.app import create_app
from voice_agent.history.activity import (
    ActivityQuery,
    activity,
    call_entries,
    chat_entries,
    patient_by_phone,
    patients_by_name,
    patients_of_doctor,
)
from voice_agent.services import Services
from voice_agent.store.db import transaction
from voice_agent.store.tables import Appointment, CallOutcome, CallRecord
from voice_agent.voice.call_records import CallRecorder

LOCAL = ("127.0.0.1", 50000)
CARLA = "+5511987655101"
IVAN = "+5511987655102"


@pytest.fixture
def client(any_services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(any_services.settings, any_services), client=LOCAL) as test:
        yield test


def _say(client: TestClient, session: str, text: str, phone: str) -> dict:
    response = client.post("/api/chat", json={"session_id": session, "text": text, "phone": phone})
    assert response.status_code == 200, response.text
    return response.json()


async def _call(services: Services, sid: str, phone: str) -> None:
    """A call as the bridge records it (record, transcript turns, a tool, the end)."""
    patient = await services.patients.find_or_create(phone, "ru")
    with transaction(services.engine) as session:
        session.add(
            CallRecord(
                call_sid=sid,
                caller=phone,
                patient_id=patient.id,
                language="ru",
                started_at=services.clock.now() - timedelta(days=1),
            )
        )
    recorder = CallRecorder(services.engine, sid)
    recorder.event("caller", "Здравствуйте, сколько стоит ЭКГ?")
    await recorder.tool("clinic_info", {"topic": "prices", "about": "ЭКГ"}, {"price": 120}, True)
    recorder.event("receptionist", "ЭКГ стоит 120 реалов.")
    await recorder.finish(CallOutcome.completed)


def test_one_list_searchable_by_patient_and_day(client: TestClient, any_services: Services) -> None:
    services = any_services
    _say(client, "a-1", "Olá, meu nome é Carla Dias e quero marcar dermatologia amanhã", CARLA)
    _say(client, "a-1", "pular", CARLA)
    _say(client, "a-1", "1", CARLA)
    booked = _say(client, "a-1", "sim", CARLA)
    assert booked["state"]["appointment"]["action"] == "booked"
    asyncio.run(_call(services, "CA" + "1" * 32, IVAN))
    asyncio.run(
        services.patients.update(asyncio.run(_patient(services, IVAN)), full_name="Иван Петров")
    )

    tz = services.clinic().tz
    rows = activity(services.engine, tz, ActivityQuery())
    assert [(r.kind, r.outcome) for r in rows] == [("chat", "booked"), ("call", "completed")]
    chat, call = rows
    assert (chat.name, chat.phone, chat.language, chat.channel) == (
        "Carla Dias",
        CARLA,
        "pt-BR",
        "web",
    )
    assert (call.name, call.phone, call.language) == ("Иван Петров", IVAN, "ru")

    carla = patient_by_phone(services.engine, CARLA)
    assert carla is not None
    only = activity(services.engine, tz, ActivityQuery(patient_ids={carla}))
    assert [r.id for r in only] == [chat.id]
    by_name = patients_by_name(services.engine, "carla DIAS")
    assert by_name == {carla}
    assert patients_by_name(services.engine, "иван") == {call.patient_id}
    today = services.clock.now().astimezone(tz).date()
    assert [r.kind for r in activity(services.engine, tz, ActivityQuery(day_from=today))] == [
        "chat"
    ]
    yesterday = today - timedelta(days=1)
    assert [r.kind for r in activity(services.engine, tz, ActivityQuery(day_to=yesterday))] == [
        "call"
    ]
    assert activity(services.engine, tz, ActivityQuery(day_from=date(2030, 1, 1))) == []

    # A doctor's patients: those with an appointment with him.
    with transaction(services.engine) as session:
        doctor = session.execute(select(Appointment.doctor_id)).scalar_one()
    assert patients_of_doctor(services.engine, doctor) == {carla}
    assert patients_of_doctor(services.engine, "dr-nobody") == set()


async def _patient(services: Services, phone: str) -> str:
    patient = await services.patients.find_by_phone(phone)
    assert patient is not None
    return patient.id


def test_a_chat_timeline_has_turns_tools_and_language_switches(
    client: TestClient, any_services: Services
) -> None:
    _say(client, "a-2", "Olá", CARLA)
    _say(client, "a-2", "Hello, how much is an echocardiogram please?", CARLA)
    [row] = activity(any_services.engine, any_services.clinic().tz, ActivityQuery())
    timeline = chat_entries(any_services.engine, row.id)
    assert timeline is not None
    kinds = [entry.kind for entry in timeline.entries]
    assert kinds[:2] == ["patient", "receptionist"]
    assert "language" in kinds
    switch = next(e for e in timeline.entries if e.kind == "language")
    assert switch.text == "pt-BR → en"
    tools = [e for e in timeline.entries if e.kind == "tool"]
    assert tools and tools[0].tool == "clinic_info" and tools[0].ok
    assert tools[0].arguments["topic"] == "prices" and tools[0].output
    assert chat_entries(any_services.engine, "conv-nothing") is None


def test_a_call_timeline(any_services: Services) -> None:
    sid = "CA" + "2" * 32
    asyncio.run(_call(any_services, sid, IVAN))
    timeline = call_entries(any_services.engine, sid)
    assert timeline is not None
    assert [e.kind for e in timeline.entries] == ["patient", "tool", "receptionist"]
    assert timeline.entries[1].arguments == {"topic": "prices", "about": "ЭКГ"}
    assert timeline.row.outcome == "completed" and timeline.row.phone == IVAN
    assert call_entries(any_services.engine, "CAnone") is None
