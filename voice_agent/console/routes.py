"""Every console router, joined under one router whose dependency checks CSRF on each unsafe
request. A new page module adds its router here (see the package docstring)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from voice_agent.console import (
    account,
    agenda,
    auth,
    blocks,
    calls,
    clinic_data,
    pages,
    team,
    todo,
)
from voice_agent.console.security import check_csrf

router = APIRouter(dependencies=[Depends(check_csrf)])
router.include_router(auth.router)
router.include_router(account.router)
router.include_router(blocks.router)  # before agenda: /console/agenda/blocks
router.include_router(agenda.router)
router.include_router(pages.router)
router.include_router(team.router)
router.include_router(todo.router)
router.include_router(calls.router)
router.include_router(clinic_data.router)
