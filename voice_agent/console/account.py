"""The account page: console language and password change (which revokes other sessions)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from voice_agent.console.accounts import AccountError
from voice_agent.console.auth import set_session_cookie
from voice_agent.console.security import StaffDep, accounts
from voice_agent.console.texts import LANGUAGES
from voice_agent.console.web import render

router = APIRouter(prefix="/console/account")


@router.get("")
async def account_page(request: Request, user: StaffDep, done: str | None = None) -> Response:
    return render(request, "account.html", user, languages=LANGUAGES, done=done, error=None)


@router.post("/language")
async def set_language(
    request: Request, user: StaffDep, language: Annotated[str, Form(max_length=8)]
) -> Response:
    accounts(request).set_language(user.id, language if language in LANGUAGES else None)
    return RedirectResponse("/console/account?done=language", status_code=303)


@router.post("/password")
async def change_password(
    request: Request,
    user: StaffDep,
    current: Annotated[str, Form(max_length=1024)],
    new: Annotated[str, Form(max_length=1024)],
    repeat: Annotated[str, Form(max_length=1024)],
) -> Response:
    error = "passwords_differ" if new != repeat else None
    if error is None:
        try:
            session = accounts(request).change_password(user.id, current, new)
        except AccountError as exc:
            error = exc.code
    if error is not None:
        return render(
            request, "account.html", user, status_code=400, languages=LANGUAGES, error=error
        )
    response = RedirectResponse("/console/account?done=password", status_code=303)
    set_session_cookie(request, response, session)
    return response
