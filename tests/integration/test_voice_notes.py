"""WhatsApp voice notes through the signed webhook, as Twilio sends them: the media fetched from
the local Twilio fake (Basic auth, a 307 to its media store) and transcribed by the local OpenAI
fake (``POST /v1/audio/transcriptions``, a multipart form checked as the API checks it), then
answered like a typed message — red-flag check first. Every failure ends in the ask-to-type
answer, never in silence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from tests.conftest import NOW, make_settings
from tests.fakes.openai_responses import Fail, FakeOpenAIResponses, Say
from tests.fakes.twilio_rest_fake import TwilioRestFake
from tests.integration.integration_env import ACCOUNT_SID, AUTH_TOKEN, twilio_settings
from tests.migrated import migrated_sqlite
from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.clock import FixedClock
from voice_agent.services import build_services
from voice_agent.store.db import make_engine

PUBLIC = "https://clinic.example"
SENDER = "whatsapp:+5511987653101"
OGG = b"OggS\x00\x02" + bytes(400)  # the bytes are passed through, not decoded


@pytest.fixture
def twilio() -> Iterator[TwilioRestFake]:
    with TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN, FixedClock(NOW)) as fake:
        yield fake


def _client(tmp_path: Path, twilio: TwilioRestFake, openai: FakeOpenAIResponses | None) -> Any:
    engine = make_engine(migrated_sqlite(tmp_path / "notes.db"))
    values: dict[str, Any] = {**twilio_settings(twilio.base_url), "public_url": PUBLIC}
    if openai is not None:
        values |= {
            "openai_api_key": "sk-test",
            "openai_base_url": openai.base_url,
            "text_model": openai.model,
        }
    services = build_services(
        make_settings(str(engine.url), **values),
        clock=FixedClock(NOW),
        alerter=ConsoleAlerter(),
        engine=engine,
    )
    return TestClient(create_app(services.settings, services))


def _voice_note(client: TestClient, url: str, content_type: str = "audio/ogg") -> str:
    params = {
        "From": SENDER,
        "To": "whatsapp:+551134567800",
        "Body": "",
        "NumMedia": "1",
        "MediaUrl0": url,
        "MediaContentType0": content_type,
        "MessageSid": "SM" + "7" * 32,
    }
    signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{PUBLIC}/twilio/messaging", params)
    response = client.post(
        "/twilio/messaging", data=params, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 200, response.text
    node = ElementTree.fromstring(response.text).find("Message")
    assert node is not None and node.text
    return node.text


def test_a_voice_note_is_heard_and_answered(
    tmp_path: Path, twilio: TwilioRestFake, fake: FakeOpenAIResponses
) -> None:
    fake.transcripts.append("Bom dia, queria saber o endereço da clínica.")
    fake.script.append(Say("Estamos na Rua Vergueiro, 1421, Vila Mariana."))
    url = twilio.add_media("audio/ogg", OGG)
    with _client(tmp_path, twilio, fake) as client:
        reply = _voice_note(client, url)
    assert reply == "Estamos na Rua Vergueiro, 1421, Vila Mariana."
    [sent] = fake.transcribed
    assert sent["bytes"] == OGG and sent["type"] == "audio/ogg" and sent["language"] == "pt"
    assert sent["model"] == "gpt-4o-mini-transcribe"
    said = fake.requests[-1]["input"]
    assert "endereço da clínica" in str(said)  # the model got the transcript as the message
    [(path, authorization)] = twilio.state.media_fetches
    assert path.startswith("/media-store/") and authorization is None  # not to another host
    assert fake.problems == []


def test_an_emergency_said_in_a_voice_note_gets_the_number(
    tmp_path: Path, twilio: TwilioRestFake, fake: FakeOpenAIResponses
) -> None:
    fake.transcripts.append("Socorro, meu pai está com uma dor no peito muito forte")
    url = twilio.add_media("audio/ogg", OGG)
    with _client(tmp_path, twilio, fake) as client:
        reply = _voice_note(client, url)
    assert "192" in reply and fake.requests == []  # the guard answered; no model turn


@pytest.mark.parametrize("failure", ["transcription", "media", "elsewhere", "silence"])
def test_a_voice_note_that_cannot_be_heard_gets_asked_for_text(
    tmp_path: Path, twilio: TwilioRestFake, fake: FakeOpenAIResponses, failure: str
) -> None:
    url = twilio.add_media("audio/ogg", OGG)
    if failure == "transcription":
        fake.transcripts.append(Fail(500))
    elif failure == "media":
        url = url.replace("/Media/ME", "/Media/ME0")[:-1]  # an unknown media sid: 404
    elif failure == "elsewhere":
        url = "https://attacker.example/steal"  # the credentials go to Twilio only
    else:
        fake.transcripts.append("   ")
    with _client(tmp_path, twilio, fake) as client:
        reply = _voice_note(client, url)
    assert "não consigo ouvir áudios" in reply
    assert fake.requests == []


def test_without_openai_a_voice_note_is_asked_for_as_text(
    tmp_path: Path, twilio: TwilioRestFake
) -> None:
    url = twilio.add_media("audio/ogg", OGG)
    with _client(tmp_path, twilio, None) as client:
        reply = _voice_note(client, url)
    assert "não consigo ouvir áudios" in reply
    assert twilio.state.media_fetches == []  # nothing fetched that nobody can hear
