"""The staff console in headless Chromium: a receptionist logs in, sees the agenda, blocks a
doctor's morning over a booked patient, moves him out from the block's preview, saves the block.
The main pages are written as screenshots (phone and desktop width) to artifacts/screenshots/."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from tests.conftest import NOW, make_settings
from tests.e2e.browser import needs_chromium, serving
from tests.migrated import migrated_sqlite
from voice_agent.alerts import ConsoleAlerter
from voice_agent.clock import FixedClock
from voice_agent.console.accounts import StaffAccounts, password_hasher
from voice_agent.scheduling.staff_desk import StaffDesk
from voice_agent.services import Services, build_services
from voice_agent.settings import PROJECT_ROOT
from voice_agent.store.db import make_engine, transaction
from voice_agent.store.tables import Appointment, CalendarBlock

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytestmark = needs_chromium
SCREENSHOTS = PROJECT_ROOT / "artifacts" / "screenshots"
PASSWORD = "correct horse battery staple"
CARLOS = "dr-carlos-lima"
PHONE_SIZE = (375, 812)
DESKTOP_SIZE = (1280, 900)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Services]]:
    engine = make_engine(migrated_sqlite(tmp_path / "console.db"))
    services = build_services(
        make_settings(str(engine.url), staff_password_profile="CHEAPEST"),
        clock=FixedClock(NOW),
        alerter=ConsoleAlerter(),
        engine=engine,
    )
    with serving(services) as url:
        yield url, services


@pytest.fixture
def browser_window() -> tuple[int, int]:
    return DESKTOP_SIZE


def _shoot(driver: object, name: str) -> None:
    """The page at phone and desktop width, whole height (the window grows to the page)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, (width, height) in (("phone", PHONE_SIZE), ("desktop", DESKTOP_SIZE)):
        driver.set_window_size(width, height)  # type: ignore[attr-defined]
        full = driver.execute_script("return document.documentElement.scrollHeight")  # type: ignore[attr-defined]
        driver.set_window_size(width, max(height, min(int(full) + 140, 4000)))  # type: ignore[attr-defined]
        driver.save_screenshot(str(SCREENSHOTS / f"console-{name}-{label}.png"))  # type: ignore[attr-defined]
    driver.set_window_size(*DESKTOP_SIZE)  # type: ignore[attr-defined]


def _book(services: Services, staff_id: int, name: str, phone: str, hour: int) -> Appointment:
    desk = StaffDesk(
        services.engine, services.booking, services.patients, services.interactions, services.clock
    )
    start = datetime(2026, 11, 24, hour, 0, tzinfo=services.clinic().tz)
    return asyncio.run(
        desk.book(
            staff_id,
            name=name,
            phone=phone,
            doctor_id=CARLOS,
            service_id="cardio-consulta",
            start=start,
            request_key=f"e2e:{hour}",
        )
    )


def test_receptionist_blocks_a_morning_and_moves_the_patient(
    served: tuple[str, Services], browser: object
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, services = served
    accounts = StaffAccounts(services.engine, services.clock, password_hasher("CHEAPEST"))
    account = accounts.add("recepcao@clinica.test", PASSWORD, "receptionist")
    assert account.id is not None
    moved = _book(services, account.id, "Maria Aparecida Silva", "+5511987654321", 9)
    _book(services, account.id, "João Pedro Santos", "+5511912345678", 15)
    driver = browser
    wait = WebDriverWait(driver, 15)

    def navigate(element: Any, then: tuple[str, str]) -> Any:
        """Click a link or button that loads the next page (htmx swaps it in place): wait until
        the old page is gone and ``then`` is there."""
        old = driver.find_element(By.TAG_NAME, "main")  # type: ignore[attr-defined]
        element.click()
        wait.until(ec.staleness_of(old))
        return wait.until(ec.presence_of_element_located(then))

    driver.get(f"{url}/console/agenda?day=2026-11-24")  # type: ignore[attr-defined]
    wait.until(ec.presence_of_element_located((By.ID, "email")))
    _shoot(driver, "login")
    driver.find_element(By.ID, "email").send_keys("recepcao@clinica.test")  # type: ignore[attr-defined]
    driver.find_element(By.ID, "password").send_keys(PASSWORD)  # type: ignore[attr-defined]
    navigate(driver.find_element(By.ID, "login"), (By.CSS_SELECTOR, ".doctor-day"))  # type: ignore[attr-defined]
    assert driver.current_url.endswith("/console/agenda?day=2026-11-24")  # type: ignore[attr-defined]
    page = driver.find_element(By.TAG_NAME, "main").text  # type: ignore[attr-defined]
    assert "terça-feira, 24 de novembro" in page.lower()
    assert "Maria Aparecida Silva" in page and "+5511987654321" in page
    _shoot(driver, "agenda")

    driver.get(f"{url}/console/agenda?day=2026-11-24&view=week&doctor={CARLOS}")  # type: ignore[attr-defined]
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".doctor-day")))
    _shoot(driver, "agenda-week")

    # Block Dr. Carlos's Tuesday morning: the preview names the patient booked at 09:00.
    link = navigate(driver.find_element(By.LINK_TEXT, "Agenda"), (By.ID, "blocks-link"))  # type: ignore[attr-defined]
    Select(navigate(link, (By.ID, "block-doctor"))).select_by_value(CARLOS)
    for field, value in (("block-start", "2026-11-24T08:00"), ("block-end", "2026-11-24T12:00")):
        element = driver.find_element(By.ID, field)  # type: ignore[attr-defined]
        driver.execute_script("arguments[0].value = arguments[1]", element, value)  # type: ignore[attr-defined]
    driver.find_element(By.ID, "block-reason").send_keys("Cirurgia")  # type: ignore[attr-defined]
    hits = navigate(driver.find_element(By.ID, "preview"), (By.ID, "hits"))  # type: ignore[attr-defined]
    assert "Maria Aparecida Silva" in hits.text and "João" not in hits.text
    assert not driver.find_elements(By.ID, "save-block")  # type: ignore[attr-defined]
    _shoot(driver, "block-preview")

    # Move him to the afternoon from the preview, and come back to it.
    navigate(hits.find_element(By.LINK_TEXT, "Remarcar"), (By.ID, "move-start"))
    assert "+5511987654321" in driver.find_element(By.ID, "patient-phone").text  # type: ignore[attr-defined]
    _shoot(driver, "appointment")
    choice = Select(driver.find_element(By.ID, "move-start"))  # type: ignore[attr-defined]
    choice.select_by_value("2026-11-24T14:00")
    save = navigate(driver.find_element(By.ID, "move"), (By.ID, "save-block"))  # type: ignore[attr-defined]
    assert "Consulta remarcada" in driver.find_element(By.TAG_NAME, "main").text  # type: ignore[attr-defined]
    navigate(save, (By.CSS_SELECTOR, "p.ok"))
    assert "Cirurgia" in driver.find_element(By.TAG_NAME, "main").text  # type: ignore[attr-defined]
    _shoot(driver, "blocks")

    with transaction(services.engine) as db:
        after = db.get(Appointment, moved.id)
        [block] = db.exec(select(CalendarBlock)).all()
    assert after is not None and after.start.astimezone(services.clinic().tz).hour == 14
    assert block.doctor_id == CARLOS and block.reason == "Cirurgia"

    driver.get(f"{url}/console/agenda?day=2026-11-24&doctor={CARLOS}")  # type: ignore[attr-defined]
    day = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".doctor-day"))).text
    assert "bloqueado" in day and "14:00" in day
    _shoot(driver, "agenda-blocked")

    driver.get(f"{url}/console/account")  # type: ignore[attr-defined]
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "select[name=language]")))
    _shoot(driver, "account")
    # Each receptionist may read the console in another language (stored on the account).
    for language, word in (("ru", "Расписание"), ("en", "To do")):
        driver.get(f"{url}/console/account")  # type: ignore[attr-defined]
        picker = wait.until(ec.presence_of_element_located((By.NAME, "language")))
        Select(picker).select_by_value(language)
        navigate(
            picker.find_element(By.XPATH, "./ancestor::form//button"), (By.CSS_SELECTOR, "p.ok")
        )
        driver.get(f"{url}/console/agenda?day=2026-11-24&doctor={CARLOS}")  # type: ignore[attr-defined]
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".doctor-day")))
        assert word in driver.find_element(By.TAG_NAME, "header").text  # type: ignore[attr-defined]
        _shoot(driver, f"agenda-{language}")
