"""The OpenAI text loop against a local fake of Chat Completions: the SDK's requests are checked,
tools run through the one registry, a confirmation needs the patient's yes, and a failing OpenAI
hands the turn to the offline receptionist without the patient noticing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import NOW, make_settings
from tests.fakes.openai_chat import FakeOpenAIChat, last_tool_output
from voice_agent.alerts import ConsoleAlerter
from voice_agent.clock import FixedClock
from voice_agent.conversation.engine import ConversationService
from voice_agent.services import Services, build_services
from voice_agent.store.db import make_engine, transaction
from voice_agent.store.tables import Appointment

MODEL = "gpt-test-mini"
PHONE = "+5511987654321"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAIChat]:
    server = FakeOpenAIChat(MODEL)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def llm_services(tmp_path: Path, fake: FakeOpenAIChat) -> Services:
    engine = make_engine(f"sqlite:///{tmp_path / 'llm.db'}")
    settings = make_settings(
        str(engine.url),
        openai_api_key="sk-test",
        openai_base_url=fake.base_url,
        text_model=MODEL,
    )
    return build_services(settings, clock=FixedClock(NOW), alerter=ConsoleAlerter(), engine=engine)


def _appointments(services: Services) -> list[Appointment]:
    with transaction(services.engine) as session:
        return list(session.execute(select(Appointment)).scalars())


def say(content: str) -> Any:
    return lambda body: {"content": content}


def call(*calls: tuple[str, dict[str, Any]]) -> Any:
    return lambda body: {"tool_calls": list(calls)}


async def test_the_loop_books_through_the_tools(
    fake: FakeOpenAIChat, llm_services: Services
) -> None:
    conversations = ConversationService(llm_services)
    assert conversations.llm is not None
    fake.script = [
        call(
            ("register_patient", {"full_name": "Maria Silva"}),
            ("find_slots", {"service": "cardiologia", "dates": ["2026-11-24"]}),
        ),
        lambda body: {"content": "Opção 2: " + last_tool_output(body)["options"][1]["when"]},
        # The model books on "a segunda" without a yes: the lock in code withholds it.
        call(("book_appointment", {"option": "2", "confirmed_by_patient": True})),
        lambda body: {"content": "Confirma? " + last_tool_output(body)["error"][:20]},
        call(("book_appointment", {"option": "2", "confirmed_by_patient": True})),
        lambda body: {"content": "Marcado: " + last_tool_output(body)["booked"]["when"]},
    ]
    first = await conversations.handle(
        "whatsapp",
        PHONE,
        "Oi, sou Maria Silva, quero cardiologia amanhã",
        phone=PHONE,
        phone_verified=True,
    )
    assert first.engine == "llm" and first.tool_calls == ["register_patient", "find_slots"]
    assert first.text.startswith("Opção 2: terça-feira, 24 de novembro")
    assert first.offers and first.stage == "offering"
    second = await conversations.handle("whatsapp", PHONE, "a segunda", phone=PHONE)
    assert second.text.startswith("Confirma?") and _appointments(llm_services) == []
    third = await conversations.handle("whatsapp", PHONE, "sim, pode marcar", phone=PHONE)
    assert third.text.startswith("Marcado: terça-feira, 24 de novembro")
    assert third.appointment and third.appointment["action"] == "booked"
    assert [a.status.value for a in _appointments(llm_services)] == ["booked"]
    assert fake.problems == []
    # The request carried the system prompt in the patient's language, the history and tools.
    last = fake.requests[-1]
    assert "Clínica São Lucas" in last["messages"][0]["content"]
    assert "português" in last["messages"][0]["content"]
    assert [m["role"] for m in last["messages"]].count("user") == 3
    assert {t["function"]["name"] for t in last["tools"]} >= {"find_slots", "book_appointment"}


async def test_openai_failure_mid_conversation_falls_back_to_offline(
    fake: FakeOpenAIChat, llm_services: Services
) -> None:
    conversations = ConversationService(llm_services)
    fake.script = [
        call(
            ("register_patient", {"full_name": "João Lima"}),
            ("find_slots", {"service": "dermatologia", "periods": ["afternoon"]}),
        ),
        say("Tenho três horários à tarde. Qual prefere?"),
        # OpenAI breaks down (500, retried once by the SDK): the offline engine takes over.
        lambda body: {"status": 500},
        lambda body: {"status": 500},
        lambda body: {"status": 500},
        lambda body: {"status": 500},
    ]
    first = await conversations.handle(
        "sms",
        PHONE,
        "Olá, João Lima aqui, quero dermatologista à tarde",
        phone=PHONE,
        phone_verified=True,
    )
    assert first.engine == "llm" and first.stage == "offering"
    second = await conversations.handle("sms", PHONE, "a primeira", phone=PHONE)
    assert second.engine == "offline" and "Posso marcar" in second.text
    third = await conversations.handle("sms", PHONE, "sim", phone=PHONE)
    assert third.engine == "offline" and "marcado" in third.text
    booked = _appointments(llm_services)
    assert len(booked) == 1 and booked[0].service_id == "derma-consulta"
    assert booked[0].start.astimezone(llm_services.clinic().tz).hour >= 12
    assert fake.problems == []
    # When OpenAI is back, it sees what happened while it was away.
    fake.script = [lambda body: {"content": "De nada!"}]
    back = await conversations.handle("sms", PHONE, "obrigado", phone=PHONE)
    assert back.engine == "llm"
    history = [m.get("content") or "" for m in fake.requests[-1]["messages"]]
    assert any("marcado" in text for text in history)


async def test_a_broken_openai_at_the_first_message_is_invisible(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'down.db'}")
    settings = make_settings(
        str(engine.url), openai_api_key="sk-test", openai_base_url="http://127.0.0.1:9/v1"
    )
    services = build_services(
        settings, clock=FixedClock(NOW), alerter=ConsoleAlerter(), engine=engine
    )
    conversations = ConversationService(services)
    reply = await conversations.handle("web", "s", "Olá, bom dia", phone=PHONE)
    assert reply.engine == "offline" and "Clínica São Lucas" in reply.text


async def test_a_callback_request_through_the_model_reaches_the_staff(
    fake: FakeOpenAIChat, llm_services: Services
) -> None:
    conversations = ConversationService(llm_services)
    fake.script = [
        call(("register_patient", {"full_name": "Maria Silva"})),
        call(("request_callback", {"request": "quer saber se aceitam Unimed para exames"})),
        lambda body: {"content": "Pronto, a recepção vai ligar para você."},
    ]
    reply = await conversations.handle(
        "whatsapp",
        PHONE,
        "Sou Maria Silva. Alguém pode me ligar sobre convênio Unimed para exames?",
        phone=PHONE,
        phone_verified=True,
    )
    assert reply.engine == "llm" and "request_callback" in reply.tool_calls
    assert fake.problems == []
    [(kind, text)] = llm_services.alerter.sent  # type: ignore[attr-defined]
    assert kind == "callback"
    assert text.startswith(f"Maria Silva ({PHONE}, fala português) pediu que a recepção ligue")
    assert "pelo WhatsApp: “quer saber se aceitam Unimed para exames”." in text
