"""The to-do page over HTTP, through the real login: a hand-over made by a text conversation is
listed with who, number, language and words; the list refreshes itself (204 until something
changes); take, give back, resolve with a note, send a dead letter again; the audit trail; a
doctor and an anonymous visitor are refused; CSRF is required."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.console.conftest import StaffClient
from voice_agent.integrations.outbox import OutboxItem, PermanentFailure
from voice_agent.services import Services

PHONE = "+5511987656101"


def _chat(client: TestClient, session: str, text: str, phone: str = PHONE) -> dict:
    response = client.post("/api/chat", json={"session_id": session, "text": text, "phone": phone})
    assert response.status_code == 200, response.text
    return response.json()


def _marker(html: str) -> str:
    found = re.search(r'data-marker="([^"]+)"', html)
    assert found
    return found.group(1)


def test_a_hand_over_is_listed_taken_and_resolved(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    desk = staff_client("receptionist", email="ana@clinic.test")
    page = desk.get("/console/todo")
    assert page.status_code == 200
    marker = _marker(page.text)
    # Nothing changed: the poll keeps the page as it is.
    assert desk.get(f"/console/todo/list?marker={marker}").status_code == 204

    asyncio.run(console_services.patients.find_or_create(PHONE, "pt-BR"))
    asyncio.run(
        console_services.patients.update(
            asyncio.run(console_services.patients.find_by_phone(PHONE)).id,  # type: ignore[union-attr]
            full_name="Maria Aparecida Silva",
        )
    )
    local = TestClient(desk.app, client=("127.0.0.1", 50000))
    assert _chat(local, "todo-1", "quero falar com uma atendente")["handoff"]
    fresh = desk.get(f"/console/todo/list?marker={marker}")
    assert fresh.status_code == 200 and _marker(fresh.text) != marker
    assert "Maria Aparecida Silva" in fresh.text and PHONE in fresh.text
    assert "quero falar com uma atendente" in fresh.text
    [item] = console_services.worklist.items()

    assert desk.form(f"/console/todo/{item.id}/take").status_code == 303
    other = staff_client("receptionist", email="bia@clinic.test")
    refused = other.form(f"/console/todo/{item.id}/take")
    assert refused.headers["location"] == "/console/todo?error=taken"
    assert "Outra pessoa já está atendendo" in other.get(refused.headers["location"]).text

    no_note = desk.form(f"/console/todo/{item.id}/resolve", {"note": " ", "back": "item"})
    assert no_note.headers["location"] == f"/console/todo/{item.id}?error=note_required"
    done = desk.form(
        f"/console/todo/{item.id}/resolve", {"note": "Liguei e remarquei.", "back": "item"}
    )
    assert done.headers["location"] == f"/console/todo/{item.id}"
    detail = desk.get(f"/console/todo/{item.id}").text
    assert "Liguei e remarquei." in detail and "ana@clinic.test" in detail
    trail = detail.split('class="trail"')[1]
    assert trail.index("pedido recebido") < trail.index("assumido") < trail.index("resolvido")
    assert "Maria Aparecida Silva" not in desk.get("/console/todo").text
    assert "Maria Aparecida Silva" in desk.get("/console/todo?show=resolved").text


class _Dead:
    kind = "patient_message"
    batch_size = 1

    async def deliver(self, items: list[OutboxItem]) -> list[BaseException]:
        return [PermanentFailure("63016") for _ in items]


def test_a_dead_letter_is_sent_again_from_the_page(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    console_services.outbox.register(_Dead())
    console_services.outbox.enqueue("patient_message", "todo:dead", {"event": "booked"})
    asyncio.run(console_services.outbox.drain())
    [item] = console_services.worklist.items()
    desk = staff_client("receptionist")
    page = desk.get("/console/todo").text
    assert "Mensagem não entregue" in page and f"/console/todo/{item.id}/retry" in page
    assert desk.form(f"/console/todo/{item.id}/retry").status_code == 303
    assert console_services.worklist.get(item.id).outbox_status == "pending"  # type: ignore[union-attr]


def test_who_may_open_the_to_do(
    staff_client: Callable[..., StaffClient], anonymous: TestClient, console_services: Services
) -> None:
    assert anonymous.get("/console/todo", follow_redirects=False).status_code == 303
    assert anonymous.post("/console/todo/1/take").status_code in (401, 403)
    doctor = staff_client("doctor", doctor_id="dr-ana-souza")
    assert doctor.get("/console/todo").status_code == 403
    desk = staff_client("receptionist")
    local = TestClient(desk.app, client=("127.0.0.1", 50000))
    _chat(local, "todo-2", "quero falar com uma atendente", "+5511987656102")
    [item] = console_services.worklist.items()
    forged = desk.post(f"/console/todo/{item.id}/take", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    assert console_services.worklist.get(item.id).status == "open"  # type: ignore[union-attr]
