"""The navigation's pages not built yet: the agenda until ``agenda.py`` lands (To do, Calls and
Clinic have their own modules: ``todo.py``, ``calls.py``, ``clinic_data.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from voice_agent.console.accounts import StaffUser
from voice_agent.console.security import require_role
from voice_agent.console.web import render
from voice_agent.store.staff_tables import StaffRole

router = APIRouter(prefix="/console")
Anyone = Annotated[StaffUser, Depends(require_role(*StaffRole))]


@router.get("/agenda")
async def agenda(request: Request, user: Anyone) -> Response:
    return render(request, "empty.html", user, title_key="nav.agenda")
