"""The agenda: today or the week per doctor and day, and the front desk's actions on it
(book for a patient on the phone, move, cancel, attended / no-show) and on a doctor's blocks.

A doctor sees and acts on his own agenda only: an appointment or block of another doctor is
answered 404, exactly like one that does not exist. Every change goes through `StaffDesk`
(the booking service, the same holds and claims as the agent; an interaction row per action).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from voice_agent.console.accounts import StaffUser
from voice_agent.console.security import require_role
from voice_agent.console.web import console, render
from voice_agent.patients.service import InvalidPatientData
from voice_agent.scheduling.booking import BookingError
from voice_agent.scheduling.staff_desk import DeskError, Entry, StaffDesk, grouped_by_day
from voice_agent.store.staff_tables import StaffRole
from voice_agent.store.tables import AppointmentStatus

router = APIRouter(prefix="/console/agenda")
Staff = Annotated[StaffUser, Depends(require_role(*StaffRole))]
MAX_DAYS = 7


def allowed_doctors(request: Request, user: StaffUser) -> list[str]:
    """The doctors whose agenda this user may see: his own for a doctor, all for the others."""
    clinic = console(request).services.clinic()
    if user.role == StaffRole.doctor:
        return [d.id for d in clinic.doctors if d.id == user.doctor_id]
    return [d.id for d in clinic.doctors]


def _desk(request: Request) -> StaffDesk:
    return console(request).desk


async def _own_entry(request: Request, user: StaffUser, appointment_id: str) -> Entry:
    try:
        entry = await _desk(request).entry(appointment_id)
    except DeskError:
        raise HTTPException(status_code=404) from None
    if entry.doctor_id not in allowed_doctors(request, user):
        raise HTTPException(status_code=404)  # another doctor's patient: as if it did not exist
    return entry


def local_time(request: Request, value: str) -> datetime:
    """A ``datetime-local`` form value (the clinic's wall clock) as an aware instant."""
    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(status_code=422, detail="bad date-time") from None
    tz = console(request).services.clinic().tz
    return naive.replace(tzinfo=tz) if naive.tzinfo is None else naive.astimezone(tz)


def _safe_back(target: str | None, fallback: str) -> str:
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return fallback


def _error_code(exc: Exception) -> str:
    if isinstance(exc, DeskError):
        return exc.code
    if isinstance(exc, BookingError):
        return exc.code
    return "invalid_phone"


@router.get("")
async def agenda(
    request: Request,
    user: Staff,
    day: Annotated[date | None, Query()] = None,
    view: Annotated[str, Query(pattern="^(day|week)$")] = "day",
    doctor: Annotated[str | None, Query(max_length=64)] = None,
    done: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    runtime = console(request)
    clinic = runtime.services.clinic()
    today = runtime.services.clock.now().astimezone(clinic.tz).date()
    first = day or today
    doctors = allowed_doctors(request, user)
    shown = [doctor] if doctor in doctors else doctors
    days = 1
    if view == "week":
        first = first - timedelta(days=first.weekday())
        days = MAX_DAYS
        if doctor not in doctors:
            shown = doctors[:1]
    agenda_days = await _desk(request).agenda(shown, first, days)
    step = timedelta(days=days)
    return render(
        request,
        "agenda.html",
        user,
        by_day=grouped_by_day(agenda_days),
        first=first,
        today=today,
        view=view,
        doctor=doctor if doctor in doctors else None,
        doctors=[clinic.doctor(d) for d in doctors],
        previous=(first - step).isoformat(),
        following=(first + step).isoformat(),
        done=done,
        now=runtime.services.clock.now(),
    )


@router.get("/appointment/{appointment_id}")
async def appointment(
    request: Request,
    user: Staff,
    appointment_id: str,
    back: Annotated[str | None, Query(max_length=500)] = None,
    error: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    entry = await _own_entry(request, user, appointment_id)
    runtime = console(request)
    clinic = runtime.services.clinic()
    today = runtime.services.clock.now().astimezone(clinic.tz).date()
    free = []
    if entry.active:
        free = await _desk(request).free_for(entry.doctor_id, entry.service_id, today, days=14)
    return render(
        request,
        "appointment.html",
        user,
        entry=entry,
        free=free,
        back=_safe_back(back, f"/console/agenda?day={entry.start.astimezone(clinic.tz).date()}"),
        error=error,
        started=entry.start <= runtime.services.clock.now(),
    )


def _after(back: str, done: str) -> RedirectResponse:
    joiner = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{joiner}done={done}", status_code=303)


def _failed(appointment_id: str, back: str, exc: Exception) -> RedirectResponse:
    query = urlencode({"back": back, "error": _error_code(exc)})
    return RedirectResponse(f"/console/agenda/appointment/{appointment_id}?{query}", 303)


@router.post("/appointment/{appointment_id}/move")
async def move(
    request: Request,
    user: Staff,
    appointment_id: str,
    start: Annotated[str, Form(max_length=40)],
    back: Annotated[str, Form(max_length=500)] = "/console/agenda",
) -> Response:
    await _own_entry(request, user, appointment_id)
    back = _safe_back(back, "/console/agenda")
    try:
        await _desk(request).move(user.id, appointment_id, local_time(request, start))
    except (DeskError, BookingError) as exc:
        return _failed(appointment_id, back, exc)
    return _after(back, "moved")


@router.post("/appointment/{appointment_id}/cancel")
async def cancel(
    request: Request,
    user: Staff,
    appointment_id: str,
    reason: Annotated[str, Form(max_length=200)] = "",
    back: Annotated[str, Form(max_length=500)] = "/console/agenda",
) -> Response:
    await _own_entry(request, user, appointment_id)
    back = _safe_back(back, "/console/agenda")
    try:
        await _desk(request).cancel(user.id, appointment_id, reason)
    except (DeskError, BookingError) as exc:
        return _failed(appointment_id, back, exc)
    return _after(back, "cancelled")


@router.post("/appointment/{appointment_id}/attendance")
async def attendance(
    request: Request,
    user: Staff,
    appointment_id: str,
    status: Annotated[str, Form(pattern="^(attended|no_show)$")],
    back: Annotated[str, Form(max_length=500)] = "/console/agenda",
) -> Response:
    await _own_entry(request, user, appointment_id)
    back = _safe_back(back, "/console/agenda")
    try:
        await _desk(request).mark(user.id, appointment_id, AppointmentStatus(status))
    except DeskError as exc:
        return _failed(appointment_id, back, exc)
    return _after(back, status)


@router.get("/book")
async def book_form(
    request: Request,
    user: Staff,
    doctor: Annotated[str | None, Query(max_length=64)] = None,
    service: Annotated[str | None, Query(max_length=64)] = None,
    start: Annotated[str | None, Query(max_length=40)] = None,
    error: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    runtime = console(request)
    clinic = runtime.services.clinic()
    doctors = allowed_doctors(request, user)
    doctor_id = doctor if doctor in doctors else doctors[0] if doctors else None
    if doctor_id is None:
        raise HTTPException(status_code=404)
    found = clinic.doctor(doctor_id)
    assert found is not None
    service_id = service if service in found.services else found.services[0]
    today = runtime.services.clock.now().astimezone(clinic.tz).date()
    free = await _desk(request).free_for(doctor_id, service_id, today, days=14)
    return render(
        request,
        "book.html",
        user,
        doctors=[clinic.doctor(d) for d in doctors],
        doctor=found,
        service_id=service_id,
        free=free,
        chosen=start,
        request_key=uuid.uuid4().hex,
        error=error,
    )


@router.post("/book")
async def book(
    request: Request,
    user: Staff,
    name: Annotated[str, Form(min_length=2, max_length=120)],
    phone: Annotated[str, Form(min_length=6, max_length=40)],
    doctor: Annotated[str, Form(max_length=64)],
    service: Annotated[str, Form(max_length=64)],
    start: Annotated[str, Form(max_length=40)],
    request_key: Annotated[str, Form(pattern="^[0-9a-f]{32}$")],
) -> Response:
    if doctor not in allowed_doctors(request, user):
        raise HTTPException(status_code=404)
    when = local_time(request, start)
    try:
        booked = await _desk(request).book(
            user.id,
            name=name,
            phone=phone,
            doctor_id=doctor,
            service_id=service,
            start=when,
            request_key=f"console:{request_key}",
        )
    except (DeskError, BookingError, InvalidPatientData) as exc:
        query = urlencode(
            {"doctor": doctor, "service": service, "start": start, "error": _error_code(exc)}
        )
        return RedirectResponse(f"/console/agenda/book?{query}", status_code=303)
    clinic = console(request).services.clinic()
    day = booked.start.astimezone(clinic.tz).date()
    return RedirectResponse(f"/console/agenda?day={day}&done=booked", status_code=303)
