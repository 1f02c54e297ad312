"""The clinic's REST API as calendar backend: created, business error and transport failure are
three outcomes, and nothing is booked that the clinic did not accept."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from tests.fakes.clinic_api_fake import ClinicApiFake
from tests.integration.integration_env import build, clinic_file
from voice_agent.alerts import ConsoleAlerter
from voice_agent.clock import FixedClock
from voice_agent.scheduling.booking import BookingError, BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services
from voice_agent.store.db import transaction
from voice_agent.store.outbox_tables import OutboxRow
from voice_agent.store.tables import Appointment, Interaction

CARLOS = "dr-carlos-lima"


@pytest.fixture
def api() -> Iterator[ClinicApiFake]:
    with ClinicApiFake() as fake:
        yield fake


@pytest.fixture
def alerter() -> ConsoleAlerter:
    return ConsoleAlerter()


@pytest.fixture
def cservices(
    make_engine_for: Callable[[str], Engine],
    clock: FixedClock,
    api: ClinicApiFake,
    tmp_path: Path,
    alerter: ConsoleAlerter,
) -> Services:
    return build(
        make_engine_for("sqlite"),
        clock,
        alerter=alerter,
        clinic_file=clinic_file(tmp_path, "clinic_api"),
        clinic_api_url=api.base_url,
        clinic_api_auth_header="Authorization: Bearer clinic-token",
        clinic_api_timeout_seconds=0.5,
    )


async def offer(services: Services, phone: str, holder: str) -> tuple[BookingRequest, str]:
    patient = await services.patients.find_or_create(phone)
    await services.patients.update(patient.id, full_name="Ana Maria Costa")
    offers = await services.booking.find_offers(
        "cardio-consulta", Preferences(doctor_id=CARLOS), holder=holder
    )
    request = BookingRequest(
        patient_id=patient.id,
        channel="voice",
        holder=holder,
        request_key=f"{holder}:book:{offers[0].hold_id}",
    )
    return request, offers[0].hold_id


def count(services: Services, table: type) -> int:
    with transaction(services.engine) as session:
        return int(session.execute(select(func.count()).select_from(table)).scalar_one())


async def test_a_created_record_is_booked_with_its_id(
    cservices: Services, api: ClinicApiFake
) -> None:
    request, hold = await offer(cservices, "+5511987658001", "c1")
    appointment = await cservices.booking.book(request, hold)
    [record] = api.active_records()
    assert appointment.external_id == record["id"]
    assert record["external_reference"] == appointment.id
    assert record["patient_name"] == "Ana Maria Costa"
    assert record["patient_phone"] == "+5511987658001"
    assert record["doctor_id"] == CARLOS
    assert record["start"] == appointment.start.isoformat()
    # The booking itself went out synchronously: the outbox holds no calendar create.
    with transaction(cservices.engine) as session:
        kinds = [r.kind for r in session.execute(select(OutboxRow)).scalars()]
    assert "calendar" not in kinds


async def test_business_errors_book_nothing_and_a_taken_slot_is_not_offered_again(
    cservices: Services, api: ClinicApiFake
) -> None:
    request, hold = await offer(cservices, "+5511987658002", "c2")
    held = await cservices.booking.get_hold(hold, "c2")
    assert held is not None
    api.take(CARLOS, held.start)
    with pytest.raises(BookingError) as caught:
        await cservices.booking.book(request, hold)
    assert caught.value.code == "slot_taken"
    assert count(cservices, Appointment) == 0 and count(cservices, Interaction) == 0
    again = await cservices.booking.find_offers(
        "cardio-consulta", Preferences(doctor_id=CARLOS), holder="c2"
    )
    assert held.start not in {o.slot.start for o in again}

    api.block_patient("+5511987658003")
    request, hold = await offer(cservices, "+5511987658003", "c3")
    with pytest.raises(BookingError) as caught:
        await cservices.booking.book(request, hold)
    assert caught.value.code == "patient_blocked"
    assert count(cservices, Appointment) == 0


async def test_transport_failures_book_nothing_alert_and_retries_are_idempotent(
    cservices: Services, api: ClinicApiFake, alerter: ConsoleAlerter
) -> None:
    request, hold = await offer(cservices, "+5511987658004", "c4")
    api.fail_next(1, 503)
    with pytest.raises(BookingError) as caught:
        await cservices.booking.book(request, hold)
    assert caught.value.code == "backend_unavailable"
    assert "try again later" in caught.value.message
    api.fail_next(1, 200, delay=1.0)  # slower than the 0.5 s timeout
    with pytest.raises(BookingError) as caught:
        await cservices.booking.book(request, hold)
    assert caught.value.code == "backend_unavailable"
    assert count(cservices, Appointment) == 0
    assert [kind for kind, _ in alerter.sent] == ["booking_failed", "booking_failed"]
    # The record was created but the answer was lost: the same offer, tried again, is the
    # same record (idempotency key), not a second one.
    api.fail_next(1, 500, apply=True)
    with pytest.raises(BookingError):
        await cservices.booking.book(request, hold)
    appointment = await cservices.booking.book(request, hold)
    assert len(api.active_records()) == 1
    assert appointment.external_id == api.active_records()[0]["id"]
    assert api.state.creates_received == 1  # the later attempts were replays of the first


async def test_reschedule_and_cancel_reach_the_api_through_the_outbox(
    cservices: Services, api: ClinicApiFake, clock: FixedClock
) -> None:
    request, hold = await offer(cservices, "+5511987658005", "c5")
    appointment = await cservices.booking.book(request, hold)
    offers = await cservices.booking.find_offers(
        "cardio-consulta", Preferences(doctor_id=CARLOS, periods=["afternoon"]), holder="c5"
    )
    moved = await cservices.booking.reschedule(request, appointment.id, offers[0].hold_id)
    api.fail_next(1, 500)
    await cservices.outbox.drain()
    clock.advance(timedelta(minutes=1))
    await cservices.outbox.drain()
    [record] = api.active_records()
    assert record["start"] == moved.start.isoformat()
    await cservices.booking.cancel(request.patient_id, appointment.id, channel="voice")
    await cservices.outbox.drain()
    assert api.active_records() == []
    assert cservices.outbox.counts()["dead"] == 0
