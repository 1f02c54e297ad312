"""Calls and conversations: the list with outcomes, searched by patient (phone or name) and
day, and one call's or chat's timeline. A doctor sees only his own patients' (those with an
appointment with him); everyone else's is a 403, whatever the URL."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from voice_agent.console.accounts import StaffUser
from voice_agent.console.lookups import pretty, when
from voice_agent.console.security import Forbidden, require_role
from voice_agent.console.web import console, render
from voice_agent.history.activity import (
    ActivityQuery,
    Timeline,
    activity,
    call_entries,
    chat_entries,
    patient_by_phone,
    patients_by_name,
    patients_of_doctor,
)
from voice_agent.patients.service import InvalidPatientData, normalize_phone
from voice_agent.store.staff_tables import StaffRole

router = APIRouter(prefix="/console/calls")
Staff = Annotated[
    StaffUser,
    Depends(require_role(StaffRole.receptionist, StaffRole.doctor)),
]
KINDS = ("call", "chat")
PHONE_LIKE = re.compile(r"^[\s()+\-.\d]{8,}$")


def _allowed(request: Request, user: StaffUser) -> set[str] | None:
    """The patients this user may read about; None: all of them."""
    if user.role != StaffRole.doctor:
        return None
    if not user.doctor_id:
        return set()
    return patients_of_doctor(console(request).services.engine, user.doctor_id)


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


@router.get("")
async def calls_page(
    request: Request,
    user: Staff,
    q: str = "",
    day_from: Annotated[str, "YYYY-MM-DD"] = "",
    day_to: Annotated[str, "YYYY-MM-DD"] = "",
    kind: str = "",
) -> Response:
    services = console(request).services
    clinic = services.clinic()
    allowed = _allowed(request, user)
    problem = None
    matches: set[str] | None = None
    query = q.strip()[:100]
    if query:
        if PHONE_LIKE.match(query):
            try:
                found = patient_by_phone(services.engine, normalize_phone(query, clinic.country))
                matches = {found} if found else set()
            except InvalidPatientData:
                problem = "bad_phone"
                matches = set()
        else:
            matches = patients_by_name(services.engine, query)
    start, end = _day(day_from), _day(day_to)
    if (day_from and start is None) or (day_to and end is None):
        problem = "bad_day"
    if allowed is not None:
        matches = allowed if matches is None else matches & allowed
    rows = activity(
        services.engine,
        clinic.tz,
        ActivityQuery(
            day_from=start,
            day_to=end,
            patient_ids=matches,
            kind=kind if kind in KINDS else None,
            limit=200,
        ),
    )
    return render(
        request,
        "calls.html",
        user,
        rows=rows,
        q=query,
        day_from=day_from,
        day_to=day_to,
        kind=kind if kind in KINDS else "",
        problem=problem,
        when=when(clinic.tz),
    )


def _timeline(request: Request, user: StaffUser, found: Timeline | None) -> Response:
    if found is None:
        return render(request, "call_missing.html", user, status_code=404)
    allowed = _allowed(request, user)
    if allowed is not None and found.row.patient_id not in allowed:
        raise Forbidden()
    tz = console(request).services.clinic().tz
    return render(
        request, "call.html", user, timeline=found, row=found.row, when=when(tz), pretty=pretty
    )


@router.get("/call/{call_sid}")
async def call_page(request: Request, user: Staff, call_sid: str) -> Response:
    engine = console(request).services.engine
    return _timeline(request, user, call_entries(engine, call_sid[:64]))


@router.get("/chat/{conversation_id}")
async def chat_page(request: Request, user: Staff, conversation_id: str) -> Response:
    engine = console(request).services.engine
    return _timeline(request, user, chat_entries(engine, conversation_id[:128]))
