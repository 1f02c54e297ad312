"""A move or a cancellation made at the desk reaches the patient on WhatsApp, through the same
outbox path as the agent's (twilio SDK against the local Twilio REST fake)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine

from tests.console.conftest import PASSWORD, StaffClient, csrf_from, login
from tests.console.test_agenda import CARLOS, TUESDAY, appointments, book
from tests.fakes.twilio_rest_fake import TwilioRestFake
from tests.integration.integration_env import ACCOUNT_SID, AUTH_TOKEN, build, twilio_settings
from voice_agent.app import create_app
from voice_agent.clock import FixedClock
from voice_agent.console.accounts import StaffAccounts, password_hasher
from voice_agent.services import Services
from voice_agent.store.tables import InteractionKind

PHONE = "+5511987654321"


@pytest.fixture
def twilio(clock: FixedClock) -> Iterator[TwilioRestFake]:
    with TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN, clock) as fake:
        yield fake


@pytest.fixture
def told_services(
    db_kind: str,
    make_engine_for: Callable[[str], Engine],
    clock: FixedClock,
    twilio: TwilioRestFake,
) -> Services:
    return build(
        make_engine_for(db_kind),
        clock,
        **twilio_settings(twilio.base_url),
        public_url="https://clinic.example",
        staff_password_profile="CHEAPEST",
    )


async def test_desk_changes_are_written_to_the_patient(
    told_services: Services, twilio: TwilioRestFake
) -> None:
    services = told_services
    StaffAccounts(services.engine, services.clock, password_hasher("CHEAPEST")).add(
        "desk@clinic.test", PASSWORD, "receptionist"
    )
    client = StaffClient(create_app(services.settings, services), base_url="https://testserver")
    assert login(client, "desk@clinic.test").status_code == 303  # type: ignore[attr-defined]
    client.csrf = csrf_from(client.get("/console/account").text)
    twilio.open_window(PHONE)
    book(client, f"{TUESDAY}T09:00", doctor=CARLOS, phone=PHONE)
    [appointment] = appointments(services)
    await services.interactions.record(
        InteractionKind.information, channel="whatsapp", patient_id=appointment.patient_id
    )  # the patient wrote to us a moment ago: WhatsApp's 24-hour window is open
    await services.outbox.drain()
    path = f"/console/agenda/appointment/{appointment.id}"
    client.form(f"{path}/move", {"start": f"{TUESDAY}T11:00"})
    await services.outbox.drain()
    client.form(f"{path}/cancel", {"reason": "férias"})
    await services.outbox.drain()
    bodies = [m["body"] for m in twilio.messages(f"whatsapp:{PHONE}")]
    assert len(bodies) == 3, bodies
    assert "está marcada para terça-feira, 24 de novembro, às 09:00" in bodies[0]
    assert "mudou de terça-feira, 24 de novembro, às 09:00 para" in bodies[1]
    assert "foi cancelada" in bodies[2]
