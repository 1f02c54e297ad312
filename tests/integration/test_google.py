"""Google Calendar and Sheets through google-api-python-client against the local fake: what the
wire carries, faults (500, 429, applied-then-failed, slow), drift by hand, exactly-once rows."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from tests.conftest import SAO_PAULO
from tests.fakes.google_fake import GoogleFake
from tests.integration.integration_env import SHEET_ID, build, calendar_id, google_settings
from voice_agent.app import create_app
from voice_agent.clock import FixedClock
from voice_agent.errors import CalendarUnavailable
from voice_agent.scheduling.booking import BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services
from voice_agent.settings import DEFAULT_CLINIC_FILE
from voice_agent.store.db import transaction
from voice_agent.store.outbox_tables import OutboxRow
from voice_agent.store.tables import Appointment, Interaction, InteractionKind
from voice_agent.tools.catalog import build_registry
from voice_agent.tools.context import ToolContext

LOCAL = ("127.0.0.1", 50000)

TUESDAY = date(2026, 11, 24)
CARLOS = "dr-carlos-lima"

REGISTRY = build_registry()
"""The tools the channels offer, built once for this module (a build reads every signature)."""


@pytest.fixture
def google() -> Iterator[GoogleFake]:
    with GoogleFake() as fake:
        fake.add_spreadsheet(SHEET_ID)
        clinic = yaml.safe_load(DEFAULT_CLINIC_FILE.read_text(encoding="utf-8"))
        for doctor in clinic["doctors"]:
            fake.add_calendar(calendar_id(doctor["id"]))
        yield fake


@pytest.fixture
def gservices(
    db_kind: str,
    make_engine_for: Callable[[str], Engine],
    clock: FixedClock,
    google: GoogleFake,
    tmp_path: Path,
) -> Services:
    return build(make_engine_for(db_kind), clock, **google_settings(google.base_url, tmp_path))


async def book(
    services: Services, phone: str, holder: str, prefs: Preferences | None = None
) -> Appointment:
    patient = await services.patients.find_or_create(phone)
    await services.patients.update(patient.id, full_name="Maria Aparecida Silva")
    offers = await services.booking.find_offers(
        "cardio-consulta", prefs or Preferences(doctor_id=CARLOS), holder=holder
    )
    request = BookingRequest(patient_id=patient.id, channel="voice", holder=holder)
    return await services.booking.book(request, offers[0].hold_id)


def sheet_kinds(google: GoogleFake) -> list[str]:
    return [row[3] for row in google.rows(SHEET_ID)[1:]]


async def test_interactions_reach_the_sheet_and_the_calendar_mirrors_bookings(
    gservices: Services, google: GoogleFake
) -> None:
    services = gservices
    appointment = await book(services, "+5511987651111", "conv-1")
    patient_id = appointment.patient_id
    await services.outbox.drain()
    offers = await services.booking.find_offers(
        "cardio-consulta", Preferences(doctor_id=CARLOS, periods=["afternoon"]), holder="conv-1"
    )
    request = BookingRequest(patient_id=patient_id, channel="voice", holder="conv-1")
    moved = await services.booking.reschedule(request, appointment.id, offers[0].hold_id)
    await services.outbox.drain()
    await services.interactions.record(
        InteractionKind.information, channel="whatsapp", patient_id=patient_id,
        details={"topic": "prices"},
    )  # fmt: skip
    await services.booking.cancel(patient_id, appointment.id, channel="voice", reason="travel")
    await services.outbox.drain()
    assert services.outbox.counts() == {"pending": 0, "done": 7, "dead": 0, "failed": 0}

    rows = google.rows(SHEET_ID)
    # A Brazilian clinic's sheet: header and kinds in Portuguese.
    assert rows[0][:4] == ["Data e hora", "Paciente", "Telefone", "Tipo"]
    assert sheet_kinds(google) == ["marcação", "remarcação", "informação", "cancelamento"]
    first = rows[1]
    with transaction(services.engine) as session:
        logged = session.execute(select(Interaction).order_by(Interaction.id)).scalars().first()
    assert first[0] == logged.at.astimezone(SAO_PAULO).strftime("%Y-%m-%d %H:%M")  # clinic time
    assert first[1] == "Maria Aparecida Silva"
    assert first[2] == "+55•••••••1111"  # masked by default
    assert first[5] == "voice"
    assert first[6] == appointment.start.astimezone(SAO_PAULO).strftime("%Y-%m-%d %H:%M")
    assert first[7] == "Dr. Carlos Lima"
    assert rows[2][4] == "consulta de cardiologia; antes: 2026-11-24 09:00"
    assert len({row[8] for row in rows[1:]}) == 4  # unique references
    assert google.state.formulas == []  # nothing a patient says can become a formula

    calendar = calendar_id(CARLOS)
    inserts = google.requests("POST", "/events")
    assert len(inserts) == 1
    assert inserts[0].query["sendUpdates"] == ["none"]
    body = inserts[0].body
    assert body["id"] == appointment.id
    assert body["extendedProperties"]["private"]["appointment_id"] == appointment.id
    assert body["summary"].startswith("Maria ·") and "Silva" not in body["summary"]
    assert body["start"]["timeZone"] == "America/Sao_Paulo"
    patches = google.requests("PATCH", f"/events/{appointment.id}")
    assert len(patches) == 1
    assert datetime.fromisoformat(patches[0].body["start"]["dateTime"]) == moved.start
    assert len(google.requests("DELETE", f"/events/{appointment.id}")) == 1
    assert google.events(calendar) == []  # cancelled: gone from the doctor's calendar
    assert all(r.path.startswith("/calendar/v3/calendars/") for r in google.requests("PATCH"))


async def test_faults_never_lose_or_double_a_row_or_an_event(
    gservices: Services, google: GoogleFake, clock: FixedClock
) -> None:
    services = gservices
    # The first append lands but its answer is lost (500 after apply); then Google throttles.
    google.fail_next(1, 500, apply=True, path_contains=":append")
    google.fail_next(1, 429, reason="rateLimitExceeded", path_contains=":append")
    # The first insert lands but the client sees a 503, and retries (then sees 409).
    google.fail_next(1, 503, apply=True, path_contains="/events")
    booked = [await book(services, f"+551198765{2000 + i}", f"conv-{i}") for i in range(3)]
    await services.outbox.drain()
    for _ in range(4):
        clock.advance(timedelta(minutes=10))
        await services.outbox.drain()
    counts = services.outbox.counts()
    assert counts["pending"] == 0 and counts["dead"] == 0
    assert sheet_kinds(google) == ["marcação"] * 3
    refs = [row[8] for row in google.rows(SHEET_ID)[1:]]
    assert len(set(refs)) == 3
    events = google.events(calendar_id(CARLOS))
    assert sorted(e["id"] for e in events) == sorted(a.id for a in booked)
    with transaction(services.engine) as session:
        stored = {a.id: a.external_id for a in session.execute(select(Appointment)).scalars()}
    assert stored == {a.id: a.id for a in booked}


async def test_free_busy_respects_blocks_by_hand_with_cache_and_backoff(
    gservices: Services, google: GoogleFake
) -> None:
    services = gservices
    start = datetime(2026, 11, 24, 9, 0, tzinfo=SAO_PAULO)
    google.block_by_hand(calendar_id(CARLOS), start, start + timedelta(hours=3))
    prefs = Preferences(doctor_id=CARLOS, date_from=TUESDAY, date_to=TUESDAY)
    offers = await services.booking.find_offers("cardio-consulta", prefs, holder="h1")
    assert offers and all(o.slot.start >= start + timedelta(hours=3) for o in offers)
    calls = len(google.requests("POST", "freeBusy"))
    await services.booking.find_offers("cardio-consulta", prefs, holder="h1")
    assert len(google.requests("POST", "freeBusy")) == calls  # cached
    body = google.requests("POST", "freeBusy")[0].body
    assert {"id": calendar_id(CARLOS)} in body["items"]

    services.calendar.forget_cache()  # type: ignore[attr-defined]
    google.fail_next(2, 429, reason="rateLimitExceeded", path_contains="freeBusy")
    google.fail_next(1, 403, reason="rateLimitExceeded", path_contains="freeBusy")
    again = await services.booking.find_offers("cardio-consulta", prefs, holder="h1")
    assert [o.slot for o in again] == [o.slot for o in offers]

    services.calendar.forget_cache()  # type: ignore[attr-defined]
    google.fail_next(20, 500, path_contains="freeBusy")
    with pytest.raises(CalendarUnavailable):
        await services.booking.find_offers("cardio-consulta", prefs, holder="h1")
    with pytest.raises(CalendarUnavailable):
        await services.booking.find_offers("cardio-consulta", prefs, holder="h1")
    with transaction(services.engine) as session:
        alerts = list(session.execute(select(OutboxRow).where(OutboxRow.kind == "alert")).scalars())
    assert len(alerts) == 1  # one outage, one alert
    assert json.loads(alerts[0].payload)["kind"] == "integration"


async def test_reconciliation_reports_events_deleted_or_moved_by_hand(
    gservices: Services, google: GoogleFake
) -> None:
    services = gservices
    first = await book(services, "+5511987653001", "c1")
    second = await book(services, "+5511987653002", "c2")
    await services.outbox.drain()
    assert services.integrations is not None and services.integrations.reconciler is not None
    assert await services.integrations.reconciler.run() == []
    google.delete_by_hand(calendar_id(CARLOS), first.id)
    later = second.start + timedelta(hours=2)
    google.move_by_hand(calendar_id(CARLOS), second.id, later, later + timedelta(minutes=30))
    drift = await services.integrations.reconciler.run()
    assert Counter((d.kind, d.appointment_id) for d in drift) == Counter(
        {("missing", first.id): 1, ("moved", second.id): 1}
    )
    await services.integrations.reconciler.run()
    assert services.outbox.counts()["pending"] == 1  # the drift alert, once


async def test_google_failing_at_yes_is_covered_by_the_answer_the_offers_came_from(
    gservices: Services, google: GoogleFake
) -> None:
    services = gservices
    patient = await services.patients.find_or_create("+5511987654101")
    await services.patients.update(patient.id, full_name="Maria Aparecida Silva")
    offers = await services.booking.find_offers(
        "cardio-consulta", Preferences(doctor_id=CARLOS), holder="yes-1"
    )
    asked = len(google.requests("POST", "freeBusy"))
    google.fail_next(20, 500, path_contains="freeBusy")  # Google down at the moment of "yes"
    request = BookingRequest(patient_id=patient.id, channel="voice", holder="yes-1")
    appointment = await services.booking.book(request, offers[0].hold_id)
    assert appointment.start == offers[0].slot.start
    assert len(google.requests("POST", "freeBusy")) > asked  # it did ask afresh first
    await services.outbox.drain()
    assert [e["id"] for e in google.events(calendar_id(CARLOS))] == [appointment.id]


def _tool_context(services: Services, phone: str, language: str) -> ToolContext:
    return ToolContext(
        services=services,
        channel="test",
        conversation_id=f"conv-{phone}",
        caller_phone=phone,
        language=language,
    )


@pytest.mark.parametrize(
    ("language", "words"),
    [("pt-BR", "acabou de ser ocupado"), ("ru", "только что заняли"), ("en", "just taken")],
)
async def test_a_time_taken_in_google_before_yes_is_just_taken_with_new_options(
    gservices: Services, google: GoogleFake, language: str, words: str
) -> None:
    services = gservices
    phone = "+5511987654102"
    patient = await services.patients.find_or_create(phone)
    await services.patients.update(patient.id, full_name="Maria Aparecida Silva")
    ctx = _tool_context(services, phone, language)
    found = await REGISTRY.dispatch(
        "find_slots", {"service": "cardiologia", "doctor": "Carlos Lima"}, ctx
    )
    first = found.output["options"][0]
    start = datetime.fromisoformat(f"{first['date']}T{first['time']}").replace(tzinfo=SAO_PAULO)
    google.block_by_hand(calendar_id(CARLOS), start, start + timedelta(minutes=30))
    result = await REGISTRY.dispatch(
        "book_appointment", {"option": first["option"], "confirmed_by_patient": True}, ctx
    )
    assert not result.ok and result.error_code == "slot_taken"
    assert words in result.output["error"]
    options = result.output["options"]
    assert options and all(
        (o["date"], o["time"]) != (first["date"], first["time"]) for o in options
    )
    assert all(o["date"] == first["date"] for o in options)  # the same day first
    with transaction(services.engine) as session:
        assert session.execute(select(Appointment)).first() is None
    # The new options are held: the patient can book one at once.
    again = await REGISTRY.dispatch(
        "book_appointment", {"option": options[0]["option"], "confirmed_by_patient": True}, ctx
    )
    assert again.ok and again.output["booked"]["time"] == options[0]["time"]


def test_the_offline_receptionist_says_just_taken_and_offers_again(
    gservices: Services, google: GoogleFake
) -> None:
    services = gservices
    with TestClient(create_app(services.settings, services), client=LOCAL) as client:

        def say(text: str) -> dict:
            body = {"session_id": "web-g", "text": text, "phone": "+5511987654103"}
            response = client.post("/api/chat", json=body)
            assert response.status_code == 200
            return response.json()

        say("Olá, meu nome é Carla Dias e quero marcar cardiologia amanhã")
        offers = say("pular")["state"]["offers"]
        chosen = offers[0]
        assert say("1")["state"]["stage"] == "confirm"
        start = datetime.fromisoformat(f"{chosen['date']}T{chosen['time']}").replace(
            tzinfo=SAO_PAULO
        )
        doctor = next(d for d in services.clinic().doctors if d.name == chosen["doctor"])
        google.block_by_hand(calendar_id(doctor.id), start, start + timedelta(minutes=30))
        turn = say("sim")
    assert "acabou de ser ocupado" in turn["reply"]
    assert turn["state"]["stage"] == "offering"
    again = turn["state"]["offers"]
    assert again and all(
        (o["date"], o["time"], o["doctor"]) != (chosen["date"], chosen["time"], chosen["doctor"])
        for o in again
    )
