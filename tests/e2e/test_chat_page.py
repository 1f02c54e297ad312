"""The /chat page in headless Chromium: a person types, sees offers as buttons, clicks one,
says yes, and the appointment is in the database; with OpenAI on, the reply streams into the
page while it is written, after "typing" while the search runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import NOW, make_settings
from tests.e2e.browser import needs_chromium, serving
from tests.fakes.openai_responses import Call, FakeOpenAIResponses, Say
from tests.integration.conftest import MODEL
from tests.integration.test_llm_text import services_for
from tests.migrated import migrated_sqlite
from voice_agent.alerts import ConsoleAlerter
from voice_agent.clock import FixedClock
from voice_agent.services import Services, build_services
from voice_agent.store.db import make_engine, transaction
from voice_agent.store.tables import Appointment

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytestmark = needs_chromium


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Services]]:
    engine = make_engine(migrated_sqlite(tmp_path / "page.db"))
    services = build_services(
        make_settings(str(engine.url)),
        clock=FixedClock(NOW),
        alerter=ConsoleAlerter(),
        engine=engine,
    )
    with serving(services) as url:
        yield url, services


@pytest.fixture
def served_with_openai(tmp_path: Path) -> Iterator[tuple[str, FakeOpenAIResponses]]:
    with FakeOpenAIResponses(MODEL) as fake, serving(services_for(tmp_path, fake)) as url:
        yield url, fake


@pytest.fixture
def browser_window() -> tuple[int, int]:
    return (1000, 900)


def test_a_person_books_in_the_browser(served: tuple[str, Services], browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, services = served
    driver = browser
    driver.get(f"{url}/chat")  # type: ignore[attr-defined]
    wait = WebDriverWait(driver, 15)

    def send(text: str) -> str:
        count = len(driver.find_elements(By.CSS_SELECTOR, ".msg.receptionist"))  # type: ignore[attr-defined]
        box = driver.find_element(By.ID, "text")  # type: ignore[attr-defined]
        box.send_keys(text)
        driver.find_element(By.ID, "send").click()  # type: ignore[attr-defined]
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg.receptionist")) > count)
        return driver.find_elements(By.CSS_SELECTOR, ".msg.receptionist")[-1].text  # type: ignore[attr-defined]

    driver.find_element(By.ID, "phone").send_keys("+55 11 98765-4400")  # type: ignore[attr-defined]
    assert "nome completo" in send("Olá, quero marcar dermatologia amanhã")
    offers_reply = send("Beatriz Lima")  # the e-mail is asked only after the booking
    assert "1)" in offers_reply and "e-mail" not in offers_reply
    buttons = wait.until(ec.presence_of_all_elements_located((By.CSS_SELECTOR, "button.offer")))
    assert [b.get_attribute("data-option") for b in buttons[-3:]] == ["1", "2", "3"]
    count = len(driver.find_elements(By.CSS_SELECTOR, ".msg.receptionist"))  # type: ignore[attr-defined]
    buttons[-3].click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg.receptionist")) > count)
    assert "Posso marcar" in driver.find_elements(By.CSS_SELECTOR, ".msg.receptionist")[-1].text  # type: ignore[attr-defined]
    booked_reply = send("sim")
    assert "marcado" in booked_reply and "e-mail" in booked_reply
    done = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".booked")))
    assert done.get_attribute("data-action") == "booked"
    # Patient text is shown as text, never as HTML.
    send("<img src=x onerror=alert(1)>")
    assert not driver.find_elements(By.CSS_SELECTOR, "#log img")  # type: ignore[attr-defined]
    with transaction(services.engine) as session:
        rows = list(session.execute(select(Appointment)).scalars())
    assert len(rows) == 1 and rows[0].service_id == "derma-consulta" and rows[0].channel == "web"


def test_the_reply_streams_into_the_page(
    served_with_openai: tuple[str, FakeOpenAIResponses], browser: object
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, fake = served_with_openai
    searched, first_words = threading.Event(), threading.Event()
    answer = "Tenho três horários amanhã de manhã. Qual prefere?"
    fake.script = [
        Call([("find_slots", {"service": "dermatologia", "dates": ["2026-11-24"]})]),
        # Held while the page shows "typing"; then held again after the first words.
        Say(answer, chunks=3, hold=searched, gate=first_words),
    ]
    driver = browser
    driver.get(f"{url}/chat")  # type: ignore[attr-defined]
    wait = WebDriverWait(driver, 15)
    driver.find_element(By.ID, "phone").send_keys("+55 11 98765-4401")  # type: ignore[attr-defined]
    driver.find_element(By.ID, "text").send_keys("Quero dermatologia amanhã")  # type: ignore[attr-defined]
    driver.find_element(By.ID, "send").click()  # type: ignore[attr-defined]
    wait.until(lambda d: len(fake.requests) == 2)  # the search ran; the model is "thinking"
    assert driver.find_element(By.CSS_SELECTOR, ".msg.typing").is_displayed()  # type: ignore[attr-defined]
    assert not driver.find_elements(By.CSS_SELECTOR, ".msg.receptionist")  # type: ignore[attr-defined]
    searched.set()
    partial = wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".msg.receptionist.streaming"))
    )
    wait.until(lambda d: partial.text)
    assert answer.startswith(partial.text) and partial.text != answer  # words so far, not all
    assert not driver.find_elements(By.CSS_SELECTOR, ".msg.typing")  # type: ignore[attr-defined]
    first_words.set()
    done = wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".msg.receptionist:not(.streaming)"))
    )
    assert done.text == answer
    buttons = wait.until(ec.presence_of_all_elements_located((By.CSS_SELECTOR, "button.offer")))
    assert [b.get_attribute("data-option") for b in buttons] == ["1", "2", "3"]
    assert len(driver.find_elements(By.CSS_SELECTOR, ".msg.receptionist")) == 1  # type: ignore[attr-defined]
    assert fake.problems == []
