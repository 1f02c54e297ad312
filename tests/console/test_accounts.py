"""Console accounts over HTTP: login, sessions, CSRF, throttling, roles, password change."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import NOW
from tests.console.conftest import PASSWORD, StaffClient, csrf_from, login
from voice_agent.cli.context import CliRuntime
from voice_agent.cli.root import app as cli_app
from voice_agent.clock import FixedClock
from voice_agent.console.security import SESSION_COOKIE
from voice_agent.services import Services
from voice_agent.store.db import transaction
from voice_agent.store.staff_tables import StaffAccount, StaffSession

PAGES = [
    "/console/team",
    "/console/agenda",
    "/console/todo",
    "/console/calls",
    "/console/clinic",
    "/console/account",
]
ACTIONS = [
    "/console/logout",
    "/console/account/language",
    "/console/account/password",
    "/console/team",
    "/console/team/1/active",
]


@pytest.mark.parametrize("path", PAGES)
def test_no_page_without_a_session(anonymous: TestClient, path: str) -> None:
    response = anonymous.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login?next=")


@pytest.mark.parametrize("path", ACTIONS)
def test_no_action_without_a_session(anonymous: TestClient, path: str) -> None:
    assert anonymous.post(path, data={"csrf_token": "x"}).status_code == 401


def test_login_sets_a_safe_cookie_and_lands_on_the_page_asked(
    anonymous: TestClient, add_staff: Callable[..., str]
) -> None:
    email = add_staff("receptionist")
    page = anonymous.get("/console/login?next=/console/calls")
    assert 'lang="pt-BR"' in page.text and "Entrar" in page.text  # the clinic's language
    response = anonymous.post(
        "/console/login",
        data={
            "csrf_token": csrf_from(page.text),
            "email": email.upper(),
            "password": PASSWORD,
            "next": "/console/calls",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/calls"
    cookie = next(
        value
        for key, value in response.headers.multi_items()
        if key == "set-cookie" and value.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # http://testserver, no https public URL
    assert anonymous.get("/console/calls").status_code == 200


def test_secure_cookie_behind_an_https_public_url(console_services: Services) -> None:
    from voice_agent.app import create_app
    from voice_agent.console.accounts import StaffAccounts, password_hasher

    settings = console_services.settings.model_copy(
        update={"public_url": "https://clinic.example.com"}
    )
    StaffAccounts(console_services.engine, console_services.clock, password_hasher("CHEAPEST")).add(
        "ana@clinic.test",
        PASSWORD,
        "admin",  # type: ignore[arg-type]
    )
    client = TestClient(create_app(settings, console_services), base_url="https://testserver")
    response = login(client, "ana@clinic.test")
    cookies = [v for k, v in response.headers.multi_items() if k == "set-cookie"]  # type: ignore[attr-defined]
    assert any(c.startswith(SESSION_COOKIE) and "Secure" in c for c in cookies)


def test_open_redirect_refused(anonymous: TestClient, add_staff: Callable[..., str]) -> None:
    email = add_staff("receptionist")
    page = anonymous.get("/console/login")
    response = anonymous.post(
        "/console/login",
        data={
            "csrf_token": csrf_from(page.text),
            "email": email,
            "password": PASSWORD,
            "next": "//evil.example/console",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/console/agenda"


def test_login_without_its_csrf_token_is_refused(
    anonymous: TestClient, add_staff: Callable[..., str]
) -> None:
    email = add_staff("receptionist")
    anonymous.get("/console/login")  # the cookie half is set, the form half is missing
    response = anonymous.post("/console/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 403
    response = anonymous.post(
        "/console/login", data={"email": email, "password": PASSWORD, "csrf_token": "forged"}
    )
    assert response.status_code == 403


@pytest.mark.parametrize("path", ACTIONS)
def test_actions_refuse_a_missing_or_wrong_csrf_token(
    staff_client: Callable[..., StaffClient], path: str
) -> None:
    client = staff_client("receptionist")
    data = {"language": "en", "current": PASSWORD, "new": "x" * 12, "repeat": "x" * 12}
    assert client.post(path, data=data).status_code == 403
    assert client.post(path, data={**data, "csrf_token": "forged"}).status_code == 403
    assert client.post(path, data=data, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.get("/console/account").status_code == 200  # still logged in


def test_htmx_header_carries_the_token(staff_client: Callable[..., StaffClient]) -> None:
    client = staff_client("receptionist")
    response = client.post(
        "/console/account/language",
        data={"language": "ru"},
        headers={"X-CSRF-Token": client.csrf},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert "Язык панели" in client.get("/console/account").text


def test_wrong_password_and_unknown_email_answer_alike(
    anonymous: TestClient, add_staff: Callable[..., str]
) -> None:
    email = add_staff("receptionist")
    wrong = login(anonymous, email, "not the password!")
    unknown = login(anonymous, "nobody@clinic.test")
    assert wrong.status_code == unknown.status_code == 401  # type: ignore[attr-defined]
    assert "E-mail ou senha incorretos" in wrong.text  # type: ignore[attr-defined]
    assert SESSION_COOKIE not in anonymous.cookies


def test_login_throttled_per_account_then_released_by_time(
    anonymous: TestClient, add_staff: Callable[..., str], console_services: Services
) -> None:
    email = add_staff("receptionist")
    for _ in range(5):
        assert login(anonymous, email, "wrong password!!").status_code == 401  # type: ignore[attr-defined]
    throttled = login(anonymous, email)  # even the right password waits
    assert throttled.status_code == 429  # type: ignore[attr-defined]
    assert "15 minutos" in throttled.text  # type: ignore[attr-defined]
    clock = console_services.clock
    assert isinstance(clock, FixedClock)
    clock.advance(timedelta(minutes=16))
    assert login(anonymous, email).status_code == 303  # type: ignore[attr-defined]


def test_login_throttled_per_address(anonymous: TestClient, add_staff: Callable[..., str]) -> None:
    email = add_staff("receptionist")
    for n in range(20):  # many accounts tried from one address
        login(anonymous, f"guess{n}@clinic.test", "wrong password!!")
    assert login(anonymous, email).status_code == 429  # type: ignore[attr-defined]


def test_logout_revokes_the_session_server_side(
    staff_client: Callable[..., StaffClient],
) -> None:
    client = staff_client("receptionist")
    token = client.cookies[SESSION_COOKIE]
    assert client.form("/console/logout").status_code == 303
    replay = TestClient(client.app)
    replay.cookies.set(SESSION_COOKIE, token, path="/console")
    assert replay.get("/console/account", follow_redirects=False).status_code == 303


def test_password_change_revokes_other_sessions(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    client = staff_client("receptionist")
    other = TestClient(client.app)
    assert login(other, client.email).status_code == 303  # type: ignore[attr-defined]
    new = "a new long passphrase"
    refused = client.form(
        "/console/account/password", {"current": "wrong!", "new": new, "repeat": new}
    )
    assert refused.status_code == 400
    changed = client.form(
        "/console/account/password", {"current": PASSWORD, "new": new, "repeat": new}
    )
    assert changed.status_code == 303
    assert client.get("/console/account").status_code == 200  # this browser keeps a new session
    assert other.get("/console/account", follow_redirects=False).status_code == 303
    with transaction(console_services.engine) as db:
        assert len(db.exec(__import__("sqlmodel").select(StaffSession)).all()) == 1
    assert login(TestClient(client.app), client.email, new).status_code == 303  # type: ignore[attr-defined]


def test_expired_session_sends_back_to_login(
    staff_client: Callable[..., StaffClient], console_services: Services
) -> None:
    client = staff_client("doctor", doctor_id="dr-ana-souza")
    clock = console_services.clock
    assert isinstance(clock, FixedClock)
    clock.advance(timedelta(hours=13))
    assert client.get("/console/agenda", follow_redirects=False).status_code == 303


def test_receptionist_denied_admin_pages(staff_client: Callable[..., StaffClient]) -> None:
    client = staff_client("receptionist")
    denied = client.get("/console/clinic")
    assert denied.status_code == 403
    assert "Sem acesso" in denied.text
    assert 'href="/console/clinic"' not in client.get("/console/agenda").text
    admin = staff_client("admin")
    assert admin.get("/console/clinic").status_code == 200


def test_doctor_sees_only_his_pages(staff_client: Callable[..., StaffClient]) -> None:
    client = staff_client("doctor", doctor_id="dr-ana-souza")
    assert client.get("/console/agenda").status_code == 200
    for path in ("/console/todo", "/console/clinic"):
        assert client.get(path).status_code == 403
    # Calls: his own patients' only (tests/console/test_calls_pages.py).
    assert client.get("/console/calls").status_code == 200


def test_language_switch_is_stored_on_the_account(
    staff_client: Callable[..., StaffClient],
) -> None:
    client = staff_client("receptionist")
    assert "Agenda" in client.get("/console/agenda").text
    client.form("/console/account/language", {"language": "ru"})
    assert "Расписание" in client.get("/console/agenda").text
    client.form("/console/account/language", {"language": "en"})
    page = client.get("/console/agenda").text
    assert 'lang="en"' in page and "To do" in page
    again = TestClient(client.app)  # another login of the same account
    login(again, client.email)
    assert 'lang="en"' in again.get("/console/agenda").text


def test_cli_adds_staff_with_a_password_from_stdin(console_services: Services) -> None:
    runtime = CliRuntime(clock=FixedClock(NOW), settings=console_services.settings)
    runner = CliRunner()
    args = ["staff", "add", "Maria@Clinic.test", "--role", "doctor", "--doctor", "dr-ana-souza"]
    result = runner.invoke(cli_app, [*args, "--password-stdin"], input=f"{PASSWORD}\n", obj=runtime)
    assert result.exit_code == 0, result.output
    assert "added maria@clinic.test (doctor)" in result.output
    with transaction(console_services.engine) as db:
        account = db.exec(__import__("sqlmodel").select(StaffAccount)).one()
    assert account.doctor_id == "dr-ana-souza"
    assert account.password_hash.startswith("$argon2id$") and PASSWORD not in account.password_hash
    again = runner.invoke(cli_app, [*args, "--password-stdin"], input=f"{PASSWORD}\n", obj=runtime)
    assert again.exit_code == 1 and "already exists" in again.output
    short = runner.invoke(
        cli_app,
        ["staff", "add", "x@clinic.test", "--role", "admin", "--password-stdin"],
        input="short\n",
        obj=runtime,
    )
    assert short.exit_code == 1 and "at least 10" in short.output
    no_doctor = runner.invoke(
        cli_app,
        ["staff", "add", "y@clinic.test", "--role", "doctor", "--doctor", "dr-nobody"],
        input=f"{PASSWORD}\n",
        obj=runtime,
    )
    assert no_doctor.exit_code == 2


def test_production_hashes_are_argon2id_at_the_rfc_9106_cost() -> None:
    from voice_agent.console.accounts import password_hasher
    from voice_agent.settings import Settings

    hasher = password_hasher(Settings.model_fields["staff_password_profile"].default)
    assert hasher.memory_cost == 65536 and hasher.time_cost == 3  # RFC 9106 low-memory
    cheap = password_hasher("CHEAPEST").hash(PASSWORD)
    assert hasher.check_needs_rehash(cheap)  # a weaker hash is upgraded at the next login
    with pytest.raises(ValueError):
        password_hasher("MD5")


def test_htmx_navigation_without_a_session_goes_to_the_login_form(anonymous: TestClient) -> None:
    response = anonymous.get(
        "/console/agenda?day=2026-11-24", headers={"HX-Request": "true"}, follow_redirects=False
    )
    assert response.status_code == 204
    assert (
        response.headers["HX-Redirect"] == "/console/login?next=/console/agenda%3Fday%3D2026-11-24"
    )


def test_htmx_keeps_no_page_history_in_the_browser(
    staff_client: Callable[..., StaffClient],
) -> None:
    page = staff_client("receptionist").get("/console/agenda").text
    assert '"historyCacheSize": 0' in page  # no patient names or phones left in localStorage
    assert 'hx-boost="true"' in page and "X-CSRF-Token" in page
