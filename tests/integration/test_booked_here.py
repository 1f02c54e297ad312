"""What a conversation booked, it may change without an identity check: "I just booked it, move
it to Wednesday" on the web chat (an unverified number) went to the identity check, and with no
codes to send and no birth date on file it could not go on. Everything else still needs the
check: another conversation with the same number, the caller's older appointments, and an
appointment id the model names that this conversation did not book."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from voice_agent.app import create_app
from voice_agent.scheduling.booking import BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services
from voice_agent.store.db import transaction
from voice_agent.store.tables import Appointment, AppointmentStatus
from voice_agent.tools.catalog import build_registry
from voice_agent.tools.context import ToolContext

LOCAL = ("127.0.0.1", 50000)
PHONE = "+5511987650031"
REGISTRY = build_registry()


@pytest.fixture
def client(any_services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(any_services.settings, any_services), client=LOCAL) as client:
        yield client


def _say(client: TestClient, session: str, text: str) -> dict:
    response = client.post(
        "/api/chat",
        json={"session_id": session, "text": text, "phone": PHONE, "language": "pt-BR"},
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _book(client: TestClient, session: str) -> None:
    _say(client, session, "sou a Fernanda Costa, queria marcar clínico geral na quarta de tarde")
    _say(client, session, "1")
    assert "book_appointment" in _say(client, session, "sim")["tool_calls"]


async def _older_appointment(services: Services) -> str:
    """One booked before, elsewhere (by phone with the staff, say)."""
    patient = await services.patients.find_or_create(PHONE, "pt-BR")
    offers = await services.booking.find_offers(
        "cardio-consulta", Preferences(), holder="elsewhere"
    )
    request = BookingRequest(patient_id=patient.id, channel="voice", holder="elsewhere")
    return (await services.booking.book(request, offers[0].hold_id)).id


def test_what_was_booked_here_is_moved_here(client: TestClient) -> None:
    _book(client, "web-1")
    asked = _say(client, "web-1", "preciso remarcar essa consulta")
    assert asked["state"]["stage"] == "ask_wish", asked["reply"]
    assert "identidade" not in asked["reply"]
    _say(client, "web-1", "quinta de manhã")
    _say(client, "web-1", "1")
    moved = _say(client, "web-1", "sim")
    assert "reschedule_appointment" in moved["tool_calls"] and "remarcado" in moved["reply"]
    other = _say(client, "web-2", "quero cancelar minha consulta")  # same number, new chat
    assert "cancel_appointment" not in other["tool_calls"]
    assert "confirmar sua identidade" in other["reply"]


async def test_older_appointments_stay_behind_the_check(
    client: TestClient, any_services: Services
) -> None:
    older = await _older_appointment(any_services)
    _book(client, "web-3")
    listed = _say(client, "web-3", "quais são minhas consultas?")
    assert "clínica geral" in listed["reply"] and "cardiologia" not in listed["reply"]
    assert "marcadas nesta conversa" in listed["reply"]
    # The model names the older appointment's id: refused, nothing cancelled.
    conversation_id = _booking_conversation(any_services)
    ctx = ToolContext(
        services=any_services,
        channel="web",
        conversation_id=conversation_id,
        caller_phone=PHONE,
        language="pt-BR",
    )
    arguments = {"appointment_id": older, "confirmed_by_patient": True}
    refused = await REGISTRY.dispatch("cancel_appointment", arguments, ctx)
    assert refused.error_code == "verify_first", refused.output
    with transaction(any_services.engine) as session:
        row = session.get(Appointment, older)
        assert row is not None and row.status == AppointmentStatus.booked


def _booking_conversation(services: Services) -> str:
    """The conversation that booked through the chat (its request key names it)."""
    with transaction(services.engine) as session:
        keys = {
            key.split(":book:")[0]
            for key in session.execute(select(Appointment.request_key)).scalars()
            if key and ":book:" in key
        }
    assert len(keys) == 1, keys
    return keys.pop()
