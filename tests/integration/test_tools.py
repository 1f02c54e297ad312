"""The one tool layer as a model meets it: JSON arguments in, JSON out, through dispatch."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import pytest
from pydantic import Field
from sqlalchemy import select

from voice_agent.conversation.openai_text.schemas import function_tools
from voice_agent.services import Services
from voice_agent.store.db import transaction
from voice_agent.store.tables import Appointment, Interaction
from voice_agent.tools.catalog import build_registry, text_registry
from voice_agent.tools.context import ToolContext
from voice_agent.tools.registry import ToolError, ToolRegistry

REGISTRY = build_registry()
"""The tools the channels offer, built once for this module (a build reads every signature)."""


def context(services: Services, phone: str | None = "+5511987654000", **extra: Any) -> ToolContext:
    return ToolContext(
        services=services,
        channel="test",
        conversation_id=extra.pop("conversation_id", f"conv-{phone}"),
        caller_phone=phone,
        language=extra.pop("language", "pt-BR"),
        phone_verified=extra.pop("phone_verified", phone is not None),  # as caller id / WhatsApp
        **extra,
    )


async def call(services: Services, ctx: ToolContext, name: str, **arguments: Any) -> dict:
    result = await REGISTRY.dispatch(name, json.dumps(arguments, default=str), ctx)
    return {"ok": result.ok, "code": result.error_code, **result.output}


def test_schemas_come_from_signatures_and_hide_the_context() -> None:
    registry = build_registry()
    schemas = {s["name"]: s for s in registry.realtime_schemas()}
    assert set(schemas) >= {
        "find_slots",
        "book_appointment",
        "reschedule_appointment",
        "cancel_appointment",
        "list_my_appointments",
        "register_patient",
        "update_patient",
        "clinic_info",
        "end_call",
        "transfer_to_staff",
        "report_emergency",
    }
    book = schemas["book_appointment"]
    assert book["type"] == "function" and book["description"].startswith("Book the chosen option")
    params = book["parameters"]
    assert params["additionalProperties"] is False
    assert set(params["required"]) == {"option", "confirmed_by_patient"}
    assert "ctx" not in params["properties"] and "patient_id" not in json.dumps(schemas)
    assert params["properties"]["option"]["description"]
    text = function_tools(text_registry(registry).realtime_schemas())
    assert "end_call" not in {tool["name"] for tool in text}


async def test_invalid_json_unknown_tool_and_invented_arguments(services: Services) -> None:
    ctx = context(services)
    bad_json = await REGISTRY.dispatch("find_slots", "{not json", ctx)
    assert not bad_json.ok and bad_json.error_code == "invalid_arguments"
    unknown = await REGISTRY.dispatch("delete_everything", "{}", ctx)
    assert not unknown.ok and unknown.error_code == "unknown_tool"
    forged = await call(services, ctx, "list_my_appointments", patient_id="someone-else")
    assert not forged["ok"] and forged["code"] == "invalid_arguments"
    assert "patient_id" in forged["error"]
    bad_date = await call(services, ctx, "find_slots", service="cardiologia", dates=["2026-02-30"])
    assert bad_date["code"] == "invalid_arguments"


async def test_tool_errors_timeouts_and_crashes_become_words(services: Services) -> None:
    registry = ToolRegistry(default_timeout=0.05)

    async def refuses(ctx: ToolContext) -> dict:
        """Always refuses."""
        raise ToolError("That is not possible.", code="nope")

    async def sleeps(ctx: ToolContext, seconds: Annotated[float, Field(ge=0)] = 1.0) -> dict:
        """Sleeps."""
        await asyncio.sleep(seconds)
        return {}

    async def crashes(ctx: ToolContext) -> dict:
        """Crashes."""
        raise RuntimeError("database password is hunter2")

    for fn in (refuses, sleeps, crashes):
        registry.add(fn)
    ctx = context(services)
    refused = await registry.dispatch("refuses", "{}", ctx)
    assert (refused.ok, refused.error_code, refused.output) == (
        False,
        "nope",
        {"error": "That is not possible."},
    )
    slow = await registry.dispatch("sleeps", '{"seconds": 5}', ctx)
    assert slow.error_code == "timeout" and slow.duration_ms < 2000
    crashed = await registry.dispatch("crashes", "{}", ctx)
    assert crashed.error_code == "internal_error"
    assert "hunter2" not in crashed.to_json()
    alerts = services.alerter.sent  # type: ignore[attr-defined]
    assert [kind for kind, _ in alerts] == ["tool_timeout", "tool_error"]
    # In the clinic's language, naming the action and where to read the conversation.
    assert alerts[1][1].startswith("A ação “crashes” falhou num atendimento pelo")
    assert f"Conversa {ctx.conversation_id}." in alerts[1][1]
    assert "hunter2" not in alerts[1][1]
    with transaction(services.engine) as session:
        failures = session.execute(select(Interaction).where(Interaction.kind == "failure"))
        assert len(list(failures.scalars())) == 2


async def test_a_caller_books_through_tools_end_to_end(services: Services) -> None:
    ctx = context(services)
    needs_name = await call(services, ctx, "find_slots", service="cardiologista")
    assert needs_name["ok"] and len(needs_name["options"]) == 3
    option = needs_name["options"][1]
    assert option["date"] >= "2026-11-24" and option["patient_pays"] == "R$ 450,00"
    refused = await call(services, ctx, "book_appointment", option="2", confirmed_by_patient=True)
    assert refused["code"] == "needs_registration"
    registered = await call(
        services,
        ctx,
        "register_patient",
        full_name="Maria  da Silva",
        email="maria@example.com",
    )
    assert registered["registered"]["full_name"] == "Maria da Silva"
    unconfirmed = await call(
        services, ctx, "book_appointment", option="2", confirmed_by_patient=False
    )
    assert unconfirmed["code"] == "needs_confirmation"
    booked = await call(
        services,
        ctx,
        "book_appointment",
        option="2",
        confirmed_by_patient=True,
        insurance="Unimed",
    )
    assert booked["ok"], booked
    assert booked["booked"]["date"] == option["date"] and booked["booked"]["time"] == option["time"]
    listed = await call(services, ctx, "list_my_appointments")
    assert [a["appointment_id"] for a in listed["appointments"]] == [
        booked["booked"]["appointment_id"]
    ]
    with transaction(services.engine) as session:
        row = session.execute(select(Appointment)).scalar_one()
        assert row.insurance_id == "unimed" and row.channel == "test"


async def test_a_repeated_book_call_returns_the_booking_instead_of_a_second_one(
    services: Services,
) -> None:
    ctx = context(services)
    await call(services, ctx, "register_patient", full_name="Maria da Silva")
    await call(services, ctx, "find_slots", service="cardiologista")
    booked = await call(services, ctx, "book_appointment", option="2", confirmed_by_patient=True)
    # The model calls the same tool again (a duplicate, or a replay after a reconnect).
    again = await call(services, ctx, "book_appointment", option="2", confirmed_by_patient=True)
    assert again["ok"] and again["already_booked"] is True
    assert again["booked"] == booked["booked"]
    # An option that never existed in this conversation is still refused.
    other = context(services, "+5511987654099")
    await call(services, other, "register_patient", full_name="Ana Lima")
    refused = await call(services, other, "book_appointment", option="2", confirmed_by_patient=True)
    assert refused["code"] == "unknown_option"
    with transaction(services.engine) as session:
        assert len(session.execute(select(Appointment)).scalars().all()) == 1


async def test_a_caller_cannot_touch_another_patients_appointment(services: Services) -> None:
    alice = context(services, "+5511987654001")
    mallory = context(services, "+5511987654002")
    await call(services, alice, "register_patient", full_name="Alice Souza")
    await call(services, alice, "find_slots", service="clinico geral")
    booked = await call(services, alice, "book_appointment", option="1", confirmed_by_patient=True)
    appointment_id = booked["booked"]["appointment_id"]
    cancel = await call(
        services,
        mallory,
        "cancel_appointment",
        appointment_id=appointment_id,
        confirmed_by_patient=True,
    )
    assert cancel["code"] == "not_found"
    # Mallory cannot book Alice's held options either: options belong to a conversation.
    await call(services, alice, "find_slots", service="clinico geral")
    steal = await call(services, mallory, "book_appointment", option="1", confirmed_by_patient=True)
    assert steal["code"] in {"unknown_option", "needs_registration"}
    listed = await call(services, mallory, "list_my_appointments")
    assert listed["appointments"] == []


async def test_reschedule_and_cancel_through_tools(services: Services) -> None:
    ctx = context(services, language="en")
    await call(services, ctx, "register_patient", full_name="John Smith")
    await call(services, ctx, "find_slots", service="dermatologist")
    booked = await call(services, ctx, "book_appointment", option="1", confirmed_by_patient=True)
    appointment_id = booked["booked"]["appointment_id"]
    later = await call(
        services,
        ctx,
        "find_slots",
        service="dermatologist",
        periods=["afternoon"],
        exclude_weekdays=["tue"],
    )
    if later["options"]:
        moved = await call(
            services,
            ctx,
            "reschedule_appointment",
            appointment_id=appointment_id,
            option="1",
            confirmed_by_patient=True,
        )
        assert moved["ok"], moved
        assert moved["rescheduled"]["time"] >= "12:00"
    cancelled = await call(
        services,
        ctx,
        "cancel_appointment",
        appointment_id=appointment_id,
        confirmed_by_patient=True,
        reason="feeling better",
    )
    assert cancelled["cancelled"]["status"] == "cancelled"


async def test_clinic_info_answers_from_the_clinic_file(services: Services) -> None:
    ctx = context(services, language="en")
    prices = await call(services, ctx, "clinic_info", topic="prices", about="ECG")
    assert prices["services"][0]["private_price"] == "R$ 120,00"
    plan = await call(services, ctx, "clinic_info", topic="insurances", about="SulAmérica")
    covered = {c["service"] for c in plan["insurances"][0]["covers"]}
    assert "cardiology consultation" in covered and "dermatology consultation" not in covered
    missing = await call(services, ctx, "clinic_info", topic="insurances", about="Hapvida")
    assert missing["not_accepted"] == "Hapvida"
    hospitals = await call(services, ctx, "clinic_info", topic="hospitals")
    assert {h["name"] for h in hospitals["hospitals"]} == {
        "Hospital Santa Cecília",
        "Hospital Vila Mariana",
    }


async def test_call_control_is_refused_outside_calls(services: Services) -> None:
    result = await call(services, context(services), "end_call", reason="bye")
    assert result["code"] == "not_a_call"


@pytest.mark.parametrize("phone", [None])
async def test_no_verified_caller_cannot_book(services: Services, phone: None) -> None:
    result = await call(services, context(services, phone), "list_my_appointments")
    assert result["code"] == "no_verified_caller"


def test_a_known_patient_id_spares_the_look_up_and_a_claimed_number_drops_it(
    services: Services,
) -> None:
    async def run() -> tuple[str, str, str]:
        patient = await services.patients.find_or_create("+5511987650001", "pt-BR")
        ctx = ToolContext(
            services=services,
            channel="whatsapp",
            conversation_id="c-known",
            caller_phone="+5511987650001",
            language="pt-BR",
            phone_verified=True,
            known_patient_id=patient.id,
        )
        known = await ctx.patient_id()
        assert ctx.known_patient is None  # no Patient read for it
        ctx.claim_phone("+5511987650002")  # another number: another patient
        other = await ctx.patient_id()
        return patient.id, known, other

    first, known, other = asyncio.run(run())
    assert known == first and other != first
