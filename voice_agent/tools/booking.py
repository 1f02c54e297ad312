"""Booking tools: find slots, book, reschedule, cancel, confirm, list the caller's appointments.

Offers are numbered options ("1", "2", "3") held for this conversation; the model books by option,
so it never invents a time or a doctor, and nothing is booked without ``confirmed_by_patient``.
"""

from __future__ import annotations

from datetime import date, time
from typing import Annotated, Any

from pydantic import Field

from voice_agent.clinic.lookup import find_doctor, find_insurance, find_service
from voice_agent.clinic.model import Clinic, Weekday
from voice_agent.i18n import say_money, say_when
from voice_agent.scheduling.availability import Slot
from voice_agent.scheduling.booking import BookingError, BookingRequest
from voice_agent.scheduling.describe import describe_appointment
from voice_agent.scheduling.offers import HeldOffer
from voice_agent.scheduling.outcome_texts import outcome_text
from voice_agent.scheduling.preferences import Preferences
from voice_agent.store.tables import Appointment
from voice_agent.tools.context import ToolContext
from voice_agent.tools.registry import ToolError

Confirmed = Annotated[
    bool,
    Field(description="True only after the patient explicitly said yes to exactly this action."),
]
AppointmentId = Annotated[
    str, Field(description="An appointment_id from list_my_appointments.", max_length=64)
]


async def find_slots(
    ctx: ToolContext,
    service: Annotated[
        str, Field(description="Service or specialty as the patient said it, e.g. 'cardiologia'.")
    ],
    doctor: Annotated[str | None, Field(description="Doctor's name, if the patient asked.")] = None,
    dates: Annotated[list[date], Field(description="Exact days wanted (YYYY-MM-DD).")] = [],  # noqa: B006
    date_from: Annotated[date | None, Field(description="Earliest day (YYYY-MM-DD).")] = None,
    date_to: Annotated[date | None, Field(description="Latest day (YYYY-MM-DD).")] = None,
    weekdays: Annotated[list[Weekday], Field(description="Acceptable weekdays.")] = [],  # noqa: B006
    exclude_weekdays: Annotated[list[Weekday], Field(description="Weekdays to avoid.")] = [],  # noqa: B006
    exclude_dates: Annotated[list[date], Field(description="Days to avoid.")] = [],  # noqa: B006
    periods: Annotated[
        list[str], Field(description="Periods of the day: morning, afternoon, evening.")
    ] = [],  # noqa: B006
    earliest: Annotated[time | None, Field(description="Not before this time (HH:MM).")] = None,
    latest: Annotated[time | None, Field(description="Finished by this time (HH:MM).")] = None,
    insurance: Annotated[
        str | None, Field(description="The patient's health plan (convênio), if any.")
    ] = None,
) -> dict[str, Any]:
    """Find the best free appointment times from the first day the clinic books (tomorrow, or
    today where the clinic takes same-day appointments) and hold them for a few minutes.

    Returns up to three numbered options. Offer them to the patient (day, time, doctor) and book
    the one they choose with book_appointment(option=...). A new search replaces old options.
    """
    clinic = ctx.services.clinic()
    found = find_service(clinic, service)
    if found is None:
        raise ToolError(
            f"We do not offer {service!r}. Offered services: "
            + ", ".join(s.name(ctx.language) for s in clinic.services),
            code="unknown_service",
        )
    doctor_id = _doctor_id(clinic, doctor) if doctor else None
    insurance_id = _insurance_id(clinic, insurance) if insurance else None
    if periods:
        unknown = [p for p in periods if p not in clinic.periods_by_id]
        if unknown:
            raise ToolError(f"Unknown period {unknown}; use {list(clinic.periods_by_id)}.")
    try:
        prefs = Preferences(
            dates=dates,
            date_from=date_from,
            date_to=date_to,
            weekdays=weekdays,
            exclude_weekdays=exclude_weekdays,
            exclude_dates=exclude_dates,
            periods=periods,
            earliest=earliest,
            latest=latest,
            doctor_id=doctor_id,
            insurance_id=insurance_id,
        )
    except ValueError as exc:
        raise ToolError(f"Those preferences do not fit together: {exc}") from None
    patient_id = await ctx.patient_id() if ctx.caller_phone else None
    if patient_id is not None and await ctx.verified_by() == "unverified":
        patient_id = None  # ranking by the patient's history would tell who they saw before
    try:
        offers = await ctx.services.booking.find_offers(
            found.id,
            prefs,
            holder=ctx.conversation_id,
            patient_id=patient_id,
            language=ctx.language,
        )
    except BookingError as exc:
        raise ToolError(exc.message, code=exc.code) from None
    if not offers:
        return {
            "options": [],
            "message": "No free time matches these preferences. Ask the patient for other days "
            "or times, or another doctor.",
        }
    return {
        "service": found.name(ctx.language),
        "options": [_describe_offer(clinic, offer, ctx.language, insurance_id) for offer in offers],
        "held_for_minutes": int(
            (offers[0].expires_at - ctx.services.clock.now()).total_seconds() // 60
        ),
    }


async def book_appointment(
    ctx: ToolContext,
    option: Annotated[str, Field(description="The option number from find_slots, e.g. '2'.")],
    confirmed_by_patient: Confirmed,
    insurance: Annotated[
        str | None, Field(description="Health plan (convênio) to bill, or null for private.")
    ] = None,
    for_whom: Annotated[
        str | None,
        Field(
            description="Full name of the child or relative who will attend, when the caller "
            "books for someone else; null when the caller attends.",
            max_length=120,
        ),
    ] = None,
) -> dict[str, Any]:
    """Book the chosen option for the caller, after they confirmed day, time and doctor.

    Booking for a child or relative: pass their name as ``for_whom``; the caller stays the
    patient record and the contact, the attendee's name is kept on the appointment."""
    _require_confirmation(confirmed_by_patient)
    patient = await ctx.patient()
    if not patient.full_name:
        raise ToolError(
            "Ask for the patient's full name and call register_patient before booking.",
            code="needs_registration",
        )
    clinic = ctx.services.clinic()
    insurance_id = _insurance_id(clinic, insurance) if insurance else None
    try:
        hold = await _hold(ctx, option)
    except ToolError:
        # The same book_appointment again (a repeated call, a replay after a reconnect): the
        # option's hold was used by the booking it made. Say so instead of sending the model
        # searching, which would end in a second appointment.
        done = await ctx.services.booking.just_booked(patient.id, f"{ctx.conversation_id}:book:")
        if done is not None:
            return {
                "booked": describe_appointment(clinic, done, ctx.language),
                "already_booked": True,
            }
        # Or the patient asks again for a booking still waiting for the clinic's system: the
        # option's hold now belongs to that pending request, which is tried again now.
        try:
            retried = await ctx.services.booking.retry_pending(patient.id, ctx.conversation_id)
        except BookingError as exc:
            raise await _booking_problem(ctx, exc, insurance_id=insurance_id) from None
        if retried is None:
            raise
        return {"booked": describe_appointment(clinic, retried, ctx.language)}
    request = BookingRequest(
        patient_id=patient.id,
        channel=ctx.channel,
        holder=ctx.conversation_id,
        request_key=f"{ctx.conversation_id}:book:{hold}",
        insurance_id=insurance_id,
        attendee_name=" ".join((for_whom or "").split()) or None,
    )
    await ctx.verified_by()  # the log says whether the caller was verified
    try:
        with ctx.acting():
            appointment = await ctx.services.booking.book(request, hold)
    except BookingError as exc:
        raise await _booking_problem(ctx, exc, insurance_id=insurance_id) from None
    return {"booked": describe_appointment(clinic, appointment, ctx.language)}


async def reschedule_appointment(
    ctx: ToolContext,
    appointment_id: AppointmentId,
    option: Annotated[str, Field(description="The new time's option number from find_slots.")],
    confirmed_by_patient: Confirmed,
) -> dict[str, Any]:
    """Move one of the caller's appointments to a newly found option (find_slots first)."""
    _require_confirmation(confirmed_by_patient)
    _in_scope(ctx, appointment_id)
    patient = await ctx.verified_patient(appointment_id)
    hold = await _hold(ctx, option)
    request = BookingRequest(
        patient_id=patient.id,
        channel=ctx.channel,
        holder=ctx.conversation_id,
        request_key=None,
    )
    try:
        with ctx.acting():
            appointment = await ctx.services.booking.reschedule(request, appointment_id, hold)
    except BookingError as exc:
        raise await _booking_problem(ctx, exc, appointment_id=appointment_id) from None
    clinic = ctx.services.clinic()
    return {"rescheduled": describe_appointment(clinic, appointment, ctx.language)}


async def cancel_appointment(
    ctx: ToolContext,
    appointment_id: AppointmentId,
    confirmed_by_patient: Confirmed,
    reason: Annotated[str, Field(description="Why, in a few words, if said.", max_length=200)] = "",
) -> dict[str, Any]:
    """Cancel one of the caller's appointments after they confirmed which one."""
    _require_confirmation(confirmed_by_patient)
    _in_scope(ctx, appointment_id)
    patient = await ctx.verified_patient(appointment_id)
    try:
        with ctx.acting():
            appointment = await ctx.services.booking.cancel(
                patient.id, appointment_id, channel=ctx.channel, reason=reason
            )
    except BookingError as exc:
        raise await _booking_problem(ctx, exc, appointment_id=appointment_id) from None
    clinic = ctx.services.clinic()
    return {"cancelled": describe_appointment(clinic, appointment, ctx.language)}


async def confirm_appointment(
    ctx: ToolContext, appointment_id: AppointmentId, confirmed_by_patient: Confirmed
) -> dict[str, Any]:
    """Record that the caller confirmed they will attend this appointment."""
    _require_confirmation(confirmed_by_patient)
    _in_scope(ctx, appointment_id)
    patient = await ctx.verified_patient(appointment_id)
    try:
        with ctx.acting():
            appointment = await ctx.services.booking.confirm(
                patient.id, appointment_id, channel=ctx.channel
            )
    except BookingError as exc:
        raise ToolError(exc.message, code=exc.code) from None
    clinic = ctx.services.clinic()
    return {"confirmed": describe_appointment(clinic, appointment, ctx.language)}


async def list_my_appointments(ctx: ToolContext) -> dict[str, Any]:
    """The caller's upcoming appointments (with their appointment_id for changes)."""
    made_here: list[Appointment] = []
    if ctx.caller_phone is not None and await ctx.verified_by() == "unverified":
        made_here = await ctx.made_here(await ctx.patient_id())
    if made_here:  # "I just booked it, move it to 2 pm": no check for what was booked here
        appointments = made_here
        note = (
            "Only the appointments booked in this conversation are listed; the caller's "
            "others need send_verification_code first."
        )
    else:
        patient = await ctx.verified_patient()
        appointments = await ctx.services.booking.list_for_patient(patient.id)
        note = ""
    if ctx.appointment_scope is not None:
        appointments = [a for a in appointments if a.id == ctx.appointment_scope]
    clinic = ctx.services.clinic()
    listed: dict[str, Any] = {
        "appointments": [describe_appointment(clinic, a, ctx.language) for a in appointments],
    }
    if note:
        listed["note"] = note
    return listed


def _describe_offer(
    clinic: Clinic, offer: HeldOffer, language: str, insurance_id: str | None
) -> dict[str, Any]:
    slot = offer.slot
    doctor = clinic.doctors_by_id[slot.doctor_id]
    local = slot.start.astimezone(clinic.tz)
    hospital = clinic.hospitals_by_id.get(slot.hospital_id) if slot.hospital_id else None
    price = clinic.price(slot.service_id, insurance_id, slot.doctor_id)
    described: dict[str, Any] = {
        "option": offer.label,
        "when": say_when(local, language),
        "date": local.date().isoformat(),
        "time": local.strftime("%H:%M"),
        "doctor": doctor.name,
        "where": f"{hospital.name}, {hospital.address}" if hospital else clinic.address,
        "why": list(offer.reasons),
    }
    if price is not None:
        described["patient_pays"] = say_money(price, clinic.country)
    return described


async def _booking_problem(
    ctx: ToolContext,
    exc: BookingError,
    *,
    insurance_id: str | None = None,
    appointment_id: str | None = None,
) -> ToolError:
    """What the patient hears when a booking, move or cancellation did not go as asked: the
    words come from ``prompts/<language>/booking_outcomes.yaml``; a time just taken comes with
    new options, held like find_slots' (the old ones are released)."""
    clinic = ctx.services.clinic()
    fields: dict[str, str] = {}
    if exc.slot is not None:
        fields["when"] = say_when(exc.slot.start.astimezone(clinic.tz), ctx.language)
    if appointment_id is not None and exc.code != "not_found":
        try:
            patient = await ctx.patient()
            current = await ctx.services.booking.get_own(patient.id, appointment_id)
            fields["old_when"] = say_when(current.start.astimezone(clinic.tz), ctx.language)
        except BookingError:
            pass
    prompts = ctx.services.settings.prompts_dir
    details: dict[str, Any] = {}
    key = exc.code
    if exc.code == "slot_taken" and exc.slot is not None:
        offers = await _offers_instead(ctx, exc.slot, insurance_id)
        details["options"] = [
            _describe_offer(clinic, offer, ctx.language, insurance_id) for offer in offers
        ]
        key = "slot_taken" if offers else "slot_taken_no_offers"
    text = outcome_text(prompts, ctx.language, key, **fields)
    return ToolError(text or exc.message, code=exc.code, details=details)


async def _offers_instead(
    ctx: ToolContext, taken: Slot, insurance_id: str | None
) -> list[HeldOffer]:
    """New options near a time just taken: the same day with the same doctor, else the same
    day, else from that day on."""
    clinic = ctx.services.clinic()
    day = taken.start.astimezone(clinic.tz).date()
    patient = await ctx.patient()
    tries = (
        Preferences(dates=[day], doctor_id=taken.doctor_id, insurance_id=insurance_id),
        Preferences(dates=[day], insurance_id=insurance_id),
        Preferences(date_from=day, insurance_id=insurance_id),
    )
    for prefs in tries:
        try:
            offers = await ctx.services.booking.find_offers(
                taken.service_id,
                prefs,
                holder=ctx.conversation_id,
                patient_id=patient.id,
                language=ctx.language,
            )
        except BookingError:
            return []
        if offers:
            return offers
    return []


async def _hold(ctx: ToolContext, option: str) -> str:
    hold = await ctx.services.booking.hold_by_label(ctx.conversation_id, option.strip())
    if hold is None:
        raise ToolError(
            f"There is no held option {option!r}. Call find_slots and offer its options.",
            code="unknown_option",
        )
    return hold


def _doctor_id(clinic: Clinic, name: str) -> str:
    doctor = find_doctor(clinic, name)
    if doctor is None:
        raise ToolError(
            f"No doctor called {name!r} works here. Doctors: "
            + ", ".join(d.name for d in clinic.doctors),
            code="unknown_doctor",
        )
    return doctor.id


def _insurance_id(clinic: Clinic, name: str) -> str:
    insurance = find_insurance(clinic, name)
    if insurance is None:
        raise ToolError(
            f"We do not work with {name!r}. Accepted plans: "
            + ", ".join(i.name for i in clinic.insurances)
            + ". The patient can also book as private.",
            code="unknown_insurance",
        )
    return insurance.id


def _require_confirmation(confirmed: bool) -> None:
    if not confirmed:
        raise ToolError(
            "Read the details back to the patient and get an explicit yes first.",
            code="needs_confirmation",
        )


def _in_scope(ctx: ToolContext, appointment_id: str) -> None:
    if ctx.appointment_scope is not None and appointment_id != ctx.appointment_scope:
        raise ToolError(
            "In this call I can only help with the appointment being confirmed.",
            code="out_of_scope",
        )
