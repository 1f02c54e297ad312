"""Clinic data over HTTP (admin only): a price edited in the form is saved as a version with its
author and change, and the receptionist says it; a bad value is refused beside its field with
what was typed kept; a stale form is refused; YAML export; receptionists and doctors denied."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.console.conftest import StaffClient
from voice_agent.clinic.loader import parse_clinic
from voice_agent.services import Services

FIELD = re.compile(r'<input name="([^"]+)" value="([^"]*)"')


def _fields(html: str) -> dict[str, str]:
    fields = {name: value for name, value in FIELD.findall(html)}
    base = re.search(r'name="base_version" value="([^"]*)"', html)
    assert base
    fields["base_version"] = base.group(1)
    return fields


def _ask_price(app: object) -> str:
    client = TestClient(app, client=("127.0.0.1", 50000))  # type: ignore[arg-type]
    response = client.post(
        "/api/chat", json={"session_id": "price", "text": "quanto custa o eletrocardiograma?"}
    )
    return str(response.json()["reply"])


def test_a_price_edited_in_the_form_is_what_the_receptionist_says(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    admin = staff_client("admin", email="admin@clinic.test")
    assert "120" in _ask_price(admin.app)
    form = admin.get("/console/clinic/services")
    assert form.status_code == 200
    fields = _fields(form.text)
    assert fields["services.1.private_price"] == "120"
    fields["services.1.private_price"] = "145"
    saved = admin.form("/console/clinic/services", fields)
    assert saved.status_code == 303, saved.text
    assert "Salvo como versão" in admin.get(saved.headers["location"]).text
    answer = _ask_price(admin.app)
    assert "145" in answer and "120" not in answer
    overview = admin.get("/console/clinic").text
    assert "admin@clinic.test" in overview
    assert "services[ecg].private_price: 120 → 145" in overview
    export = admin.get("/console/clinic/export")
    assert export.headers["content-disposition"].startswith("attachment")
    assert parse_clinic(export.text).price("ecg") == 145


def test_a_bad_value_is_refused_beside_its_field(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    admin = staff_client("admin")
    fields = _fields(admin.get("/console/clinic/services").text)
    fields["services.1.private_price"] = "-5"
    refused = admin.form("/console/clinic/services", fields)
    assert refused.status_code == 400
    assert (
        'name="services.1.private_price" value="-5" inputmode="decimal" aria-invalid="true"'
        in refused.text
    )
    assert "Deve ser no mínimo 0." in refused.text
    assert console_services.clinic().price("ecg") == 120

    hours = _fields(admin.get("/console/clinic/hours").text)
    hours["doctors.0.working_hours.mon"] = "o dia todo"
    unreadable = admin.form("/console/clinic/hours", hours)
    assert unreadable.status_code == 400 and "Escreva assim" in unreadable.text

    stale = _fields(admin.get("/console/clinic/holidays").text)
    again = _fields(admin.get("/console/clinic/services").text)
    again["services.1.private_price"] = "150"
    assert admin.form("/console/clinic/services", again).status_code == 303
    assert admin.form("/console/clinic/holidays", stale).status_code == 409


def test_only_an_admin_opens_the_clinic_data(
    staff_client: Callable[..., StaffClient], anonymous: TestClient
) -> None:
    for role, extra in (("receptionist", {}), ("doctor", {"doctor_id": "dr-ana-souza"})):
        client = staff_client(role, **extra)
        assert client.get("/console/clinic").status_code == 403
        assert client.get("/console/clinic/services").status_code == 403
        assert client.get("/console/clinic/export").status_code == 403
        assert (
            client.form("/console/clinic/services", {"services.1.private_price": "1"}).status_code
            == 403
        )
    assert anonymous.get("/console/clinic", follow_redirects=False).status_code == 303
    admin = staff_client("admin")
    fields = _fields(admin.get("/console/clinic/services").text)
    assert admin.post("/console/clinic/services", data=fields).status_code == 403  # no CSRF token


def test_a_version_saved_by_another_process_is_not_overwritten(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    from voice_agent.clinic.versions import document, save_version, with_section
    from voice_agent.services import ClinicHolder

    admin = staff_client("admin")
    fields = _fields(admin.get("/console/clinic/services").text)
    other = ClinicHolder(console_services.engine, None)  # another process saves meanwhile
    priced = [
        {**service, "private_price": 999} if service["id"] == "ecg" else service
        for service in document(other())["services"]
    ]
    save_version(console_services.engine, with_section(other(), "services", priced), source="x")
    fields["services.0.private_price"] = "460"
    assert admin.form("/console/clinic/services", fields).status_code == 409
    assert console_services.clinic().price("ecg") == 999  # the other save stands
