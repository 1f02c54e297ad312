"""Console fixtures: the app on the test services, and staff clients logged in through the real
login form (GET the form, read its CSRF token, POST e-mail and password, keep the cookie)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import make_settings
from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.clock import FixedClock
from voice_agent.console.accounts import StaffAccounts, password_hasher
from voice_agent.services import Services, build_services
from voice_agent.store.staff_tables import StaffRole

PASSWORD = "correct horse battery staple"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found, "no csrf_token field in the page"
    return found.group(1)


class StaffClient(TestClient):
    """A TestClient with a live console session; ``csrf`` is that session's form token."""

    csrf: str = ""
    email: str = ""

    def form(self, path: str, data: dict[str, str] | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
        """POST a console form with the session's CSRF token, as the browser would."""
        return self.post(
            path,
            data={"csrf_token": self.csrf, **(data or {})},
            follow_redirects=False,
            **kwargs,  # type: ignore[arg-type]
        )


def login(client: TestClient, email: str, password: str = PASSWORD) -> object:
    page = client.get("/console/login")
    assert page.status_code == 200
    return client.post(
        "/console/login",
        data={"csrf_token": csrf_from(page.text), "email": email, "password": password},
        follow_redirects=False,
    )


@pytest.fixture
def console_services(
    db_kind: str, make_engine_for: Callable[[str], Engine], clock: FixedClock
) -> Services:
    """The services behind the console (SQLite, and PostgreSQL when configured), with the
    cheapest argon2 profile: the suite logs in hundreds of times."""
    engine = make_engine_for(db_kind)
    settings = make_settings(str(engine.url), staff_password_profile="CHEAPEST")
    return build_services(settings, clock=clock, alerter=ConsoleAlerter(), engine=engine)


@pytest.fixture
def console_app(console_services: Services) -> FastAPI:
    return create_app(console_services.settings, console_services)


@pytest.fixture
def add_staff(console_services: Services) -> Callable[..., str]:
    accounts = StaffAccounts(
        console_services.engine, console_services.clock, password_hasher("CHEAPEST")
    )

    def add(
        role: StaffRole | str,
        *,
        email: str | None = None,
        doctor_id: str | None = None,
        language: str | None = None,
    ) -> str:
        role = StaffRole(role)
        email = email or f"{role.value}-{doctor_id or 'x'}@clinic.test"
        accounts.add(email, PASSWORD, role, doctor_id=doctor_id, language=language)
        return email

    return add


@pytest.fixture
def staff_client(
    console_app: FastAPI, add_staff: Callable[..., str]
) -> Iterator[Callable[..., StaffClient]]:
    """``staff_client("receptionist")`` (or ``"doctor", doctor_id="dr-…"``): logged in."""
    clients: list[StaffClient] = []

    def make(role: StaffRole | str, **account: str | None) -> StaffClient:
        email = add_staff(role, **account)
        client = StaffClient(console_app)
        response = login(client, email)
        assert response.status_code == 303, response.text  # type: ignore[attr-defined]
        client.csrf = csrf_from(client.get("/console/account").text)
        client.email = email
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def anonymous(console_app: FastAPI) -> Iterator[TestClient]:
    client = TestClient(console_app)
    yield client
    client.close()
