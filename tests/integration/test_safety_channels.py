"""The red-flag guard through the channels' real interfaces: the web chat API, the signed
WhatsApp webhook and the no-AI phone line (Twilio <Gather>). Each gets the emergency advice with
the clinic's number, a staff alert with the callback number, a flagged record and an
``emergency`` interaction; nothing is booked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from tests.conftest import NOW, RUSSIAN_CLINIC_FILE, make_settings
from tests.integration.test_confirmations import PHONE as CONFIRM_PHONE
from tests.integration.test_confirmations import _call, book, env, twilio  # noqa: F401 (fixtures)
from tests.migrated import migrated_sqlite
from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.clinic import load_clinic_file
from voice_agent.clinic.repository import save_clinic
from voice_agent.clock import FixedClock
from voice_agent.services import Services, build_services
from voice_agent.store.db import make_engine, transaction
from voice_agent.store.tables import Appointment, CallRecord, Hold, Interaction

LOCAL = ("127.0.0.1", 50000)
TOKEN = "safety-token-for-signatures"
PUBLIC = "https://clinic.example"
CALL = "CA" + "5" * 32


def _services(db: Path) -> Services:
    engine = make_engine(migrated_sqlite(db))
    settings = make_settings(
        str(engine.url),
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token=TOKEN,
        public_url=PUBLIC,
    )
    return build_services(settings, clock=FixedClock(NOW), alerter=ConsoleAlerter(), engine=engine)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = _services(tmp_path / "safety.db")
    yield built
    built.close()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services.settings, services), client=LOCAL) as test_client:
        yield test_client


def _signed_post(client: TestClient, path: str, params: dict[str, str]) -> str:
    signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC}{path}", params)
    response = client.post(path, data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200, response.text
    return response.text


def _whatsapp(client: TestClient, body: str, sender: str) -> str:
    params = {"From": f"whatsapp:{sender}", "To": "whatsapp:+551134567800", "Body": body}
    node = ElementTree.fromstring(_signed_post(client, "/twilio/messaging", params)).find("Message")
    assert node is not None and node.text
    return node.text


def _emergencies(services: Services) -> list[dict]:
    return [
        json.loads(row.details) for row in services.interactions.recent() if row.kind == "emergency"
    ]


def _flagged_conversations(services: Services) -> list[str]:
    from voice_agent.conversation.state import ConversationStore

    return [found.channel for found in ConversationStore(services.engine).flagged()]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("meu filho está convulsionando", ["SAMU", "192"]),
        ("sangramento muito forte", ["192"]),
        ("quero me matar", ["188", "CVV", "192"]),
        ("my dad collapsed and isn't breathing", ["192"]),
        ("хочу покончить с собой", ["188"]),
    ],
)
def test_whatsapp_red_flag_gets_the_number_alerts_staff_and_flags(
    client: TestClient, services: Services, text: str, expected: list[str]
) -> None:
    reply = _whatsapp(client, text, "+5511987654321")
    assert all(number in reply for number in expected), reply
    assert "horário" not in reply and "1)" not in reply
    kinds_and_messages = services.alerter.sent  # type: ignore[attr-defined]
    alert = next(message for kind, message in kinds_and_messages if kind.startswith("emergency"))
    assert "+5511987654321" in alert and "WhatsApp" in alert and "Possível emergência" in alert
    assert [e["source"] for e in _emergencies(services)] == ["red_flag_guard"]
    assert _flagged_conversations(services) == ["whatsapp"]


def test_a_red_flag_mid_booking_stops_the_flow_and_frees_the_offers(
    client: TestClient, services: Services
) -> None:
    sender = "+5511987654322"
    _whatsapp(client, "Oi, meu nome é Rafael Souza", sender)
    _whatsapp(client, "pular", sender)
    offers = _whatsapp(client, "quero marcar clínico geral na quinta de manhã", sender)
    assert "1)" in offers
    with transaction(services.engine) as session:
        assert session.execute(select(Hold)).first() is not None
    reply = _whatsapp(client, "espera, minha mãe desmaiou agora e não acorda", sender)
    assert "192" in reply and "emergência" in reply
    with transaction(services.engine) as session:
        assert session.execute(select(Hold)).first() is None
    after = _whatsapp(client, "1", sender)  # the old option number books nothing
    with transaction(services.engine) as session:
        assert session.execute(select(Appointment)).first() is None
    assert "marcado" not in after


def test_a_look_alike_is_not_an_emergency(client: TestClient, services: Services) -> None:
    """A past symptom is not flagged by the guard. (The offline receptionist's own emergency
    intent, which the guard does not replace, may still mention the number.)"""
    response = client.post(
        "/api/chat",
        json={
            "session_id": "web-past",
            "text": "quero marcar com o cardiologista por causa de uma dor no peito que já passou",
            "phone": "+5511987654323",
        },
    )
    assert response.json()["emergency"] is None
    assert _emergencies(services) == [] and _flagged_conversations(services) == []
    assert not [k for k, _ in services.alerter.sent if k.startswith("emergency")]  # type: ignore[attr-defined]


def test_api_chat_red_flag(client: TestClient, services: Services) -> None:
    response = client.post(
        "/api/chat",
        json={"session_id": "web-red", "text": "my throat is swelling", "phone": "+5511987654324"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["emergency"] == "anaphylaxis" and "192" in body["reply"]
    assert body["state"]["offers"] == [] and body["tool_calls"] == []
    assert any("+5511987654324" in m for k, m in services.alerter.sent if k.startswith("emerg"))  # type: ignore[attr-defined]
    assert _flagged_conversations(services) == ["web"]
    plain = client.post(
        "/api/chat", json={"session_id": "web-ok", "text": "my chest X-ray results"}
    )
    assert plain.json()["emergency"] is None


def test_the_clinic_sets_its_own_numbers_and_wording(tmp_path: Path) -> None:
    services = _services(tmp_path / "ru.db")
    clinic = load_clinic_file(RUSSIAN_CLINIC_FILE)
    data = clinic.model_dump(mode="json")
    data["emergency"] = {
        "number": "112",
        "ambulance": "103",
        "message": {"ru": "Срочно звоните {number}! Скорая: {ambulance}."},
    }
    path = tmp_path / "clinic.yaml"
    import yaml

    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    save_clinic(services.engine, load_clinic_file(path), str(path))
    services.clinic.reload()
    with TestClient(create_app(services.settings, services), client=LOCAL) as client:
        reply = _whatsapp(client, "ребёнок не дышит", "+79161234567")
        default = _whatsapp(client, "хочу покончить с собой", "+79161234568")
    services.close()
    assert reply.startswith("Срочно звоните 112! Скорая: 103.")
    assert "112" in default and "103" in default  # no crisis line set: the emergency numbers


def test_the_no_ai_phone_line_says_the_number_flags_the_call_and_offers_staff(
    client: TestClient, services: Services
) -> None:
    caller = {"CallSid": CALL, "From": "+5511987654325", "To": "+551134567800"}
    _signed_post(client, "/twilio/voice", {**caller, "Direction": "inbound"})
    _signed_post(client, "/twilio/gather/start", caller)
    said = ElementTree.fromstring(
        _signed_post(
            client,
            "/twilio/gather/turn",
            {**caller, "SpeechResult": "meu pai está tendo um infarto"},
        )
    )
    text = " ".join(node.text or "" for node in said.iter("Say"))
    assert "192" in text and "aperte 1" in text
    gather = said.find("Gather")
    assert gather is not None and gather.get("action") == f"{PUBLIC}/twilio/gather/turn?emergency=1"
    with transaction(services.engine) as session:
        record = session.get(CallRecord, CALL)
        assert record is not None and record.flagged and record.outcome == "emergency"
        rows = list(session.execute(select(Interaction)).scalars())
    assert [json.loads(r.details).get("call") for r in rows if r.kind == "emergency"] == [CALL]
    alert = next(m for k, m in services.alerter.sent if k.startswith("emergency"))  # type: ignore[attr-defined]
    assert "+5511987654325" in alert and "ligação" in alert
    transfer = ElementTree.fromstring(
        _signed_post(client, "/twilio/gather/turn?emergency=1", {**caller, "Digits": "1"})
    )
    dial = transfer.find("Dial")
    assert dial is not None and dial.find("Number") is not None


async def test_a_red_flag_on_a_confirmation_call_is_never_read_as_an_answer(env) -> None:  # noqa: F811
    appointment = await book(env.services)
    step_id, _ = await env.runner.trigger(appointment.id, "call")
    sid = env.twilio.calls()[-1]["sid"]
    await env.post(f"/twilio/confirm/answer?step={step_id}", _call(sid, "in-progress"))
    said = await env.post(
        "/twilio/confirm/gather", {**_call(sid), "SpeechResult": "não, meu marido desmaiou agora"}
    )
    assert "192" in said.text and "aperte 1" in said.text
    assert 'action="https://clinic.example/twilio/gather/turn?emergency=1"' in said.text
    assert env.appointment(appointment.id).status == "booked"  # "não" did not cancel it
    with transaction(env.services.engine) as session:
        record = session.get(CallRecord, sid)
        assert record is not None and record.flagged and record.outcome == "emergency"
    assert any(CONFIRM_PHONE in m for k, m in env.alerts.sent if k.startswith("emergency"))


def test_terminal_chat_red_flag_and_the_flagged_list(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from voice_agent.cli import app
    from voice_agent.cli.context import CliRuntime

    settings = make_settings(f"sqlite:///{tmp_path / 'cli.db'}")
    runtime = CliRuntime(clock=FixedClock(NOW), settings=settings)
    chat = CliRunner().invoke(
        app,
        ["chat", "--phone", "+5511987653021", "--offline"],
        input="Olá\nminha filha tomou um monte de comprimidos\n",
        obj=runtime,
    )
    assert chat.exit_code == 0, chat.output
    assert "SAMU (192)" in chat.output
    listed = CliRunner().invoke(app, ["flagged"], obj=runtime)
    assert listed.exit_code == 0, listed.output
    assert "2026-11-23 10:00" in listed.output and "cli" in listed.output
    assert "+55*******3021" in listed.output and "+5511987653021" not in listed.output


@pytest.mark.parametrize(
    ("text", "category", "label"),
    [
        ("sangramento forte depois do parto", "pregnancy", "gestação"),
        ("to com a pior dor de cabeça da minha vida e vomitando", "head", "dor de cabeça súbita"),
        ("fui picado por uma cobra", "poisoning", "intoxicação"),
        ("a pressão ta 22 por 13 e to com dor de cabeça", "blood_pressure", "pressão muito alta"),
        ("у ребенка 2 месяца температура 39", "child", "criança em perigo"),
        ("I was bitten by a snake", "poisoning", "intoxicação"),
        ("é uma emergência, socorro", "declared", "emergência relatada pelo paciente"),
        ("вызовите скорую!", "declared", "emergência relatada pelo paciente"),
    ],
)
def test_emergencies_found_from_outside_reach_the_patient_and_the_staff(
    client: TestClient, services: Services, text: str, category: str, label: str
) -> None:
    """Phrasings written outside the rules' corpus that the guard missed (a postpartum
    haemorrhage, a thunderclap headache, a snake bite, a hypertensive crisis, a feverish
    newborn): the number, and the staff's alert names the danger in the clinic's language."""
    response = client.post(
        "/api/chat", json={"session_id": "web-new", "text": text, "phone": "+5511987654325"}
    )
    body = response.json()
    assert body["emergency"] == category and "192" in body["reply"], body
    alert = next(m for k, m in services.alerter.sent if k.startswith("emergency"))  # type: ignore[attr-defined]
    assert label in alert, alert


@pytest.mark.parametrize(
    "text",
    [
        "quero desmarcar minha consulta de amanhã",  # "desmarcou" read as "desmaiou"
        "quero marcar a vacina de meningite para meu filho",
        "minha pressão anda alta, quero um cardiologista",
        "vocês têm pronto-socorro?",
        "em caso de emergência, qual o telefone?",
    ],
)
def test_everyday_requests_near_the_new_rules_are_not_emergencies(
    client: TestClient, services: Services, text: str
) -> None:
    response = client.post(
        "/api/chat", json={"session_id": "web-ok2", "text": text, "phone": "+5511987654326"}
    )
    assert response.json()["emergency"] is None
    assert _emergencies(services) == []
