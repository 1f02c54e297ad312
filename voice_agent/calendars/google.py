"""Google Calendar backend: each doctor has a calendar id (``Doctor.calendar_id``).

- Busy time comes from ``freeBusy``, so time the doctor blocks by hand is respected. Answers are
  cached briefly (within quota: 600 requests/min per user per project); throttling and server
  errors are retried with backoff, and when Google stays down a recent answer is used before
  giving up with ``CalendarUnavailable``.
- Our events carry ``extendedProperties.private.appointment_id`` and a deterministic event id
  derived from the appointment id, so inserting twice is a ``409`` we recognise, not a second
  event: a crash between sending and marking cannot double an event.
- Book = insert, reschedule = patch, cancel = delete, or mark as cancelled (``cancel_mode``).
"""

from __future__ import annotations

import base64
import functools
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta
from typing import Any, Literal

from googleapiclient.errors import HttpError

from voice_agent.calendars.base import BusyInterval, CalendarEvent, ExternalEvent
from voice_agent.clinic.model import Clinic
from voice_agent.errors import CalendarUnavailable, GoogleUnavailable, SlotRejected
from voice_agent.google.api import GoogleApis

logger = logging.getLogger(__name__)

EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
FREEBUSY_MAX_DAYS = 60  # Google refuses long freeBusy ranges; ask in chunks
FREEBUSY_MAX_CALENDARS = 50
SOURCE = "voice-agent"


def event_id_for(appointment_id: str) -> str:
    """A valid Google event id (base32hex, lowercase) that is a function of the appointment."""
    if EVENT_ID.match(appointment_id):
        return appointment_id
    encoded = base64.b32hexencode(appointment_id.encode()).decode().lower().rstrip("=")
    return ("va" + encoded)[:1024]


class EventMissing(SlotRejected):
    """The event is not in the calendar (never created, or deleted)."""


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class GoogleCalendar:
    name = "google"
    confirms_synchronously = False

    def __init__(
        self,
        apis: GoogleApis,
        clinic: Callable[[], Clinic],
        *,
        send_updates: Literal["all", "externalOnly", "none"] = "none",
        cancel_mode: Literal["delete", "mark"] = "delete",
        title: str = "{first_name} · {service}",
        cache_seconds: float = 30.0,
        on_unavailable: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._apis = apis
        self._clinic = clinic
        self._send_updates = send_updates
        self._cancel_mode = cancel_mode
        self._title = title
        self._ttl = cache_seconds
        self._cache: dict[tuple[Any, ...], tuple[float, list[BusyInterval]]] = {}
        self._cache_lock = threading.Lock()
        self._on_unavailable = on_unavailable
        self.freebusy_calls = 0

    # Busy time --------------------------------------------------------------------------------

    def _calendars(self, doctor_ids: Collection[str]) -> dict[str, str]:
        clinic = self._clinic()
        found = {}
        for doctor_id in doctor_ids:
            doctor = clinic.doctor(doctor_id)
            if doctor is not None and doctor.calendar_id:
                found[doctor.calendar_id] = doctor_id
        return found

    async def busy(
        self, doctor_ids: Collection[str], start: datetime, end: datetime, *, fresh: bool = False
    ) -> list[BusyInterval]:
        """Busy time from freeBusy. A search reuses an answer younger than the cache time;
        ``fresh`` (the check at "yes") always asks Google, and when Google fails then, an
        answer a few seconds or minutes old that covers the span (the one the offers were made
        from) stands in for it."""
        calendars = self._calendars(doctor_ids)
        if not calendars or end <= start:
            return []
        key = (tuple(sorted(calendars.items())), start, end)
        now = time.monotonic()
        cached = self._covering(calendars, start, end)
        if cached is not None and not fresh and now - cached[0] < self._ttl:
            return cached[1]
        try:
            intervals = await self._apis.run(self._free_busy, calendars, start, end)
        except GoogleUnavailable as error:
            if cached is not None and now - cached[0] < self._ttl * 20:
                logger.warning(
                    "freeBusy failed (%s); using an answer %.0fs old", error, now - cached[0]
                )
                return cached[1]
            await self._unavailable(f"Google Calendar is not answering: {error}")
            raise CalendarUnavailable(str(error)) from error
        self._remember(key, calendars, start, end, intervals)
        return intervals

    def _covering(
        self, calendars: dict[str, str], start: datetime, end: datetime
    ) -> tuple[float, list[BusyInterval]] | None:
        """The newest cached answer for these calendars over a span containing [start, end),
        cut to that span."""
        wanted = set(calendars.items())
        best: tuple[float, list[BusyInterval]] | None = None
        with self._cache_lock:
            for (items, cached_start, cached_end), (at, intervals) in self._cache.items():
                if cached_start > start or cached_end < end or not wanted <= set(items):
                    continue
                if best is None or at > best[0]:
                    best = (at, intervals)
        if best is None:
            return None
        doctors = set(calendars.values())
        return best[0], [
            b for b in best[1] if b.doctor_id in doctors and b.start < end and b.end > start
        ]

    def _remember(
        self,
        key: tuple[Any, ...],
        calendars: dict[str, str],
        start: datetime,
        end: datetime,
        intervals: list[BusyInterval],
    ) -> None:
        """Cache a fresh answer, and correct older answers over wider spans with it: what
        Google says now about [start, end) replaces what it said before (a slot taken by hand
        between the offers and "yes" is not offered again from the cache)."""
        doctors = set(calendars.values())
        with self._cache_lock:
            if len(self._cache) > 512:
                self._cache.clear()
            for other, (at, old) in list(self._cache.items()):
                if other == key or other[1] >= end or other[2] <= start:
                    continue
                kept = [
                    b for b in old if b.doctor_id not in doctors or b.start < start or b.end > end
                ]
                news = [b for b in intervals if b.doctor_id in dict(other[0]).values()]
                self._cache[other] = (at, kept + [b for b in news if b not in kept])
            self._cache[key] = (time.monotonic(), intervals)

    def _free_busy(
        self, calendars: dict[str, str], start: datetime, end: datetime
    ) -> list[BusyInterval]:
        freebusy = self._apis.calendar_freebusy()
        ids = list(calendars)
        found: list[BusyInterval] = []
        chunk_start = start
        while chunk_start < end:
            chunk_end = min(end, chunk_start + timedelta(days=FREEBUSY_MAX_DAYS))
            for i in range(0, len(ids), FREEBUSY_MAX_CALENDARS):
                body = {
                    "timeMin": chunk_start.isoformat(),
                    "timeMax": chunk_end.isoformat(),
                    "timeZone": "UTC",
                    "items": [{"id": c} for c in ids[i : i + FREEBUSY_MAX_CALENDARS]],
                }
                self.freebusy_calls += 1
                answer = self._apis.execute(
                    functools.partial(freebusy.query, body=body), what="freeBusy"
                )
                for calendar_id, data in answer.get("calendars", {}).items():
                    if data.get("errors"):
                        reasons = ",".join(e.get("reason", "?") for e in data["errors"])
                        raise GoogleUnavailable(f"freeBusy for a doctor's calendar: {reasons}")
                    found += [
                        BusyInterval(
                            doctor_id=calendars[calendar_id],
                            start=_parse(b["start"]),
                            end=_parse(b["end"]),
                        )
                        for b in data.get("busy", [])
                    ]
            chunk_start = chunk_end
        return found

    def forget_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    async def _unavailable(self, message: str) -> None:
        if self._on_unavailable is not None:
            try:
                await self._on_unavailable(message)
            except Exception:  # an alert must never break the caller's path
                logger.exception("alerting failed")

    # Events -----------------------------------------------------------------------------------

    def _calendar_of(self, doctor_id: str) -> str:
        doctor = self._clinic().doctor(doctor_id)
        if doctor is None or not doctor.calendar_id:
            raise SlotRejected(f"doctor {doctor_id} has no Google calendar id")
        return doctor.calendar_id

    def _body(self, event: CalendarEvent) -> dict[str, Any]:
        clinic = self._clinic()
        summary = self._title.format(
            first_name=event.patient_first_name,
            full_name=event.patient_full_name or event.patient_first_name,
            service=event.service_name,
        )
        body: dict[str, Any] = {
            "summary": summary,
            "description": event.description or f"appointment {event.appointment_id}",
            "start": {
                "dateTime": event.start.astimezone(clinic.tz).isoformat(),
                "timeZone": clinic.timezone,
            },
            "end": {
                "dateTime": event.end.astimezone(clinic.tz).isoformat(),
                "timeZone": clinic.timezone,
            },
            "status": "confirmed",
            "transparency": "opaque",
            "extendedProperties": {
                "private": {"appointment_id": event.appointment_id, "source": SOURCE}
            },
        }
        if event.location:
            body["location"] = event.location
        return body

    async def create_event(self, event: CalendarEvent, idempotency_key: str) -> str | None:
        return await self._apis.run(self._create, event, idempotency_key)

    def _create(self, event: CalendarEvent, idempotency_key: str) -> str:
        calendar_id = self._calendar_of(event.doctor_id)
        events = self._apis.calendar_events()
        event_id = event_id_for(idempotency_key)
        body = {**self._body(event), "id": event_id}
        try:
            created = self._call(
                lambda: events.insert(
                    calendarId=calendar_id, body=body, sendUpdates=self._send_updates
                ),
                "insert event",
            )
            return str(created["id"])
        except HttpError as error:
            if int(error.resp.status) != 409:
                raise _rejected(error, "insert event") from error
        # 409: the event exists (an earlier attempt reached Google): make it match, once.
        self._patch(calendar_id, event_id, self._body(event))
        return event_id

    async def move_event(self, event: CalendarEvent, external_id: str | None) -> None:
        await self._apis.run(self._move, event, external_id)

    def _move(self, event: CalendarEvent, external_id: str | None) -> None:
        calendar_id = self._calendar_of(event.doctor_id)
        event_id = external_id or event_id_for(event.appointment_id)
        try:
            self._patch(calendar_id, event_id, self._body(event))
        except EventMissing:
            # Not there (its creation never landed, or the doctor moved calendars): create it.
            self._create(event, event.appointment_id)

    def _patch(self, calendar_id: str, event_id: str, body: dict[str, Any]) -> None:
        events = self._apis.calendar_events()
        try:
            self._call(
                lambda: events.patch(
                    calendarId=calendar_id,
                    eventId=event_id,
                    body=body,
                    sendUpdates=self._send_updates,
                ),
                "patch event",
            )
        except HttpError as error:
            raise _rejected(error, "patch event") from error

    async def delete_event(self, event: CalendarEvent, external_id: str | None) -> None:
        await self._apis.run(self._delete, event, external_id)

    def _delete(self, event: CalendarEvent, external_id: str | None) -> None:
        calendar_id = self._calendar_of(event.doctor_id)
        event_id = external_id or event_id_for(event.appointment_id)
        events = self._apis.calendar_events()
        if self._cancel_mode == "mark":
            body = self._body(event)
            body["summary"] = "[cancelled] " + body["summary"]
            body["transparency"] = "transparent"  # no longer blocks freeBusy
            body["extendedProperties"]["private"]["status"] = "cancelled"
            try:
                self._patch(calendar_id, event_id, body)
            except EventMissing:
                logger.info("cancelled appointment has no event to mark")
            return
        try:
            self._call(
                lambda: events.delete(
                    calendarId=calendar_id, eventId=event_id, sendUpdates=self._send_updates
                ),
                "delete event",
            )
        except HttpError as error:
            if int(error.resp.status) in (404, 410):
                return  # already gone: deleting is idempotent
            raise _rejected(error, "delete event") from error

    async def list_events(
        self, doctor_id: str, start: datetime, end: datetime
    ) -> list[ExternalEvent]:
        return await self._apis.run(self._list, doctor_id, start, end)

    def _list(self, doctor_id: str, start: datetime, end: datetime) -> list[ExternalEvent]:
        calendar_id = self._calendar_of(doctor_id)
        events = self._apis.calendar_events()
        found: list[ExternalEvent] = []
        token: str | None = None
        while True:
            page = self._call(
                functools.partial(
                    events.list,
                    calendarId=calendar_id,
                    timeMin=start.isoformat(),
                    timeMax=end.isoformat(),
                    singleEvents=True,
                    showDeleted=True,
                    maxResults=250,
                    pageToken=token,
                ),
                "list events",
            )
            for item in page.get("items", []):
                private = item.get("extendedProperties", {}).get("private", {})
                if private.get("source") != SOURCE or "dateTime" not in item.get("start", {}):
                    continue
                found.append(
                    ExternalEvent(
                        external_id=item["id"],
                        appointment_id=private.get("appointment_id"),
                        start=_parse(item["start"]["dateTime"]),
                        end=_parse(item["end"]["dateTime"]),
                        cancelled=item.get("status") == "cancelled"
                        or private.get("status") == "cancelled",
                    )
                )
            token = page.get("nextPageToken")
            if not token:
                return found

    def _call(self, make_request: Callable[[], Any], what: str) -> Any:
        try:
            return self._apis.execute(make_request, what=what)
        except GoogleUnavailable as error:
            raise CalendarUnavailable(str(error)) from error


def _rejected(error: HttpError, what: str) -> Exception:
    status = int(error.resp.status)
    if status in (404, 410):
        return EventMissing(f"{what}: event not found (HTTP {status})")
    if status in (400, 403):
        return SlotRejected(f"{what}: refused (HTTP {status})")
    return CalendarUnavailable(f"{what}: HTTP {status}")
