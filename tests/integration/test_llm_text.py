"""The OpenAI text receptionist against a local fake of the Responses API: every request is
validated with the SDK's param types, turns chain with ``previous_response_id`` (or resend their
items with ``store`` off), tools run through the one registry, a confirmation needs the
patient's yes, and any OpenAI failure hands the turn to the offline receptionist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import NOW, make_settings
from tests.fakes.openai_responses import (
    Answer,
    Call,
    Cut,
    Fail,
    FakeOpenAIResponses,
    Refuse,
    Say,
    Stall,
    last_tool_output,
)
from tests.migrated import migrated_sqlite
from voice_agent.alerts import ConsoleAlerter
from voice_agent.clock import FixedClock
from voice_agent.conversation.engine import ConversationService
from voice_agent.conversation.openai_text.loop import MAX_CALLS_PER_ROUND, MAX_ROUNDS
from voice_agent.services import Services, build_services
from voice_agent.store.db import make_engine, transaction
from voice_agent.store.tables import Appointment

PHONE = "+5511987654321"


def services_for(tmp_path: Path, fake: FakeOpenAIResponses, **settings: Any) -> Services:
    engine = make_engine(migrated_sqlite(tmp_path / "llm.db"))
    values: dict[str, Any] = {
        "openai_api_key": "sk-test",
        "openai_base_url": fake.base_url,
        "text_model": fake.model,
        **settings,
    }
    return build_services(
        make_settings(str(engine.url), **values),
        clock=FixedClock(NOW),
        alerter=ConsoleAlerter(),
        engine=engine,
    )


@pytest.fixture
def llm_services(tmp_path: Path, fake: FakeOpenAIResponses) -> Services:
    return services_for(tmp_path, fake)


def _appointments(services: Services) -> list[Appointment]:
    with transaction(services.engine) as session:
        return list(session.execute(select(Appointment)).scalars())


def say(content: str) -> Say:
    return Say(content)


def call(*calls: tuple[str, dict[str, Any]]) -> Call:
    return Call(list(calls))


def _kinds(body: dict[str, Any]) -> list[str]:
    return [item.get("type", "message") + ":" + item.get("role", "") for item in body["input"]]


async def test_the_loop_books_through_the_tools(
    fake: FakeOpenAIResponses, llm_services: Services
) -> None:
    conversations = ConversationService(llm_services)
    assert conversations.llm is not None
    fake.script = [
        # Two calls in one response: run in the model's order (the patient, then the search).
        call(
            ("register_patient", {"full_name": "Maria Silva", "email": None}),
            ("find_slots", {"service": "cardiologia", "dates": ["2026-11-24"], "doctor": None}),
        ),
        lambda body: Say("Opção 2: " + last_tool_output(body)["options"][1]["when"]),
        # The model books on "a segunda" without a yes: the lock in code withholds it.
        call(("book_appointment", {"option": "2", "confirmed_by_patient": True})),
        lambda body: Say("Confirma? " + last_tool_output(body)["error"][:20]),
        call(("book_appointment", {"option": "2", "confirmed_by_patient": True})),
        lambda body: Say("Marcado: " + last_tool_output(body)["booked"]["when"]),
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
    # Each request after the first names the previous response and sends only what is new.
    requests = fake.requests
    assert "previous_response_id" not in requests[0] and _kinds(requests[0]) == ["message:user"]
    assert _kinds(requests[1]) == ["function_call_output:"] * 2
    assert requests[2]["previous_response_id"] == "resp_0002"
    assert requests[2]["input"] == [{"role": "user", "content": "a segunda"}]
    # The instructions (the prompt file in the patient's language) go with every request.
    assert all("Clínica São Lucas" in r["instructions"] for r in requests)
    assert "português" in requests[-1]["instructions"]
    tools = {t["name"]: t for t in requests[0]["tools"]}
    assert {"find_slots", "book_appointment"} <= set(tools) and tools["find_slots"]["strict"]
    assert requests[0]["store"] is True and requests[0]["temperature"] == 0.3
    assert "reasoning" not in requests[0]  # gpt-4.1 takes none


async def test_the_model_gets_a_bounded_number_of_rounds(
    fake: FakeOpenAIResponses, llm_services: Services
) -> None:
    conversations = ConversationService(llm_services)
    fake.script = [call(("clinic_info", {"topic": "hours", "about": None}))] * (MAX_ROUNDS + 1)
    reply = await conversations.handle(
        "whatsapp", PHONE, "Qual o horário de vocês?", phone=PHONE, phone_verified=True
    )
    assert len(fake.requests) == MAX_ROUNDS and len(fake.script) == 1
    assert reply.engine == "offline" and reply.text
    assert reply.tool_calls[:MAX_ROUNDS] == ["clinic_info"] * MAX_ROUNDS
    assert fake.problems == []


async def test_too_many_calls_at_once_are_answered_not_run(
    fake: FakeOpenAIResponses, llm_services: Services
) -> None:
    conversations = ConversationService(llm_services)
    many = [("clinic_info", {"topic": "hours", "about": None})] * (MAX_CALLS_PER_ROUND + 1)
    fake.script = [Call(many), say("Atendemos das 8h às 18h.")]
    reply = await conversations.handle(
        "whatsapp", PHONE, "Qual o horário?", phone=PHONE, phone_verified=True
    )
    assert reply.engine == "llm" and reply.tool_calls == ["clinic_info"] * MAX_CALLS_PER_ROUND
    outputs = [item["output"] for item in fake.requests[1]["input"]]
    assert len(outputs) == MAX_CALLS_PER_ROUND + 1 and "too many tool calls" in outputs[-1]
    assert fake.problems == []


async def test_openai_failure_mid_conversation_falls_back_to_offline(
    fake: FakeOpenAIResponses, llm_services: Services
) -> None:
    conversations = ConversationService(llm_services)
    fake.script = [
        call(
            ("register_patient", {"full_name": "João Lima"}),
            ("find_slots", {"service": "dermatologia", "periods": ["afternoon"]}),
        ),
        say("Tenho três horários à tarde. Qual prefere?"),
        # OpenAI breaks down (500, retried once by the SDK): the offline engine takes over.
        Fail(500),
        Fail(500),
        Fail(500),
        Fail(500),
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
    # When OpenAI is back, it sees what happened while it was away: the chain goes on from
    # its last response, with the offline turns added as items.
    fake.script = [say("De nada!")]
    back = await conversations.handle("sms", PHONE, "obrigado", phone=PHONE)
    assert back.engine == "llm"
    last = fake.requests[-1]
    assert last["previous_response_id"] == "resp_0002"
    said = [item.get("content") or "" for item in last["input"]]
    assert said[0] == "a primeira" and any("marcado" in text for text in said)
    assert said[-1] == "obrigado"
    assert fake.problems == []


@pytest.mark.parametrize(
    "failure",
    [[Stall()], [Cut(abort=True)], [Cut(abort=False)], [Refuse()]],
    ids=["timeout", "broken-connection", "stream-without-completed", "response-failed"],
)
async def test_a_failing_stream_hands_the_turn_over_carrying_the_offers(
    tmp_path: Path, fake: FakeOpenAIResponses, failure: list[Answer]
) -> None:
    services = services_for(tmp_path, fake, text_timeout_seconds=2.0)
    conversations = ConversationService(services)
    fake.script = [
        call(
            ("register_patient", {"full_name": "Ana Costa"}),
            ("find_slots", {"service": "dermatologia", "dates": ["2026-11-24"]}),
        ),
        lambda body: Say("1) " + last_tool_output(body)["options"][0]["when"] + ". Qual?"),
        *failure,
        Fail(503),  # still down at the patient's yes (the SDK retries once)
        Fail(503),
    ]
    first = await conversations.handle(
        "whatsapp", PHONE, "Sou Ana Costa, dermatologia amanhã", phone=PHONE, phone_verified=True
    )
    assert first.engine == "llm" and first.stage == "offering"
    offered = first.offers[0]["when"]
    second = await conversations.handle("whatsapp", PHONE, "a primeira", phone=PHONE)
    assert second.engine == "offline" and "Posso marcar" in second.text
    assert offered in second.text
    third = await conversations.handle("whatsapp", PHONE, "sim", phone=PHONE)
    assert third.engine == "offline" and third.appointment is not None
    assert fake.script == [] and fake.problems == []


async def test_store_off_resends_the_items_and_tunes_a_reasoning_model(tmp_path: Path) -> None:
    with FakeOpenAIResponses("gpt-5-mini") as fake:
        services = services_for(
            tmp_path,
            fake,
            text_store=False,
            text_reasoning_effort="low",
            text_verbosity="low",
        )
        conversations = ConversationService(services)
        fake.script = [
            call(("find_slots", {"service": "cardiologia", "dates": ["2026-11-24"]})),
            say("Tenho três horários. Qual prefere?"),
            say("Certo, a das 9h."),
        ]
        await conversations.handle(
            "whatsapp", PHONE, "quero cardiologia amanhã", phone=PHONE, phone_verified=True
        )
        await conversations.handle("whatsapp", PHONE, "a primeira", phone=PHONE)
        assert fake.problems == []
    first, second, third = fake.requests
    for request in (first, second, third):
        assert request["store"] is False and "previous_response_id" not in request
        assert request["reasoning"] == {"effort": "low"}
        assert request["text"] == {"verbosity": "low"}
        assert request["include"] == ["reasoning.encrypted_content"]
        assert "temperature" not in request  # gpt-5 refuses it
    # Within the turn: everything again, with the model's own call before its output.
    assert _kinds(second) == ["message:user", "function_call:", "function_call_output:"]
    # Next turn: the whole conversation from our own copy.
    assert _kinds(third) == [
        "message:user",
        "function_call:",
        "function_call_output:",
        "message:assistant",
        "message:user",
    ]
    assert third["input"][-1]["content"] == "a primeira"


async def test_an_expired_chain_is_rebuilt_from_our_copy(
    fake: FakeOpenAIResponses, llm_services: Services
) -> None:
    conversations = ConversationService(llm_services)
    fake.script = [say("Olá! Como posso ajudar?"), say("Claro.")]
    await conversations.handle("web", "s1", "Olá", phone=PHONE)
    fake.forget_responses()  # 30 days later, or deleted at OpenAI
    reply = await conversations.handle("web", "s1", "Quero marcar uma consulta", phone=PHONE)
    assert reply.engine == "llm" and reply.text == "Claro."
    refused, resent = fake.requests[1], fake.requests[2]
    assert refused["previous_response_id"] == "resp_0001"
    assert "previous_response_id" not in resent
    assert [item["content"] for item in resent["input"]] == [
        "Olá",
        "Olá! Como posso ajudar?",
        "Quero marcar uma consulta",
    ]
    assert fake.problems == ["Previous response with id 'resp_0001' not found."]


async def test_a_state_saved_by_the_chat_completions_loop_carries_on(
    fake: FakeOpenAIResponses, llm_services: Services
) -> None:
    conversations = ConversationService(llm_services)
    state = await conversations.store.load("web", "old")
    state.history = [
        {"role": "user", "content": "Quais convênios?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_old",
                    "type": "function",
                    "function": {"name": "clinic_info", "arguments": '{"topic": "insurances"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_old", "content": '{"insurances": ["Unimed"]}'},
        {"role": "assistant", "content": "Aceitamos Unimed."},
    ]
    await conversations.store.save("old", state)
    fake.script = [say("De nada!")]
    reply = await conversations.handle("web", "old", "obrigada", phone=PHONE)
    assert reply.engine == "llm" and fake.problems == []
    assert _kinds(fake.requests[0]) == [
        "message:user",
        "function_call:",
        "function_call_output:",
        "message:assistant",
        "message:user",
    ]


async def test_a_broken_openai_at_the_first_message_is_invisible(tmp_path: Path) -> None:
    engine = make_engine(migrated_sqlite(tmp_path / "down.db"))
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
    fake: FakeOpenAIResponses, llm_services: Services
) -> None:
    conversations = ConversationService(llm_services)
    fake.script = [
        call(("register_patient", {"full_name": "Maria Silva"})),
        call(("request_callback", {"request": "quer saber se aceitam Unimed para exames"})),
        say("Pronto, a recepção vai ligar para você."),
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
