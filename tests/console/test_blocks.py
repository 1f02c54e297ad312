"""Blocks over HTTP: the preview lists the patients a block would hit; the block is saved only
once they are moved or cancelled; a saved block stops the slot engine offering that time."""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlmodel import select

from tests.console.conftest import StaffClient
from tests.console.test_agenda import CARLOS, TUESDAY, appointments, book, interactions
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services
from voice_agent.store.db import transaction
from voice_agent.store.tables import CalendarBlock, InteractionKind

MORNING = {"doctor": CARLOS, "start": f"{TUESDAY}T08:00", "end": f"{TUESDAY}T12:00"}


def blocks(services: Services) -> list[CalendarBlock]:
    with transaction(services.engine) as db:
        return list(db.exec(select(CalendarBlock)).all())


async def test_block_over_a_booked_patient_then_move_him_and_save(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    desk = staff_client("receptionist")
    book(desk, f"{TUESDAY}T09:00")
    [appointment] = appointments(console_services)
    preview = desk.get("/console/agenda/blocks", params={**MORNING, "reason": "cirurgia"})
    assert preview.status_code == 200
    assert "Consultas neste horário: 1" in preview.text
    assert "Maria Aparecida Silva" in preview.text and "save-block" not in preview.text
    refused = desk.form("/console/agenda/blocks", {**MORNING, "reason": "cirurgia"})
    assert "error=block_hits" in refused.headers["location"]
    assert blocks(console_services) == []
    # Move him to the afternoon, coming back to the preview.
    back = (
        "/console/agenda/blocks?doctor=dr-carlos-lima&start=2026-11-24T08:00&end=2026-11-24T12:00"
    )
    moved = desk.form(
        f"/console/agenda/appointment/{appointment.id}/move",
        {"start": f"{TUESDAY}T14:00", "back": back},
    )
    assert moved.headers["location"] == f"{back}&done=moved"
    again = desk.get(moved.headers["location"])
    assert "Nenhuma consulta cai neste horário." in again.text and "save-block" in again.text
    saved = desk.form("/console/agenda/blocks", {**MORNING, "reason": "cirurgia"})
    assert saved.headers["location"] == "/console/agenda/blocks?done=blocked"
    [block] = blocks(console_services)
    assert block.doctor_id == CARLOS and block.reason == "cirurgia"
    [row] = interactions(console_services, InteractionKind.block)
    assert row.actor == "staff" and json.loads(row.details)["op"] == "add"
    # The slot engine no longer offers the morning, to the agent or to the desk.
    offers = await console_services.booking.rank(
        "cardio-consulta",
        Preferences(dates=[block.start.date()], doctor_id=CARLOS),
        now=console_services.clock.now(),
        limit=50,
    )
    tz = console_services.clinic().tz
    carlos = [o.slot for o in offers if o.slot.doctor_id == CARLOS]
    assert carlos and all(s.start.astimezone(tz).hour >= 12 for s in carlos)
    day = desk.get(f"/console/agenda?day={TUESDAY}&doctor={CARLOS}").text
    assert "cirurgia" in day and f"start={TUESDAY}T09:00" not in day
    taken = book(desk, f"{TUESDAY}T10:00", name="João Santos", phone="+5511912345678", key="f" * 32)
    assert "error=" in taken.headers["location"]
    assert len(appointments(console_services)) == 1
    # Removing the block frees the time again.
    removed = desk.form(f"/console/agenda/blocks/{block.id}/delete")
    assert removed.headers["location"].endswith("done=unblocked")
    assert blocks(console_services) == []
    assert len(interactions(console_services, InteractionKind.block)) == 2


def test_cancel_from_the_preview(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    desk = staff_client("receptionist")
    book(desk, f"{TUESDAY}T09:00")
    [appointment] = appointments(console_services)
    back = (
        "/console/agenda/blocks?doctor=dr-carlos-lima&start=2026-11-24T08:00&end=2026-11-24T12:00"
    )
    cancelled = desk.form(
        f"/console/agenda/appointment/{appointment.id}/cancel",
        {"reason": "férias", "back": back},
    )
    assert cancelled.headers["location"] == f"{back}&done=cancelled"
    assert desk.form("/console/agenda/blocks", {**MORNING, "reason": "férias"}).status_code == 303
    assert len(blocks(console_services)) == 1


def test_block_end_before_start_is_explained(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    desk = staff_client("receptionist")
    bad = {"doctor": CARLOS, "start": f"{TUESDAY}T12:00", "end": f"{TUESDAY}T08:00"}
    page = desk.get("/console/agenda/blocks", params=bad)
    assert "O fim do bloqueio precisa ser depois do início." in page.text
    saved = desk.form("/console/agenda/blocks", bad)
    assert "error=block_order" in saved.headers["location"]
    assert blocks(console_services) == []


def test_a_doctor_blocks_only_his_own_time(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    carlos = staff_client("doctor", doctor_id=CARLOS)
    assert carlos.form("/console/agenda/blocks", MORNING).status_code == 303
    [block] = blocks(console_services)
    ana = staff_client("doctor", doctor_id="dr-ana-souza")
    assert ana.form("/console/agenda/blocks", MORNING).status_code == 404
    assert ana.form(f"/console/agenda/blocks/{block.id}/delete").status_code == 404
    assert "Dr. Carlos Lima" not in ana.get("/console/agenda/blocks").text
    assert len(blocks(console_services)) == 1
