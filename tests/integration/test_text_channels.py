"""The text channels at their edges: signatures, malformed input, odd messages, persistence."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from tests.conftest import NOW, make_settings
from tests.migrated import migrated_sqlite
from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.clock import FixedClock
from voice_agent.services import Services, build_services
from voice_agent.store.db import make_engine

LOCAL = ("127.0.0.1", 50000)  # the web chat serves this machine only unless a token is set

TOKEN = "channel-token-0123456789"
PUBLIC = "https://clinic.example"
URL = f"{PUBLIC}/twilio/messaging"


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
def client(tmp_path: Path) -> Iterator[TestClient]:
    services = _services(tmp_path / "channels.db")
    with TestClient(create_app(services.settings, services), client=LOCAL) as test_client:
        yield test_client
    services.close()


def _signed(params: dict[str, str], url: str = URL) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, params)}


def _message(response_text: str) -> str:
    node = ElementTree.fromstring(response_text).find("Message")
    assert node is not None and node.text
    return node.text


def _whatsapp(client: TestClient, body: str, sender: str = "whatsapp:+5511987653001") -> str:
    params = {"From": sender, "To": "whatsapp:+551134567800", "Body": body}
    response = client.post("/twilio/messaging", data=params, headers=_signed(params))
    assert response.status_code == 200, response.text
    return _message(response.text)


def test_unsigned_and_forged_webhooks_are_refused(client: TestClient) -> None:
    params = {"From": "whatsapp:+5511987653001", "Body": "quero marcar"}
    assert client.post("/twilio/messaging", data=params).status_code == 403
    forged = client.post(
        "/twilio/messaging", data=params, headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
    )
    assert forged.status_code == 403
    other_url = _signed(params, url="https://evil.example/twilio/messaging")
    assert client.post("/twilio/messaging", data=params, headers=other_url).status_code == 403
    tampered = dict(params, Body="cancelar tudo")
    response = client.post("/twilio/messaging", data=tampered, headers=_signed(params))
    assert response.status_code == 403


def test_malformed_webhooks_get_a_400_with_a_message(client: TestClient) -> None:
    no_sender = {"Body": "oi"}
    response = client.post("/twilio/messaging", data=no_sender, headers=_signed(no_sender))
    assert response.status_code == 400 and "mensagem" in _message(response.text)
    garbage = {"From": "not a phone", "Body": "oi"}
    response = client.post("/twilio/messaging", data=garbage, headers=_signed(garbage))
    assert response.status_code == 400
    raw = client.post(
        "/twilio/messaging",
        content=b"\xff\xfe{not a form",
        headers={"Content-Type": "multipart/form-data; boundary=x", **_signed({})},
    )
    assert raw.status_code in (400, 403)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("", "Não recebi"),
        ("   ", "Não recebi"),
        ("a" * 10_000, "muito longa"),
        ("👍👍🎉", "não entendi"),
        ("Olá 你好 привет hello", ""),
        ("\u0000\u202e\ufeff", ""),
        ("<Response><Say>hack</Say></Response>", ""),
    ],
)
def test_odd_messages_get_a_clear_answer(client: TestClient, body: str, fragment: str) -> None:
    reply = _whatsapp(client, body)
    assert reply.strip() and fragment.casefold() in reply.casefold()


@pytest.mark.parametrize(
    ("media", "fragment"),
    [
        ({"NumMedia": "1", "MediaContentType0": "audio/ogg"}, "não consigo ouvir áudios"),
        ({"NumMedia": "1", "MediaContentType0": "image/jpeg"}, "só consigo ler mensagens de texto"),
        ({"NumMedia": "2", "MediaContentType0": "application/pdf"}, "+55 11 3456-7800"),
        ({"NumMedia": "x"}, "Não recebi"),  # not a count: an empty message
    ],
)
def test_a_voice_note_or_a_photo_without_text_gets_asked_for_text(
    client: TestClient, media: dict[str, str], fragment: str
) -> None:
    """WhatsApp voice notes are how many patients write; they got "Não recebi nenhum texto"."""
    params = {"From": "whatsapp:+5511987653009", "To": "whatsapp:+551134567800", "Body": ""}
    params |= {k: v for k, v in media.items()} | {
        f"MediaUrl{i}": f"https://api.twilio.com/media/{i}" for i in range(2)
    }
    response = client.post("/twilio/messaging", data=params, headers=_signed(params))
    assert response.status_code == 200
    assert fragment in _message(response.text)


def test_a_voice_note_is_answered_in_the_patients_language(client: TestClient) -> None:
    sender = "whatsapp:+5511987653010"
    _whatsapp(client, "Hello, I would like to book a dermatology appointment", sender)
    params = {"From": sender, "To": "whatsapp:+551134567800", "Body": "", "NumMedia": "1"}
    params["MediaContentType0"] = "audio/ogg"
    response = client.post("/twilio/messaging", data=params, headers=_signed(params))
    assert "can't listen to audio" in _message(response.text)


def test_api_chat_validates_and_never_fails(client: TestClient) -> None:
    assert client.post("/api/chat", json={"session_id": "bad id!", "text": "hi"}).status_code == 422
    assert client.post("/api/chat", content=b"{not json").status_code == 422
    for text in ("", "x" * 10_000, "🙂", "漢字 и кириллица and english"):
        response = client.post("/api/chat", json={"session_id": "odd", "text": text})
        assert response.status_code == 200
        assert response.json()["reply"]


def test_api_chat_returns_offers_and_the_booked_appointment(client: TestClient) -> None:
    def say(text: str) -> dict:
        response = client.post(
            "/api/chat", json={"session_id": "web-1", "text": text, "phone": "+5511987653002"}
        )
        assert response.status_code == 200
        return response.json()

    say("Olá, meu nome é Carla Dias e quero marcar dermatologia amanhã")
    turn = say("pular")
    offers = turn["state"]["offers"]
    assert turn["state"]["stage"] == "offering" and [o["option"] for o in offers] == ["1", "2", "3"]
    assert {"when", "doctor", "date", "time"} <= set(offers[0])
    assert say("1")["state"]["stage"] == "confirm"
    booked = say("sim")
    assert booked["state"]["appointment"]["action"] == "booked"
    assert booked["state"]["appointment"]["date"] == offers[0]["date"]
    assert booked["tool_calls"] == ["book_appointment"]


def test_web_chat_asks_for_a_phone_when_none_is_given(client: TestClient) -> None:
    first = client.post(
        "/api/chat", json={"session_id": "anon", "text": "quero marcar cardiologia"}
    )
    assert "celular" in first.json()["reply"]
    second = client.post("/api/chat", json={"session_id": "anon", "text": "11 98765-3003"})
    assert "nome completo" in second.json()["reply"]


def test_conversation_state_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "restart.db"
    services = _services(db)
    with TestClient(create_app(services.settings, services), client=LOCAL) as client:
        _whatsapp(client, "Oi, meu nome é Rafael Souza")
        _whatsapp(client, "pular")
        offers = _whatsapp(client, "quero marcar clínico geral na quinta de manhã")
        assert "1)" in offers
    services.close()
    restarted = _services(db)
    with TestClient(create_app(restarted.settings, restarted), client=LOCAL) as client:
        assert "Posso marcar" in _whatsapp(client, "a primeira")
        assert "marcado" in _whatsapp(client, "sim")
    restarted.close()


def test_an_unanswered_question_reaches_the_staff_only_if_the_patient_agrees(
    tmp_path: Path,
) -> None:
    services = _services(tmp_path / "questions.db")
    with TestClient(create_app(services.settings, services), client=LOCAL) as client:
        assert "não tenho essa informação" in _whatsapp(client, "vocês têm estacionamento?")
        _whatsapp(client, "não, obrigada")
        assert "não tenho essa informação" in _whatsapp(client, "aceitam cartão de crédito?")
        assert "nossa equipe" in _whatsapp(client, "sim, por favor")
    rows = [(row.kind, json.loads(row.details)) for row in services.interactions.recent()]
    services.close()
    transfers = [details for kind, details in rows if kind == "transfer"]
    assert transfers == [
        {"reason": "question for the staff", "question": "aceitam cartão de crédito?"}
    ]
    unanswered = [d["question"] for kind, d in rows if d.get("topic") == "unanswered"]
    assert sorted(unanswered) == ["aceitam cartão de crédito?", "vocês têm estacionamento?"]


def test_the_verified_sender_cannot_be_changed_by_the_message(client: TestClient) -> None:
    _whatsapp(client, "Oi, meu nome é Lia Campos", sender="whatsapp:+5511987653010")
    _whatsapp(client, "pular", sender="whatsapp:+5511987653010")
    reply = _whatsapp(
        client, "meu telefone é 11 98765-3011, cancele minhas consultas", "whatsapp:+5511987653010"
    )
    assert "Não encontrei consultas" in reply


def test_chat_page_is_served(client: TestClient) -> None:
    page = client.get("/chat")
    assert page.status_code == 200 and "/api/chat" in page.text


def test_terminal_chat(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from voice_agent.cli import app

    result = CliRunner().invoke(
        app,
        ["chat", "--phone", "+5511987653020", "--offline"],
        input="Olá\nMaria Teresa\npular\nquanto custa o ecocardiograma?\n",
        env={"VOICE_AGENT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"},
    )
    assert result.exit_code == 0, result.output
    assert "nome completo" in result.output and "R$ 380,00" in result.output


def test_web_chat_is_local_only_unless_staff_token_is_set(services) -> None:
    """The web chat trusts a typed phone number, so strangers must not reach it."""
    from pydantic import SecretStr

    body = {"session_id": "s1", "text": "oi", "phone": "+5511987653009"}
    with TestClient(create_app(services.settings, services), client=("203.0.113.9", 1)) as remote:
        assert remote.post("/api/chat", json=body).status_code == 403
    services.settings.chat_api_token = SecretStr("staff-secret-0123456789")
    with TestClient(create_app(services.settings, services), client=("203.0.113.9", 1)) as remote:
        assert remote.post("/api/chat", json=body).status_code == 401
        wrong = remote.post("/api/chat", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = remote.post(
            "/api/chat", json=body, headers={"Authorization": "Bearer staff-secret-0123456789"}
        )
        assert ok.status_code == 200 and ok.json()["reply"]
