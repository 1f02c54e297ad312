"""The to-do page: what needs a person (hand-overs, callbacks, unanswered questions, emergencies,
undelivered messages, unreached confirmation calls), taken, resolved with a note, audited.

The list refreshes itself: it polls ``/console/todo/list?marker=…`` every few seconds, which
answers 204 (htmx keeps the page) until an item is added or moves, then the new list. A
receptionist with the page open sees a new hand-over appear without reloading.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from voice_agent.console.accounts import StaffUser
from voice_agent.console.lookups import staff_emails, when
from voice_agent.console.security import require_role
from voice_agent.console.web import console, render
from voice_agent.store.staff_tables import StaffRole
from voice_agent.store.worklist_tables import OPEN_WORK, WorkStatus
from voice_agent.worklist.service import MAX_NOTE, WorkError, WorkView

router = APIRouter(prefix="/console/todo")
FrontDesk = Annotated[StaffUser, Depends(require_role(StaffRole.receptionist))]
SHOWS = {"open": OPEN_WORK, "resolved": (WorkStatus.resolved,)}
POLL_SECONDS = 3


def _items(request: Request, show: str) -> list[WorkView]:
    worklist = console(request).services.worklist
    return worklist.items(statuses=SHOWS.get(show, OPEN_WORK), limit=200)


def _context(request: Request, show: str) -> dict[str, Any]:
    runtime = console(request)
    items = _items(request, show)
    people = {i.taken_by for i in items} | {i.resolved_by for i in items}
    return {
        "items": items,
        "show": show if show in SHOWS else "open",
        "marker": runtime.services.worklist.marker(),
        "counts": runtime.services.worklist.counts(),
        "failing": runtime.services.worklist.failing() if show == "open" else [],
        "staff": staff_emails(runtime.services.engine, people),
        "when": when(runtime.services.clinic().tz),
        "poll": POLL_SECONDS,
        "max_note": MAX_NOTE,
    }


@router.get("")
async def todo_page(
    request: Request, user: FrontDesk, show: str = "open", error: str | None = None
) -> Response:
    return render(request, "todo.html", user, error=error, **_context(request, show))


@router.get("/list")
async def todo_list(
    request: Request, user: FrontDesk, marker: str = "", show: str = "open"
) -> Response:
    """The list alone, for the page's polling: 204 while nothing changed."""
    if marker and marker == console(request).services.worklist.marker():
        return Response(status_code=204)
    return render(request, "todo_list.html", user, **_context(request, show))


@router.get("/{item_id}")
async def todo_item(
    request: Request, user: FrontDesk, item_id: int, error: str | None = None
) -> Response:
    runtime = console(request)
    item = runtime.services.worklist.get(item_id)
    if item is None:
        return render(request, "todo_missing.html", user, status_code=404)
    people = {item.taken_by, item.resolved_by} | {e.actor_id for e in item.events}
    return render(
        request,
        "todo_item.html",
        user,
        item=item,
        error=error,
        staff=staff_emails(runtime.services.engine, people),
        when=when(runtime.services.clinic().tz),
        max_note=MAX_NOTE,
    )


def _back(item_id: int, back: str | None, error: str | None = None) -> RedirectResponse:
    target = f"/console/todo/{item_id}" if back == "item" else "/console/todo"
    if error:
        target += f"?error={error}"
    return RedirectResponse(target, status_code=303)


@router.post("/{item_id}/take")
async def take(
    request: Request, user: FrontDesk, item_id: int, back: Annotated[str, Form()] = ""
) -> Response:
    try:
        console(request).services.worklist.take(item_id, user.id)
    except WorkError as refused:
        return _back(item_id, back, refused.code)
    return _back(item_id, back)


@router.post("/{item_id}/release")
async def release(
    request: Request, user: FrontDesk, item_id: int, back: Annotated[str, Form()] = ""
) -> Response:
    try:
        console(request).services.worklist.release(item_id, user.id)
    except WorkError as refused:
        return _back(item_id, back, refused.code)
    return _back(item_id, back)


@router.post("/{item_id}/resolve")
async def resolve(
    request: Request,
    user: FrontDesk,
    item_id: int,
    note: Annotated[str, Form(max_length=MAX_NOTE * 2)] = "",
    back: Annotated[str, Form()] = "",
) -> Response:
    try:
        console(request).services.worklist.resolve(item_id, user.id, note)
    except WorkError as refused:
        return _back(item_id, back, refused.code)
    return _back(item_id, back)


@router.post("/{item_id}/retry")
async def retry(
    request: Request, user: FrontDesk, item_id: int, back: Annotated[str, Form()] = ""
) -> Response:
    try:
        console(request).services.worklist.retry(item_id, user.id)
    except WorkError as refused:
        return _back(item_id, back, refused.code)
    return _back(item_id, back)
