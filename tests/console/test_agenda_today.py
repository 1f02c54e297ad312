"""Same-day booking at the front desk, over HTTP: staff book and move onto any free time from now
on (no minimum notice), a time already started is refused in the staff's language, and the AI
receptionist keeps the clinic's policy (from tomorrow, 2 hours' notice) for the very same time.

NOW is Monday 23 November 2026, 10:00 in São Paulo; Dra. Ana Souza works Mondays 08:00-17:00
(lunch 12:00-13:30) on a 15-minute grid, cardio-consulta lasts 30 minutes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from tests.conftest import SAO_PAULO
from tests.console.conftest import StaffClient
from tests.console.test_agenda import appointments, book
from voice_agent.clock import FixedClock
from voice_agent.scheduling.availability import Slot
from voice_agent.scheduling.booking import BookingError, BookingRequest
from voice_agent.services import Services
from voice_agent.tools.catalog import build_registry
from voice_agent.tools.context import ToolContext

ANA = "dr-ana-souza"
TODAY = "2026-11-23"
WEDNESDAY = "2026-11-25"
CALLER = "+5511987650077"


def at(hhmm: str, day: str = TODAY) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=SAO_PAULO)


def book_ana(desk: StaffClient, hhmm: str, key: str, day: str = TODAY):  # type: ignore[no-untyped-def]
    return book(desk, f"{day}T{hhmm}", doctor=ANA, key=key)


def advance(services: Services, span: timedelta) -> None:
    clock = services.clock
    assert isinstance(clock, FixedClock)
    clock.advance(span)


def test_the_desk_books_a_free_time_later_today(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    desk = staff_client("receptionist")
    form = desk.get(f"/console/agenda/book?doctor={ANA}&service=cardio-consulta").text
    # Today's remaining times, from the one starting now; none before it, lunch left out.
    assert "segunda-feira, 23 de novembro, 10:00" in form
    assert "segunda-feira, 23 de novembro, 10:30" in form
    assert "segunda-feira, 23 de novembro, 09:45" not in form
    assert "segunda-feira, 23 de novembro, 12:00" not in form
    # 10:30 is 30 minutes away: inside the clinic's 2-hour notice, and the desk books it.
    response = book_ana(desk, "10:30", "a" * 32)
    assert response.status_code == 303
    assert response.headers["location"] == f"/console/agenda?day={TODAY}&done=booked"
    [appointment] = appointments(console_services)
    assert appointment.start == at("10:30") and appointment.doctor_id == ANA
    assert appointment.channel == "console"
    page = desk.get(response.headers["location"]).text
    assert "Consulta marcada." in page and "Maria Aparecida Silva" in page
    chip = f"doctor={ANA}&service=cardio-consulta&start={TODAY}T"
    assert f"{chip}10:00" in page  # the agenda of today lists its free times too
    assert f"{chip}10:30" not in page and f"{chip}10:45" not in page  # taken (30 minutes)
    assert f"{chip}11:00" in page
    # The exactly-once guarantees are the same: the same time again is taken.
    taken = book(
        desk, f"{TODAY}T10:30", doctor=ANA, name="João Santos", phone="+5511912345678", key="b" * 32
    )
    assert "error=slot_taken" in taken.headers["location"]
    assert len(appointments(console_services)) == 1


@pytest.mark.parametrize(
    ("language", "message"),
    [
        ("pt-BR", "Esse horário já passou."),
        ("ru", "Это время уже прошло."),
        ("en", "That time has already passed."),
    ],
)
def test_a_time_already_started_today_is_refused_with_a_clear_message(
    staff_client: Callable[..., StaffClient],
    console_services: Services,
    language: str,
    message: str,
) -> None:
    desk = staff_client("receptionist", language=language)
    advance(console_services, timedelta(minutes=20))  # 10:20: the 10:15 visit has started
    form = desk.get(f"/console/agenda/book?doctor={ANA}&service=cardio-consulta").text
    assert f"{TODAY}T10:15" not in form and f"{TODAY}T10:30" in form
    for hhmm, key in (("10:15", "c" * 32), ("08:00", "d" * 32)):
        refused = book_ana(desk, hhmm, key)
        assert refused.status_code == 303
        assert "error=in_past" in refused.headers["location"]
        assert message in desk.get(refused.headers["location"]).text
    assert appointments(console_services) == []
    assert book_ana(desk, "10:30", "e" * 32).headers["location"].endswith("done=booked")


async def test_the_ai_receptionist_keeps_the_clinics_policy_for_the_same_time(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    ctx = ToolContext(
        services=console_services,
        channel="whatsapp",
        conversation_id="conv-today",
        caller_phone=CALLER,
        language="pt-BR",
        phone_verified=True,
    )
    found = await build_registry().dispatch(
        "find_slots",
        json.dumps({"service": "cardiologia", "doctor": "Ana Souza", "dates": [TODAY]}),
        ctx,
    )
    assert found.ok and found.output["options"] == []  # nothing today for a patient
    patient = await console_services.patients.find_or_create(CALLER)
    slot = Slot(ANA, "cardio-consulta", at("10:30"), at("11:00"))
    request = BookingRequest(patient_id=patient.id, channel="whatsapp", holder="conv-today")
    with pytest.raises(BookingError) as refused:
        await console_services.booking.book_slot(request, slot)
    assert refused.value.code == "too_short_notice"
    # The receptionist at the desk books that same time for the same caller.
    desk = staff_client("receptionist")
    booked = book(desk, f"{TODAY}T10:30", doctor=ANA, phone=CALLER, key="f" * 32)
    assert booked.headers["location"].endswith("done=booked")
    [appointment] = appointments(console_services)
    assert appointment.patient_id == patient.id and appointment.start == at("10:30")


def test_the_desk_moves_an_appointment_to_later_today(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    desk = staff_client("receptionist")
    book_ana(desk, "09:00", "a" * 32, day=WEDNESDAY)
    [appointment] = appointments(console_services)
    page = desk.get(f"/console/agenda/appointment/{appointment.id}").text
    assert f'value="{TODAY}T10:00"' in page and f'value="{TODAY}T09:45"' not in page
    path = f"/console/agenda/appointment/{appointment.id}/move"
    past = desk.form(path, {"start": f"{TODAY}T09:30"})
    assert "error=in_past" in past.headers["location"]
    assert "Esse horário já passou." in desk.get(past.headers["location"]).text
    moved = desk.form(path, {"start": f"{TODAY}T11:00"})
    assert moved.headers["location"].endswith("done=moved")
    [after] = appointments(console_services)
    assert after.start == at("11:00")


def test_a_block_today_still_keeps_the_desk_out(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    desk = staff_client("receptionist")
    blocked = desk.form(
        "/console/agenda/blocks",
        {"doctor": ANA, "start": f"{TODAY}T14:00", "end": f"{TODAY}T15:00", "reason": "reunião"},
    )
    assert blocked.headers["location"] == "/console/agenda/blocks?done=blocked"
    form = desk.get(f"/console/agenda/book?doctor={ANA}&service=cardio-consulta").text
    assert f"{TODAY}T13:30" in form and f"{TODAY}T14:00" not in form
    assert f"{TODAY}T14:45" not in form and f"{TODAY}T15:00" in form
    refused = book_ana(desk, "14:15", "a" * 32)
    assert "error=slot_taken" in refused.headers["location"]
    assert appointments(console_services) == []
