"""Accounts, for administrators: the list, a new account, disable / enable.

A new account gets a first password chosen here, which the person changes under Account; a
disabled account's sessions end at once. The CLI (`voice-agent staff …`) does the same on the
server, and is how the first administrator is created.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from voice_agent.console.accounts import AccountError, StaffUser
from voice_agent.console.security import accounts, require_role
from voice_agent.console.texts import LANGUAGES
from voice_agent.console.web import console, render
from voice_agent.store.staff_tables import StaffRole

router = APIRouter(prefix="/console/team")
Admin = Annotated[StaffUser, Depends(require_role(StaffRole.admin))]


@router.get("")
async def team(
    request: Request, user: Admin, done: str | None = None, error: str | None = None
) -> Response:
    return render(
        request,
        "team.html",
        user,
        accounts=accounts(request).list(),
        roles=list(StaffRole),
        doctors=console(request).services.clinic().doctors,
        languages=LANGUAGES,
        done=done,
        error=error,
    )


@router.post("")
async def add(
    request: Request,
    user: Admin,
    email: Annotated[str, Form(max_length=254)],
    role: Annotated[str, Form(max_length=16)],
    password: Annotated[str, Form(max_length=1024)],
    doctor: Annotated[str, Form(max_length=64)] = "",
    language: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    clinic = console(request).services.clinic()
    try:
        if doctor and clinic.doctor(doctor) is None:
            raise AccountError("unknown_doctor")
        accounts(request).add(
            email,
            password,
            role,
            doctor_id=doctor or None,
            language=language if language in LANGUAGES else None,
        )
    except AccountError as exc:
        return RedirectResponse(f"/console/team?{urlencode({'error': exc.code})}", 303)
    return RedirectResponse("/console/team?done=added", status_code=303)


@router.post("/{staff_id}/active")
async def set_active(
    request: Request,
    user: Admin,
    staff_id: int,
    active: Annotated[str, Form(pattern="^(on|off)$")],
) -> Response:
    try:
        accounts(request).set_active(staff_id, active == "on", by=user.id)
    except AccountError as exc:
        return RedirectResponse(f"/console/team?{urlencode({'error': exc.code})}", 303)
    return RedirectResponse(
        f"/console/team?done={'enabled' if active == 'on' else 'disabled'}", 303
    )
