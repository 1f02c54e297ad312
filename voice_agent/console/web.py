"""The console's runtime (accounts, templates, cookie policy), its page renderer, and
``mount_console`` which app.py calls to add the routes, the static files and the error pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader

from voice_agent.console.accounts import StaffAccounts, StaffUser, password_hasher
from voice_agent.console.security import (
    SAFE_METHODS,
    Forbidden,
    LoginRequired,
    current_user,
)
from voice_agent.console.texts import LANGUAGES, Translator
from voice_agent.i18n import say_date
from voice_agent.scheduling.staff_desk import StaffDesk
from voice_agent.services import Services
from voice_agent.settings import Settings
from voice_agent.store.staff_tables import StaffRole

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


@dataclass(frozen=True)
class NavItem:
    path: str
    key: str
    roles: frozenset[StaffRole]


NAV: tuple[NavItem, ...] = (
    NavItem("/console/agenda", "nav.agenda", frozenset(StaffRole)),
    NavItem("/console/todo", "nav.todo", frozenset({StaffRole.receptionist, StaffRole.admin})),
    NavItem("/console/calls", "nav.calls", frozenset(StaffRole)),  # a doctor: his patients
    NavItem("/console/clinic", "nav.clinic", frozenset({StaffRole.admin})),
    NavItem("/console/team", "nav.team", frozenset({StaffRole.admin})),
    NavItem("/console/account", "nav.account", frozenset(StaffRole)),
)
"""The navigation bar; an item shows only to the roles that may open it."""


@dataclass
class ConsoleRuntime:
    services: Services
    accounts: StaffAccounts
    templates: Jinja2Templates
    secure_cookies: bool

    @property
    def desk(self) -> StaffDesk:
        services = self.services
        return StaffDesk(
            services.engine,
            services.booking,
            services.patients,
            services.interactions,
            services.clock,
        )

    def language_for(self, user: StaffUser | None) -> str:
        if user is not None and user.language in LANGUAGES:
            return user.language
        return self.services.clinic().default_language


def console(request: Request) -> ConsoleRuntime:
    runtime: ConsoleRuntime = request.app.state.console
    return runtime


def render(
    request: Request,
    template: str,
    user: StaffUser | None,
    *,
    status_code: int = 200,
    language: str | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page in the user's language, with ``t``, ``user``, ``csrf_token`` and ``nav`` set."""
    runtime = console(request)
    t = Translator(runtime.services.settings.prompts_dir, language or runtime.language_for(user))
    nav = [item for item in NAV if user is not None and user.role in item.roles]
    clinic = runtime.services.clinic()
    tz = clinic.tz

    def hm(moment: datetime) -> str:
        return moment.astimezone(tz).strftime("%H:%M")

    def day_name(day: date) -> str:
        return say_date(day, t.language)

    return runtime.templates.TemplateResponse(
        request,
        template,
        {
            "t": t,
            "lang": t.language,
            "user": user,
            "csrf_token": user.csrf_token if user else context.pop("csrf_token", ""),
            "nav": nav,
            "clinic": clinic,
            "hm": hm,
            "day_name": day_name,
            "path": request.url.path,
            **context,
        },
        status_code=status_code,
    )


async def _login_required(request: Request, exc: Exception) -> Response:
    """A page asked without a live session goes to the login form (htmx is told to navigate
    there); an action answers 401."""
    if request.method in SAFE_METHODS:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = f"/console/login?next={quote(target)}"
        if "hx-request" in request.headers:
            return Response(status_code=204, headers={"HX-Redirect": login})
        return RedirectResponse(login, status_code=303)
    return Response("login required", status_code=401)


async def _forbidden(request: Request, exc: Exception) -> Response:
    return render(request, "forbidden.html", current_user(request), status_code=403)


def mount_console(app: FastAPI, services: Services, settings: Settings) -> None:
    """Add the console to the app: routes under /console, /console/static, the error pages."""
    from voice_agent.console.routes import router

    public = settings.public_url or ""
    app.state.console = ConsoleRuntime(
        services=services,
        accounts=StaffAccounts(
            services.engine, services.clock, password_hasher(settings.staff_password_profile)
        ),
        templates=Jinja2Templates(
            env=Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
        ),
        secure_cookies=public.startswith("https://"),
    )
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(Forbidden, _forbidden)
    app.mount("/console/static", StaticFiles(directory=str(STATIC)), name="console-static")
    app.include_router(router)
