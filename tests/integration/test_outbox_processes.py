"""The outbox across OS processes: a process killed between sending and marking doubles nothing,
and several processes draining one PostgreSQL outbox deliver each row exactly once."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine

from tests.conftest import NOW, PG_URL
from tests.fakes.google_fake import GoogleFake
from tests.fakes.twilio_rest_fake import TwilioRestFake
from tests.integration.integration_env import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SHEET_ID,
    build,
    calendar_id,
    google_settings,
    twilio_settings,
)
from tests.processes import app_processes
from voice_agent.clock import FixedClock
from voice_agent.integrations.sheets import HEADER
from voice_agent.scheduling.booking import BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services
from voice_agent.settings import DEFAULT_CLINIC_FILE
from voice_agent.store.tables import InteractionKind

TEMPLATE = "HX" + "a" * 32
CARDIO_DOCTORS = ("dr-ana-souza", "dr-carlos-lima")


@pytest.fixture
def fakes(clock: FixedClock) -> Iterator[tuple[GoogleFake, TwilioRestFake]]:
    with GoogleFake() as google, TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN, clock) as twilio:
        google.add_spreadsheet(SHEET_ID)
        for doctor in yaml.safe_load(DEFAULT_CLINIC_FILE.read_text(encoding="utf-8"))["doctors"]:
            google.add_calendar(calendar_id(doctor["id"]))
        twilio.add_template(TEMPLATE, "Consulta confirmada: {{1}}, {{2}} com {{3}}.")
        yield google, twilio


def overrides(google: GoogleFake, twilio: TwilioRestFake, tmp_path: Path) -> dict[str, Any]:
    return {
        **google_settings(google.base_url, tmp_path),
        **twilio_settings(twilio.base_url),
        "whatsapp_confirmation_template_sid": TEMPLATE,
    }


async def book_many(services: Services, count: int) -> list[str]:
    ids = []
    for i in range(count):
        patient = await services.patients.find_or_create(f"+55119876{54000 + i:05d}")
        await services.patients.update(patient.id, full_name=f"Paciente {i} Souza")
        holder = f"conv-{i}"
        offers = await services.booking.find_offers(
            "cardio-consulta", Preferences(), holder=holder, limit=1
        )
        request = BookingRequest(patient_id=patient.id, channel="voice", holder=holder)
        ids.append((await services.booking.book(request, offers[0].hold_id)).id)
    return ids


def _worker(url: str, settings: dict[str, Any], mode: str, gate: Any, results: Any) -> None:
    """One app process: its own engine, services and outbox delivery loop."""
    from voice_agent.store.db import make_engine

    engine = make_engine(url)
    services = build(engine, FixedClock(NOW), **settings)
    if mode == "crash":
        services.outbox.after_send = lambda items: os._exit(17)
    gate.wait()

    async def drain() -> dict[str, int]:
        started = time.perf_counter()
        delivered: Counter[str] = Counter()
        idle = 0
        while idle < 3:
            report = await services.outbox.deliver_due(limit=100 if mode == "crash" else 10)
            delivered.update(report.by_kind)
            idle = idle + 1 if report.claimed == 0 else 0
            if report.claimed == 0:
                await asyncio.sleep(0.05)
        delivered["_seconds"] = round(time.perf_counter() - started, 2)  # type: ignore[assignment]
        return dict(delivered)

    results.put(asyncio.run(drain()))
    engine.dispose()


def _run_processes(
    url: str, settings: dict[str, Any], mode: str, count: int
) -> tuple[list[int | None], list[dict[str, int]]]:
    context = app_processes(__name__)
    gate = context.Barrier(count)
    results = context.Queue()
    processes = [
        context.Process(target=_worker, args=(url, settings, mode, gate, results))
        for _ in range(count)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    reports = []
    while not results.empty():
        reports.append(results.get(timeout=1))
    return [p.exitcode for p in processes], reports


def check_exactly_once(
    services: Services, google: GoogleFake, twilio: TwilioRestFake, appointment_ids: list[str]
) -> None:
    refs = Counter(row[8] for row in google.rows(SHEET_ID)[1:])
    assert refs and max(refs.values()) == 1, "a row reached the sheet twice"
    assert len(refs) == services.outbox.counts()["done"] - 2 * len(appointment_ids)
    events = Counter(
        e["id"] for doctor in CARDIO_DOCTORS for e in google.events(calendar_id(doctor))
    )
    assert sorted(events) == sorted(appointment_ids) and max(events.values()) == 1
    sent = Counter(m["to"] for m in twilio.messages())
    assert len(sent) == len(appointment_ids) and max(sent.values()) == 1


async def test_a_process_killed_between_send_and_mark_doubles_nothing(
    db_kind: str,
    make_engine_for: Callable[[str], Engine],
    clock: FixedClock,
    fakes: tuple[GoogleFake, TwilioRestFake],
    tmp_path: Path,
) -> None:
    google, twilio = fakes
    engine = make_engine_for(db_kind)
    settings = overrides(google, twilio, tmp_path)
    services = build(engine, clock, **settings)
    ids = await book_many(services, 3)
    await services.interactions.record(InteractionKind.information, channel="voice")
    url = engine.url.render_as_string(hide_password=False)
    codes, _ = await asyncio.to_thread(_run_processes, url, settings, "crash", 1)
    assert codes == [17]  # died after sending, before marking anything
    assert len(google.rows(SHEET_ID)) == 1 + 4  # header + rows: they did reach Google
    assert len(twilio.messages()) == 3
    assert services.outbox.counts()["done"] == 0
    clock.advance(timedelta(minutes=3))  # the dead process's lease ends
    report = await services.outbox.drain()
    assert report.delivered == 4 + 3 + 3 and report.dead == 0
    check_exactly_once(services, google, twilio, ids)


@pytest.mark.skipif(PG_URL is None, reason="VOICE_AGENT_TEST_DATABASE_URL unset")
async def test_processes_draining_one_postgresql_outbox_deliver_each_row_once(
    make_engine_for: Callable[[str], Engine],
    clock: FixedClock,
    fakes: tuple[GoogleFake, TwilioRestFake],
    tmp_path: Path,
) -> None:
    google, twilio = fakes
    engine = make_engine_for("postgresql")
    settings = overrides(google, twilio, tmp_path)
    services = build(engine, clock, **settings)
    ids = await book_many(services, 4)
    for i in range(80):
        await services.interactions.record(
            InteractionKind.information, channel="voice", details={"topic": f"q{i}"}
        )
    google.state.sheets[SHEET_ID]["Sheet1"].append(list(HEADER))  # the sheet is set up
    google.slow_next(5, 0.05)
    total = services.outbox.counts()["pending"]
    assert total == 84 + 4 + 4
    url = engine.url.render_as_string(hide_password=False)
    started = time.perf_counter()
    codes, reports = await asyncio.to_thread(_run_processes, url, settings, "drain", 3)
    elapsed = time.perf_counter() - started
    assert codes == [0, 0, 0]
    seconds = [r.pop("_seconds") for r in reports]
    delivered = sum(sum(r.values()) for r in reports)
    assert delivered == total
    assert sum(1 for r in reports if sum(r.values()) > 0) >= 2  # the work was shared
    assert services.outbox.counts() == {"pending": 0, "done": total, "dead": 0, "failed": 0}
    check_exactly_once(services, google, twilio, ids)
    print(f"3 processes delivered {total} rows in {elapsed:.2f}s ({seconds}): {reports}")
