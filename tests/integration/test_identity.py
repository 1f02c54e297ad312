"""Identity before acting on an appointment (issue 12), met the way callers meet it: signed
Twilio <Gather> requests, the web chat API, and Twilio's REST API (the local fake) receiving the
codes. The attack from the issue: a withheld number, another patient's number said aloud, "yes".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from twilio.request_validator import RequestValidator

from tests.fakes.twilio_rest_fake import TwilioRestFake
from tests.integration.integration_env import ACCOUNT_SID, AUTH_TOKEN, build, twilio_settings
from voice_agent.app import create_app
from voice_agent.clock import FixedClock
from voice_agent.scheduling.booking import BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services
from voice_agent.store.db import transaction
from voice_agent.store.identity_tables import IdentityCheck
from voice_agent.store.tables import Appointment, AppointmentStatus, Interaction, InteractionKind
from voice_agent.tools.catalog import build_registry

PUBLIC = "https://clinic.example"
CALL = "CA" + "5" * 32
VICTIM = "+5511987656002"
LOCAL = ("127.0.0.1", 50000)
CODE_TEMPLATE = "HX" + "e" * 32

REGISTRY = build_registry()
"""The tools the channels offer, built once for this module (a build reads every signature)."""


@pytest.fixture
def twilio(clock: FixedClock) -> Iterator[TwilioRestFake]:
    with TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN, clock) as fake:
        fake.add_template(CODE_TEMPLATE, "Clínica São Lucas: seu código é {{1}}.")
        yield fake


@pytest.fixture
def services(
    make_engine_for: Callable[[str], Engine],
    db_kind: str,
    clock: FixedClock,
    twilio: TwilioRestFake,
) -> Services:
    """On SQLite and, when configured, PostgreSQL (row locks and the nested insert differ)."""
    return build(
        make_engine_for(db_kind),
        clock,
        **twilio_settings(twilio.base_url),
        public_url=PUBLIC,
        whatsapp_confirmations=False,
    )


async def _patient_with_appointment(
    services: Services, phone: str = VICTIM, birth: str | None = None
) -> str:
    patient = await services.patients.find_or_create(phone, "pt-BR")
    await services.patients.update(
        patient.id, full_name="Helena Costa", birth_date=_date(birth) if birth else None
    )
    offers = await services.booking.find_offers(
        "clinico-consulta", Preferences(dates=[_date("2026-11-26")]), holder="setup"
    )
    request = BookingRequest(patient_id=patient.id, channel="whatsapp", holder="setup")
    return (await services.booking.book(request, offers[0].hold_id)).id


def _date(iso: str) -> Any:
    from datetime import date

    return date.fromisoformat(iso)


def _status(services: Services, appointment_id: str) -> AppointmentStatus:
    with transaction(services.engine) as session:
        appointment = session.get(Appointment, appointment_id)
        assert appointment is not None
        return appointment.status


def _codes(twilio: TwilioRestFake, phone: str) -> list[str]:
    bodies = [m["body"] for m in twilio.messages() if m["to"].endswith(phone)]
    return [re.search(r"\b(\d{6})\b", body).group(1) for body in bodies]  # type: ignore[union-attr]


def _gather(client: TestClient, **fields: str) -> ElementTree.Element:
    params = {"CallSid": CALL, "From": "anonymous", "To": "+551134567800", **fields}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        f"{PUBLIC}/twilio/gather/turn", params
    )
    response = client.post(
        "/twilio/gather/turn", data=params, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 200, response.text
    return ElementTree.fromstring(response.text)


def _said(root: ElementTree.Element) -> str:
    return " ".join(node.text or "" for node in root.iter("Say"))


async def test_the_withheld_number_attack_on_the_gather_line_is_stopped(
    services: Services, twilio: TwilioRestFake
) -> None:
    appointment = await _patient_with_appointment(services)
    twilio.open_window(VICTIM)  # the patient wrote to the clinic lately: free text is allowed
    doctor = services.clinic().doctors_by_id
    with TestClient(create_app(services.settings, services)) as client:
        asked = _gather(client, SpeechResult="quero cancelar minha consulta")
        assert "número" in _said(asked)
        claimed = _gather(client, SpeechResult="11 98765 6002")  # someone else's number
        said = _said(claimed)
        assert "código" in said and "6002" in said
        assert "26 de novembro" not in said and not any(d.name in said for d in doctor.values())
        keypad = claimed.find("Gather")
        assert keypad is not None and keypad.get("finishOnKey") == "#"
        assert keypad.get("numDigits") is None
        (code,) = _codes(twilio, VICTIM)  # the code went to the real patient's WhatsApp only
        message = twilio.messages()[0]
        assert message["to"] == f"whatsapp:{VICTIM}" and "Não compartilhe" in message["body"]

        yes = _gather(client, SpeechResult="sim")
        assert "26 de novembro" not in _said(yes) and "código" in _said(yes)
        wrong = "111111" if code != "111111" else "222222"
        refused = _gather(client, Digits=wrong + "#")
        assert "não confere" in _said(refused) and "26 de novembro" not in _said(refused)
        assert _status(services, appointment) == AppointmentStatus.booked

        verified = _gather(client, Digits=code + "#")
        assert "identidade confirmada" in _said(verified)
        assert "26 de novembro" in _said(verified)  # now, and only now, it is read out
        done = _gather(client, SpeechResult="sim")
        assert "cancelada" in _said(done)
    assert _status(services, appointment) == AppointmentStatus.cancelled
    with transaction(services.engine) as session:
        row = session.execute(
            select(Interaction).where(Interaction.kind == InteractionKind.cancellation)
        ).scalar_one()
        check = session.execute(select(IdentityCheck)).scalar_one()
    who = (row.actor, row.channel, row.call_id, row.verified_by)
    assert who == ("patient", "voice", CALL, "code")
    assert row.actor_id == row.patient_id
    assert check.code_hash is None and code not in repr(check)  # used once, never stored in clear


def _chat(client: TestClient, session: str, text: str, phone: str = VICTIM) -> dict[str, Any]:
    response = client.post("/api/chat", json={"session_id": session, "text": text, "phone": phone})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_web_chat_cancel_is_refused_without_the_code_and_done_with_it(
    make_engine_for: Callable[[str], Engine], clock: FixedClock, twilio: TwilioRestFake
) -> None:
    services = build(
        make_engine_for("sqlite"),
        clock,
        **twilio_settings(twilio.base_url),
        whatsapp_confirmations=False,
        whatsapp_code_template_sid=CODE_TEMPLATE,  # the patient's 24-hour window is closed
    )
    appointment = await _patient_with_appointment(services)
    with TestClient(create_app(services.settings, services), client=LOCAL) as client:
        first = _chat(client, "web-a", "quero cancelar minha consulta")
        assert first["state"]["stage"] == "verify_identity"
        assert "26 de novembro" not in first["reply"] and "Helena" not in first["reply"]
        assert first["tool_calls"] == ["list_my_appointments", "send_verification_code"]
        (code,) = _codes(twilio, VICTIM)
        assert twilio.messages()[0]["content_sid"] == CODE_TEMPLATE
        second = _chat(client, "web-a", "sim")
        assert "cancel_appointment" not in second["tool_calls"]
        assert _status(services, appointment) == AppointmentStatus.booked
        verified = _chat(client, "web-a", f"o código é {code[:3]} {code[3:]}")
        assert "26 de novembro" in verified["reply"]
        done = _chat(client, "web-a", "sim")
        assert done["state"]["appointment"]["action"] == "cancelled"
    assert _status(services, appointment) == AppointmentStatus.cancelled


async def test_wrong_codes_lock_the_conversation(
    services: Services, twilio: TwilioRestFake
) -> None:
    appointment = await _patient_with_appointment(services)
    twilio.open_window(VICTIM)
    with TestClient(create_app(services.settings, services), client=LOCAL) as client:
        _chat(client, "web-b", "quero ver minhas consultas")
        (code,) = _codes(twilio, VICTIM)
        wrong = [f"{(int(code) + n) % 1_000_000:06d}" for n in range(1, 6)]
        replies = [_chat(client, "web-b", guess)["reply"] for guess in wrong]
        assert "Tentativas restantes: 4" in replies[0] and "Tentativas restantes: 1" in replies[3]
        assert "Não consegui confirmar sua identidade" in replies[4]
        late = _chat(client, "web-b", "quero cancelar minha consulta")
        assert "26 de novembro" not in late["reply"]
        again = _chat(client, "web-b", code)  # the right code, too late
        assert "26 de novembro" not in again["reply"]
    assert len(_codes(twilio, VICTIM)) == 1  # a locked conversation gets no new code
    assert _status(services, appointment) == AppointmentStatus.booked


async def test_web_chat_birth_date_verifies_and_logs_who_acted(
    services: Services, twilio: TwilioRestFake
) -> None:
    appointment = await _patient_with_appointment(services, birth="1961-08-30")
    with TestClient(create_app(services.settings, services), client=LOCAL) as client:
        _chat(client, "web-c", "preciso cancelar a consulta")
        assert "26 de novembro" in _chat(client, "web-c", "30/08/1961")["reply"]
        _chat(client, "web-c", "sim")
    assert _status(services, appointment) == AppointmentStatus.cancelled
    with transaction(services.engine) as session:
        rows = {r.kind: r for r in session.execute(select(Interaction)).scalars()}
    booked, cancelled = rows[InteractionKind.booking], rows[InteractionKind.cancellation]
    assert (booked.actor, booked.verified_by, booked.call_id) == ("system", None, None)
    assert (cancelled.actor, cancelled.channel, cancelled.verified_by) == (
        "patient",
        "web",
        "birth_date",
    )
    assert cancelled.call_id and cancelled.call_id.startswith("conv-")


async def test_codes_expire_resend_once_a_minute_and_are_capped_per_phone(
    services: Services, twilio: TwilioRestFake, clock: FixedClock
) -> None:
    from datetime import timedelta

    await _patient_with_appointment(services)
    twilio.open_window(VICTIM)
    patient = await services.patients.find_by_phone(VICTIM)
    assert patient is not None
    identity = services.identity
    first = await identity.send_code("conv-1", "web", patient, "en")
    assert (first.status, first.route) == ("sent", "whatsapp")
    again = await identity.send_code("conv-1", "web", patient, "en")
    assert again.status == "pending" and len(_codes(twilio, VICTIM)) == 1
    (code,) = _codes(twilio, VICTIM)
    assert "verification code" in twilio.messages()[0]["body"]  # the patient's language: en
    clock.advance(timedelta(minutes=5, seconds=1))
    assert (await identity.check_code("conv-1", patient.id, code)).status == "expired"
    for n in range(2, 6):
        assert (await identity.send_code(f"conv-{n}", "web", patient, "en")).status == "sent"
    capped = await identity.send_code("conv-6", "web", patient, "en")
    assert capped.status == "rate_limited" and len(_codes(twilio, VICTIM)) == 5
    clock.advance(timedelta(hours=1))
    assert (await identity.send_code("conv-6", "web", patient, "en")).status == "sent"


async def test_a_carrier_verified_caller_is_not_asked(
    services: Services, twilio: TwilioRestFake
) -> None:
    """The Realtime call path builds this context from the caller id (voice/session.py)."""
    from voice_agent.tools.context import ToolContext

    await _patient_with_appointment(services)
    twilio.open_window(VICTIM)
    ctx = ToolContext(
        services=services,
        channel="voice",
        conversation_id=CALL,
        caller_phone=VICTIM,
        phone_verified=True,
        language="pt-BR",
        call_sid=CALL,
    )
    listed = await REGISTRY.dispatch("list_my_appointments", {}, ctx)
    assert listed.ok and listed.output["appointments"][0]["date"] == "2026-11-26"
    assert twilio.messages() == []
    doctor = listed.output["appointments"][0]["doctor"]
    own = await REGISTRY.dispatch("find_slots", {"service": "clinico geral"}, ctx)
    assert "previous_doctor" in json.dumps(own.output, default=str)  # ranked by history
    withheld = ToolContext(
        services=services, channel="voice", conversation_id="CA" + "6" * 32,
        caller_phone=None, language="pt-BR",
    )  # fmt: skip
    sent = await REGISTRY.dispatch("send_verification_code", {"phone": "11 98765-6002"}, withheld)
    assert sent.ok and sent.output["to_phone_ending"] == "6002"
    claimed = await REGISTRY.dispatch("find_slots", {"service": "clinico geral"}, withheld)
    assert claimed.ok and "previous_doctor" not in json.dumps(claimed.output, default=str)
    assert doctor  # who they saw stays unsaid to a caller who only claims the number
    refused = await REGISTRY.dispatch("list_my_appointments", {}, withheld)
    assert refused.error_code == "verify_first" and "appointments" not in refused.output
    assert "Verify first" in refused.output["error"]
    overwrite = await REGISTRY.dispatch("update_patient", {"birth_date": "2000-01-01"}, withheld)
    assert overwrite.output == {
        "updated": True,
        "not_changed": ["birth_date"],
        "note": overwrite.output["note"],
    }  # else a caller would set the birth date, then "verify" with it
    kept = await services.patients.find_by_phone(VICTIM)
    assert kept is not None and kept.birth_date is None


def test_codes_and_birth_dates_as_callers_say_them() -> None:
    from datetime import date

    from voice_agent.identity.birth_dates import parse_birth_date
    from voice_agent.identity.codes import code_matches, hash_code, new_code, spoken_code

    assert spoken_code("o código é 123 456") == "123456" and spoken_code("12-34-56#") == "123456"
    assert spoken_code("1234567") is None and spoken_code("123456 e 22") is None
    code = new_code()
    assert len(code) == 6 and code.isdigit()
    stored = hash_code(code, "00" * 16)
    assert code not in stored and code_matches(code, "00" * 16, stored)
    born = date(1980, 3, 15)
    for text, language in [
        ("15/03/1980", "pt-BR"),
        ("nasci em 15 de março de 1980", "pt-BR"),
        ("15031980#", "pt-BR"),
        ("15.03.1980", "ru"),
        ("15 марта 1980 года", "ru"),
        ("March 15, 1980", "en"),
        ("03/15/1980", "en"),
        ("1980-03-15", "en"),
    ]:
        assert parse_birth_date(text, language) == born, text
    assert parse_birth_date("15 de março", "pt-BR") is None  # no year: no guess
    assert parse_birth_date("31/02/1980", "pt-BR") is None


def test_terminal_chat_asks_for_the_birth_date_before_cancelling(
    tmp_path: Any, clock: FixedClock
) -> None:
    import asyncio

    from typer.testing import CliRunner

    from tests.conftest import make_settings
    from voice_agent.alerts import ConsoleAlerter
    from voice_agent.cli import app
    from voice_agent.cli.context import CliRuntime
    from voice_agent.services import build_services

    settings = make_settings(f"sqlite:///{tmp_path / 'cli.db'}")
    seeded = build_services(settings, clock=clock, alerter=ConsoleAlerter())
    appointment = asyncio.run(_patient_with_appointment(seeded, birth="1990-12-01"))
    result = CliRunner().invoke(
        app,
        ["chat", "--phone", VICTIM, "--offline"],
        input="quero cancelar minha consulta\n02/12/1990\n01/12/1990\nsim\n",
        obj=CliRuntime(clock=clock, settings=settings),
    )
    assert result.exit_code == 0, result.output
    before, after = result.output.split("identidade confirmada")
    assert "data de nascimento" in before and "não confere" in before
    assert "26 de novembro" not in before and "26 de novembro" in after
    assert _status(seeded, appointment) == AppointmentStatus.cancelled
    seeded.close()


async def test_sms_when_whatsapp_refuses_and_a_new_booking_is_marked_unverified(
    make_engine_for: Callable[[str], Engine], clock: FixedClock, twilio: TwilioRestFake
) -> None:
    from voice_agent.tools.context import ToolContext

    services = build(
        make_engine_for("sqlite"),
        clock,
        **twilio_settings(twilio.base_url),
        twilio_from_number="+15005550006",
        whatsapp_confirmations=False,
    )
    await _patient_with_appointment(services)
    ctx = ToolContext(
        services=services, channel="web", conversation_id="conv-sms",
        caller_phone=VICTIM, language="pt-BR",
    )  # fmt: skip
    sent = await REGISTRY.dispatch("send_verification_code", {}, ctx)
    assert sent.ok and sent.output["via"] == "sms"  # WhatsApp's 24-hour window was closed
    (message,) = twilio.messages()
    assert message["to"] == VICTIM and message["from"] == "+15005550006"
    found = await REGISTRY.dispatch("find_slots", {"service": "clinico geral"}, ctx)
    booked = await REGISTRY.dispatch(
        "book_appointment", {"option": "1", "confirmed_by_patient": True}, ctx
    )
    assert found.ok and booked.ok, booked.output  # booking needs no check ...
    with transaction(services.engine) as session:
        row = (
            session.execute(
                select(Interaction)
                .where(Interaction.kind == InteractionKind.booking)
                .order_by(Interaction.id.desc())  # type: ignore[union-attr]
            )
            .scalars()
            .first()
        )
    assert row is not None  # ... but the log says nobody checked who booked
    assert (row.actor, row.channel, row.call_id, row.verified_by) == (
        "patient",
        "web",
        "conv-sms",
        "unverified",
    )


async def test_wrong_birth_dates_are_capped_per_patient_across_conversations(
    services: Services, clock: FixedClock
) -> None:
    """A new chat session or call buys no new guesses once a day's wrong answers are used up."""
    from datetime import timedelta

    await _patient_with_appointment(services, birth="1958-06-21")
    patient = await services.patients.find_by_phone(VICTIM)
    assert patient is not None
    identity, wrong, right = services.identity, _date("1958-06-22"), _date("1958-06-21")
    for conversation in ("conv-a", "conv-b"):
        outcomes = [
            (await identity.check_birth_date(conversation, "web", patient, wrong)).status
            for _ in range(5)
        ]
        assert outcomes == ["wrong"] * 4 + ["locked"]
    third = await identity.check_birth_date("conv-c", "web", patient, right)
    assert third.status == "locked"  # 10 wrong answers today: even the right one is refused
    clock.advance(timedelta(days=1, minutes=1))
    fresh = await identity.check_birth_date("conv-d", "web", patient, right)
    assert fresh.status == "verified"
    assert await identity.verified_by("conv-d", patient.id) == "birth_date"
    assert await identity.verified_by("conv-d", "someone-else") is None
