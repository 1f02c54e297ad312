"""No patient data in any log line, under faults too, and no second stream for an ended call.

The app runs under uvicorn against the Realtime and Twilio fakes; every logger is captured at
DEBUG while patients book by voice, web chat, WhatsApp and the no-AI phone line (the WhatsApp
confirmations go out through the Twilio SDK), and then while the database is broken. The log is
then searched for every phone number, name and e-mail address the test used.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest

from tests.e2e.harness import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CALLER,
    PUBLIC_URL,
    LiveApp,
    live_app,
    live_call,
)
from tests.fakes.audio import load_fixture
from tests.fakes.polling import poll
from tests.fakes.realtime_script import FunctionCallTurn, SpeakTurn, UserTurn
from tests.fakes.twilio_media import TwilioMediaSimulator
from tests.fakes.twilio_rest_fake import TwilioRestFake
from voice_agent.logging_setup import install_log_privacy

VOICE_CALL = "CA" + "6" * 32
GATHER_CALL = "CA" + "7" * 32
WHATSAPP_FROM = "whatsapp:+14155238886"
TEMPLATE = "HX" + "0" * 32

PEOPLE = {
    # phone: (full name, e-mail or None)
    CALLER: ("Maria Aparecida Quintela", None),
    "+5511987650123": ("Joana Pereira Lima", "joana.lima@example.com"),
    "+5511987650456": ("Carla Souza Dias", "carla.dias@example.org"),
    "+5511987650789": ("Paulo Mendes Rocha", None),
    "+5511987650999": ("Helena Vasconcelos Prado", "helena.prado@example.net"),
}


def _needles() -> list[str]:
    needles: list[str] = []
    for phone, (name, email) in PEOPLE.items():
        digits = phone.removeprefix("+")
        needles += [phone, digits, digits[2:], digits[4:]]  # +55…, 55…, 11…, the subscriber
        needles += [name, name.split(maxsplit=1)[1]]  # the full name and the surnames
        if email:
            needles += [email, email.split("@")[0]]
    return needles


def _text_of(records: list[logging.LogRecord]) -> str:
    formatter = logging.Formatter("%(name)s %(message)s")
    return "\n".join(formatter.format(record) for record in records)


async def _voice_booking(realtime, app: LiveApp) -> None:  # type: ignore[no-untyped-def]
    token = await app.incoming_call(VOICE_CALL)
    sim = TwilioMediaSimulator(
        app.media_url, call_sid=VOICE_CALL, custom_parameters={"token": token}, speed=0.05
    )
    await sim.connect()
    await sim.wait_for(lambda s: len(s.played) > 0, timeout=10)
    await sim.wait_idle(timeout=10)
    for fixture, tools in (("pt_br_greeting_cardiology", 2), ("pt_br_yes", 3)):
        await sim.send_audio(load_fixture(fixture))
        await sim.send_silence(800)
        await realtime.wait_for(lambda r, n=tools: len(r.tool_outputs) >= n, timeout=15)
        await sim.wait_idle(timeout=10)
    await sim.send_audio(load_fixture("pt_br_goodbye"))
    await sim.send_silence(800)
    assert await sim.wait_closed(timeout=20) == 1000


async def _chat(client: httpx.AsyncClient, session: str, phone: str, text: str) -> int:
    response = await client.post(
        "/api/chat", json={"session_id": session, "text": text, "phone": phone}
    )
    return response.status_code


async def _whatsapp(app: LiveApp, phone: str, body: str, sid: int) -> httpx.Response:
    return await app.post_twilio(
        "/twilio/messaging",
        {
            "From": f"whatsapp:{phone}",
            "To": WHATSAPP_FROM,
            "Body": body,
            "MessageSid": f"SM{sid:032d}",
            "AccountSid": ACCOUNT_SID,
        },
    )


async def _gather(app: LiveApp, call_sid: str, phone: str, answers: list[str]) -> list[int]:
    params = {"CallSid": call_sid, "From": phone, "To": "+551134567800"}
    response = await app.post_twilio("/twilio/gather/start", params)
    statuses = [response.status_code]
    for answer in answers:
        if response.status_code != 200:
            break
        action = ElementTree.fromstring(response.text).find("Gather")
        assert action is not None
        path = action.get("action", "").removeprefix(PUBLIC_URL)
        response = await app.post_twilio(path, {**params, "SpeechResult": answer})
        statuses.append(response.status_code)
    return statuses


def _booking_turns(name: str, email: str | None) -> list[str]:
    return [
        "Olá, bom dia!",
        name,
        email or "pular",
        "Quero marcar uma consulta com cardiologista amanhã de manhã",
        "a segunda",
        "sim",
    ]


def _lose_the_schema(app: LiveApp) -> Path:
    """The SQLite file vanishes: the next connections open a new, empty database, so every
    statement fails naming its table (``no such table``), as after a botched restore. Those
    errors carry the statement's parameters unless the engine hides them."""
    path = Path(app.services.settings.database_url.removeprefix("sqlite:///"))
    app.services.engine.dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def _lose_the_volume(path: Path, app: LiveApp) -> None:
    """A folder takes the file's name: every connection fails (``unable to open database
    file``). (Tests run as root, so taking the read permission away would not stop SQLite.)"""
    app.services.engine.dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.mkdir()


async def _patient_during_outage(app: LiveApp, base: str, sid: int) -> None:
    phone = "+5511987650999"
    name, email = PEOPLE[phone]
    async with httpx.AsyncClient(base_url=base) as client:
        for text in (name, email or ""):
            assert await _chat(client, f"web-helena-{sid}", phone, text) >= 500
    assert (await _whatsapp(app, phone, name, sid)).status_code >= 500
    call = f"CA{sid:032d}"
    assert max(await _gather(app, call, phone, [name])) >= 500
    await asyncio.sleep(0.5)  # a failing outbox/confirmation job round or two


async def test_full_flows_and_a_database_outage_log_no_patient_data(
    tmp_path: Path, clock, caplog: pytest.LogCaptureFixture
) -> None:
    install_log_privacy()  # as `voice-agent serve` does first thing (the fakes log before the app)
    caplog.set_level(logging.DEBUG)
    script = [
        SpeakTurn("Clínica São Lucas, bom dia! Em que posso ajudar?", audio_ms=400),
        UserTurn("Quero marcar uma consulta com cardiologista."),
        FunctionCallTurn("register_patient", {"full_name": PEOPLE[CALLER][0]}),
        FunctionCallTurn("find_slots", {"service": "cardiologia"}),
        SpeakTurn("Tenho terça às nove. Pode ser?", audio_ms=400),
        UserTurn("Sim, pode ser."),
        FunctionCallTurn("book_appointment", {"option": "1", "confirmed_by_patient": True}),
        SpeakTurn("Pronto, está agendado.", audio_ms=300),
        UserTurn("Obrigada, tchau."),
        FunctionCallTurn("end_call", {"reason": "booked"}, say="Até logo!"),
    ]
    with TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        twilio.add_template(TEMPLATE, "Olá, {{1}}! Sua consulta: {{2}}.")
        integrations = {
            "twilio_api_base": twilio.base_url,
            "twilio_whatsapp_from": WHATSAPP_FROM,
            "outbox_interval_seconds": 0.2,
            "whatsapp_confirmation_template_sid": TEMPLATE,
        }
        async with live_call(tmp_path, clock, script, **integrations) as (realtime, app):
            await _voice_booking(realtime, app)
        # The text channels and the no-AI line, on the same database, without OpenAI.
        async with live_app(tmp_path, clock, None, **integrations) as app:
            base = f"http://127.0.0.1:{app.port}"
            async with httpx.AsyncClient(base_url=base) as client:
                phone = "+5511987650123"
                for text in _booking_turns(*PEOPLE[phone]):
                    assert await _chat(client, "web-joana", phone, text) == 200

            phone = "+5511987650456"
            for index, text in enumerate(_booking_turns(*PEOPLE[phone]), 1):
                assert (await _whatsapp(app, phone, text, index)).status_code == 200

            phone = "+5511987650789"
            name = PEOPLE[phone][0]
            statuses = await _gather(app, GATHER_CALL, phone, _booking_turns(name, None))
            assert set(statuses) == {200}

            # The booking confirmations leave through the Twilio SDK (the outbox job).
            await poll(lambda: len(twilio.messages()) >= 3, timeout=10)

            path = _lose_the_schema(app)
            await _patient_during_outage(app, base, 98)
            _lose_the_volume(path, app)
            await _patient_during_outage(app, base, 99)

    records = caplog.records
    missing = [r for r in records if not hasattr(r, "call_id")]
    assert missing == [], [(r.name, r.msg) for r in missing[:5]]
    text = _text_of(records)
    assert "no such table" in text and "unable to open database file" in text  # logged …
    assert "[SQL parameters hidden due to hide_parameters=True]" in text
    assert any(r.levelno >= logging.ERROR for r in records)
    leaks = sorted({needle for needle in _needles() if needle in text})
    assert leaks == [], [line for line in text.splitlines() if any(n in line for n in leaks)][:5]
    assert not re.search(r"\+55\d{10,11}", text)
    # … and every line of a call names its call (the Realtime call, or the no-AI line's turns).
    call_lines = [r for r in records if r.name.startswith("voice_agent.voice")]
    assert {r.call_id for r in call_lines} == {VOICE_CALL, GATHER_CALL}
