"""The to-do, calls and clinic pages in headless Chromium, as staff use them: a receptionist has
the to-do open when a patient writes "quero falar com uma atendente" in the web chat; the
hand-over appears without a reload, she takes it, reads the conversation and resolves it with a
note. An admin changes a price in the clinic form (a wrong value is shown beside its field
first) and the receptionist then quotes the new price. A receptionist is denied the clinic data.
Screenshots go to ``artifacts/screenshots/`` for a person to look at."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import NOW, make_settings
from tests.e2e.browser import needs_chromium, serving
from tests.migrated import migrated_sqlite
from voice_agent.alerts import ConsoleAlerter
from voice_agent.clock import FixedClock
from voice_agent.console.accounts import StaffAccounts, password_hasher
from voice_agent.services import Services, build_services
from voice_agent.settings import PROJECT_ROOT
from voice_agent.store.db import make_engine
from voice_agent.store.staff_tables import StaffRole

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytestmark = needs_chromium
SCREENSHOTS = PROJECT_ROOT / "artifacts" / "screenshots"
PASSWORD = "correct horse battery staple"
PATIENT = "+5511987659101"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Services]]:
    engine = make_engine(migrated_sqlite(tmp_path / "console.db"))
    services = build_services(
        make_settings(str(engine.url)),
        clock=FixedClock(NOW),
        alerter=ConsoleAlerter(),
        engine=engine,
    )
    accounts = StaffAccounts(
        services.engine, services.clock, password_hasher(services.settings.staff_password_profile)
    )
    accounts.add("ana@clinica.test", PASSWORD, StaffRole.receptionist)
    accounts.add("admin@clinica.test", PASSWORD, StaffRole.admin)
    with serving(services) as url:
        yield url, services


@pytest.fixture
def browser_window() -> tuple[int, int]:
    return (1100, 1000)


def _shot(driver: object, name: str, *, phone: bool = False) -> None:
    """The page as shown; with ``phone``, also at a phone's width (``<name>-phone.png``, the
    small pictures of the staff guides come from these)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))  # type: ignore[attr-defined]
    if phone:
        size = driver.get_window_size()  # type: ignore[attr-defined]
        driver.set_window_size(400, 760)  # type: ignore[attr-defined]
        driver.execute_script(  # type: ignore[attr-defined]
            "const e = document.querySelector('.field-error');"
            "if (e) e.scrollIntoView({block: 'center'});"
        )
        driver.save_screenshot(str(SCREENSHOTS / f"{name}-phone.png"))  # type: ignore[attr-defined]
        driver.set_window_size(size["width"], size["height"])  # type: ignore[attr-defined]


def _login(driver: object, url: str, email: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/console/login")  # type: ignore[attr-defined]
    driver.find_element(By.NAME, "email").send_keys(email)  # type: ignore[attr-defined]
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)  # type: ignore[attr-defined]
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()  # type: ignore[attr-defined]


def _chat(url: str, session: str, text: str, phone: str = PATIENT) -> dict:
    response = httpx.post(
        f"{url}/api/chat",
        json={"session_id": session, "text": text, "phone": phone},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_hand_over_appears_live_and_is_taken_and_resolved(
    served: tuple[str, Services], browser: object
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, services = served
    driver = browser
    wait = WebDriverWait(driver, 20)
    _login(driver, url, "ana@clinica.test")
    driver.get(f"{url}/console/todo")  # type: ignore[attr-defined]
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#todo-live .empty"))
    _shot(driver, "todo-empty")

    # A patient asks for a person in the web chat while the page stays open.
    _chat(url, "e2e-todo", "Olá, meu nome é Maria Aparecida Silva")
    assert _chat(url, "e2e-todo", "quero falar com uma atendente")["handoff"]
    item = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "article.todo.handover"))[0]
    assert "quero falar com uma atendente" in item.text
    assert "+5511987659101" in item.text
    _shot(driver, "todo-handover", phone=True)

    item.find_element(By.CSS_SELECTOR, "button.take").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "article.todo.taken"))
    taken = driver.find_element(By.CSS_SELECTOR, "article.todo.taken")  # type: ignore[attr-defined]
    assert "ana@clinica.test" in taken.text
    # Read the conversation it came from.
    taken.find_element(By.PARTIAL_LINK_TEXT, "Abrir a conversa").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".call-timeline .entry.handover"))
    _shot(driver, "call-timeline", phone=True)
    driver.back()  # type: ignore[attr-defined]

    taken = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "article.todo.taken"))[0]
    taken.find_element(By.NAME, "note").send_keys("Liguei para a paciente e remarquei.")
    taken.find_element(By.CSS_SELECTOR, "button.resolve").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#todo-live .empty"))
    [done] = services.worklist.items(statuses=("resolved",))  # type: ignore[arg-type]
    assert done.resolution == "Liguei para a paciente e remarquei."
    driver.get(f"{url}/console/todo/{done.id}")  # type: ignore[attr-defined]
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "table.trail"))
    _shot(driver, "todo-item-trail")

    driver.get(f"{url}/console/calls")  # type: ignore[attr-defined]
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "table.calls"))
    assert "Maria Aparecida Silva" in driver.page_source  # type: ignore[attr-defined]
    _shot(driver, "calls")

    # A receptionist is denied the clinic data.
    driver.get(f"{url}/console/clinic")  # type: ignore[attr-defined]
    assert "Sem acesso" in driver.find_element(By.TAG_NAME, "h1").text  # type: ignore[attr-defined]
    assert "Preço particular" not in driver.page_source  # type: ignore[attr-defined]


def test_a_price_edited_by_the_admin_is_what_the_receptionist_says(
    served: tuple[str, Services], browser: object
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, services = served
    driver = browser
    wait = WebDriverWait(driver, 20)
    assert services.clinic().price("ecg") == 120
    before = _chat(url, "e2e-price", "quanto custa o eletrocardiograma?", "+5511987659102")
    assert "120" in before["reply"]

    _login(driver, url, "admin@clinica.test")
    driver.get(f"{url}/console/clinic/services")  # type: ignore[attr-defined]
    price = wait.until(lambda d: d.find_element(By.NAME, "services.1.private_price"))
    price.clear()
    price.send_keys("-5")
    driver.find_element(By.CSS_SELECTOR, "button.save").click()  # type: ignore[attr-defined]
    error = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".field.invalid .field-error"))
    assert "Deve ser no mínimo 0" in error.text
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", error)  # type: ignore[attr-defined]
    _shot(driver, "clinic-price-error", phone=True)

    price = driver.find_element(By.NAME, "services.1.private_price")  # type: ignore[attr-defined]
    price.clear()
    price.send_keys("145")
    driver.find_element(By.CSS_SELECTOR, "button.save").click()  # type: ignore[attr-defined]
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "p.ok"))
    _shot(driver, "clinic-saved")

    after = _chat(url, "e2e-price-2", "quanto custa o eletrocardiograma?", "+5511987659103")
    assert "145" in after["reply"] and "120" not in after["reply"]

    driver.get(f"{url}/console/clinic")  # type: ignore[attr-defined]
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "table.versions tr.current"))
    assert "services[ecg].private_price: 120 → 145" in driver.page_source  # type: ignore[attr-defined]
    _shot(driver, "clinic-versions", phone=True)
    driver.get(f"{url}/console/clinic/coverage")  # type: ignore[attr-defined]
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "table.grid.coverage"))
    _shot(driver, "clinic-coverage")
