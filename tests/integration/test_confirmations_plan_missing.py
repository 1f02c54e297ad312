"""Appointments booked before confirmations were on get their steps: once, at start (in every
process) and through ``voice-agent confirmations --plan-missing``; never twice, never for
appointments that are cancelled, confirmed or past."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import date, time, timedelta

from sqlalchemy import Engine, delete, func, select
from typer.testing import CliRunner

from tests.fakes.polling import poll
from tests.integration.integration_env import build
from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.cli import CliRuntime
from voice_agent.cli import app as cli
from voice_agent.clock import FixedClock
from voice_agent.scheduling.booking import BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services
from voice_agent.store.confirmation_tables import ConfirmationStep
from voice_agent.store.db import make_engine, transaction
from voice_agent.store.tables import Appointment

PHONES = ["+5511987658101", "+5511987658102", "+5511987658103", "+5511987658104"]


async def book(services: Services, phone: str, when: date | Preferences) -> Appointment:
    prefs = when if isinstance(when, Preferences) else Preferences(dates=[when], earliest=time(10))
    patient = await services.patients.find_or_create(phone, "pt-BR")
    offers = await services.booking.find_offers("clinico-consulta", prefs, holder=phone, limit=1)
    request = BookingRequest(patient_id=patient.id, channel="whatsapp", holder=phone)
    return await services.booking.book(request, offers[0].hold_id)


async def unplanned_appointments(services: Services) -> dict[str, Appointment]:
    """Four appointments as a clinic upgrading would have them: no confirmation steps at all.

    ``due``: Friday 27 November, both steps still ahead; ``late``: Wednesday 25 November,
    booked a week ago (its 48 h request can fall due before anyone plans it); ``cancelled`` and
    ``confirmed`` get none.
    """
    found = {
        "due": await book(services, PHONES[0], date(2026, 11, 27)),
        "late": await book(services, PHONES[1], date(2026, 11, 25)),
        "cancelled": await book(services, PHONES[2], date(2026, 11, 27)),
        "confirmed": await book(services, PHONES[3], date(2026, 11, 30)),
    }
    patient = found["cancelled"].patient_id
    await services.booking.cancel(patient, found["cancelled"].id, channel="voice")
    await services.booking.confirm(
        found["confirmed"].patient_id, found["confirmed"].id, channel="voice"
    )
    with transaction(services.engine) as session:
        session.execute(delete(ConfirmationStep))
        late = session.get(Appointment, found["late"].id)
        assert late is not None
        late.created_at = services.clock.now() - timedelta(days=7)
    return found


def steps_of(engine: Engine) -> dict[str, list[tuple[str, object]]]:
    found: dict[str, list[tuple[str, object]]] = {}
    with transaction(engine) as session:
        rows = session.execute(select(ConfirmationStep).order_by(ConfirmationStep.due_at))
        for step in rows.scalars():
            found.setdefault(step.appointment_id, []).append((step.via, step.due_at))
    return found


def test_cli_plans_missing_steps_once(tmp_path, clock: FixedClock) -> None:
    url = f"sqlite:///{tmp_path / 'upgrade.db'}"
    services = build(make_engine(url), clock)
    ahead = Preferences(date_from=clock.now().date() + timedelta(days=10), earliest=time(10, 0))

    async def upgrade_state() -> tuple[Appointment, Appointment]:
        kept = await book(services, PHONES[0], ahead)
        gone = await book(services, PHONES[1], ahead)
        await services.booking.cancel(gone.patient_id, gone.id, channel="voice")
        with transaction(services.engine) as session:
            session.execute(delete(ConfirmationStep))
        return kept, gone

    kept, _ = asyncio.run(upgrade_state())
    services.close()
    runner = CliRunner()
    env = {"VOICE_AGENT_DATABASE_URL": url}
    on_clock = CliRuntime(clock=clock)  # the CLI plans at the moment the test booked in
    first = runner.invoke(cli, ["confirmations", "--plan-missing"], env=env, obj=on_clock)
    assert first.exit_code == 0, first.output
    assert "planned confirmations for 1 appointment(s)" in first.output
    assert "pending: 2" in first.output
    again = runner.invoke(cli, ["confirmations", "--plan-missing"], env=env, obj=on_clock)
    assert again.exit_code == 0, again.output
    assert "planned confirmations for 0 appointment(s)" in again.output
    assert "pending: 2" in again.output
    steps = steps_of(make_engine(url))
    assert list(steps) == [kept.id]
    assert steps[kept.id] == [
        ("whatsapp", kept.start - timedelta(hours=48)),
        ("call", kept.start - timedelta(hours=24)),
    ]


async def test_the_app_plans_missing_steps_when_it_starts(
    make_engine_for: Callable[[str], Engine], clock: FixedClock
) -> None:
    services = build(make_engine_for("sqlite"), clock, alerter=ConsoleAlerter())
    appointments = await unplanned_appointments(services)
    assert steps_of(services.engine) == {}
    # The app starts an hour after the moment the Wednesday appointment's 48 h request was due.
    clock.set(appointments["late"].start - timedelta(hours=47))
    app = create_app(services.settings, services)
    async with app.router.lifespan_context(app):
        await poll(lambda: steps_of(services.engine), 5, 0.05)
    steps = steps_of(services.engine)
    assert set(steps) == {appointments["due"].id, appointments["late"].id}
    due = appointments["due"].start
    assert steps[appointments["due"].id] == [
        ("whatsapp", due - timedelta(hours=48)),
        ("call", due - timedelta(hours=24)),
    ]
    # The Wednesday appointment's 48 h request is overdue: it goes now (inside contact hours),
    # once; the call 24 h before stays where it was.
    late = appointments["late"].start
    assert steps[appointments["late"].id] == [
        ("whatsapp", clock.now()),
        ("call", late - timedelta(hours=24)),
    ]


async def test_processes_starting_together_plan_each_appointment_once(
    db_kind: str, make_engine_for: Callable[[str], Engine], clock: FixedClock
) -> None:
    services = build(make_engine_for(db_kind), clock, alerter=ConsoleAlerter())
    await unplanned_appointments(services)
    planner = services.step_planner
    assert planner is not None
    engines = [make_engine(str(services.engine.url)) for _ in range(4)]
    results: list[int] = []
    barrier = threading.Barrier(len(engines))

    def start(engine: Engine) -> None:
        barrier.wait()
        results.append(planner.plan_missing(engine))

    threads = [threading.Thread(target=start, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    assert sorted(results) == [0, 0, 0, 2]
    with transaction(services.engine) as session:
        assert session.execute(select(func.count()).select_from(ConfirmationStep)).scalar() == 4
