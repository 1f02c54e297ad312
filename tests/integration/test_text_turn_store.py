"""What a text turn reads and writes around the model, against the local fake of the Responses
API: the caller's name read by patient id with the state (a rename by the model or by the staff
shows in the next turn's instructions), the clinic read every turn (a saved version reaches the
next turn), and the state saved with the turn's timeline in one commit that survives another
writer taking the timeline's numbers and a process restart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from tests.conftest import NOW, make_settings
from tests.fakes.openai_responses import Call, FakeOpenAIResponses, Say
from tests.integration.test_llm_text import PHONE
from voice_agent.alerts import ConsoleAlerter
from voice_agent.clinic.versions import save_version
from voice_agent.clock import FixedClock
from voice_agent.conversation.engine import ConversationService
from voice_agent.services import Services, build_services
from voice_agent.store.db import transaction
from voice_agent.store.worklist_tables import ConversationTurn


@pytest.fixture
def services(
    db_kind: str, make_engine_for: Callable[[str], Engine], fake: FakeOpenAIResponses
) -> Services:
    """On SQLite and, when configured, on PostgreSQL (the clash is a rolled-back transaction)."""
    engine = make_engine_for(db_kind)
    settings = make_settings(
        str(engine.url),
        openai_api_key="sk-test",
        openai_base_url=fake.base_url,
        text_model=fake.model,
    )
    return build_services(settings, clock=FixedClock(NOW), alerter=ConsoleAlerter(), engine=engine)


def _name_line(body: dict[str, Any]) -> str:
    [line] = [ln for ln in body["instructions"].splitlines() if "Nome no cadastro" in ln]
    return line


def _timeline(services: Services) -> list[tuple[int, str, str]]:
    with transaction(services.engine) as session:
        rows = session.execute(select(ConversationTurn).order_by(ConversationTurn.seq)).scalars()
        return [(row.seq, row.kind, row.content) for row in rows]


async def test_a_rename_by_the_model_or_the_staff_names_the_caller_in_the_next_turn(
    fake: FakeOpenAIResponses, services: Services
) -> None:
    conversations = ConversationService(services)
    fake.script = [
        Call([("register_patient", {"full_name": "Maria Silva", "email": None})]),
        Say("Prazer, Maria!"),
        Call([("update_patient", {"full_name": "Maria Souza"})]),
        Say("Corrigi o seu nome."),
        Say("Em que posso ajudar?"),
        Say("Claro."),
    ]
    say = "whatsapp", PHONE
    await conversations.handle(*say, "Oi, sou Maria Silva", phone=PHONE, phone_verified=True)
    await conversations.handle(*say, "Meu nome é Maria Souza, corrija por favor", phone=PHONE)
    await conversations.handle(*say, "Obrigada, tudo certo", phone=PHONE)
    patient = await services.patients.find_by_phone(PHONE)
    assert patient is not None
    await services.patients.update(patient.id, full_name="Maria Oliveira")  # at the front desk
    reply = await conversations.handle(*say, "Quero marcar uma consulta", phone=PHONE)
    assert reply.engine == "llm" and fake.problems == []
    turns = [r for r in fake.requests if r["input"][-1].get("role") == "user"]
    assert [_name_line(r) for r in turns] == [
        "- Nome no cadastro: —.",  # first contact: nobody on file
        "- Nome no cadastro: Maria Silva.",
        "- Nome no cadastro: Maria Souza.",
        "- Nome no cadastro: Maria Oliveira.",
    ]


async def test_a_greeting_makes_no_patient_row_and_a_registration_names_the_timeline(
    fake: FakeOpenAIResponses, services: Services
) -> None:
    """A patient row is made when a tool needs one, not to fill the instructions' name line;
    the timeline's rows name the patient from the turn that registered them on."""
    conversations = ConversationService(services)
    fake.script = [
        Say("Olá! Em que posso ajudar?"),
        Call([("register_patient", {"full_name": "Maria Silva", "email": None})]),
        Say("Prazer, Maria!"),
        Say("Claro."),
    ]
    say = "whatsapp", PHONE
    await conversations.handle(*say, "Bom dia", phone=PHONE, phone_verified=True)
    assert await services.patients.find_by_phone(PHONE) is None
    await conversations.handle(*say, "Sou Maria Silva", phone=PHONE, phone_verified=True)
    patient = await services.patients.find_by_phone(PHONE)
    assert patient is not None and patient.full_name == "Maria Silva"
    await conversations.handle(*say, "Quero marcar", phone=PHONE, phone_verified=True)
    assert fake.problems == []
    with transaction(services.engine) as session:
        rows = session.execute(select(ConversationTurn).order_by(ConversationTurn.seq)).scalars()
        owners = [(row.kind, row.patient_id) for row in rows]
    assert owners == [
        ("patient", None),
        ("receptionist", None),
        ("patient", patient.id),
        ("tool", patient.id),
        ("receptionist", patient.id),
        ("patient", patient.id),
        ("receptionist", patient.id),
    ]
    assert _name_line(fake.requests[-1]) == "- Nome no cadastro: Maria Silva."


async def test_a_saved_clinic_version_reaches_the_next_turns_instructions(
    fake: FakeOpenAIResponses, services: Services
) -> None:
    conversations = ConversationService(services)
    fake.script = [Say("Olá!"), Say("Claro.")]
    before = services.clinic()
    await conversations.handle("web", "s1", "Olá, bom dia", phone=PHONE)
    save_version(
        services.engine, before.model_copy(update={"phone": "+55 11 4000-1234"}), source="console"
    )
    services.clinic.reload()  # what the console's process does after saving
    await conversations.handle("web", "s1", "Qual o telefone da clínica?", phone=PHONE)
    first, second = fake.requests
    assert before.phone in first["instructions"] and "+55 11 4000-1234" not in first["instructions"]
    assert "+55 11 4000-1234" in second["instructions"]


async def test_the_timeline_goes_on_after_another_writer_and_a_restart(
    fake: FakeOpenAIResponses, services: Services
) -> None:
    fake.script = [Say("Olá!"), Say("Claro."), Say("Até logo.")]
    await ConversationService(services).handle("web", "s1", "Olá", phone=PHONE)
    [(_, _, text), (last, _, _)] = [(s, k, c) for s, k, c in _timeline(services)]
    conversation_id = f"conv-{ConversationService(services).store.key('web', 's1')[:24]}"
    with services.engine.begin() as db:  # another process took the next number first
        db.execute(
            insert(ConversationTurn),
            [
                {
                    "conversation_id": conversation_id,
                    "seq": last + 1,
                    "at": NOW,
                    "channel": "web",
                    "kind": "receptionist",
                    "content": "elsewhere",
                }
            ],
        )
    conversations = ConversationService(services)
    reply = await conversations.handle("web", "s1", "Quero marcar", phone=PHONE)
    assert reply.engine == "llm" and reply.text == "Claro."
    restarted = ConversationService(services)  # a new process: the state carries the chain on
    await restarted.handle("web", "s1", "Obrigado", phone=PHONE)
    assert fake.requests[2]["previous_response_id"] == "resp_0002"
    assert text == "Olá"
    assert _timeline(services) == [
        (1, "patient", "Olá"),
        (2, "receptionist", "Olá!"),
        (3, "receptionist", "elsewhere"),
        (4, "patient", "Quero marcar"),
        (5, "receptionist", "Claro."),
        (6, "patient", "Obrigado"),
        (7, "receptionist", "Até logo."),
    ]
    state = await restarted.store.load("web", "s1")
    assert state.turns == 3 and state.timeline_seq == 7


async def test_the_requests_of_a_conversation_share_one_connection(
    fake: FakeOpenAIResponses, services: Services
) -> None:
    """Each stream is read to its end after ``response.completed``: a response closed before
    its last chunk cannot go back to the pool (a new TCP and TLS handshake every round)."""
    conversations = ConversationService(services)
    fake.script = [
        Say("Olá!"),
        Call([("clinic_info", {"topic": "hours", "about": None})]),
        Say("Das 8h às 18h."),
    ]
    await conversations.handle("web", "s1", "Olá", phone=PHONE)
    reply = await conversations.handle("web", "s1", "Qual o horário?", phone=PHONE)
    assert reply.engine == "llm" and len(fake.requests) == 3 and fake.problems == []
    assert fake.connections == 1
