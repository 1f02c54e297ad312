"""The navigation's pages not built yet: To do, Calls, Clinic (the to-do/calls/clinic helper
replaces each with its own module)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from voice_agent.console.accounts import StaffUser
from voice_agent.console.security import require_role
from voice_agent.console.web import render
from voice_agent.store.staff_tables import StaffRole

router = APIRouter(prefix="/console")
FrontDesk = Annotated[StaffUser, Depends(require_role(StaffRole.receptionist))]
Admin = Annotated[StaffUser, Depends(require_role(StaffRole.admin))]


@router.get("/todo")
async def todo(request: Request, user: FrontDesk) -> Response:
    return render(request, "empty.html", user, title_key="nav.todo")


@router.get("/calls")
async def calls(request: Request, user: FrontDesk) -> Response:
    return render(request, "empty.html", user, title_key="nav.calls")


@router.get("/clinic")
async def clinic(request: Request, user: Admin) -> Response:
    return render(request, "empty.html", user, title_key="nav.clinic")
