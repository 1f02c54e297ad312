"""Conversation scenarios (tests/scenarios/<language>/*.yaml) driven through the real HTTP
channels: the JSON chat API and Twilio's signed WhatsApp/SMS webhook, against the offline
receptionist. Each checks key facts in the replies, the tools called and the final database.

A scenario file:

    name: what it shows
    channels: [api, messaging]     # default: both
    phone: "+5511987650001"
    setup:                         # optional: the patient and appointments that already exist
      patient: {full_name: Maria Souza}
      bookings: [{service: cardiologia, option: "1", periods: [morning]}]
    turns:
      - say: "Olá"
        expect: ["nome completo"]  # every fragment must appear (case and accents ignored)
        reject: ["marcado"]        # none may appear
        tools: [find_slots]        # exactly the tools this turn called (optional)
        stage: offering            # the conversation stage afterwards (api only)
    final:
      appointments: [{service: cardio-consulta, date: "2026-11-24", time: "09:30", status: booked}]
      patient: {full_name: Maria da Silva, email: maria@example.com}
    tools_never: [cancel_appointment]
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from twilio.request_validator import RequestValidator

from tests.conftest import make_settings
from tests.migrated import migrated_sqlite
from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.clinic.lookup import fold
from voice_agent.clock import FixedClock
from voice_agent.conversation.engine import ConversationService
from voice_agent.services import Services, build_services
from voice_agent.store.db import make_engine, transaction
from voice_agent.store.tables import Appointment, Patient
from voice_agent.tools.catalog import build_registry
from voice_agent.tools.context import ToolContext

LOCAL = ("127.0.0.1", 50000)  # the web chat serves this machine only unless a token is set

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
TOKEN = "test-auth-token-0123456789"
_MESSAGE_SIDS = itertools.count(1)
PUBLIC = "https://clinic.example"

REGISTRY = build_registry()
"""The tools the channels offer, built once for this module (a build reads every signature)."""


def _scenarios() -> list[Any]:
    params = []
    for path in sorted(SCENARIOS.glob("*/*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for channel in data.get("channels", ["api", "messaging"]):
            ident = f"{path.parent.name}/{path.stem}[{channel}]"
            params.append(pytest.param(path, channel, id=ident))
    return params


def test_there_are_at_least_15_scenarios_per_language() -> None:
    for language in ("pt-BR", "ru", "en"):
        files = list((SCENARIOS / language).glob("*.yaml"))
        assert len(files) >= 15, f"{language}: {len(files)} scenarios"


class Spy:
    """Records every tool the conversation layer dispatches."""

    def __init__(self, conversations: ConversationService) -> None:
        self.calls: list[str] = []
        registry = conversations.registry
        original = registry.dispatch

        async def dispatch(name: str, arguments: Any, ctx: ToolContext) -> Any:
            self.calls.append(name)
            return await original(name, arguments, ctx)

        registry.dispatch = dispatch  # type: ignore[method-assign]


@pytest.fixture
def scenario_services(tmp_path: Path) -> Iterator[Services]:
    from tests.conftest import NOW

    engine: Engine = make_engine(migrated_sqlite(tmp_path / "scenario.db"))
    settings = make_settings(
        str(engine.url),
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token=TOKEN,
        public_url=PUBLIC,
    )
    services = build_services(
        settings, clock=FixedClock(NOW), alerter=ConsoleAlerter(), engine=engine
    )
    yield services
    engine.dispose()


async def _setup(services: Services, phone: str, setup: dict[str, Any], language: str) -> None:
    ctx = ToolContext(
        services=services,
        channel="setup",
        conversation_id="setup",
        caller_phone=phone,
        language=language,
        phone_verified=True,
    )
    patient = setup.get("patient")
    if patient:
        result = await REGISTRY.dispatch("register_patient", patient, ctx)
        assert result.ok, result.output
    for booking in setup.get("bookings", []):
        booking = dict(booking)
        option = booking.pop("option", "1")
        found = await REGISTRY.dispatch("find_slots", booking, ctx)
        assert found.ok and found.output["options"], found.output
        booked = await REGISTRY.dispatch(
            "book_appointment", {"option": option, "confirmed_by_patient": True}, ctx
        )
        assert booked.ok, booked.output


def _send(
    client: TestClient, channel: str, phone: str, text: str, session: str
) -> tuple[str, dict[str, Any]]:
    if channel == "api":
        response = client.post(
            "/api/chat", json={"session_id": session, "text": text, "phone": phone}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        return body["reply"], body
    params = {
        "From": f"whatsapp:{phone}",
        "To": "whatsapp:+5511345678000",
        "Body": text,
        "MessageSid": f"SM{next(_MESSAGE_SIDS):032d}",  # one per message, as Twilio
        "AccountSid": "AC" + "0" * 32,
        "NumMedia": "0",
    }
    url = f"{PUBLIC}/twilio/messaging"
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    response = client.post(
        "/twilio/messaging", data=params, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ElementTree.fromstring(response.text)
    message = root.find("Message")
    assert message is not None and message.text
    return message.text, {}


def _check_reply(step: dict[str, Any], reply: str, where: str) -> None:
    folded = fold(reply)
    for fragment in step.get("expect", []):
        assert fold(str(fragment)) in folded, f"{where}: expected {fragment!r} in:\n{reply}"
    if "expect_any" in step:
        assert any(fold(str(f)) in folded for f in step["expect_any"]), (
            f"{where}: expected one of {step['expect_any']} in:\n{reply}"
        )
    for fragment in step.get("reject", []):
        assert fold(str(fragment)) not in folded, f"{where}: unexpected {fragment!r} in:\n{reply}"


def _check_final(services: Services, phone: str, final: dict[str, Any]) -> None:
    with transaction(services.engine) as session:
        query = select(Patient).where(Patient.phone_hash == services.patients.phone_hash(phone))
        patient = session.execute(query).scalar_one_or_none()
        rows = (
            list(
                session.execute(
                    select(Appointment)
                    .where(Appointment.patient_id == patient.id)
                    .order_by(Appointment.start)
                ).scalars()
            )
            if patient
            else []
        )
    clinic = services.clinic()
    if "patient" in final:
        assert patient is not None
        for key, value in final["patient"].items():
            assert getattr(patient, key) == value, (key, getattr(patient, key))
    if "appointments" in final:
        actual = [
            {
                "service": a.service_id,
                "doctor": a.doctor_id,
                "date": a.start.astimezone(clinic.tz).date().isoformat(),
                "time": a.start.astimezone(clinic.tz).strftime("%H:%M"),
                "status": a.status.value,
            }
            for a in rows
        ]
        wanted = final["appointments"]
        assert len(actual) == len(wanted), json.dumps(actual, indent=1)
        for got, expected in zip(actual, wanted, strict=True):
            for key, value in expected.items():
                assert got[key] == str(value), (key, got, expected)


@pytest.mark.parametrize(("path", "channel"), _scenarios())
def test_scenario(path: Path, channel: str, scenario_services: Services) -> None:
    scenario = yaml.safe_load(path.read_text(encoding="utf-8"))
    services = scenario_services
    phone = scenario.get("phone", "+5511987650001")
    if scenario.get("setup"):
        asyncio.run(_setup(services, phone, scenario["setup"], path.parent.name))
    app = create_app(services.settings, services)
    conversations = ConversationService(services, use_llm=False)
    app.state.conversations = conversations
    spy = Spy(conversations)
    with TestClient(app, client=LOCAL) as client:
        for number, step in enumerate(scenario["turns"], 1):
            before = len(spy.calls)
            reply, body = _send(client, channel, phone, str(step["say"]), path.stem)
            where = f"{path.name} turn {number} ({step['say'][:40]!r})"
            _check_reply(step, reply, where)
            if "tools" in step:
                assert spy.calls[before:] == step["tools"], (where, spy.calls[before:], reply)
            if "stage" in step and body:
                assert body["state"]["stage"] == step["stage"], (where, body["state"], reply)
    _check_final(services, phone, scenario.get("final", {}))
    used = set(spy.calls)
    assert set(scenario.get("tools_used", [])) <= used, (used, scenario.get("tools_used"))
    assert not used & set(scenario.get("tools_never", [])), used
