"""Phone calls without OpenAI: Twilio <Gather>/<Say> TwiML driven by the offline receptionist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from tests.conftest import NOW, make_settings
from tests.migrated import migrated_sqlite
from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.clock import FixedClock
from voice_agent.services import Services, build_services
from voice_agent.store.db import make_engine, transaction
from voice_agent.store.tables import Appointment
from voice_agent.voice.twilio.gather import digits_to_text, redirect_twiml

TOKEN = "gather-token-0123456789"
PUBLIC = "https://clinic.example"
CALL = "CA" + "7" * 32
CALLER = "+5511987656001"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    engine = make_engine(migrated_sqlite(tmp_path / "gather.db"))
    settings = make_settings(
        str(engine.url),
        twilio_account_sid="AC" + "2" * 32,
        twilio_auth_token=TOKEN,
        public_url=PUBLIC,
    )
    built = build_services(settings, clock=FixedClock(NOW), alerter=ConsoleAlerter(), engine=engine)
    yield built
    built.close()


def _post(client: TestClient, path: str, **fields: str) -> ElementTree.Element:
    params = {"CallSid": CALL, "From": CALLER, "To": "+551134567800", **fields}
    url = f"{PUBLIC}{path}"
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    response = client.post(path, data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return ElementTree.fromstring(response.text)


def _said(root: ElementTree.Element) -> str:
    return " ".join(node.text or "" for node in root.iter("Say"))


def test_a_caller_books_by_voice_and_keypad(services: Services) -> None:
    with TestClient(create_app(services.settings, services)) as client:
        start = _post(client, "/twilio/gather/start")
        gather = start.find("Gather")
        assert gather is not None and gather.get("input") == "speech dtmf"
        assert gather.get("language") == "pt-BR"
        assert gather.get("action") == f"{PUBLIC}/twilio/gather/turn?turn=1"
        assert all(say.get("language") == "pt-BR" for say in start.iter("Say"))
        assert "Clínica São Lucas" in _said(start)
        turn = _post(client, "/twilio/gather/turn", SpeechResult="Olá, bom dia")
        assert "nome completo" in _said(turn)
        _post(client, "/twilio/gather/turn", SpeechResult="Paulo Mendes")
        _post(client, "/twilio/gather/turn", SpeechResult="pular")
        offers = _post(
            client, "/twilio/gather/turn", SpeechResult="quero marcar clínico geral amanhã de manhã"
        )
        assert "24 de novembro" in _said(offers)
        confirm = _post(client, "/twilio/gather/turn", Digits="2")
        assert "Posso marcar" in _said(confirm)
        booked = _post(client, "/twilio/gather/turn", Digits="1")  # 1 = yes
        assert "marcado" in _said(booked) and booked.find("Gather") is not None
    with transaction(services.engine) as session:
        rows = list(session.execute(select(Appointment)).scalars())
    assert len(rows) == 1 and rows[0].channel == "voice"


def test_silence_reprompts_then_hangs_up(services: Services) -> None:
    with TestClient(create_app(services.settings, services)) as client:
        first = _post(client, "/twilio/gather/turn")
        assert "repetir" in _said(first)
        action = first.find("Gather").get("action")  # type: ignore[union-attr]
        assert action.endswith("&silences=1")
        path = "/twilio/gather/turn?silences=2"
        params = {"CallSid": CALL, "From": CALLER, "To": "+551134567800"}
        signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC}{path}", params)
        last = client.post(path, data=params, headers={"X-Twilio-Signature": signature})
        root = ElementTree.fromstring(last.text)
        assert root.find("Hangup") is not None


def test_russian_caller_and_handoff(services: Services) -> None:
    with TestClient(create_app(services.settings, services)) as client:
        turn = _post(client, "/twilio/gather/turn", SpeechResult="Соедините с администратором")
        assert turn.find("Dial") is not None
        assert {s.get("language") for s in turn.iter("Say")} == {"ru-RU"}


def test_unsigned_gather_requests_are_refused(services: Services) -> None:
    with TestClient(create_app(services.settings, services)) as client:
        response = client.post("/twilio/gather/turn", data={"CallSid": CALL, "From": CALLER})
        assert response.status_code == 403


def test_handover_and_keypad_helpers() -> None:
    root = ElementTree.fromstring(redirect_twiml(f"{PUBLIC}/twilio/gather/start"))
    redirect = root.find("Redirect")
    assert redirect is not None and redirect.get("method") == "POST"
    assert digits_to_text("1", "confirm", "sim", "não") == "sim"
    assert digits_to_text("2", "confirm_cancel", "да", "нет") == "нет"
    assert digits_to_text("2", "offering", "yes", "no") == "2"
