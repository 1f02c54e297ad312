"""The clinic's REST API as calendar backend, through the production httpx client against the
local fake, on SQLite and PostgreSQL: created, refused and unknown are three outcomes; nothing is
recorded that the clinic did not accept and nothing is accepted there that we did not record;
every network call happens outside a database transaction."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from tests.conftest import SAO_PAULO
from tests.fakes.clinic_api_fake import ClinicApiFake
from tests.fakes.polling import poll
from tests.fakes.twilio_rest_fake import TwilioRestFake
from tests.integration.integration_env import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    build,
    clinic_file,
    twilio_settings,
)
from voice_agent.clock import FixedClock
from voice_agent.scheduling.availability import BookingRules, Slot
from voice_agent.scheduling.booking import BookingError, BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services
from voice_agent.store.db import transaction
from voice_agent.store.intent_tables import BackendIntent
from voice_agent.store.outbox_tables import OutboxRow
from voice_agent.store.tables import Appointment, Interaction, InteractionKind
from voice_agent.tools.catalog import build_registry
from voice_agent.tools.context import ToolContext

CARLOS = "dr-carlos-lima"

REGISTRY = build_registry()
"""The tools the channels offer, built once for this module (a build reads every signature)."""


@pytest.fixture
def api() -> Iterator[ClinicApiFake]:
    with ClinicApiFake() as fake:
        yield fake


def clinic_api_settings(api: ClinicApiFake, tmp_path: Path) -> dict[str, object]:
    return {
        "clinic_file": clinic_file(tmp_path, "clinic_api"),
        "clinic_api_url": api.base_url,
        "clinic_api_auth_header": "Authorization: Bearer clinic-token",
        "clinic_api_timeout_seconds": 0.5,
    }


@pytest.fixture
def cservices(
    db_kind: str,
    make_engine_for: Callable[[str], Engine],
    clock: FixedClock,
    api: ClinicApiFake,
    tmp_path: Path,
) -> Services:
    return build(make_engine_for(db_kind), clock, **clinic_api_settings(api, tmp_path))


async def offer(
    services: Services, phone: str, holder: str, prefs: Preferences | None = None
) -> tuple[BookingRequest, str]:
    patient = await services.patients.find_or_create(phone)
    await services.patients.update(patient.id, full_name="Ana Maria Costa")
    offers = await services.booking.find_offers(
        "cardio-consulta", prefs or Preferences(doctor_id=CARLOS), holder=holder
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


def outbox_rows(services: Services, kind: str) -> list[OutboxRow]:
    with transaction(services.engine) as session:
        return list(session.execute(select(OutboxRow).where(OutboxRow.kind == kind)).scalars())


def intents(services: Services) -> list[BackendIntent]:
    with transaction(services.engine) as session:
        return list(session.execute(select(BackendIntent)).scalars())


async def test_a_created_record_is_booked_with_its_id_in_the_clinics_local_time(
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
    assert record["start"] == appointment.start.astimezone(SAO_PAULO).isoformat()
    assert record["start"].endswith("-03:00")
    # The booking went out before it was recorded: the outbox carries no calendar write.
    assert outbox_rows(cservices, "calendar") == []
    assert [i.status for i in intents(cservices)] == ["done"]


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
    assert caught.value.slot is not None and caught.value.slot.start == held.start
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


async def test_a_lost_answer_leaves_no_phantom_and_the_retry_finds_the_one_record(
    cservices: Services, api: ClinicApiFake
) -> None:
    request, hold = await offer(cservices, "+5511987658004", "c4")
    # The record is created, but the answer is lost (500 after applying it).
    api.fail_next(1, 500, apply=True, method="POST")
    with pytest.raises(BookingError) as caught:
        await cservices.booking.book(request, hold)
    assert caught.value.code == "booking_pending"
    assert count(cservices, Appointment) == 0
    assert len(api.active_records()) == 1
    [intent] = intents(cservices)
    assert intent.status == "pending" and intent.notify
    # The patient says "try again": the same intent, the same key; the record is found by our
    # reference, not made twice.
    appointment = await cservices.booking.retry_pending(request.patient_id, "c4")
    assert appointment is not None
    [record] = api.active_records()
    assert appointment.external_id == record["id"]
    assert record["external_reference"] == appointment.id == intent.appointment_id
    assert api.state.creates_received == 1
    assert count(cservices, Appointment) == 1
    # A slow answer (beyond the client's timeout) is the same story.
    request, hold = await offer(cservices, "+5511987658005", "c5")
    api.fail_next(1, 200, delay=1.0, method="POST")
    with pytest.raises(BookingError) as caught:
        await cservices.booking.book(request, hold)
    assert caught.value.code == "booking_pending"
    await poll(lambda: api.state.creates_received == 2, timeout=5)  # the slow create lands
    assert await cservices.booking.retry_pending(request.patient_id, "c5") is not None
    assert len(api.active_records()) == 2 and api.state.creates_received == 2
    assert count(cservices, Appointment) == 2


async def test_an_html_201_is_resolved_by_asking_for_our_reference(
    cservices: Services, api: ClinicApiFake
) -> None:
    request, hold = await offer(cservices, "+5511987658006", "c6")
    api.fail_next(1, html=True, method="POST")
    appointment = await cservices.booking.book(request, hold)
    [record] = api.active_records()
    assert appointment.external_id == record["id"]
    assert api.state.creates_received == 1
    assert count(cservices, Appointment) == 1


async def test_a_refused_reschedule_is_refused_and_the_old_time_stands(
    cservices: Services, api: ClinicApiFake
) -> None:
    request, hold = await offer(cservices, "+5511987658007", "c7")
    appointment = await cservices.booking.book(request, hold)
    afternoon = Preferences(doctor_id=CARLOS, periods=["afternoon"])
    offers = await cservices.booking.find_offers("cardio-consulta", afternoon, holder="c7")
    api.take(CARLOS, offers[0].slot.start)  # someone took it at the clinic's desk
    with pytest.raises(BookingError) as caught:
        await cservices.booking.reschedule(request, appointment.id, offers[0].hold_id)
    assert caught.value.code == "reschedule_refused"
    kept = await cservices.booking.get_own(request.patient_id, appointment.id)
    assert kept.start == appointment.start
    [record] = api.active_records()
    assert record["start"] == appointment.start.astimezone(SAO_PAULO).isoformat()
    assert cservices.outbox.counts()["dead"] == 0
    # Accepted: recorded only after the clinic's system moved it; cancelled the same way.
    moved = await cservices.booking.reschedule(request, appointment.id, offers[1].hold_id)
    assert moved.start == offers[1].slot.start
    [record] = api.active_records()
    assert record["start"] == moved.start.astimezone(SAO_PAULO).isoformat()
    await cservices.booking.cancel(request.patient_id, appointment.id, channel="voice")
    assert api.active_records() == []
    await cservices.outbox.drain()
    assert outbox_rows(cservices, "calendar") == []
    assert cservices.outbox.counts()["dead"] == 0


async def test_a_transport_failure_is_pending_retried_by_the_job_and_the_patient_is_told(
    db_kind: str,
    make_engine_for: Callable[[str], Engine],
    clock: FixedClock,
    api: ClinicApiFake,
    tmp_path: Path,
) -> None:
    with TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN, clock) as twilio:
        services = build(
            make_engine_for(db_kind),
            clock,
            **clinic_api_settings(api, tmp_path),
            **twilio_settings(twilio.base_url),
        )
        phone = "+5511987658008"
        twilio.open_window(phone)
        request, hold = await offer(services, phone, "c8")
        api.fail_next(3, 503, method="POST")
        with pytest.raises(BookingError) as caught:
            await services.booking.book(request, hold)
        assert caught.value.code == "booking_pending"
        # Nobody else can take the slot meanwhile, not even a new search by this conversation.
        again = await services.booking.find_offers(
            "cardio-consulta", Preferences(doctor_id=CARLOS), holder="c8"
        )
        assert caught.value.slot is not None
        assert caught.value.slot.start not in {o.slot.start for o in again}
        assert await services.booking.retry_due() == {
            "done": 0,
            "refused": 0,
            "pending": 0,
            "expired": 0,
        }  # fmt: skip  (not due yet: backoff)
        clock.advance(timedelta(seconds=40))
        assert (await services.booking.retry_due())["pending"] == 1  # 503 again
        clock.advance(timedelta(minutes=2))
        assert (await services.booking.retry_due())["pending"] == 1  # and again
        clock.advance(timedelta(minutes=3))
        assert (await services.booking.retry_due())["done"] == 1
        [appointment] = await services.booking.list_for_patient(request.patient_id)
        assert appointment.external_id == api.active_records()[0]["id"]
        await services.outbox.drain()
        [notice] = twilio.messages(f"whatsapp:{phone}")
        assert notice["body"].startswith("Olá, Ana! Sua consulta na Clínica São Lucas ficou")
        alerts = [json.loads(r.payload)["kind"] for r in outbox_rows(services, "alert")]
        assert alerts == ["clinic_api_unavailable"]  # one outage, one alert


async def test_a_pending_reschedule_lands_later_and_the_patient_is_told(
    cservices: Services, api: ClinicApiFake, clock: FixedClock
) -> None:
    request, hold = await offer(cservices, "+5511987658009", "c9")
    appointment = await cservices.booking.book(request, hold)
    afternoon = Preferences(doctor_id=CARLOS, periods=["afternoon"])
    offers = await cservices.booking.find_offers("cardio-consulta", afternoon, holder="c9")
    api.fail_next(1, 500, method="PATCH")
    with pytest.raises(BookingError) as caught:
        await cservices.booking.reschedule(request, appointment.id, offers[0].hold_id)
    assert caught.value.code == "change_pending"
    assert (await cservices.booking.get_own(request.patient_id, appointment.id)).start == (
        appointment.start
    )
    clock.advance(timedelta(minutes=1))
    assert (await cservices.booking.retry_due())["done"] == 1
    moved = await cservices.booking.get_own(request.patient_id, appointment.id)
    assert moved.start == offers[0].slot.start
    assert api.active_records()[0]["start"] == moved.start.astimezone(SAO_PAULO).isoformat()
    [notice] = outbox_rows(cservices, "patient_notice")
    assert json.loads(notice.payload)["intent_id"] in {i.id for i in intents(cservices)}


async def test_an_intent_that_never_lands_fails_and_frees_its_slot(
    cservices: Services, api: ClinicApiFake, clock: FixedClock
) -> None:
    request, hold = await offer(cservices, "+5511987658010", "c10")
    api.fail_next(100, 503, method="POST")
    with pytest.raises(BookingError):
        await cservices.booking.book(request, hold)
    for _ in range(12):
        clock.advance(timedelta(minutes=15))
        await cservices.booking.retry_due()
    [intent] = intents(cservices)
    assert intent.status == "failed" and intent.outcome == "gave_up"
    assert count(cservices, Appointment) == 0
    again = await cservices.booking.find_offers(
        "cardio-consulta", Preferences(doctor_id=CARLOS), holder="c10"
    )
    assert intent.start in {o.slot.start for o in again}  # the slot is free again
    assert len(outbox_rows(cservices, "patient_notice")) == 1
    kinds = {json.loads(r.payload)["kind"] for r in outbox_rows(cservices, "alert")}
    assert "clinic_api_gave_up" in kinds


async def test_when_recording_fails_the_clinic_record_is_cancelled(
    cservices: Services, api: ClinicApiFake
) -> None:
    """Compensation: the clinic accepted, but our slot was lost meanwhile (here its claims are
    taken over in the database while the create is in flight)."""
    request, hold = await offer(cservices, "+5511987658011", "c11")
    held = await cservices.booking.get_hold(hold, "c11")
    assert held is not None
    api.fail_next(1, 200, delay=0.3, method="POST")  # slow, within the timeout
    booking = asyncio.create_task(cservices.booking.book(request, hold))
    await asyncio.sleep(0.15)

    def steal() -> None:
        from voice_agent.store.tables import SlotClaim

        with transaction(cservices.engine) as session:
            claims = session.execute(
                select(SlotClaim).where(SlotClaim.doctor_id == CARLOS, SlotClaim.cell >= held.start)
            ).scalars()
            for claim in claims:
                if claim.cell < held.end:
                    claim.hold_id = None
                    claim.appointment_id = "stolen"
                    session.add(claim)

    await asyncio.to_thread(steal)
    with pytest.raises(BookingError) as caught:
        await booking
    assert caught.value.code == "slot_taken"
    assert api.active_records() == []  # the record made at the clinic was cancelled
    assert count(cservices, Appointment) == 0


async def test_no_conversation_waits_on_another_ones_api_call(
    make_engine_for: Callable[[str], Engine],
    clock: FixedClock,
    api: ClinicApiFake,
    tmp_path: Path,
) -> None:
    """SQLite (one writer at a time): a 2 s clinic API call holds no transaction, so another
    conversation's search and question finish meanwhile; an API error's alert is delivered."""
    services = build(
        make_engine_for("sqlite"),
        clock,
        **{**clinic_api_settings(api, tmp_path), "clinic_api_timeout_seconds": 5.0},
    )
    request, hold = await offer(services, "+5511987658013", "c13")
    patient = await services.patients.find_or_create("+5511987658014")
    api.fail_next(1, 200, delay=2.0, method="POST")
    started = time.perf_counter()
    booking = asyncio.create_task(services.booking.book(request, hold))
    await asyncio.sleep(0.2)  # the create is in flight
    other = time.perf_counter()
    offers = await services.booking.find_offers(
        "clinico-consulta", Preferences(), holder="c14", patient_id=patient.id
    )
    await services.interactions.record(
        InteractionKind.information, channel="whatsapp", patient_id=patient.id
    )
    waited = time.perf_counter() - other
    assert offers and waited < 0.5, f"another conversation waited {waited:.2f}s"
    await booking
    assert time.perf_counter() - started < 4.0

    request, hold = await offer(services, "+5511987658015", "c15")
    api.fail_next(1, 503, method="POST")
    started = time.perf_counter()
    with pytest.raises(BookingError):
        await services.booking.book(request, hold)
    assert time.perf_counter() - started < 2.0  # no lock wait
    report = await services.outbox.drain()
    assert report.by_kind["alert"] == 1
    [alert] = outbox_rows(services, "alert")
    assert json.loads(alert.payload)["kind"] == "clinic_api_unavailable"


async def test_the_patient_hears_a_refused_move_as_refused_in_their_language(
    cservices: Services, api: ClinicApiFake
) -> None:
    phone = "+5511987658016"
    patient = await cservices.patients.find_or_create(phone)
    await cservices.patients.update(patient.id, full_name="Ana Maria Costa")
    ctx = ToolContext(
        services=cservices,
        channel="test",
        conversation_id="c16",
        caller_phone=phone,
        phone_verified=True,  # as a WhatsApp number or a carrier caller id
        language="pt-BR",
    )
    registry = REGISTRY
    found = await registry.dispatch("find_slots", {"service": "cardiologia"}, ctx)
    booked = await registry.dispatch(
        "book_appointment", {"option": "1", "confirmed_by_patient": True}, ctx
    )
    assert booked.ok, booked.output
    appointment_id = booked.output["booked"]["appointment_id"]
    found = await registry.dispatch(
        "find_slots", {"service": "cardiologia", "periods": ["afternoon"]}, ctx
    )
    target = found.output["options"][0]
    doctor = next(d for d in cservices.clinic().doctors if d.name == target["doctor"])
    start = datetime.fromisoformat(f"{target['date']}T{target['time']}").replace(tzinfo=SAO_PAULO)
    api.take(doctor.id, start)
    result = await registry.dispatch(
        "reschedule_appointment",
        {"appointment_id": appointment_id, "option": "1", "confirmed_by_patient": True},
        ctx,
    )
    assert not result.ok and result.error_code == "reschedule_refused"
    assert "não aceitou a mudança" in result.output["error"]
    assert booked.output["booked"]["when"] in result.output["error"]  # the old time stands
    [listed] = (await registry.dispatch("list_my_appointments", {}, ctx)).output["appointments"]
    assert listed["time"] == booked.output["booked"]["time"]


async def test_times_go_out_in_utc_when_the_mapping_file_says_so(
    make_engine_for: Callable[[str], Engine], clock: FixedClock, tmp_path: Path
) -> None:
    mapping = tmp_path / "clinic-api.yaml"
    mapping.write_text("time_zone: utc\n", encoding="utf-8")
    with ClinicApiFake(timezone=None) as api:
        services = build(
            make_engine_for("sqlite"),
            clock,
            **clinic_api_settings(api, tmp_path),
            clinic_api_mapping_file=mapping,
        )
        request, hold = await offer(services, "+5511987658017", "c17")
        appointment = await services.booking.book(request, hold)
        [record] = api.active_records()
    assert record["start"] == appointment.start.astimezone(UTC).isoformat()
    assert record["start"].endswith("+00:00")


async def test_a_slot_booked_without_an_offer_also_goes_through_the_api(
    cservices: Services, api: ClinicApiFake
) -> None:
    """Staff tools and imports book a slot directly: the clinic's API accepts it first."""
    request, hold = await offer(cservices, "+5511987658018", "c18")
    held = await cservices.booking.get_hold(hold, "c18")
    assert held is not None
    await cservices.booking.release_holds("c18")
    slot = Slot(held.doctor_id, held.service_id, held.start, held.end, None)
    staff = BookingRequest(patient_id=request.patient_id, channel="staff", holder="staff-1")
    appointment = await cservices.booking.book_slot(staff, slot)
    [record] = api.active_records()
    assert appointment.external_id == record["id"]
    with pytest.raises(BookingError) as caught:
        await cservices.booking.book_slot(staff, slot)
    assert caught.value.code == "slot_taken"
    assert len(api.active_records()) == 1


async def test_a_pending_booking_survives_a_restart_with_its_key(
    db_kind: str,
    make_engine_for: Callable[[str], Engine],
    clock: FixedClock,
    api: ClinicApiFake,
    tmp_path: Path,
) -> None:
    engine = make_engine_for(db_kind)
    services = build(engine, clock, **clinic_api_settings(api, tmp_path))
    request, hold = await offer(services, "+5511987658019", "c19")
    api.fail_next(1, 502, apply=True, method="POST")  # created there, answer lost
    with pytest.raises(BookingError):
        await services.booking.book(request, hold)
    [before] = intents(services)
    # The process restarts: new services on the same database pick the intent up.
    restarted = build(engine, clock, **clinic_api_settings(api, tmp_path))
    clock.advance(timedelta(minutes=1))
    assert (await restarted.booking.retry_due())["done"] == 1
    [after] = intents(restarted)
    assert after.key == before.key and after.status == "done"
    [record] = api.active_records()
    assert api.state.creates_received == 1
    [appointment] = await restarted.booking.list_for_patient(request.patient_id)
    assert appointment.external_id == record["id"] and appointment.id == before.appointment_id


async def test_a_pending_cancellation_keeps_the_appointment_until_the_api_confirms(
    cservices: Services, api: ClinicApiFake, clock: FixedClock
) -> None:
    request, hold = await offer(cservices, "+5511987658020", "c20")
    appointment = await cservices.booking.book(request, hold)
    api.fail_next(1, 504, method="DELETE")
    with pytest.raises(BookingError) as caught:
        await cservices.booking.cancel(request.patient_id, appointment.id, channel="voice")
    assert caught.value.code == "change_pending"
    assert (await cservices.booking.get_own(request.patient_id, appointment.id)).active
    assert len(api.active_records()) == 1
    clock.advance(timedelta(minutes=1))
    assert (await cservices.booking.retry_due())["done"] == 1
    assert await cservices.booking.list_for_patient(request.patient_id) == []
    assert api.active_records() == []
    assert len(outbox_rows(cservices, "patient_notice")) == 1


async def test_the_desks_rules_travel_through_the_api_path(
    cservices: Services, api: ClinicApiFake
) -> None:
    """A same-day booking and move at the desk are checked by the desk's rules before the
    clinic's API is asked; the clinic's policy still refuses the same time for a patient, and
    that refusal leaves no hold on the time (the desk books it right after)."""
    patient = await cservices.patients.find_or_create("+5511987658030")
    await cservices.patients.update(patient.id, full_name="Ana Maria Costa")
    now = cservices.clock.now()  # Monday 10:00: Dra. Ana Souza works until 17:00
    today = Slot(
        "dr-ana-souza", "cardio-consulta", now + timedelta(minutes=30), now + timedelta(hours=1)
    )
    patient_request = BookingRequest(patient_id=patient.id, channel="voice", holder="c30")
    with pytest.raises(BookingError) as caught:
        await cservices.booking.book_slot(patient_request, today)
    assert caught.value.code == "too_short_notice" and api.active_records() == []
    desk = BookingRequest(
        patient_id=patient.id, channel="console", holder="desk-1", rules=BookingRules.desk
    )
    appointment = await cservices.booking.book_slot(desk, today)
    [record] = api.active_records()
    assert appointment.external_id == record["id"] and appointment.start == today.start
    later = Slot(
        "dr-ana-souza",
        "cardio-consulta",
        now + timedelta(hours=1),
        now + timedelta(hours=1, minutes=30),
    )
    hold = await cservices.booking.hold_slot("desk-1", later, rules=BookingRules.desk)
    moved = await cservices.booking.reschedule(desk, appointment.id, hold)
    assert moved.start == later.start
    [record] = api.active_records()
    assert record["start"] == later.start.astimezone(SAO_PAULO).isoformat()
