"""The agenda over HTTP: book for a patient on the phone, move, cancel, attended / no-show;
every action an interaction row with actor=staff; a doctor confined to his own patients."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select

from tests.console.conftest import StaffClient
from voice_agent.clock import FixedClock
from voice_agent.services import Services
from voice_agent.store.db import transaction
from voice_agent.store.tables import Appointment, AppointmentStatus, Interaction, InteractionKind

CARLOS = "dr-carlos-lima"
ANA = "dr-ana-souza"
TUESDAY = "2026-11-24"  # tomorrow (NOW is Monday 23 November 2026, 10:00 in São Paulo)
PHONE = "+55 11 98765-4321"
E164 = "+5511987654321"


def book(
    client: StaffClient,
    start: str = f"{TUESDAY}T09:00",
    *,
    doctor: str = CARLOS,
    service: str = "cardio-consulta",
    name: str = "Maria Aparecida Silva",
    phone: str = PHONE,
    key: str = "a" * 32,
):  # type: ignore[no-untyped-def]
    return client.form(
        "/console/agenda/book",
        {
            "name": name,
            "phone": phone,
            "doctor": doctor,
            "service": service,
            "start": start,
            "request_key": key,
        },
    )


def appointments(services: Services) -> list[Appointment]:
    with transaction(services.engine) as db:
        return list(db.exec(select(Appointment).order_by(col(Appointment.created_at))).all())


def interactions(services: Services, kind: InteractionKind) -> list[Interaction]:
    with transaction(services.engine) as db:
        return list(db.exec(select(Interaction).where(Interaction.kind == kind)).all())


def staff_id(services: Services, email: str) -> str:
    from voice_agent.store.staff_tables import StaffAccount

    with transaction(services.engine) as db:
        account = db.exec(select(StaffAccount).where(StaffAccount.email == email)).one()
    return str(account.id)


def test_book_for_a_patient_on_the_phone(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    desk = staff_client("receptionist")
    form = desk.get(f"/console/agenda/book?doctor={CARLOS}&start={TUESDAY}T09:00")
    assert form.status_code == 200 and "selected>terça-feira, 24 de novembro, 09:00" in form.text
    response = book(desk)
    assert response.status_code == 303
    assert response.headers["location"] == f"/console/agenda?day={TUESDAY}&done=booked"
    assert book(desk).status_code == 303  # the same form sent twice: one appointment
    [appointment] = appointments(console_services)
    assert appointment.doctor_id == CARLOS and appointment.channel == "console"
    [row] = interactions(console_services, InteractionKind.booking)
    assert (row.actor, row.actor_id, row.channel) == (
        "staff",
        staff_id(console_services, desk.email),
        "console",
    )
    page = desk.get(response.headers["location"]).text
    assert "Consulta marcada." in page
    assert "Maria Aparecida Silva" in page and E164 in page  # decrypted for staff
    assert "marcada" in page and "recepção" in page
    chip = f"doctor={CARLOS}&service=cardio-consulta&start={TUESDAY}T"
    assert f"{chip}09:00" not in page  # no longer offered as free
    assert f"{chip}09:30" in page


def test_no_double_booking_from_the_desk(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    desk = staff_client("receptionist")
    book(desk)
    taken = book(desk, name="João Pedro Santos", phone="+5511912345678", key="b" * 32)
    assert taken.status_code == 303 and "error=slot_taken" in taken.headers["location"]
    assert "acabou de ser ocupado" in desk.get(taken.headers["location"]).text
    assert len(appointments(console_services)) == 1


def test_bad_phone_and_bad_service_are_explained(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    desk = staff_client("receptionist")
    bad_phone = book(desk, phone="12ab34cd")
    assert "error=invalid_phone" in bad_phone.headers["location"]
    not_offered = book(desk, service="checkup")
    assert "error=service_not_offered" in not_offered.headers["location"]
    assert appointments(console_services) == []


def test_move_then_cancel_log_staff_and_free_the_time(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    desk = staff_client("receptionist")
    book(desk)
    [appointment] = appointments(console_services)
    page = desk.get(f"/console/agenda/appointment/{appointment.id}")
    assert page.status_code == 200 and E164 in page.text
    moved = desk.form(
        f"/console/agenda/appointment/{appointment.id}/move", {"start": f"{TUESDAY}T10:00"}
    )
    assert moved.status_code == 303 and moved.headers["location"].endswith("done=moved")
    [after] = appointments(console_services)
    assert after.start.astimezone(console_services.clinic().tz).hour == 10
    [row] = interactions(console_services, InteractionKind.reschedule)
    assert row.actor == "staff" and row.actor_id == staff_id(console_services, desk.email)
    # The old time is free again: another patient takes 09:00.
    assert book(desk, name="João Santos", phone="+5511912345678", key="c" * 32).status_code == 303
    assert len(appointments(console_services)) == 2
    # A move onto a taken time keeps the appointment where it was.
    clash = desk.form(
        f"/console/agenda/appointment/{appointment.id}/move", {"start": f"{TUESDAY}T09:00"}
    )
    assert "error=slot_taken" in clash.headers["location"]
    cancelled = desk.form(
        f"/console/agenda/appointment/{appointment.id}/cancel", {"reason": "doctor away"}
    )
    assert cancelled.headers["location"].endswith("done=cancelled")
    with transaction(console_services.engine) as db:
        stored = db.get(Appointment, appointment.id)
        assert stored is not None and stored.status == AppointmentStatus.cancelled
    [row] = interactions(console_services, InteractionKind.cancellation)
    assert row.actor == "staff" and json.loads(row.details)["reason"] == "doctor away"


def test_cancel_inside_the_patients_notice_is_allowed_for_staff(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    desk = staff_client("receptionist")
    book(desk)
    [appointment] = appointments(console_services)
    clock = console_services.clock
    assert isinstance(clock, FixedClock)
    clock.advance(timedelta(hours=21))  # 02:00 before the visit: inside the 4-hour notice
    desk = staff_client("receptionist", email="morning@clinic.test")  # a new shift logs in
    response = desk.form(f"/console/agenda/appointment/{appointment.id}/cancel")
    assert response.headers["location"].endswith("done=cancelled")


def test_attended_and_no_show(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    desk = staff_client("receptionist")
    book(desk)
    book(desk, f"{TUESDAY}T10:00", name="João Santos", phone="+5511912345678", key="d" * 32)
    first, second = appointments(console_services)
    early = desk.form(f"/console/agenda/appointment/{first.id}/attendance", {"status": "attended"})
    assert "error=not_started" in early.headers["location"]
    clock = console_services.clock
    assert isinstance(clock, FixedClock)
    clock.advance(timedelta(days=1, hours=1))  # Tuesday 11:00
    desk = staff_client("receptionist", email="tuesday@clinic.test")
    page = desk.get(f"/console/agenda/appointment/{first.id}").text
    assert "O paciente veio?" in page
    desk.form(f"/console/agenda/appointment/{first.id}/attendance", {"status": "attended"})
    desk.form(f"/console/agenda/appointment/{second.id}/attendance", {"status": "no_show"})
    bad = desk.form(f"/console/agenda/appointment/{second.id}/attendance", {"status": "gone"})
    assert bad.status_code == 422
    statuses = [a.status for a in appointments(console_services)]
    assert statuses == [AppointmentStatus.attended, AppointmentStatus.no_show]
    rows = interactions(console_services, InteractionKind.attendance)
    assert [json.loads(r.details)["to"] for r in rows] == ["attended", "no_show"]
    assert {r.actor for r in rows} == {"staff"}
    day = desk.get(f"/console/agenda?day={TUESDAY}").text
    assert "compareceu" in day and "não veio" in day


def test_week_view_and_language(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    desk = staff_client("receptionist", language="ru")
    book(desk)
    week = desk.get(f"/console/agenda?day={TUESDAY}&view=week&doctor={CARLOS}").text
    assert "понедельник, 23 ноября" in week and "воскресенье, 29 ноября" in week
    assert "Maria Aparecida Silva" in week and "записан" in week


def test_doctor_sees_only_his_own_patients(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    desk = staff_client("receptionist")
    book(desk)  # Dr. Carlos's patient
    [appointment] = appointments(console_services)
    ana = staff_client("doctor", doctor_id=ANA)
    page = ana.get(f"/console/agenda?day={TUESDAY}").text
    assert "Maria Aparecida Silva" not in page and "Dr. Carlos Lima" not in page
    assert ana.get(f"/console/agenda?day={TUESDAY}&doctor={CARLOS}").text.count("Carlos") == 0
    path = f"/console/agenda/appointment/{appointment.id}"
    assert ana.get(path).status_code == 404
    assert ana.form(f"{path}/move", {"start": f"{TUESDAY}T10:00"}).status_code == 404
    assert ana.form(f"{path}/cancel").status_code == 404
    assert ana.form(f"{path}/attendance", {"status": "no_show"}).status_code == 404
    assert book(ana, key="e" * 32).status_code == 404
    assert ana.get(f"/console/agenda/blocks?doctor={CARLOS}").status_code == 404
    [after] = appointments(console_services)
    assert after.status == AppointmentStatus.booked and after.start == appointment.start
    carlos = staff_client("doctor", doctor_id=CARLOS)
    assert "Maria Aparecida Silva" in carlos.get(f"/console/agenda?day={TUESDAY}").text
    assert carlos.get(path).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/console/agenda/book",
        "/console/agenda/appointment/x/move",
        "/console/agenda/appointment/x/cancel",
        "/console/agenda/appointment/x/attendance",
        "/console/agenda/blocks",
        "/console/agenda/blocks/x/delete",
    ],
)
def test_agenda_actions_need_a_session_and_the_csrf_token(
    anonymous: TestClient, staff_client: Callable[..., StaffClient], path: str
) -> None:
    assert anonymous.post(path, data={"csrf_token": "x"}).status_code == 401
    desk = staff_client("receptionist")
    assert desk.post(path, data={"start": f"{TUESDAY}T10:00"}).status_code == 403
