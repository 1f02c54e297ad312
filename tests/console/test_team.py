"""Accounts in the console, for administrators: create, disable (sessions end), enable."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.console.conftest import StaffClient, login
from voice_agent.console.accounts import StaffAccounts, password_hasher
from voice_agent.services import Services


def _id(services: Services, email: str) -> int:
    accounts = StaffAccounts(services.engine, services.clock, password_hasher("CHEAPEST"))
    [found] = [a for a in accounts.list() if a.email == email]
    assert found.id is not None
    return found.id


def test_admin_creates_disables_and_enables_an_account(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    admin = staff_client("admin")
    assert "Equipe" in admin.get("/console/agenda").text
    created = admin.form(
        "/console/team",
        {
            "email": "Ana@Clinica.test",
            "role": "doctor",
            "doctor": "dr-ana-souza",
            "language": "ru",
            "password": "primeira senha 123",
        },
    )
    assert created.headers["location"] == "/console/team?done=added"
    page = admin.get("/console/team").text
    assert "ana@clinica.test" in page and "Dra. Ana Souza" in page
    doctor = TestClient(admin.app)
    assert login(doctor, "ana@clinica.test", "primeira senha 123").status_code == 303  # type: ignore[attr-defined]
    assert 'lang="ru"' in doctor.get("/console/agenda").text
    staff_id = _id(console_services, "ana@clinica.test")
    off = admin.form(f"/console/team/{staff_id}/active", {"active": "off"})
    assert off.headers["location"] == "/console/team?done=disabled"
    assert doctor.get("/console/agenda", follow_redirects=False).status_code == 303  # ended
    assert login(doctor, "ana@clinica.test", "primeira senha 123").status_code == 401  # type: ignore[attr-defined]
    admin.form(f"/console/team/{staff_id}/active", {"active": "on"})
    assert login(doctor, "ana@clinica.test", "primeira senha 123").status_code == 303  # type: ignore[attr-defined]


def test_refusals_are_explained(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    admin = staff_client("admin")
    no_doctor = admin.form(
        "/console/team", {"email": "x@clinica.test", "role": "doctor", "password": "x" * 12}
    )
    assert "error=doctor_id_required" in no_doctor.headers["location"]
    short = admin.form(
        "/console/team", {"email": "y@clinica.test", "role": "receptionist", "password": "short"}
    )
    assert "error=password_too_short" in short.headers["location"]
    taken = admin.form(
        "/console/team", {"email": admin.email, "role": "receptionist", "password": "x" * 12}
    )
    assert "error=email_taken" in taken.headers["location"]
    me = _id(console_services, admin.email)
    self_off = admin.form(f"/console/team/{me}/active", {"active": "off"})
    assert "error=cannot_disable_self" in self_off.headers["location"]
    assert "Você não pode desativar" in admin.get(self_off.headers["location"]).text


def test_receptionist_denied_the_team_page(staff_client: Callable[..., StaffClient]) -> None:
    desk = staff_client("receptionist")
    assert desk.get("/console/team").status_code == 403
    denied = desk.form(
        "/console/team", {"email": "z@clinica.test", "role": "admin", "password": "x" * 12}
    )
    assert denied.status_code == 403
