"""A clinic that books the same day (``booking.start_tomorrow: false``), as its patients meet it
through /api/chat with the offline receptionist, and as the OpenAI instructions (text and voice)
tell the model: "today" is searched, and nobody hears "from tomorrow on"."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.conftest import NOW, make_settings
from tests.migrated import migrated_sqlite
from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.clinic import load_clinic_file
from voice_agent.clock import FixedClock
from voice_agent.services import Services, build_services
from voice_agent.settings import DEFAULT_CLINIC_FILE
from voice_agent.store.db import make_engine
from voice_agent.voice.openai.instructions import render_instructions

LOCAL = ("127.0.0.1", 50000)
TODAY = NOW.date().isoformat()  # Monday 2026-11-23, 10:00 in São Paulo


def same_day_clinic_file(folder: Path) -> Path:
    data = yaml.safe_load(DEFAULT_CLINIC_FILE.read_text(encoding="utf-8"))
    data["booking"]["start_tomorrow"] = False
    path = folder / "same_day.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def open_clinic(tmp_path: Path) -> Iterator[Callable[[datetime], TestClient]]:
    """A client of the same-day clinic at the given moment."""
    opened: list[tuple[Services, TestClient]] = []

    def at(now: datetime) -> TestClient:
        engine = make_engine(migrated_sqlite(tmp_path / f"same-day-{len(opened)}.db"))
        settings = make_settings(str(engine.url), clinic_file=same_day_clinic_file(tmp_path))
        services = build_services(
            settings, clock=FixedClock(now), alerter=ConsoleAlerter(), engine=engine
        )
        client = TestClient(create_app(settings, services), client=LOCAL)
        client.__enter__()
        opened.append((services, client))
        return client

    yield at
    for services, client in opened:
        client.__exit__(None, None, None)
        services.close()


def _say(client: TestClient, session: str, text: str) -> dict:
    response = client.post(
        "/api/chat", json={"session_id": session, "text": text, "phone": "+5511987654501"}
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    "request_text",
    [
        "Olá, meu nome é Carla Dias e quero marcar clínico geral para hoje",
        "Hi, my name is Emma Brown and I need a GP today",
        "Здравствуйте, меня зовут Петрова Анна Сергеевна, хочу к терапевту сегодня",
    ],
)
def test_today_is_offered_where_the_clinic_books_the_same_day(
    open_clinic: Callable[[datetime], TestClient], request_text: str
) -> None:
    turn = _say(open_clinic(NOW), "today", request_text)
    offers = turn["state"]["offers"]
    assert offers and {o["date"] for o in offers} == {TODAY}, turn["reply"]
    # Two hours' notice from 10:00: nothing before noon.
    assert min(o["time"] for o in offers) >= "12:00"
    for tomorrow_on in ("a partir de amanhã", "from tomorrow on", "с завтрашнего дня"):
        assert tomorrow_on not in turn["reply"]


def test_a_full_today_says_so_and_offers_the_next_days(
    open_clinic: Callable[[datetime], TestClient],
) -> None:
    evening = NOW.replace(hour=17, minute=30)  # two hours' notice leaves nothing today
    turn = _say(
        open_clinic(evening), "late", "Olá, meu nome é Carla Dias e quero clínico geral hoje"
    )
    assert "Para hoje não tenho mais horários livres. Tenho estes horários" in turn["reply"]
    offers = turn["state"]["offers"]
    assert offers and all(o["date"] > TODAY for o in offers)


def test_a_day_gone_is_searched_from_today(
    open_clinic: Callable[[datetime], TestClient],
) -> None:
    turn = _say(
        open_clinic(NOW), "gone", "Olá, meu nome é Carla Dias e quero clínico geral no dia 20/11"
    )
    assert "já passou; procuro a partir de hoje." in turn["reply"], turn["reply"]


@pytest.mark.parametrize(
    ("language", "first_day"),
    [
        ("pt-BR", "segunda-feira, 23 de novembro"),
        ("en", "Monday, November 23"),
        ("ru", "понедельник, 23 ноября"),
    ],
)
def test_the_models_are_told_the_first_day_the_clinic_books(
    tmp_path: Path, language: str, first_day: str
) -> None:
    settings = make_settings()
    same_day = load_clinic_file(same_day_clinic_file(tmp_path))
    usual = load_clinic_file(DEFAULT_CLINIC_FILE)
    said = render_instructions(
        settings.prompts_dir, same_day, language, now=NOW, patient=None, caller_verified=False
    )
    assert first_day in said and "$first_day" not in said
    next_day = render_instructions(
        settings.prompts_dir, usual, language, now=NOW, patient=None, caller_verified=False
    )
    assert first_day not in next_day.split("find_slots")[1].split(")")[0]
