"""Login and logout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from voice_agent.console.accounts import AccountError, NewSession
from voice_agent.console.security import (
    COOKIE_PATH,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    accounts,
    current_user,
    new_csrf_token,
    require_user,
)
from voice_agent.console.web import console, render

router = APIRouter(prefix="/console")


def safe_next(target: str | None) -> str:
    """Only a console path: never another site (``//evil``, ``https://…``)."""
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return "/console/agenda"


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def set_session_cookie(request: Request, response: Response, session: NewSession) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=int((session.expires_at - console(request).services.clock.now()).total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=console(request).secure_cookies,
    )


def _login_page(
    request: Request, next_path: str, *, error: str | None = None, status_code: int = 200
) -> Response:
    token = new_csrf_token()
    response = render(
        request,
        "login.html",
        None,
        status_code=status_code,
        csrf_token=token,
        next_path=next_path,
        error=error,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=console(request).secure_cookies,
    )
    return response


@router.get("")
@router.get("/")
async def home(request: Request) -> Response:
    return RedirectResponse("/console/agenda", status_code=303)


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    if current_user(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=500)] = "/console/agenda",
) -> Response:
    try:
        session = accounts(request).login(email, password, client_address(request))
    except AccountError as exc:
        status = 429 if exc.code == "throttled" else 401
        return _login_page(request, safe_next(next), error=exc.code, status_code=status)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(request, response, session)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    require_user(request)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        accounts(request).logout(token)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response
