"""Learned ranking and no-show risk on a real database (SQLite and, when configured, PostgreSQL):
offers recorded and settled by what the patient does, `voice-agent ranking train | evaluate |
status` on a small history made through the offer path, the rules taking over from a stale or
incompatible model, hard filters that no model outweighs, `voice-agent agenda` with the risk and
`agenda mark`, and the extra confirmation call for a high-risk appointment."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from tests.conftest import NOW, make_settings
from voice_agent.alerts import ConsoleAlerter
from voice_agent.cli import app
from voice_agent.cli.context import CliRuntime
from voice_agent.clock import FixedClock
from voice_agent.confirmations.planning import HIGH_RISK_SEQ
from voice_agent.learning.decisions import decision_counts, settle_abandoned
from voice_agent.learning.noshow import new_no_show_pipeline
from voice_agent.learning.training import new_ranking_pipeline
from voice_agent.scheduling.booking import BookingRequest
from voice_agent.scheduling.offers import HeldOffer
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services, build_services
from voice_agent.settings import DEFAULT_CLINIC_FILE, Settings
from voice_agent.store.confirmation_tables import ConfirmationStep
from voice_agent.store.db import transaction
from voice_agent.store.learning_tables import ModelKind, OfferSet, OfferShown
from voice_agent.store.tables import Appointment, AppointmentStatus


def _settings(engine: Engine, **overrides: Any) -> Settings:
    return make_settings(engine.url.render_as_string(hide_password=False), **overrides)


def _services(settings: Settings, engine: Engine, clock: FixedClock) -> Services:
    return build_services(settings, clock=clock, alerter=ConsoleAlerter(), engine=engine)


def _cli(settings: Settings, clock: FixedClock, *args: str) -> Any:
    runtime = CliRuntime(clock=FixedClock(clock.now()), settings=settings)
    return CliRunner().invoke(app, list(args), obj=runtime)


def _sets(services: Services) -> list[OfferSet]:
    with transaction(services.engine) as session:
        return list(session.execute(select(OfferSet).order_by(OfferSet.created_at)).scalars())


def _shown(services: Services, set_id: str) -> list[OfferShown]:
    with transaction(services.engine) as session:
        query = select(OfferShown).where(OfferShown.set_id == set_id).order_by(OfferShown.rank)
        return list(session.execute(query).scalars())


async def _book(services: Services, patient_id: str, holder: str, offer: HeldOffer) -> Appointment:
    request = BookingRequest(
        patient_id=patient_id, channel="voice", holder=holder, request_key=f"{holder}:book"
    )
    return await services.booking.book(request, offer.hold_id)


async def test_each_offer_set_is_recorded_and_settled_by_what_the_patient_did(
    any_services: Services, clock: FixedClock
) -> None:
    services = any_services
    booking = services.booking
    patient = await services.patients.find_or_create("+5511987650001")
    first = await booking.find_offers(
        "cardio-consulta", Preferences(), holder="conv-1", patient_id=patient.id
    )
    [open_set] = _sets(services)
    assert open_set.outcome is None and open_set.holder == "conv-1"
    assert open_set.ranker == "rules"
    shown = _shown(services, open_set.id)
    assert [(s.rank, s.doctor_id, s.start) for s in shown] == [
        (int(o.label), o.slot.doctor_id, o.slot.start) for o in first
    ]
    features = json.loads(shown[0].features)
    assert features["doctor"] == first[0].slot.doctor_id and features["lead_days"] > 0
    assert features["rules_score"] == pytest.approx(shown[0].rules_score)
    assert patient.id not in shown[0].features and "+55119" not in shown[0].features

    # "Anything in the afternoon?" replaces the set; the patient books the second option.
    clock.advance(timedelta(seconds=30))
    second = await booking.find_offers(
        "cardio-consulta",
        Preferences(periods=["afternoon"]),
        holder="conv-1",
        patient_id=patient.id,
    )
    assert [s.outcome for s in _sets(services)] == [None, None]  # the search only inserts
    await _book(services, patient.id, "conv-1", second[1])
    replaced, chosen = _sets(services)
    assert replaced.outcome == "other_times" and replaced.holder is None
    assert chosen.outcome == "chosen" and chosen.chosen_rank == 2 and chosen.holder is None
    assert [s.chosen for s in _shown(services, chosen.id)] == [False, True, False]

    # Another caller hangs up; a third asks twice and goes quiet until the holds expire.
    await booking.find_offers("clinico-consulta", Preferences(), holder="conv-2")
    await booking.release_holds("conv-2")
    await booking.find_offers("derma-consulta", Preferences(), holder="conv-3")
    clock.advance(timedelta(seconds=30))
    await booking.find_offers("derma-consulta", Preferences(periods=["morning"]), holder="conv-3")
    assert settle_abandoned(services.engine, clock.now()) == 0  # still held
    assert decision_counts(services.engine)["other_times"] == 2  # the job settled the first
    clock.advance(timedelta(minutes=11))
    assert settle_abandoned(services.engine, clock.now()) == 1
    assert decision_counts(services.engine) == {
        "other_times": 2,
        "chosen": 1,
        "rejected": 1,
        "abandoned": 1,
    }
    assert all(s.holder is None for s in _sets(services))


async def _history(
    services: Services,
    clock: FixedClock,
    conversations: int,
    seed: int,
    start: datetime = NOW,
) -> None:
    """Patients who always take the latest offered time of day (the rules offer the earliest
    first), made through the real offer and booking paths over a few weeks."""
    rng = random.Random(seed)
    patients = [(await services.patients.find_or_create(f"+55119876{n:05d}")).id for n in range(8)]
    for n in range(conversations):
        clock.set(start + timedelta(hours=8 * n))
        holder = f"hist-{seed}-{n}"
        service = rng.choice(("cardio-consulta", "clinico-consulta", "pediatria-consulta"))
        patient = rng.choice(patients)
        offers = await services.booking.find_offers(
            service, Preferences(), holder=holder, patient_id=patient
        )
        latest = max(offers, key=lambda o: o.slot.start.astimezone(NOW.tzinfo).time())
        await _book(services, patient, holder, latest)
        await services.booking.release_holds(holder)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_ranking_train_evaluate_and_status_through_the_cli(
    db: str, make_engine_for: Callable[[str], Engine]
) -> None:
    from tests.conftest import PG_URL

    if db == "postgresql" and PG_URL is None:
        pytest.skip("VOICE_AGENT_TEST_DATABASE_URL unset")
    engine = make_engine_for(db)
    clock = FixedClock(NOW)
    settings = _settings(engine)
    services = _services(settings, engine, clock)
    cold = _cli(settings, clock, "ranking", "status")
    assert cold.exit_code == 0, cold.output
    assert "offer sets recorded: 0" in cold.output and "ranking: rules (no model)" in cold.output

    asyncio.run(_history(services, clock, 44, seed=5))
    too_few = _cli(settings, clock, "ranking", "train")  # 200 decisions needed by default
    assert "ranking: not trained (44 decisions, 200 needed)" in too_few.output

    trained = _cli(settings, clock, "ranking", "train", "--min-decisions", "20")
    assert trained.exit_code == 0, trained.output
    assert "ranking model v1: promoted (beats the rules on the held-out split)" in trained.output
    assert "decisions 44 (train 33, held out 11)" in trained.output
    rules_line, model_line = [
        line.split()
        for line in trained.output.splitlines()
        if line.strip().startswith(("rules", "model"))
    ][:2]
    assert float(model_line[2]) > float(rules_line[2])  # MRR
    assert "no-show: not trained (0 marked appointments, 20 needed)" in trained.output

    status = _cli(settings, clock, "ranking", "status")
    assert "ranking: model v1" in status.output and "v1   promoted" in status.output
    assert "offer sets recorded: 44 (chosen 44)" in status.output
    evaluated = _cli(settings, clock, "ranking", "evaluate")
    assert "ranking model v1 (in use), measured on its held-out split:" in evaluated.output
    assert evaluated.output.count("%") == 2

    # The app picks the promoted model up (a job refreshes it every minute) and ranks with it.
    assert services.learning is not None
    services.learning.refresh()
    clock.set(NOW + timedelta(days=20))
    offers = asyncio.run(
        services.booking.find_offers("cardio-consulta", Preferences(), holder="after")
    )
    assert offers and _sets(services)[-1].ranker == "model:v1"
    assert all(o.reasons for o in offers)  # the words a patient hears stay the rules' reasons

    # The nightly job trains only when enough decisions came in since the last model.
    from voice_agent.learning.jobs import _nightly

    nightly = settings.model_copy(
        update={"ranking_min_decisions": 20, "ranking_retrain_new_decisions": 5}
    )
    quiet = _nightly(engine, services.clinic(), nightly, clock.now())
    assert quiet.ranking is None and quiet.no_show is None  # 0 new decisions since v1
    asyncio.run(services.booking.release_holds("after"))
    asyncio.run(_history(services, clock, 6, seed=6, start=NOW + timedelta(days=21)))
    retrained = _nightly(engine, services.clinic(), nightly, clock.now())
    assert retrained.ranking is not None and retrained.ranking.info is not None
    assert retrained.ranking.info.version == 2 and retrained.no_show is None
    services.close()


def _promote(services: Services, kind: ModelKind, estimator: Any, **fields: Any) -> None:
    store = services.learning.store  # type: ignore[union-attr]
    store.save(
        kind,
        estimator,
        promote=True,
        trained_until=fields.pop("trained_until", services.clock.now()),
        examples=10,
        features=[],
        metrics={},
        now=services.clock.now(),
        **fields,
    )
    services.learning.refresh()  # type: ignore[union-attr]


def _loves_ana_in_the_morning() -> Any:
    """A ranking model that wants Dr. Ana Souza's mornings above everything."""
    rows, labels = [], []
    for doctor in ("dr-ana-souza", "dr-carlos-lima"):
        for morning in (0.0, 1.0):
            for lead in (1.0, 5.0, 9.0):
                rows.append({"doctor": doctor, "morning": morning, "lead_days": lead})
                labels.append(int(doctor == "dr-ana-souza" and morning == 1.0))
    return new_ranking_pipeline().fit(rows, labels)


async def test_hard_filters_are_never_outweighed_by_the_model(any_services: Services) -> None:
    services = any_services
    _promote(services, ModelKind.ranking, _loves_ana_in_the_morning())
    free = await services.booking.find_offers("cardio-consulta", Preferences(), holder="free")
    assert _sets(services)[-1].ranker == "model:v1"
    assert free[0].slot.doctor_id == "dr-ana-souza"
    assert free[0].slot.start.astimezone(NOW.tzinfo).hour < 12
    asked = Preferences(doctor_id="dr-carlos-lima", periods=["afternoon"])
    held = await services.booking.find_offers("cardio-consulta", asked, holder="asked")
    assert held and all(o.slot.doctor_id == "dr-carlos-lima" for o in held)
    assert all(o.slot.start.astimezone(NOW.tzinfo).hour >= 12 for o in held)


def test_a_stale_or_incompatible_model_falls_back_to_the_rules(
    make_engine_for: Callable[[str], Engine],
) -> None:
    engine = make_engine_for("sqlite")
    clock = FixedClock(NOW)
    settings = _settings(engine, ranking_model_max_age_days=30)
    services = _services(settings, engine, clock)
    _promote(
        services,
        ModelKind.ranking,
        _loves_ana_in_the_morning(),
        trained_until=NOW - timedelta(days=45),
    )
    offers = asyncio.run(
        services.booking.find_offers("cardio-consulta", Preferences(), holder="stale")
    )
    assert _sets(services)[-1].ranker == "rules"
    rules = [o.features["rules_score"] for o in offers]  # type: ignore[index]
    assert [o.score for o in offers] == pytest.approx(rules, abs=1e-4)  # the rules' own scores
    status = _cli(settings, clock, "ranking", "status")
    assert "ranking: rules (stale: trained on data up to 2026-10-09)" in status.output

    _promote(services, ModelKind.ranking, _loves_ana_in_the_morning(), sklearn_version="0.24.2")
    asyncio.run(services.booking.find_offers("cardio-consulta", Preferences(), holder="old"))
    assert _sets(services)[-1].ranker == "rules"
    status = _cli(settings, clock, "ranking", "status")
    assert (
        "ranking: rules (incompatible: ranking model v2 was trained with scikit-learn 0.24.2"
        in (status.output)
    )
    services.close()


def _risky_voice_callers() -> Any:
    """A no-show model for which voice bookings are risky and chat bookings are not."""
    rows, labels = [], []
    for channel, misses in (("voice", 9), ("chat", 1)):
        for n in range(10):
            rows.append({"channel": channel, "lead_days": float(n), "confirmed": 0.0})
            labels.append(int(n < misses))
    return new_no_show_pipeline().fit(rows, labels)


def _clinic_file(tmp_path: Path, threshold: float) -> Path:
    data = yaml.safe_load(DEFAULT_CLINIC_FILE.read_text(encoding="utf-8"))
    data["confirmations"]["high_risk_threshold"] = threshold
    data["confirmations"]["high_risk_call_hours_before"] = 5
    path = tmp_path / "clinic-risk.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_agenda_shows_the_risk_marks_attendance_and_high_risk_gets_an_extra_call(
    db: str, make_engine_for: Callable[[str], Engine], tmp_path: Path
) -> None:
    from tests.conftest import PG_URL

    if db == "postgresql" and PG_URL is None:
        pytest.skip("VOICE_AGENT_TEST_DATABASE_URL unset")
    engine = make_engine_for(db)
    clock = FixedClock(NOW)
    settings = _settings(engine, clinic_file=_clinic_file(tmp_path, 0.5))
    services = _services(settings, engine, clock)
    _promote(services, ModelKind.no_show, _risky_voice_callers())

    async def book(channel: str, holder: str) -> Appointment:
        patient = await services.patients.find_or_create(f"+5511987650{len(holder):03d}")
        prefs = Preferences(dates=[(NOW + timedelta(days=4)).date()])
        offers = await services.booking.find_offers("clinico-consulta", prefs, holder=holder)
        request = BookingRequest(patient_id=patient.id, channel=channel, holder=holder)
        return await services.booking.book(request, offers[0].hold_id)

    risky = asyncio.run(book("voice", "voice-caller"))
    safe = asyncio.run(book("chat", "chat-writer"))
    with transaction(engine) as session:
        steps = {
            (step.appointment_id, step.seq, step.via)
            for step in session.execute(select(ConfirmationStep)).scalars()
        }
    assert (risky.id, HIGH_RISK_SEQ, "call") in steps
    assert not any(
        seq == HIGH_RISK_SEQ for appointment_id, seq, _ in steps if appointment_id == safe.id
    )

    day = risky.start.astimezone(NOW.tzinfo).date().isoformat()
    listing = _cli(settings, clock, "agenda", "--date", day)
    assert listing.exit_code == 0, listing.output
    risk = services.learning.no_show_risk([risky.id, safe.id])  # type: ignore[union-attr]
    assert risk[risky.id] > 0.5 > risk[safe.id]  # type: ignore[operator]
    line = next(line for line in listing.output.splitlines() if risky.id in line)
    assert f"no-show risk {risk[risky.id] * 100:3.0f}%" in line  # type: ignore[operator]

    early = _cli(settings, clock, "agenda", "mark", risky.id, "no-show")
    assert early.exit_code == 1 and "has not started yet" in early.output
    clock.set(max(risky.end, safe.end) + timedelta(hours=1))
    marked = _cli(settings, clock, "agenda", "mark", risky.id, "no-show")
    assert marked.exit_code == 0 and f"{risky.id}: no_show" in marked.output
    again = _cli(settings, clock, "agenda", "mark", safe.id, "attended")
    assert again.exit_code == 0, again.output
    wrong = _cli(settings, clock, "agenda", "mark", safe.id, "maybe")
    assert wrong.exit_code == 1 and "unknown mark 'maybe'" in wrong.output
    missing = _cli(settings, clock, "agenda", "mark", "nope", "attended")
    assert missing.exit_code == 1 and "no appointment 'nope'" in missing.output
    with transaction(engine) as session:
        assert session.get(Appointment, risky.id).status == AppointmentStatus.no_show  # type: ignore[union-attr]
        assert session.get(Appointment, safe.id).status == AppointmentStatus.attended  # type: ignore[union-attr]
    services.close()


async def test_attendance_marked_in_the_clinics_system_is_read_back(
    db_kind: str, make_engine_for: Callable[[str], Engine], clock: FixedClock, tmp_path: Path
) -> None:
    from tests.fakes.clinic_api_fake import ClinicApiFake
    from tests.integration.integration_env import build
    from tests.integration.test_clinic_api import clinic_api_settings, offer
    from voice_agent.calendars.clinic_api import ClinicApiCalendar
    from voice_agent.learning.attendance import sync_attendance

    with ClinicApiFake() as api:
        services = build(make_engine_for(db_kind), clock, **clinic_api_settings(api, tmp_path))
        calendar = services.calendar
        assert isinstance(calendar, ClinicApiCalendar)
        came, missed, unmarked = [
            await services.booking.book(*await offer(services, f"+551198765{n:04d}", f"a{n}"))
            for n in range(3)
        ]
        api.set_status(came.id, "realizado")
        api.set_status(missed.id, "no_show")
        assert sync_attendance(services.engine, calendar, clock.now()) == 0  # not over yet
        clock.set(max(a.end for a in (came, missed, unmarked)) + timedelta(hours=1))
        assert sync_attendance(services.engine, calendar, clock.now()) == 2
        with transaction(services.engine) as session:
            status = {a.id: session.get(Appointment, a.id).status for a in (came, missed, unmarked)}  # type: ignore[union-attr]
        assert status == {
            came.id: AppointmentStatus.attended,
            missed.id: AppointmentStatus.no_show,
            unmarked.id: AppointmentStatus.booked,
        }
        assert (
            sync_attendance(services.engine, calendar, clock.now()) == 0
        )  # marked: not asked again
        services.close()
