"""BookingService against a real database: holds, booking, rescheduling, cancelling, and the
guarantee that a slot is booked once however many requests race for it."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import NOW, PG_URL, SAO_PAULO
from tests.processes import app_processes
from voice_agent.scheduling.availability import Slot
from voice_agent.scheduling.booking import BookingError, BookingRequest, BookingService
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services
from voice_agent.store.db import transaction
from voice_agent.store.tables import Appointment, AppointmentStatus, Interaction, SlotClaim

# Tuesday 24 Nov 2026, 09:00 São Paulo: Dr. Carlos Lima works 09:00-18:00 on Tuesdays.
TUESDAY_9 = datetime(2026, 11, 24, 9, 0, tzinfo=SAO_PAULO)


def cardio_slot(start: datetime = TUESDAY_9) -> Slot:
    return Slot("dr-carlos-lima", "cardio-consulta", start, start + timedelta(minutes=30))


async def new_patient(services: Services, phone: str, name: str = "Maria Silva") -> str:
    patient = await services.patients.find_or_create(phone)
    await services.patients.update(patient.id, full_name=name)
    return patient.id


def request(patient_id: str, key: str | None = None, holder: str = "conv-1") -> BookingRequest:
    return BookingRequest(patient_id=patient_id, channel="test", holder=holder, request_key=key)


def count_active(services: Services) -> int:
    with transaction(services.engine) as session:
        return int(
            session.execute(
                select(func.count()).where(
                    Appointment.status.in_([AppointmentStatus.booked])  # type: ignore[attr-defined]
                )
            ).scalar_one()
        )


async def test_offers_start_tomorrow_and_are_held(any_services: Services) -> None:
    offers = await any_services.booking.find_offers(
        "cardio-consulta", Preferences(), holder="conv-a"
    )
    assert [o.label for o in offers] == ["1", "2", "3"]
    tomorrow = (NOW + timedelta(days=1)).date()
    assert all(o.slot.start.astimezone(SAO_PAULO).date() >= tomorrow for o in offers)
    # A second caller is not offered the slots held for the first.
    others = await any_services.booking.find_offers(
        "cardio-consulta", Preferences(), holder="conv-b"
    )
    first = {(o.slot.doctor_id, o.slot.start) for o in offers}
    assert not first & {(o.slot.doctor_id, o.slot.start) for o in others}


async def test_holds_expire_and_a_new_search_replaces_old_offers(
    any_services: Services, clock
) -> None:
    offers = await any_services.booking.find_offers(
        "cardio-consulta", Preferences(), holder="conv-a"
    )
    again = await any_services.booking.find_offers(
        "cardio-consulta", Preferences(), holder="conv-a"
    )
    assert [o.slot for o in again] == [o.slot for o in offers]  # own holds released, same best
    clock.advance(timedelta(minutes=6))
    others = await any_services.booking.find_offers(
        "cardio-consulta", Preferences(), holder="conv-b"
    )
    assert others[0].slot == offers[0].slot  # expired holds no longer block anyone
    assert await any_services.booking.purge_expired_holds() == 3


async def test_book_held_offer_logs_interaction_and_is_idempotent(any_services: Services) -> None:
    patient_id = await new_patient(any_services, "+5511987650001")
    offers = await any_services.booking.find_offers(
        "cardio-consulta", Preferences(), holder="conv-1"
    )
    first = await any_services.booking.book(request(patient_id, "k-1"), offers[0].hold_id)
    again = await any_services.booking.book_slot(request(patient_id, "k-1"), offers[0].slot)
    assert again.id == first.id
    # A retry of the same request through its (now used) hold finds the booking, not an error.
    retried = await any_services.booking.book(request(patient_id, "k-1"), offers[0].hold_id)
    assert retried.id == first.id
    assert first.start == offers[0].slot.start
    assert count_active(any_services) == 1
    with transaction(any_services.engine) as session:
        kinds = [row.kind for row in session.execute(select(Interaction)).scalars()]
    assert kinds == ["booking"]


async def test_policy_errors_are_specific(services: Services, clock) -> None:
    patient_id = await new_patient(services, "+5511987650002")
    cases = {
        "in_past": cardio_slot(NOW - timedelta(days=1)),
        "outside_hours": cardio_slot(datetime(2026, 11, 24, 7, 0, tzinfo=SAO_PAULO)),
        "closed": cardio_slot(datetime(2026, 12, 24, 9, 0, tzinfo=SAO_PAULO)),
        "too_short_notice": cardio_slot(NOW + timedelta(minutes=30)),
    }
    for code, slot in cases.items():
        with pytest.raises(BookingError) as caught:
            await services.booking.book_slot(request(patient_id), slot)
        assert caught.value.code in {code, "outside_hours"}, (code, caught.value.code)
    not_offered = Slot(
        "dra-fernanda-alves", "cardio-consulta", TUESDAY_9, TUESDAY_9 + timedelta(minutes=30)
    )
    with pytest.raises(BookingError) as caught:
        await services.booking.book_slot(request(patient_id), not_offered)
    assert caught.value.code == "service_not_offered"
    plan = BookingRequest(patient_id=patient_id, channel="t", holder="h", insurance_id="amil")
    with pytest.raises(BookingError) as caught:
        await services.booking.book_slot(plan, cardio_slot())
    assert caught.value.code == "insurance_not_accepted"


async def test_reschedule_moves_atomically_and_keeps_old_time_when_taken(
    any_services: Services,
) -> None:
    booking = any_services.booking
    alice = await new_patient(any_services, "+5511987650003", "Alice Souza")
    bob = await new_patient(any_services, "+5511987650004", "Bob Lima")
    appointment = await booking.book_slot(request(alice), cardio_slot())
    taken = await booking.book_slot(request(bob), cardio_slot(TUESDAY_9 + timedelta(hours=1)))
    offers = await booking.find_offers(
        "cardio-consulta", Preferences(doctor_id="dr-carlos-lima"), holder="conv-alice"
    )
    moved = await booking.reschedule(
        request(alice, holder="conv-alice"), appointment.id, offers[0].hold_id
    )
    assert moved.id == appointment.id and moved.start == offers[0].slot.start
    # The old time is free again: Bob can take it.
    await booking.book_slot(request(bob), cardio_slot())
    # Alice cannot be moved onto Bob's time; her appointment stays where it was.
    with pytest.raises(BookingError):
        await booking.book_slot(request(alice), cardio_slot(taken.start))
    assert (await booking.get_own(alice, appointment.id)).start == offers[0].slot.start


async def test_cancel_frees_the_slot_and_only_the_owner_can(any_services: Services) -> None:
    booking = any_services.booking
    alice = await new_patient(any_services, "+5511987650005", "Alice Souza")
    mallory = await new_patient(any_services, "+5511987650006", "Mallory Costa")
    appointment = await booking.book_slot(request(alice), cardio_slot())
    with pytest.raises(BookingError) as caught:
        await booking.cancel(mallory, appointment.id, channel="test")
    assert caught.value.code == "not_found"
    cancelled = await booking.cancel(alice, appointment.id, channel="test", reason="trip")
    assert cancelled.status == AppointmentStatus.cancelled
    with transaction(any_services.engine) as session:
        assert session.execute(select(func.count()).select_from(SlotClaim)).scalar_one() == 0
    rebooked = await booking.book_slot(request(mallory), cardio_slot())
    assert rebooked.patient_id == mallory


async def test_overlapping_services_cannot_share_a_doctor(services: Services) -> None:
    """A 15-minute ECG at 09:15 collides with a 30-minute consultation at 09:00."""
    alice = await new_patient(services, "+5511987650007")
    bob = await new_patient(services, "+5511987650008")
    await services.booking.book_slot(request(alice), cardio_slot())
    ecg = Slot(
        "dr-carlos-lima",
        "ecg",
        TUESDAY_9 + timedelta(minutes=15),
        TUESDAY_9 + timedelta(minutes=30),
    )
    with pytest.raises(BookingError) as caught:
        await services.booking.book_slot(request(bob), ecg)
    assert caught.value.code == "slot_taken"


def _race_in_threads(booking: BookingService, patients: list[str], slot: Slot) -> list[str]:
    barrier = threading.Barrier(len(patients))

    def attempt(patient_id: str) -> str:
        barrier.wait()
        try:
            asyncio.run(booking.book_slot(request(patient_id), slot))
        except BookingError as exc:
            return exc.code
        return "won"

    with ThreadPoolExecutor(len(patients)) as pool:
        return list(pool.map(attempt, patients))


async def test_fifty_threads_racing_for_one_slot_one_wins(any_services: Services) -> None:
    patients = [await new_patient(any_services, f"+5511987{651000 + i:06d}") for i in range(50)]
    for round_ in range(3):
        slot = cardio_slot(TUESDAY_9 + timedelta(minutes=30 * round_))
        outcomes = await asyncio.to_thread(_race_in_threads, any_services.booking, patients, slot)
        assert outcomes.count("won") == 1, outcomes
        assert set(outcomes) == {"won", "slot_taken"}
    assert count_active(any_services) == 3


def _process_racer(url: str, patient_ids: list[str], start_iso: str, gate, results) -> None:
    """One OS process with its own engine and pool, like one app worker in production."""
    from tests.conftest import make_settings
    from voice_agent.alerts import ConsoleAlerter
    from voice_agent.clock import FixedClock
    from voice_agent.services import build_services
    from voice_agent.store.db import make_engine

    engine = make_engine(url)
    services = build_services(
        make_settings(url), clock=FixedClock(NOW), alerter=ConsoleAlerter(), engine=engine
    )
    slot = cardio_slot(datetime.fromisoformat(start_iso))
    gate.wait()
    outcomes = _race_in_threads(services.booking, patient_ids, slot)
    results.put(outcomes)
    engine.dispose()


@pytest.mark.skipif(PG_URL is None, reason="VOICE_AGENT_TEST_DATABASE_URL unset")
async def test_processes_racing_on_postgresql_one_wins(make_engine_for, clock) -> None:
    from tests.conftest import make_settings
    from voice_agent.alerts import ConsoleAlerter
    from voice_agent.services import build_services

    engine = make_engine_for("postgresql")
    url = engine.url.render_as_string(hide_password=False)
    services = build_services(
        make_settings(url), clock=clock, alerter=ConsoleAlerter(), engine=engine
    )
    patients = [await new_patient(services, f"+5511987{653000 + i:06d}") for i in range(40)]
    context = app_processes(__name__)
    processes_count = 4
    gate = context.Barrier(processes_count)
    results = context.Queue()
    share = len(patients) // processes_count
    processes = [
        context.Process(
            target=_process_racer,
            args=(url, patients[i * share : (i + 1) * share], TUESDAY_9.isoformat(), gate, results),
        )
        for i in range(processes_count)
    ]
    for process in processes:
        process.start()
    outcomes: list[str] = []
    for _ in processes:
        outcomes += await asyncio.to_thread(results.get, True, 120)
    for process in processes:
        process.join(30)
    assert outcomes.count("won") == 1, outcomes
    assert len(outcomes) == len(patients)
    assert count_active(services) == 1
    assert os.getpid() > 0


async def test_a_slot_search_reads_while_a_booking_holds_the_write_lock(
    services: Services,
) -> None:
    """SQLite: a slot search's read is a deferred transaction, so searches on other calls go on
    while one caller's booking holds the database's write lock (they queued behind it, up to
    the 30 s busy timeout, when every transaction began IMMEDIATE)."""
    prefs = Preferences()
    with services.engine.begin() as writer:  # BEGIN IMMEDIATE: the write lock is held
        writer.execute(select(func.count()).select_from(Appointment))
        busy, _ = await asyncio.wait_for(
            services.booking.busy_snapshot("cardio-consulta", prefs, NOW), timeout=10
        )
        ranked = await asyncio.wait_for(
            services.booking.rank("cardio-consulta", prefs, now=NOW, limit=3), timeout=10
        )
    assert all(not spans for spans in busy.values())
    assert len(ranked) == 3, "free times are listed while the write lock is held"
