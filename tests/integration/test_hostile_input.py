"""The app under hostile and unlucky input, through HTTP as an attacker meets it: every probe to
every route gets a clear 4xx (no 500, no traceback, no echo of the input), bodies and request
rates are bounded, the web chat stays local, signed routes need the public URL, and Twilio's
messages and gather steps are processed once. On SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, func, select
from twilio.request_validator import RequestValidator
from typer.testing import CliRunner

from tests.conftest import make_settings
from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.cli import app as cli
from voice_agent.cli.context import CliRuntime
from voice_agent.clock import FixedClock
from voice_agent.services import Services, build_services
from voice_agent.store.db import transaction
from voice_agent.store.replay_tables import ProcessedRequest
from voice_agent.store.tables import Appointment

TOKEN = "hostile-test-token-0123456789"
PUBLIC = "https://clinic.example"
LOCAL = ("127.0.0.1", 50000)
CALL = "CA" + "3" * 32
CALLER = "+5511987650321"
_SIDS = itertools.count(1)

TWILIO_ROUTES = [
    "/twilio/voice",
    "/twilio/after-stream",
    "/twilio/whisper",
    "/twilio/stream-status",
    "/twilio/messaging",
    "/twilio/gather/start",
    "/twilio/gather/turn",
    "/twilio/confirm/answer?step=1",
    "/twilio/confirm/amd?step=1",
    "/twilio/confirm/status?step=1",
    "/twilio/confirm/keypad",
    "/twilio/confirm/gather",
]
ROUTES = [*TWILIO_ROUTES, "/api/chat"]


def _services(engine: Engine, clock: FixedClock, **overrides: Any) -> Services:
    settings = make_settings(
        engine.url.render_as_string(hide_password=False),
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token=TOKEN,
        **{"public_url": PUBLIC, **overrides},
    )
    return build_services(settings, clock=clock, alerter=ConsoleAlerter(), engine=engine)


@pytest.fixture
def app_services(
    db_kind: str, make_engine_for: Callable[[str], Engine], clock: FixedClock
) -> Services:
    return _services(make_engine_for(db_kind), clock)


@pytest.fixture
def client(app_services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(app_services.settings, app_services), client=LOCAL) as test_client:
        yield test_client


def _signature(path: str, params: dict[str, str]) -> dict[str, str]:
    validator = RequestValidator(TOKEN)
    return {"X-Twilio-Signature": validator.compute_signature(PUBLIC + path, params)}


def _post_signed(client: TestClient, path: str, params: dict[str, str]) -> Any:
    return client.post(path, data=params, headers=_signature(path, params))


def _call_params(**fields: str) -> dict[str, str]:
    return {"CallSid": CALL, "From": CALLER, "To": "+551134567800", **fields}


# Probes -----------------------------------------------------------------------------------------

Probe = Callable[[TestClient, str], Any]


def _nul_call_sid(client: TestClient, path: str) -> Any:
    if path == "/api/chat":
        return client.post(path, json={"session_id": "s\x00", "text": "oi\x00"})
    return _post_signed(client, path, _call_params(CallSid="CA" + "1" * 31 + "\x00"))


def _long_call_sid(client: TestClient, path: str) -> Any:
    if path == "/api/chat":
        return client.post(path, json={"session_id": "s" * 5000, "text": "oi"})
    return _post_signed(client, path, _call_params(CallSid="CA" + "1" * 5000))


def _lone_surrogate(client: TestClient, path: str) -> Any:
    raw = b'{"session_id": "s1", "text": "ol\\ud800a", "phone": "+55\\udfff"}'
    headers = {"Content-Type": "application/json", **_signature(path, {})}
    return client.post(path, content=raw, headers=headers)


def _malformed_json(client: TestClient, path: str) -> Any:
    headers = {"Content-Type": "application/json", **_signature(path, {})}
    return client.post(path, content=b'{"session_id": "s1", "text": [1, {', headers=headers)


def _malformed_form(client: TestClient, path: str) -> Any:
    headers = {
        "Content-Type": "multipart/form-data; boundary=zz",
        **_signature(path, {}),
    }
    return client.post(path, content=b"\xff\xfe--zz\r\nnot a part\r\n--zz--", headers=headers)


def _huge_body(client: TestClient, path: str) -> Any:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return client.post(path, content=b"Body=" + b"a" * (2 * 1024 * 1024), headers=headers)


def _streamed_huge_body(client: TestClient, path: str) -> Any:
    """No Content-Length: the size is counted as the chunks arrive."""

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"a" * 65536

    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return client.post(path, content=chunks(), headers=headers)


def _lying_content_length(client: TestClient, path: str) -> Any:
    headers = {"Content-Type": "application/json", "Content-Length": "99999999999999999999"}
    return client.post(path, content=b"{}", headers=headers)


PROBES: dict[str, Probe] = {
    "nul_call_sid": _nul_call_sid,
    "long_call_sid": _long_call_sid,
    "lone_surrogate": _lone_surrogate,
    "malformed_json": _malformed_json,
    "malformed_form": _malformed_form,
    "huge_body": _huge_body,
    "streamed_huge_body": _streamed_huge_body,
    "lying_content_length": _lying_content_length,
}


def _no_trace(caplog: pytest.LogCaptureFixture) -> None:
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_every_probe_to_every_route_gets_a_clear_4xx(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: dict[tuple[str, str], int] = {}
    for path in ROUTES:
        for name, probe in PROBES.items():
            response = probe(client, path)
            answers[(name, path)] = response.status_code
            assert "Traceback" not in response.text
            assert "ud800" not in response.text and "aaaaaaaa" not in response.text
    wrong = {key: status for key, status in answers.items() if not 400 <= status < 500}
    assert wrong == {}
    assert {answers[("huge_body", path)] for path in ROUTES} == {413}
    assert {answers[("streamed_huge_body", path)] for path in ROUTES} == {413}
    assert answers[("lone_surrogate", "/api/chat")] == 422
    _no_trace(caplog)


def test_step_numbers_and_turns_are_bounded(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for route in ("answer", "amd", "status"):
        for step in ("9" * 20, "-1", "1e3", "0x1f", ""):
            path = f"/twilio/confirm/{route}?step={step}"
            assert _post_signed(client, path, _call_params()).status_code == 400, path
    path = "/twilio/gather/turn?turn=" + "9" * 20
    assert _post_signed(client, path, _call_params(SpeechResult="oi")).status_code == 400
    _no_trace(caplog)


def test_validation_errors_name_the_field_not_the_value(client: TestClient) -> None:
    secret = "Maria Confidencial +5511987650999"
    response = client.post(
        "/api/chat", json={"session_id": "bad id!", "text": secret, "language": secret}
    )
    assert response.status_code == 422
    assert secret not in response.text and "Maria" not in response.text
    fields = {tuple(error["loc"]) for error in response.json()["detail"]}
    assert ("body", "session_id") in fields and ("body", "language") in fields


def test_api_slots_refuses_bad_parameters_without_echo(client: TestClient) -> None:
    for query in (
        "service=%00",
        "service=cardiologia&limit=" + "9" * 20,
        "service=cardiologia&date_from=99999-99-99",
        "service=" + "x" * 600,
    ):
        response = client.get(f"/api/slots?{query}")
        assert 400 <= response.status_code < 500, (query, response.text)
        assert "xxxxxxxx" not in response.text


def test_deeply_nested_clinic_yaml_is_refused_in_one_line(tmp_path: Path) -> None:
    nested = tmp_path / "nested.yaml"
    nested.write_text("name: " + "[" * 100_000 + "]" * 100_000, encoding="utf-8")
    runtime = CliRuntime(settings=make_settings(f"sqlite:///{tmp_path / 'c.db'}"))
    result = CliRunner().invoke(cli, ["clinic", "load", str(nested)], obj=runtime)
    assert result.exit_code != 0
    assert "nested too deeply" in result.output and "Traceback" not in result.output


# Rate limits ------------------------------------------------------------------------------------


def test_a_chat_flood_from_one_client_gets_429_with_retry_after(app_services: Services) -> None:
    app = create_app(app_services.settings, app_services)
    with TestClient(app, client=LOCAL) as client:
        statuses = [
            client.post("/api/chat", json={"session_id": "flood", "text": "oi"}).status_code
            for _ in range(25)
        ]
        assert statuses[:20] == [200] * 20 and statuses[-1] == 429
        limited = client.post("/api/chat", json={"session_id": "flood", "text": "oi"})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert "retry in" in limited.json()["detail"]
    with TestClient(app, client=("127.0.0.2", 1)) as other:  # another client is not affected
        headers = {"Authorization": "Bearer x"}
        assert other.post("/api/chat", json={}, headers=headers).status_code != 429


def test_one_whatsapp_sender_flooding_is_limited(client: TestClient) -> None:
    statuses = []
    for _ in range(24):
        params = {
            "From": "whatsapp:+5511987650777",
            "To": "whatsapp:+551134567800",
            "Body": "oi",
            "MessageSid": f"SM{next(_SIDS):032d}",
        }
        statuses.append(_post_signed(client, "/twilio/messaging", params).status_code)
    assert statuses[:20] == [200] * 20 and 429 in statuses[20:]


def test_one_call_flooding_its_callbacks_is_limited(client: TestClient) -> None:
    params = _call_params(StreamEvent="stream-started")
    statuses = [
        _post_signed(client, "/twilio/stream-status", params).status_code for _ in range(45)
    ]
    assert statuses[:40] == [204] * 40 and statuses[-1] == 429
    other = _post_signed(client, "/twilio/stream-status", _call_params(CallSid="CA" + "9" * 32))
    assert other.status_code == 204


# The web chat stays local -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-For": "127.0.0.1"},
        {"Forwarded": "for=127.0.0.1"},
        {"X-Real-IP": "127.0.0.1"},
        {"X-Forwarded-Host": "localhost"},
    ],
)
def test_the_local_chat_is_not_reachable_through_a_proxy(
    client: TestClient, headers: dict[str, str]
) -> None:
    body = {"session_id": "p1", "text": "oi", "phone": "+5511987653009"}
    assert client.post("/api/chat", json=body).status_code == 200  # this machine, directly
    assert client.post("/api/chat", json=body, headers=headers).status_code == 403


def test_a_token_holder_reaches_the_chat_through_a_proxy(app_services: Services) -> None:
    app_services.settings.chat_api_token = SecretStr("staff-token-0123456789abcdef")
    with TestClient(create_app(app_services.settings, app_services), client=LOCAL) as client:
        headers = {
            "X-Forwarded-For": "203.0.113.5",
            "Authorization": "Bearer staff-token-0123456789abcdef",
        }
        response = client.post(
            "/api/chat", json={"session_id": "p2", "text": "oi"}, headers=headers
        )
        assert response.status_code == 200


# Signed routes need the public URL ---------------------------------------------------------------


def test_signed_routes_need_the_public_url_never_a_client_header(
    db_kind: str, make_engine_for: Callable[[str], Engine], clock: FixedClock
) -> None:
    services = _services(make_engine_for(db_kind), clock, public_url=None)
    params = _call_params()
    attacker = "https://attacker.example/twilio/voice"
    signature = RequestValidator(TOKEN).compute_signature(attacker, params)
    with TestClient(create_app(services.settings, services), client=LOCAL) as client:
        response = client.post(
            "/twilio/voice",
            data=params,
            headers={
                "X-Twilio-Signature": signature,
                "X-Forwarded-Host": "attacker.example",
                "X-Forwarded-Proto": "https",
            },
        )
        assert response.status_code == 503
        assert "VOICE_AGENT_PUBLIC_URL" in response.text


# Processed once ---------------------------------------------------------------------------------


def _message(text: str) -> str | None:
    node = ElementTree.fromstring(text).find("Message")
    return None if node is None else node.text


def test_a_whatsapp_message_delivered_twice_is_processed_once(
    client: TestClient, app_services: Services
) -> None:
    params = {
        "From": "whatsapp:+5511987650888",
        "To": "whatsapp:+551134567800",
        "Body": "quero marcar uma consulta",
        "MessageSid": f"SM{next(_SIDS):032d}",
    }
    first = _post_signed(client, "/twilio/messaging", params)
    assert first.status_code == 200 and _message(first.text)
    again = _post_signed(client, "/twilio/messaging", params)
    assert again.status_code == 200 and _message(again.text) is None  # acknowledged, ignored
    with transaction(app_services.engine) as session:
        key = f"msg:{params['MessageSid']}"
        assert session.get(ProcessedRequest, key) is not None


def test_a_message_keyed_by_the_older_sid_names_is_processed_once(
    client: TestClient, app_services: Services
) -> None:
    """Without MessageSid the message was processed with no replay guard; Twilio sends the same
    sid as SmsMessageSid and SmsSid too."""
    sid = f"SM{next(_SIDS):032d}"
    params = {
        "From": "whatsapp:+5511987650889",
        "To": "whatsapp:+551134567800",
        "Body": "quero marcar uma consulta",
        "SmsMessageSid": sid,
        "SmsSid": sid,
    }
    assert _message(_post_signed(client, "/twilio/messaging", params).text)
    assert _message(_post_signed(client, "/twilio/messaging", params).text) is None
    with transaction(app_services.engine) as session:
        assert session.get(ProcessedRequest, f"msg:{sid}") is not None


def _follow(client: TestClient, root: ElementTree.Element, **fields: str) -> Any:
    gather = root.find("Gather")
    assert gather is not None, ElementTree.tostring(root)
    path = gather.get("action", "").removeprefix(PUBLIC)
    return path, _post_signed(client, path, _call_params(**fields))


def _appointments(services: Services) -> int:
    with transaction(services.engine) as session:
        return int(session.execute(select(func.count()).select_from(Appointment)).scalar_one())


def test_replayed_gather_steps_answer_the_same_and_book_once(
    client: TestClient, app_services: Services
) -> None:
    response = _post_signed(client, "/twilio/gather/start", _call_params())
    root = ElementTree.fromstring(response.text)
    replies: list[tuple[str, dict[str, str], str]] = []
    for fields in (
        {"SpeechResult": "Olá, bom dia"},
        {"SpeechResult": "Paulo Mendes"},
        {"SpeechResult": "pular"},
        {"SpeechResult": "quero marcar clínico geral amanhã de manhã"},
        {"Digits": "2"},
        {"Digits": "1"},
    ):
        path, response = _follow(client, root, **fields)
        assert response.status_code == 200, response.text
        replies.append((path, fields, response.text))
        root = ElementTree.fromstring(response.text)
    assert "marcado" in replies[-1][2]
    assert _appointments(app_services) == 1
    for path, fields, text in replies[-3:]:  # Twilio's retry, or a captured request replayed
        again = _post_signed(client, path, _call_params(**fields))
        assert again.status_code == 200 and again.text == text
    assert _appointments(app_services) == 1


def test_numbered_turns_in_the_gather_actions(client: TestClient) -> None:
    start = ElementTree.fromstring(
        _post_signed(client, "/twilio/gather/start", _call_params()).text
    )
    path, response = _follow(client, start)  # silence
    assert path.endswith("?turn=1")
    action = ElementTree.fromstring(response.text).find("Gather").get("action")  # type: ignore[union-attr]
    assert action.endswith("/twilio/gather/turn?turn=2&silences=1")


def test_json_decoding_is_not_fooled(client: TestClient) -> None:
    """Deep JSON nesting in a chat body is refused by size or shape, not by a crash."""
    deep = b'{"session_id": "d", "text": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    response = client.post("/api/chat", content=deep, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500
    assert json.loads(response.text)["detail"]
