"""Who is asking: the session cookie, the CSRF check on every unsafe request, role checks.

- ``current_user`` reads the session cookie (HttpOnly, SameSite=Lax, Secure behind https) and
  finds its live row in ``staff_session``.
- ``check_csrf`` runs on every console request (a router dependency): a POST (or PUT, PATCH,
  DELETE) must carry the session's token in the form field ``csrf_token`` or the header
  ``X-CSRF-Token`` (htmx sends it from ``hx-headers`` on <body>), else 403. The login form, which
  has no session yet, uses a double-submit cookie instead.
- ``require_role(...)`` is the dependency a page or action declares; admin passes every check.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from voice_agent.console.accounts import StaffAccounts, StaffUser
from voice_agent.store.staff_tables import StaffRole

SESSION_COOKIE = "va_console_session"
LOGIN_CSRF_COOKIE = "va_console_login"
COOKIE_PATH = "/console"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_PATH = "/console/login"


class LoginRequired(Exception):
    """No live session: a page redirects to the login form, an action answers 401."""


class Forbidden(Exception):
    """A live session without the role (or the doctor) a page needs: 403 page."""


def accounts(request: Request) -> StaffAccounts:
    found: StaffAccounts = request.app.state.console.accounts
    return found


def current_user(request: Request) -> StaffUser | None:
    if hasattr(request.state, "staff_user"):
        cached: StaffUser | None = request.state.staff_user
        return cached
    user = accounts(request).user_for(request.cookies.get(SESSION_COOKIE))
    request.state.staff_user = user
    return user


def require_user(request: Request) -> StaffUser:
    user = current_user(request)
    if user is None:
        raise LoginRequired()
    return user


def require_role(*roles: StaffRole) -> Callable[[Request], Awaitable[StaffUser]]:
    """A dependency: the logged-in user if their role is one of ``roles`` (admin always is)."""
    allowed = frozenset(roles) | {StaffRole.admin}

    async def dependency(request: Request) -> StaffUser:
        user = require_user(request)
        if user.role not in allowed:
            raise Forbidden()
        return user

    return dependency


StaffDep = Annotated[StaffUser, Depends(require_user)]
"""Any logged-in staff member."""


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


async def _sent_token(request: Request) -> str:
    header = request.headers.get("x-csrf-token")
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # cached on the request: the route reads it again for free
        value = form.get("csrf_token")
        return value if isinstance(value, str) else ""
    return ""


async def check_csrf(request: Request) -> None:
    """403 for an unsafe request whose token does not match (see the module docstring)."""
    if request.method in SAFE_METHODS:
        return
    sent = await _sent_token(request)
    if request.url.path == LOGIN_PATH:
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    else:
        user = current_user(request)
        if user is None:
            raise LoginRequired()
        expected = user.csrf_token
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise HTTPException(status_code=403, detail="CSRF token missing or wrong")
