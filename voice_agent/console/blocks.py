"""Blocks of a doctor's time (holiday, surgery): list, preview, save, remove.

The preview (a GET, so staff come back to it after each move) lists the appointments the block
would fall on, each with a move and a cancel; the block is saved only when none is left (the
desk checks again in the saving transaction).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from voice_agent.console.accounts import StaffUser
from voice_agent.console.agenda import allowed_doctors, local_time
from voice_agent.console.security import require_role
from voice_agent.console.web import console, render
from voice_agent.scheduling.staff_desk import DeskError
from voice_agent.store.staff_tables import StaffRole

router = APIRouter(prefix="/console/agenda/blocks")
Staff = Annotated[StaffUser, Depends(require_role(*StaffRole))]


@router.get("")
async def blocks(
    request: Request,
    user: Staff,
    doctor: Annotated[str | None, Query(max_length=64)] = None,
    start: Annotated[str | None, Query(max_length=40)] = None,
    end: Annotated[str | None, Query(max_length=40)] = None,
    reason: Annotated[str, Query(max_length=200)] = "",
    done: Annotated[str | None, Query(max_length=32)] = None,
    error: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    runtime = console(request)
    clinic = runtime.services.clinic()
    doctors = allowed_doctors(request, user)
    if doctor is not None and doctor not in doctors:
        raise HTTPException(status_code=404)
    now = runtime.services.clock.now()
    today = now.astimezone(clinic.tz).date()
    desk = runtime.desk
    existing = await desk.blocks(doctors, today, 90)
    hits = None
    preview_url = None
    if doctor and start and end:
        lo, hi = local_time(request, start), local_time(request, end)
        if hi <= lo:
            error = error or "block_order"
        else:
            hits = await desk.hits(doctor, lo, hi)
            preview_url = "/console/agenda/blocks?" + urlencode(
                {"doctor": doctor, "start": start, "end": end, "reason": reason}
            )
    return render(
        request,
        "blocks.html",
        user,
        doctors=[clinic.doctor(d) for d in doctors],
        doctor=doctor,
        start=start or f"{today + timedelta(days=1)}T08:00",
        end=end or f"{today + timedelta(days=1)}T12:00",
        reason=reason,
        hits=hits,
        preview_url=preview_url,
        existing=existing,
        done=done,
        error=error,
    )


@router.post("")
async def save_block(
    request: Request,
    user: Staff,
    doctor: Annotated[str, Form(max_length=64)],
    start: Annotated[str, Form(max_length=40)],
    end: Annotated[str, Form(max_length=40)],
    reason: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    if doctor not in allowed_doctors(request, user):
        raise HTTPException(status_code=404)
    try:
        await console(request).desk.add_block(
            user.id, doctor, local_time(request, start), local_time(request, end), reason
        )
    except DeskError as exc:
        query = urlencode(
            {"doctor": doctor, "start": start, "end": end, "reason": reason, "error": exc.code}
        )
        return RedirectResponse(f"/console/agenda/blocks?{query}", status_code=303)
    return RedirectResponse("/console/agenda/blocks?done=blocked", status_code=303)


@router.post("/{block_id}/delete")
async def delete_block(request: Request, user: Staff, block_id: str) -> Response:
    try:
        await console(request).desk.remove_block(
            user.id, block_id, set(allowed_doctors(request, user))
        )
    except DeskError:
        raise HTTPException(status_code=404) from None
    return RedirectResponse("/console/agenda/blocks?done=unblocked", status_code=303)
