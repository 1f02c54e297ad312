"""Confirmation steps across OS processes: several app processes running the due steps of one
database (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: the write lock) send every message
and place every call exactly once, and a restarted process repeats nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.conftest import NOW, PG_URL
from tests.fakes.twilio_rest_fake import TwilioRestFake
from tests.integration.integration_env import ACCOUNT_SID, AUTH_TOKEN, build, twilio_settings
from tests.processes import app_processes
from voice_agent.clock import FixedClock
from voice_agent.confirmations.steps import StepStore
from voice_agent.scheduling.booking import BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services

PUBLIC = "https://clinic.example"


def settings(twilio: TwilioRestFake) -> dict[str, Any]:
    return {
        **twilio_settings(twilio.base_url),
        "public_url": PUBLIC,
        "whatsapp_confirmations": False,
    }


async def steps_due_now(services: Services, count: int) -> list[int]:
    """``count`` appointments of distinct patients, each with one step due now."""
    store = StepStore(services.engine, services.interactions)
    ids = []
    for i in range(count):
        phone = f"+55119876{55000 + i:05d}"
        patient = await services.patients.find_or_create(phone, "pt-BR")
        await services.patients.update(patient.id, full_name=f"Paciente {i}")
        offers = await services.booking.find_offers(
            "clinico-consulta", Preferences(), holder=phone, limit=1
        )
        request = BookingRequest(patient_id=patient.id, channel="voice", holder=phone)
        appointment = await services.booking.book(request, offers[0].hold_id)
        now = services.clock.now()
        ids.append(store.add(appointment.id, "call" if i % 2 else "whatsapp", now, 5, now))
    return ids


def _worker(url: str, overrides: dict[str, Any], gate: Any, results: Any) -> None:
    """One app process: its own engine, services and confirmation runner."""
    from voice_agent.confirmations.runner import ConfirmationRunner
    from voice_agent.integrations.twilio_rest import make_twilio_client
    from voice_agent.store.db import make_engine

    engine = make_engine(url)
    services = build(engine, FixedClock(NOW), **overrides)
    runner = ConfirmationRunner(services, make_twilio_client(services.settings))
    gate.wait()

    async def run() -> list[tuple[int, str]]:
        done: list[tuple[int, str]] = []
        idle = 0
        while idle < 3:
            batch = await runner.run_due(limit=3)
            done += batch
            idle = 0 if batch else idle + 1
            await asyncio.sleep(0.02)
        return done

    results.put(asyncio.run(run()))
    engine.dispose()


def run_processes(url: str, overrides: dict[str, Any], count: int) -> list[list[tuple[int, str]]]:
    context = app_processes(__name__)
    gate = context.Barrier(count)
    results = context.Queue()
    processes = [
        context.Process(target=_worker, args=(url, overrides, gate, results)) for _ in range(count)
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=90) for _ in processes]
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    return reports


@pytest.mark.parametrize(
    "kind",
    [
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(PG_URL is None, reason="VOICE_AGENT_TEST_DATABASE_URL unset"),
        ),
    ],
)
async def test_processes_run_every_step_exactly_once(
    kind: str, make_engine_for: Callable[[str], Engine], clock: FixedClock
) -> None:
    with TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        for i in range(24):
            twilio.open_window(f"+55119876{55000 + i:05d}")
        engine = make_engine_for(kind)
        overrides = settings(twilio)
        services = build(engine, clock, **overrides)
        ids = await steps_due_now(services, 24)
        url = engine.url.render_as_string(hide_password=False)
        reports = await asyncio.to_thread(run_processes, url, overrides, 3)

        ran = Counter(step_id for report in reports for step_id, _ in report)
        assert sorted(ran) == sorted(ids) and max(ran.values()) == 1
        assert sum(1 for report in reports if report) >= 2  # the work was shared
        outcomes = Counter(outcome for report in reports for _, outcome in report)
        assert outcomes == {"sent": 12, "placed": 12}
        messages = Counter(m["to"] for m in twilio.messages())
        calls = Counter(c["to"] for c in twilio.calls())
        assert len(messages) == 12 and max(messages.values()) == 1
        assert len(calls) == 12 and max(calls.values()) == 1
        # A restart (a fresh process) finds nothing left to do.
        again = await asyncio.to_thread(run_processes, url, overrides, 1)
        assert again == [[]]
